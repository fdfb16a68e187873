"""Deterministic shares of a stream of molecules, and seeds that follow the molecule.

A molecule belongs to shard ``stable_hash(ID) mod K``; its seed is derived from the global seed and its
ID. Neither depends on the number of shards of a run, the chunk size, the worker count or the order of
the input, so the same molecule gets the same conformers however a job is laid out.

The default shard comes from a SLURM array (``SLURM_ARRAY_TASK_ID`` / ``SLURM_ARRAY_TASK_COUNT``); under
torchrun or srun every rank takes a sub-shard: shard ``I`` of ``K`` on rank ``r`` of ``W`` is the
effective shard ``I * W + r`` of ``K * W``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from molgen.cluster import RankInfo
from molgen.errors import InputError

__all__ = ["ShardSpec", "molecule_seed", "shard_of", "stable_hash"]


def stable_hash(text: str) -> int:
    """A 64-bit hash of ``text`` that is the same in every process and Python version (BLAKE2b)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def shard_of(mol_id: str, num_shards: int) -> int:
    """The shard (0..num_shards-1) that molecule ``mol_id`` belongs to."""
    return stable_hash(mol_id) % num_shards


def molecule_seed(seed: int, mol_id: str) -> int:
    """The seed of one molecule: derived from the global ``seed`` and its ID, in [1, 2**31 - 2]
    (never 0, which makes RDKit's embedding return identical conformers)."""
    return stable_hash(f"{int(seed)}\x00{mol_id}") % (2**31 - 2) + 1


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` of ``count``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise InputError(f"shard index must be in 0..{self.count - 1} for {self.count} shard(s), got {self.index}")

    def owns(self, mol_id: str) -> bool:
        """Whether molecule ``mol_id`` is in this shard."""
        return self.count == 1 or shard_of(mol_id, self.count) == self.index

    @property
    def label(self) -> str:
        """Folder name of the shard: ``shard-00003-of-00064``."""
        return f"shard-{self.index:05d}-of-{self.count:05d}"

    @staticmethod
    def resolve(
        shard_index: int | None, num_shards: int | None, rank: RankInfo | None = None,
        environ: dict[str, str] | None = None,
    ) -> ShardSpec:
        """The effective shard of this process from options, the SLURM array and the torchrun rank.

        Raises:
            InputError: inconsistent values (an index outside 0..K-1, only one of the two options).
        """
        env = os.environ if environ is None else environ
        if num_shards is None and shard_index is None and "SLURM_ARRAY_TASK_ID" in env:
            task = int(env["SLURM_ARRAY_TASK_ID"])
            count = int(env.get("SLURM_ARRAY_TASK_COUNT", "0"))
            low = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
            high = int(env.get("SLURM_ARRAY_TASK_MAX", str(low + count - 1)))
            if count < 1:
                raise InputError("SLURM_ARRAY_TASK_ID is set without SLURM_ARRAY_TASK_COUNT: pass --num-shards")
            if high - low + 1 != count:
                raise InputError(
                    f"the SLURM array is not a contiguous range ({count} tasks from {low} to {high}; e.g. a "
                    "partial resubmission): pass --shard-index and --num-shards explicitly"
                )
            shard_index, num_shards = task - low, count
        if (shard_index is None) != (num_shards is None):
            raise InputError("--shard-index and --num-shards go together (or neither, or a SLURM array)")
        base = ShardSpec(shard_index or 0, num_shards or 1)
        rank = rank or RankInfo.from_env(dict(env))
        if rank.world_size == 1:
            return base
        return ShardSpec(base.index * rank.world_size + rank.rank, base.count * rank.world_size)

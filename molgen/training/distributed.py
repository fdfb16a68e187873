"""Single-process or data-parallel training context (torchrun, or SLURM via environment mapping).

Under SLURM without torchrun, ``SLURM_PROCID``, ``SLURM_LOCALID`` and ``SLURM_NTASKS`` are mapped to
torch's ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` (as MACE's ``slurm_distributed`` does); ``MASTER_ADDR``
and ``MASTER_PORT`` must be exported by the job script (see ``cli/slurm_train.sh``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, DistributedSampler

from molgen.cluster import RankInfo, slurm_to_torch_env


@dataclass
class DistributedContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    sampler: DistributedSampler | None = None

    @staticmethod
    def from_env() -> DistributedContext:
        slurm_to_torch_env()  # torch.distributed's env:// rendezvous reads the mapped variables
        info = RankInfo.from_env()
        world = info.world_size
        ctx = DistributedContext(info.rank, info.local_rank, world)
        if world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            torch.distributed.init_process_group(backend)
        return ctx

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: str) -> torch.device:
        if requested == "auto":
            requested = "cuda" if torch.cuda.is_available() else "cpu"
        if requested == "cuda" and self.world_size > 1:
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return torch.device(requested)

    def make_sampler(self, dataset: Dataset, seed: int) -> DistributedSampler | None:
        if self.world_size > 1:
            self.sampler = DistributedSampler(dataset, num_replicas=self.world_size, rank=self.rank, seed=seed, drop_last=True)
        return self.sampler

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.world_size > 1:
            ids = [self.local_rank] if torch.cuda.is_available() else None
            return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        return model

    def agree(self, value: float) -> float:
        """Rank 0's ``value`` on every rank (identity in a single process).

        Used for the training clock: the time-based learning rate and the ``--max-minutes`` stop must be
        the same on all ranks, or their weights drift apart (different learning rates) or the run hangs
        (one rank stops while the others wait in the gradient all-reduce).
        """
        if self.world_size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self._collective_device())
        torch.distributed.broadcast(t, src=0)
        return float(t.item())

    def replicas_max_difference(self, model: torch.nn.Module) -> float:
        """Largest absolute difference between this rank's parameters and rank 0's (0.0 in one process)."""
        if self.world_size == 1:
            return 0.0
        flat = torch.cat([p.detach().reshape(-1).double() for p in model.parameters()])
        ref = flat.clone()
        torch.distributed.broadcast(ref, src=0)
        diff = (flat - ref).abs().max().reshape(1)
        torch.distributed.all_reduce(diff, op=torch.distributed.ReduceOp.MAX)
        return float(diff.item())

    def _collective_device(self) -> torch.device:
        backend = torch.distributed.get_backend()
        return torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")

    def print(self, message: str) -> None:
        if self.is_main:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        """Leave the process group: every rank waits for the others first, so none tears down a group
        that a peer still uses."""
        if self.world_size > 1 and torch.distributed.is_initialized():
            import gc

            gc.collect()  # release DDP reducers (they hold the group) while every peer is still connected
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()

"""Shards: every molecule in exactly one shard, the same conformers however a run is laid out, shards
from a SLURM array and from torchrun / srun ranks."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from batchtools import (
    SMALL,
    cli,
    conformers_by_name,
    merged_names,
    shard_dirs,
    write_smi,
)

from molgen.batch.sharding import ShardSpec, molecule_seed, shard_of, stable_hash
from molgen.cluster import RankInfo
from molgen.errors import InputError

IDS = [f"mol_{i}" for i in range(3000)] + ["", "CCO", "ünïcödé", "with space", "CHEMBL25"]


@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_every_id_in_exactly_one_shard(k: int) -> None:
    specs = [ShardSpec(i, k) for i in range(k)]
    owners = [[s.index for s in specs if s.owns(mol_id)] for mol_id in IDS]
    assert all(len(o) == 1 for o in owners)
    assert all(o[0] == shard_of(mol_id, k) for o, mol_id in zip(owners, IDS))
    counts = Counter(o[0] for o in owners)
    assert len(counts) == k and min(counts.values()) > 0.8 * len(IDS) / k  # a balanced hash


def test_hash_and_seed_are_pinned() -> None:
    """Resuming a run on another machine or Python needs the very same hash (BLAKE2b, not hash())."""
    assert stable_hash("mol_1") == 10688016712815840513
    assert shard_of("aspirin", 7) == 5
    assert molecule_seed(42, "aspirin") == 1474778651
    assert molecule_seed(42, "aspirin") != molecule_seed(43, "aspirin") != molecule_seed(42, "aspirin ")


def test_shard_spec_checks() -> None:
    assert ShardSpec(2, 3).label == "shard-00002-of-00003"
    for index, count in ((3, 3), (-1, 3), (0, 0)):
        with pytest.raises(InputError, match="shard index"):
            ShardSpec(index, count)
    with pytest.raises(InputError, match="go together"):
        ShardSpec.resolve(1, None, environ={})
    assert ShardSpec.resolve(None, None, environ={}) == ShardSpec(0, 1)


def _slurm(task: int, count: int, low: int | None = None, high: int | None = None, **extra: str) -> dict[str, str]:
    env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": str(count), **extra}
    if low is not None:
        env["SLURM_ARRAY_TASK_MIN"] = str(low)
    if high is not None:
        env["SLURM_ARRAY_TASK_MAX"] = str(high)
    return env


def test_slurm_array_defaults() -> None:
    resolve = ShardSpec.resolve
    assert resolve(None, None, environ=_slurm(4, 8, 0, 7)) == ShardSpec(4, 8)
    assert resolve(None, None, environ=_slurm(1, 8, 1, 8)) == ShardSpec(0, 8)  # --array=1-8
    assert resolve(None, None, environ=_slurm(8, 8, 1, 8)) == ShardSpec(7, 8)
    assert resolve(None, None, environ=_slurm(2, 4)) == ShardSpec(2, 4)  # no MIN/MAX: from 0
    assert resolve(1, 2, environ=_slurm(4, 8, 0, 7)) == ShardSpec(1, 2)  # options win
    with pytest.raises(InputError, match="not a contiguous range"):
        resolve(None, None, environ=_slurm(3, 3, 1, 5))  # --array=1,3,5
    with pytest.raises(InputError, match="not a contiguous range"):
        resolve(None, None, environ=_slurm(4, 5, 0, 8))  # --array=0-8:2
    with pytest.raises(InputError, match="SLURM_ARRAY_TASK_COUNT"):
        resolve(None, None, environ={"SLURM_ARRAY_TASK_ID": "3"})
    with pytest.raises(InputError, match="go together"):
        resolve(None, 4, environ=_slurm(1, 4, 0, 3))


def test_torchrun_and_srun_ranks_take_sub_shards() -> None:
    resolve = ShardSpec.resolve
    assert resolve(None, None, environ={"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == ShardSpec(1, 2)
    assert resolve(None, None, environ={"RANK": "0", "WORLD_SIZE": "1"}) == ShardSpec(0, 1)
    assert resolve(1, 3, RankInfo(rank=1, world_size=2)) == ShardSpec(3, 6)
    # srun without torchrun: SLURM_PROCID / SLURM_NTASKS are the rank and world size
    srun = {"SLURM_PROCID": "2", "SLURM_LOCALID": "0", "SLURM_NTASKS": "4"}
    assert RankInfo.from_env(srun) == RankInfo(rank=2, local_rank=0, world_size=4)
    assert resolve(None, None, environ=srun) == ShardSpec(2, 4)
    # a SLURM array task is one task: its share comes from the array, not from SLURM_PROCID
    assert resolve(None, None, environ=_slurm(3, 4, 0, 3, SLURM_PROCID="0", SLURM_NTASKS="1")) == ShardSpec(3, 4)
    # array task 1 of 2 running 2 srun tasks: sub-shards 2 and 3 of 4
    both = _slurm(1, 2, 0, 1, SLURM_NTASKS="2", SLURM_LOCALID="0")
    assert [resolve(None, None, environ={**both, "SLURM_PROCID": r}) for r in "01"] == [ShardSpec(2, 4), ShardSpec(3, 4)]
    # torchrun's RANK wins over SLURM_PROCID
    assert resolve(None, None, environ={**srun, "RANK": "0", "WORLD_SIZE": "2"}) == ShardSpec(0, 2)
    with pytest.raises(ValueError, match="inconsistent"):
        RankInfo.from_env({"RANK": "2", "WORLD_SIZE": "2"})


def test_sub_shards_of_all_ranks_partition_the_input() -> None:
    k, world = 2, 3
    specs = [ShardSpec.resolve(i, k, RankInfo(rank=r, world_size=world)) for i in range(k) for r in range(world)]
    assert sorted(s.index for s in specs) == list(range(k * world))
    assert all(sum(s.owns(mol_id) for s in specs) == 1 for mol_id in IDS)


def test_three_shards_end_to_end_and_merge(fake_sampler, tmp_path: Path) -> None:
    molecules = SMALL[:14]
    smi = write_smi(tmp_path / "in.smi", molecules)
    out = tmp_path / "out"
    for index in range(3):
        result = cli("conformers", smi, "-o", f"{out}/", "-n", "2", "--chunk-size", "2", "--threads", "1",
                     "--shard-index", index, "--num-shards", 3, "--no-progress", "--json")
        assert result.exit_code == 0, result.output
    assert [d.name for d in shard_dirs(out)] == [f"shard-0000{i}-of-00003" for i in range(3)]
    for index, shard in enumerate(shard_dirs(out)):
        names = {n for chunk in shard.glob("chunk-*.sdf") for n in conformers_by_name(chunk)}
        assert names == {name for _, name in molecules if shard_of(name, 3) == index}
    result = cli("merge", out, "-o", tmp_path / "all.sdf", "--json")
    assert result.exit_code == 0, result.output
    names = merged_names(tmp_path / "all.sdf")
    assert sorted(names) == sorted(name for _, name in molecules)  # each exactly once


def _layout(tmp_path: Path, smi: Path, tag: str, shards: int, chunk: int, threads: int) -> dict[str, list]:
    out = tmp_path / tag
    for index in range(shards):
        result = cli("conformers", smi, "-o", f"{out}/", "-n", "3", "--steps", "2", "--chunk-size", chunk,
                     "--threads", threads, "--shard-index", index, "--num-shards", shards, "--no-progress")
        assert result.exit_code == 0, result.output
    merged = tmp_path / f"{tag}.sdf"
    assert cli("merge", out, "-o", merged).exit_code == 0
    return conformers_by_name(merged)


def test_conformers_do_not_depend_on_shards_chunks_or_workers(fake_sampler, tmp_path: Path) -> None:
    smi = write_smi(tmp_path / "in.smi", SMALL[:8])
    one = _layout(tmp_path, smi, "k1", shards=1, chunk=50, threads=1)
    three = _layout(tmp_path, smi, "k3", shards=3, chunk=2, threads=2)
    assert sorted(one) == sorted(three) == sorted(name for _, name in SMALL[:8])
    for name in one:
        assert len(one[name]) == 3
        for a, b in zip(one[name], three[name]):
            np.testing.assert_array_equal(a, b)
    assert not np.allclose(one[SMALL[0][1]][0], one[SMALL[0][1]][1])  # distinct conformers


def test_real_model_conformers_do_not_depend_on_layout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The shipped model packs several molecules per denoiser call; how they are packed (chunks,
    shards) must not change a molecule's conformers."""
    from molgen import api

    monkeypatch.delenv("MOLGEN_MODEL", raising=False)
    api.clear_model_cache()
    smi = write_smi(tmp_path / "in.smi", SMALL[:6])
    one = _layout(tmp_path, smi, "k1", shards=1, chunk=50, threads=1)
    three = _layout(tmp_path, smi, "k3", shards=3, chunk=2, threads=1)
    assert sorted(one) == sorted(three) == sorted(name for _, name in SMALL[:6])
    for name in one:
        assert len(one[name]) == len(three[name])
        for a, b in zip(one[name], three[name]):
            np.testing.assert_allclose(a, b, atol=2e-4)  # SDF keeps 4 decimals
    api.clear_model_cache()

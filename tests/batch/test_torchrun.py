"""Ranks of torchrun (or srun) take sub-shards of one run folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from batchtools import (
    SMALL,
    cli,
    conformers_by_name,
    merged_names,
    shard_dirs,
    subprocess_env,
    write_smi,
)

from molgen.batch.sharding import shard_of

BIN = Path(sys.executable).parent


def _torchrun() -> str | None:
    local = BIN / "torchrun"
    return str(local) if local.exists() else shutil.which("torchrun")


@pytest.mark.skipif(_torchrun() is None, reason="torchrun (installed with torch) is not available")
def test_torchrun_ranks_write_their_sub_shards(tmp_path: Path) -> None:
    molecules = SMALL[:10]  # all valid: torchrun stops every rank when one exits non-zero
    smi = write_smi(tmp_path / "in.smi", molecules)
    out = tmp_path / "out"
    env = subprocess_env(PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))
    cmd = [_torchrun(), "--standalone", "--nproc_per_node=2", "--no-python", "molgen", "conformers", str(smi),
           "-o", f"{out}/", "-n", "2", "--steps", "2", "--device", "cpu", "--threads", "1", "--no-progress"]
    done = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert [d.name for d in shard_dirs(out)] == ["shard-00000-of-00002", "shard-00001-of-00002"]
    assert json.loads((out / "run.json").read_text())["num_shards"] == 2
    for rank, shard in enumerate(shard_dirs(out)):
        summary = json.loads((shard / "summary.json").read_text())
        assert summary["shard"] == {"index": rank, "count": 2} and summary["interrupted"] is None
        names = {n for chunk in shard.glob("chunk-*.sdf") for n in conformers_by_name(chunk)}
        assert names == {name for _, name in molecules if shard_of(name, 2) == rank}
    result = cli("merge", out, "-o", tmp_path / "all.sdf")
    assert result.exit_code == 0, result.output
    assert sorted(merged_names(tmp_path / "all.sdf")) == sorted(name for _, name in molecules)


def test_ranks_refuse_one_output_file(fake_sampler, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every rank would write (and replace) the same file: only its own share would be left."""
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    result = cli("conformers", "CCO", "-o", tmp_path / "all.sdf", "-n", "1", "--threads", "1")
    assert result.exit_code == 2
    assert "2 ranks (torchrun / srun) would all write" in result.stderr and "-o out/" in result.stderr
    result = cli("conformers", "CCO", "-o", f"{tmp_path / 'out'}/", "-n", "1", "--threads", "1", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["shard"] == {"index": 1, "count": 2}

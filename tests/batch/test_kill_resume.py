"""A folder run killed partway (SIGTERM, SIGKILL, a worker killed) and rerun: every molecule exactly once,
no corrupt chunk, at most one chunk done twice.

The killed run is a subprocess with the shipped model (tiny settings); the rerun is the same command in
this process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from batchtools import (
    MOLGEN,
    SMALL,
    chunk_files,
    cli,
    manifest,
    merged_names,
    read_sdf,
    subprocess_env,
    write_smi,
)

SHARD = "shard-00000-of-00001"
CHUNK = 5
N_CHUNKS = -(-len(SMALL) // CHUNK)


def _finished_lines(shard: Path) -> int:
    try:
        return (shard / "manifest.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _stamps(shard: Path) -> dict[str, tuple[int, int]]:
    return {c.name: (c.stat().st_ino, c.stat().st_mtime_ns) for c in chunk_files(shard)}


def _gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_run_resumes(sig: signal.Signals, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from molgen import api

    smi = write_smi(tmp_path / "in.smi", SMALL)
    out = tmp_path / "out"
    shard = out / SHARD
    args = ["conformers", str(smi), "-o", f"{out}/", "-n", "2", "--steps", "2", "--chunk-size", str(CHUNK),
            "--device", "cpu", "--threads", "2", "--no-progress", "--log-every", "0"]
    log = tmp_path / "killed.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(MOLGEN + args, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while _finished_lines(shard) < 1:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no chunk finished"
            time.sleep(0.01)
        workers = psutil.Process(proc.pid).children()
        os.kill(proc.pid, sig)
        rc = proc.wait(timeout=120)
        # the workers die with the main process, even when it is SIGKILLed
        deadline = time.monotonic() + 60
        while not all(_gone(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(_gone(w) for w in workers)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    stderr = log.read_text()
    assert rc == (143 if sig == signal.SIGTERM else -signal.SIGKILL), stderr
    if sig == signal.SIGTERM:
        assert "interrupted (SIGTERM); rerun the same command to resume" in stderr
        assert json.loads((shard / "summary.json").read_text())["interrupted"] == "SIGTERM"
        assert "Traceback" not in stderr
    else:
        assert not (shard / "summary.json").exists()

    before = manifest(shard)
    assert 1 <= len(before) < N_CHUNKS, "the run finished before it was killed"
    assert [m["chunk"] for m in before] == list(range(len(before)))
    stamps = _stamps(shard)
    for chunk in chunk_files(shard):  # no chunk is half written, whatever the moment of the kill
        assert len(read_sdf(chunk)) >= 1
    result = cli("merge", out, "-o", tmp_path / "early.sdf")  # an unfinished shard is not merged
    assert result.exit_code == 2 and "1 shard(s) unfinished: 0" in result.stderr

    monkeypatch.delenv("MOLGEN_MODEL", raising=False)  # the shipped model, as in the subprocess
    api.clear_model_cache()
    try:
        result = cli(*args, "--json")
    finally:
        api.clear_model_cache()
    assert result.exit_code in (0, 1), result.output
    summary = json.loads(result.stdout)
    assert summary["molecules_skipped"] == CHUNK * len(before)
    assert summary["molecules_ok"] + summary["molecules_failed"] == len(SMALL) - CHUNK * len(before)
    after = manifest(shard)
    assert sorted(m["chunk"] for m in after) == list(range(N_CHUNKS))  # each chunk once
    redone = [name for name, stamp in stamps.items() if _stamps(shard)[name] != stamp]
    assert len(redone) <= 1, redone  # at most the chunk whose manifest line the kill prevented
    assert not list(shard.glob(".*.part"))
    assert sorted(p.name for p in chunk_files(shard)) == [f"chunk-{i:06d}.sdf" for i in range(N_CHUNKS)]

    result = cli("merge", out, "-o", tmp_path / "all.sdf", "--json")
    assert result.exit_code == 0, result.output
    merged = merged_names(tmp_path / "all.sdf")
    failed = [row[1] for m in after for row in m["failures"]]
    assert len(merged) == len(set(merged))
    assert sorted(merged + failed) == sorted(name for _, name in SMALL)


def test_a_dead_worker_ends_the_run_and_a_rerun_resumes(fake_sampler, tmp_path: Path) -> None:
    """A worker killed (the OOM killer) would otherwise leave the run waiting forever for its unit."""
    smi = write_smi(tmp_path / "in.smi", SMALL[:12])
    out = tmp_path / "out"
    victim = SMALL[7][1]  # in chunk 1 of 3
    chunk0 = out / SHARD / "manifest.jsonl"

    def oom(mol, seed) -> None:  # in a worker: dies once chunk 0 is written (by the other worker's result)
        if mol.GetProp("_Name") == victim:
            deadline = time.monotonic() + 60
            while not chunk0.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGKILL)

    fake_sampler.perturb = oom
    args = ["conformers", smi, "-o", f"{out}/", "-n", "1", "--chunk-size", "4", "--threads", "2", "--no-progress"]
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert "a worker process died (killed by SIGKILL, out of memory?) during chunk 1" in result.stderr
    summary = json.loads((out / SHARD / "summary.json").read_text())
    assert summary["interrupted"].startswith("a worker process died")
    assert [m["chunk"] for m in manifest(out / SHARD)] == [0]
    assert cli("merge", out, "-o", tmp_path / "all.sdf").exit_code == 2
    fake_sampler.perturb = None
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["molecules_skipped"] == 4
    assert cli("merge", out, "-o", tmp_path / "all.sdf").exit_code == 0
    assert sorted(merged_names(tmp_path / "all.sdf")) == sorted(name for _, name in SMALL[:12])


def test_sigterm_in_the_main_process_is_not_taken_for_a_molecule_error(fake_sampler, tmp_path: Path) -> None:
    """With one thread (or a GPU) molecules are sampled in the main process: SIGTERM arrives inside a
    molecule's work, where errors of that molecule are caught; it must still end the run (143)."""
    smi = write_smi(tmp_path / "in.smi", SMALL[:9])
    out = tmp_path / "out"
    victim = SMALL[4][1]  # in chunk 1 of 3

    def sigterm(mol, seed) -> None:
        if mol.GetProp("_Name") == victim:
            os.kill(os.getpid(), signal.SIGTERM)

    fake_sampler.perturb = sigterm
    args = ["conformers", smi, "-o", f"{out}/", "-n", "1", "--chunk-size", "3", "--threads", "1", "--no-progress"]
    result = cli(*args)
    assert result.exit_code == 143, result.output
    assert "interrupted (SIGTERM)" in result.stderr and "FAILED" not in result.stderr
    assert [m["chunk"] for m in manifest(out / SHARD)] == [0]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is put back
    fake_sampler.perturb = None
    result = cli(*args, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["molecules_skipped"] == 3


def test_pool_shutdown_is_bounded_when_a_worker_died_holding_the_task_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle worker holds the pool's task-pipe lock; killed from outside (OOM killer, a SIGTERM to
    the whole job), it never releases it and Pool.terminate() would wait forever."""
    import multiprocessing as mp
    import threading

    from molgen.batch import runner

    monkeypatch.setattr(runner, "_POOL_STOP_S", 1.0)
    pool = mp.get_context("fork").Pool(2)
    pool.apply(os.getpid)
    time.sleep(0.3)  # both workers waiting for a task, one of them holding the lock
    for worker in list(pool._pool):
        os.kill(worker.pid, signal.SIGKILL)
        worker.join(30)
    stopper = threading.Thread(target=runner._stop_pool, args=(pool, False), daemon=True)
    stopper.start()
    stopper.join(120)
    assert not stopper.is_alive()
    for worker in list(pool._pool):  # the replacements the pool started were killed too
        worker.join(30)
        assert not worker.is_alive()

"""Peak resident memory and wall time of a child process (rusage), and the ``molgen conformers`` probe."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["measure_memory", "run_measured"]

#: run in a small, fresh interpreter: starts the measured command and reports its rusage. The
#: detour matters: a child forked directly from this (large) process inherits our RSS high-water
#: mark up to its exec, which would inflate its ru_maxrss.
_MEASURE_HELPER = r"""
import json, os, resource, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - start
with open(out, "w") as fh:
    json.dump({"exit_code": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss,
               "children_maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
               "user_seconds": usage.ru_utime, "system_seconds": usage.ru_stime,
               "wall_seconds": wall}, fh)
"""


def run_measured(
    cmd: Sequence[str],
    *,
    timeout: float | None = None,
    log_path: Path | None = None,
    stdout_path: Path | None = None,
    sample_interval: float = 0.2,
) -> dict[str, Any]:
    """Run ``cmd`` under the helper; its exit code, rusage and wall time.

    Output goes to ``log_path`` (stdout and stderr together), or, with ``stdout_path``, stdout
    there and stderr to ``log_path``.

    Returns ``{"exit_code", "maxrss_kib" (peak RSS of the command, KiB: with worker processes the
    largest single process of its tree), "children_maxrss_kib", "user_seconds", "system_seconds"
    (CPU s of the tree), "wall_seconds" (process start to exit), "tree_rss_peak_kib", "timed_out",
    "output_tail"}`` (``None`` values when the helper was killed by the timeout).
    ``tree_rss_peak_kib``: the largest sum of RSS over the command and all its descendants, sampled
    every ``sample_interval`` s with psutil (None without psutil); shared pages count once per
    process, so with forked workers it is an upper bound.
    """
    with tempfile.TemporaryDirectory(prefix="molgen-bench-rusage-") as tmp:
        result_path = Path(tmp) / "rusage.json"
        log = Path(log_path) if log_path is not None else Path(tmp) / "child.log"
        helper = [sys.executable, "-I", "-S", "-c", _MEASURE_HELPER, str(result_path), *cmd]
        timed_out, tree_peak = False, None
        with open(log, "wb") as logf:
            outf = open(stdout_path, "wb") if stdout_path is not None else None  # noqa: SIM115
            try:
                proc = subprocess.Popen(
                    helper,
                    stdout=outf if outf is not None else logf,
                    stderr=logf if outf is not None else subprocess.STDOUT,
                    start_new_session=True,
                )
                tree_peak, timed_out = _wait_sampling_tree(proc, timeout, sample_interval)
            finally:
                if outf is not None:
                    outf.close()
        usage = json.loads(result_path.read_text()) if result_path.exists() else {}
        tail = log.read_text(errors="replace")[-2000:]
    keys = ("exit_code", "maxrss_kib", "children_maxrss_kib", "user_seconds", "system_seconds", "wall_seconds")
    return {**{k: usage.get(k) for k in keys}, "tree_rss_peak_kib": tree_peak, "timed_out": timed_out,
            "output_tail": tail}  # fmt: skip


def _tree_rss_kib(root: Any) -> int:
    """Sum of RSS (KiB) over the descendants of the helper ``root`` (psutil.Process), not the helper."""
    import psutil

    total = 0
    for child in root.children(recursive=True):
        try:
            total += child.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total // 1024


def _wait_sampling_tree(
    proc: subprocess.Popen, timeout: float | None, interval: float
) -> tuple[int | None, bool]:
    """Wait for ``proc`` (killing its process group after ``timeout`` s) while sampling the RSS of
    its descendants; ``(peak tree RSS in KiB or None, timed out)``."""
    import time

    try:
        import psutil

        root = psutil.Process(proc.pid)
    except Exception:  # noqa: BLE001 - no psutil, or already gone: no sampling
        root = None
    deadline = None if timeout is None else time.monotonic() + timeout
    peak: int | None = None
    while True:
        if root is not None:
            with contextlib.suppress(Exception):  # the helper may just have exited
                peak = max(peak or 0, _tree_rss_kib(root))
        wait = interval if deadline is None else min(interval, max(0.0, deadline - time.monotonic()))
        try:
            proc.wait(timeout=wait)
            return peak, False
        except subprocess.TimeoutExpired:
            if deadline is not None and time.monotonic() >= deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return peak, True


def measure_memory(
    smiles: Sequence[str],
    k: int,
    *,
    num_confs: int = 10,
    model: str | None = None,
    sampler: str = "ode",
    steps: int | None = None,
    seed: int = 42,
    device: str = "cpu",
    threads: int = 1,
    timeout: float | None = None,
    per_structure: int | None = None,
) -> dict[str, Any]:
    """Peak resident memory and wall time of ``molgen conformers`` on ``k`` SMILES (subprocess).

    Writes ``k`` SMILES (cycled if fewer are given) to a temporary ``.smi`` file and runs
    ``python -m molgen.cli conformers FILE -n num_confs -o FILE.sdf ...`` as a child of a small
    helper interpreter, which reports the child's ``ru_maxrss`` (KiB on Linux; from ``os.wait4``,
    equal to its ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``) and wall time (process start
    to exit, imports and model loading included).
    """
    if not smiles:
        raise ValueError("no SMILES for the memory measurement")
    with tempfile.TemporaryDirectory(prefix="molgen-bench-mem-") as tmp:
        smi = Path(tmp) / "molecules.smi"
        smi.write_text("".join(f"{smiles[i % len(smiles)]} mol{i}\n" for i in range(k)))
        sdf = Path(tmp) / "out.sdf"
        cmd = [
            sys.executable, "-m", "molgen.cli", "conformers", str(smi),
            "-n", str(num_confs), "-o", str(sdf),
            "--sampler", sampler, "--seed", str(seed),
            "--device", device, "--threads", str(threads), "--no-progress", "-q",
        ]  # fmt: skip
        if model is not None:
            cmd += ["--model", str(Path(model).expanduser().resolve())]
        if per_structure is not None:
            cmd += ["--per-structure", str(per_structure)]
        if steps is not None:
            cmd += ["--steps", str(steps)]
        usage = run_measured(cmd, timeout=timeout, log_path=Path(tmp) / "child.log")
        n_written = sdf.read_text().count("$$$$") if sdf.exists() else 0
    exit_code, maxrss = usage["exit_code"], usage["maxrss_kib"]
    shown = ["molecules.smi" if c == str(smi) else "out.sdf" if c == str(sdf) else c for c in cmd]
    return {
        "command": shlex.join(["molgen", *shown[3:]]),
        "n_smiles": k,
        "num_confs": num_confs,
        "exit_code": exit_code,
        "timed_out": usage["timed_out"],
        "peak_rss_kib": maxrss,
        "peak_rss_mib": None if maxrss is None else round(maxrss / 1024, 1),
        "rusage_children_max_rss_kib": usage["children_maxrss_kib"],
        "wall_seconds": usage["wall_seconds"],
        "conformers_written": n_written,
        "output_tail": "" if exit_code in (0, 1) else usage["output_tail"],
    }

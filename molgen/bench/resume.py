"""How much work does a killed batch run lose? Kill at random points, rerun, count redone chunks.

    python -m molgen.bench.resume --smiles data/moses_test_1000.smi --num-molecules 200 --chunk-size 20 \\
        --kills 3 --out bench_results/resume

Each trial starts ``molgen conformers INPUT -o FOLDER/`` (folder output, the defaults otherwise),
kills it with SIGKILL at a random time (seeded) after the first chunk is finished, reruns the same command
to completion, and records: chunks finished before the kill, chunks the rerun wrote (it must only write
the missing ones), finished chunks redone (written by both runs: must be 0, so the work lost to a kill is
the chunk in progress, one per shard), and whether the merged output holds every molecule exactly once.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _manifest_chunks(folder: Path) -> list[int]:
    chunks = []
    for manifest in folder.glob("shard-*/manifest.jsonl"):
        for line in manifest.read_text().splitlines():
            try:
                chunks.append(int(json.loads(line)["chunk"]))
            except (ValueError, KeyError):
                continue
    return chunks


def _trial(cmd: list[str], folder: Path, kill_after: float, timeout: float) -> dict[str, Any]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    start = time.perf_counter()
    while not _manifest_chunks(folder) and proc.poll() is None and time.perf_counter() - start < timeout:
        time.sleep(0.05)
    first_chunk = time.perf_counter() - start
    time.sleep(kill_after)
    finished_early = proc.poll() is not None
    if not finished_early:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _manifest_chunks(folder)
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    after = _manifest_chunks(folder)
    rewritten = len(after) - len(before)
    return {"kill_after_first_chunk_s": round(kill_after, 2), "first_chunk_s": round(first_chunk, 2),
            "finished_before_kill": finished_early, "chunks_before_kill": len(set(before)),
            "chunks_written_by_rerun": rewritten, "chunks_total": len(set(after)),
            "finished_chunks_redone": len(before) + rewritten - len(set(after)), "rerun_exit": rerun.returncode}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smiles", default="data/moses_test_1000.smi")
    p.add_argument("--num-molecules", type=int, default=200)
    p.add_argument("--chunk-size", type=int, default=20)
    p.add_argument("-n", type=int, default=10)
    p.add_argument("--kills", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kill-window", type=float, default=10.0,
                   help="the kill comes uniformly within this many seconds after the first finished chunk")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--out", default="bench_results/resume")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [ln for ln in Path(args.smiles).read_text().splitlines() if ln.strip()][: args.num_molecules]
    trials = []
    with tempfile.TemporaryDirectory(prefix="molgen-resume-") as tmp:
        smi = Path(tmp) / "input.smi"
        smi.write_text("\n".join(lines) + "\n")
        for k in range(args.kills):
            folder = Path(tmp) / f"run{k}"
            cmd = [sys.executable, "-m", "molgen.cli", "conformers", str(smi), "-o", f"{folder}/", "-n", str(args.n),
                   "--chunk-size", str(args.chunk_size), "--no-progress", "-q"]
            trial = _trial(cmd, folder, rng.uniform(0.0, args.kill_window), args.timeout)
            merged = Path(tmp) / f"merged{k}.sdf"
            subprocess.run([sys.executable, "-m", "molgen.cli", "merge", str(folder), "-o", str(merged)],
                           capture_output=True, check=False)
            names = [block.split("\n", 1)[0] for block in merged.read_text().split("$$$$\n") if block.strip()]
            failed = Path(tmp) / f"merged{k}.failed.csv"
            n_failed = max(0, len(failed.read_text().splitlines()) - 1) if failed.exists() else 0
            distinct = len(dict.fromkeys(names))
            trial["molecules_in_output"] = distinct
            trial["molecules_failed"] = n_failed
            trial["every_molecule_once"] = distinct + n_failed == len(lines)
            trials.append(trial)
            print(trial, flush=True)
            shutil.rmtree(folder, ignore_errors=True)
    report = {"command": "python -m molgen.bench.resume " + " ".join(argv if argv is not None else sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d"), "molecules": len(lines), "chunk_size": args.chunk_size,
              "trials": trials, "max_finished_chunks_redone": max(t["finished_chunks_redone"] for t in trials)}
    (out / "resume.json").write_text(json.dumps(report, indent=1))
    md = [f"`{report['command']}` · {report['date']} · {len(lines)} molecules, chunks of {args.chunk_size}, one shard",
          "", "| trial | killed (s after first chunk) | finished before the kill | chunks done before kill | "
          "written by rerun | finished chunks redone | "
          "every molecule once |", "|---|---|---|---|---|---|---|"]
    for k, t in enumerate(trials):
        md.append(f"| {k} | {t['kill_after_first_chunk_s']} | {t['finished_before_kill']} | {t['chunks_before_kill']} | "
                  f"{t['chunks_written_by_rerun']} "
                  f"| {t['finished_chunks_redone']} | {t['every_molecule_once']} |")
    (out / "resume.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return report


if __name__ == "__main__":
    main()

"""Does memory stay flat on big inputs? Peak RSS of a streaming folder run on 1,000 and 100,000 SMILES.

    python data/build_moses_test_1000.py --num 100000 --out ~/.cache/molgen/moses_test_100k.smi
    python -m molgen.bench.memory_streaming --smiles ~/.cache/molgen/moses_test_100k.smi \\
        --sizes 1000 100000 --out bench_results/memory_streaming -- -n 1

Each size runs ``molgen conformers FIRST_K.smi -o FOLDER/ ARGS`` (folder output: streaming input, chunked
output, default threads) under :func:`molgen.bench.memory.run_measured` and records the peak RSS of the
largest process (``ru_maxrss``; the main process or a worker), the sampled peak of the whole process tree
(workers included; shared pages counted once per process), molecules done and wall time. The arguments
after ``--`` go to ``molgen conformers`` (the same for every size), e.g. one conformer per molecule so that
100,000 molecules take minutes: what grows with the input is the bookkeeping, not the per-molecule work.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from molgen.bench.memory import run_measured
    from molgen.bench.provenance import machine_info

    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smiles", type=Path, required=True, help="a .smi file with at least max(--sizes) lines")
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 100000])
    p.add_argument("--out", type=Path, default=Path("bench_results/memory_streaming"))
    p.add_argument("--timeout", type=float, default=7200)
    args = p.parse_args(argv)
    lines = args.smiles.expanduser().read_text().splitlines()
    rows = []
    with tempfile.TemporaryDirectory(prefix="molgen-mem-") as tmp:
        for size in args.sizes:
            if size > len(lines):
                raise SystemExit(f"{args.smiles} has {len(lines)} lines, fewer than {size}")
            smi = Path(tmp) / f"first_{size}.smi"
            smi.write_text("\n".join(lines[:size]) + "\n")
            folder = Path(tmp) / f"out_{size}"
            cmd = [sys.executable, "-m", "molgen.cli", "conformers", str(smi), "-o", f"{folder}/", "--no-progress",
                   "-q", "--json", *extra]
            stdout = Path(tmp) / f"summary_{size}.json"
            usage = run_measured(cmd, timeout=args.timeout, log_path=Path(tmp) / f"log_{size}.txt", stdout_path=stdout)
            summary = json.loads(stdout.read_text()) if stdout.exists() and stdout.read_text().strip() else {}
            rows.append({
                "smiles": size, "exit_code": usage["exit_code"], "wall_seconds": usage["wall_seconds"],
                "peak_rss_largest_process_mib": round((usage["maxrss_kib"] or 0) / 1024, 1),
                "peak_rss_tree_mib": round((usage["tree_rss_peak_kib"] or 0) / 1024, 1),
                "molecules_ok": summary.get("molecules_ok"), "molecules_failed": summary.get("molecules_failed"),
                "conformers": summary.get("conformers_written"), "summary_peak_rss_mib": summary.get("peak_rss_mib"),
            })
            print(rows[-1], flush=True)
    base = rows[0]
    for r in rows:
        r["largest_process_vs_first"] = round(r["peak_rss_largest_process_mib"] / base["peak_rss_largest_process_mib"], 3)
        r["tree_vs_first"] = round(r["peak_rss_tree_mib"] / base["peak_rss_tree_mib"], 3) if base["peak_rss_tree_mib"] else None
    command = "python -m molgen.bench.memory_streaming " + " ".join(argv + (["--", *extra] if extra else []))
    report = {"command": command, "machine": machine_info(), "date": time.strftime("%Y-%m-%d"), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory_streaming.json").write_text(json.dumps(report, indent=1, default=str))
    md = [f"`{command}` · {report['date']}", "",
          "| SMILES | exit | wall s | molecules ok / failed | conformers | peak RSS, largest process (MiB) | × first | "
          "peak RSS, all processes (MiB) | × first |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['smiles']:,} | {r['exit_code']} | {r['wall_seconds']:.0f} | {r['molecules_ok']} / {r['molecules_failed']} | "
                  f"{r['conformers']} | {r['peak_rss_largest_process_mib']} | {r['largest_process_vs_first']} | "
                  f"{r['peak_rss_tree_mib']} | {r['tree_vs_first']} |")
    (args.out / "memory_streaming.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return report


if __name__ == "__main__":
    main()

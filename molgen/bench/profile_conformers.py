"""Where does the time of conformer generation go? A cProfile of one process, grouped by stage.

    python -m molgen.bench.profile_conformers --smiles data/moses_test_1000.smi --num-molecules 100 -n 10

Runs :func:`molgen.api.generate_conformers_many` (the work of one batch worker: parsing, ETKDG local
structures, featurization, packed denoiser calls, validation, formatting) on one thread and reports the
cumulative seconds of each stage's entry point, the start-up (imports, model load) measured separately,
and the share of each stage in the total.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import time
from pathlib import Path
from typing import Any

#: stage -> (file suffix, function name) of its entry point in the profile
STAGES = {
    "parse and prepare input": ("molgen/api.py", "_prepare"),
    "ETKDG local structures": ("molgen/chem/embedding.py", "embed_local_structures"),
    "featurize, topology, planar bonds": ("molgen/sampling/conformer_sampler.py", "build"),
    "collate denoiser batches": ("molgen/models/graph.py", "collate_graphs"),
    "denoiser forward": ("molgen/models/torsion_denoiser.py", "forward"),
    "torsion rotations": ("molgen/diffusion/torsion_ops.py", "apply_torsion_deltas"),
    "validator build": ("molgen/chem/validate.py", "__init__"),
    "validation": ("molgen/chem/validate.py", "validate_many"),
    "post-processing": ("molgen/sampling/pipeline.py", "_postprocess"),
    "format SDF": ("molgen/chem/writers.py", "format_conformers"),
}


def _read_smiles(path: Path, limit: int) -> list[str]:
    out = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            out.append(line.split()[0])
        if len(out) >= limit:
            break
    return out


def _cumulative(stats: pstats.Stats, suffix: str, name: str) -> float:
    total = 0.0
    for (filename, _, func), (_, _, _, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
        if func == name and filename.replace("\\", "/").endswith(suffix):
            total += cum
    return total


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smiles", default="data/moses_test_1000.smi")
    p.add_argument("--num-molecules", type=int, default=100)
    p.add_argument("-n", type=int, default=10)
    p.add_argument("--out", default=None, help="write profile.json and profile.md here")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    import torch

    torch.set_num_threads(1)
    from molgen import api
    from molgen.chem.writers import format_conformers

    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    api.load_model(None)
    t_load = time.perf_counter() - t0
    smiles = _read_smiles(Path(args.smiles), args.num_molecules)
    api.generate_conformers("CCO", 2)  # warm-up
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    mols = api.generate_conformers_many(smiles, args.n)
    texts = [format_conformers(m) for m in mols if not isinstance(m, Exception)]
    prof.disable()
    total = time.perf_counter() - t0
    stats = pstats.Stats(prof)
    n_conf = sum(m.GetNumConformers() for m in mols if not isinstance(m, Exception))
    rows = {stage: _cumulative(stats, *where) for stage, where in STAGES.items()}
    rows["other"] = max(0.0, total - sum(rows.values()))
    report = {
        "molecules": len(smiles), "n": args.n, "conformers": n_conf, "seconds": total,
        "ms_per_conformer": 1000 * total / max(1, n_conf), "stages_s": rows,
        "startup_s": {"imports": t_import, "model load": t_load}, "output_chars": sum(map(len, texts)),
    }
    lines = [
        f"`python -m molgen.bench.profile_conformers {' '.join(argv if argv is not None else sys.argv[1:])}` · "
        f"{len(smiles)} molecules × N = {args.n}, {n_conf} conformers, 1 thread, {time.strftime('%Y-%m-%d')}; "
        f"{report['ms_per_conformer']:.1f} ms per conformer (cProfile overhead included)",
        "",
        "| stage | seconds | share |",
        "|---|---|---|",
        *(f"| {k} | {v:.2f} | {100 * v / total:.0f} % |" for k, v in rows.items()),
        f"| start-up: imports | {t_import:.2f} | (once per process) |",
        f"| start-up: model load | {t_load:.2f} | (once per process) |",
    ]
    print("\n".join(lines))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "profile.json").write_text(json.dumps(report, indent=1))
        (out / "profile.md").write_text("\n".join(lines) + "\n")
    return report


if __name__ == "__main__":
    main()

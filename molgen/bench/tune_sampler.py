"""Choose sampler settings on the CCD **validation** split (never the test split).

    python -m molgen.bench.tune_sampler --model PATH --num-molecules 80 --n 10 --out tune_results/

For each configuration (sampler, ODE method, steps, conformers per ETKDG local structure) it runs the same
measurement as the benchmark (symmetric minimum heavy-atom RMSD to the experimental conformer, seconds
per molecule) on a seeded sample of validation ligands, with RDKit ETKDGv3 in the same run as the
reference, and writes ``tune.json`` and a markdown table. The defaults in
:mod:`molgen.sampling.conformer_sampler` are set from this table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

#: partial diffusion: refine ETKDG torsions from an intermediate noise level (SDEdit-like)
CONFIGS_PARTIAL = [
    {"sampler": "ode", "ode_method": "euler", "steps": 5, "per_structure": 1, "sigma_start": 0.3},
    {"sampler": "ode", "ode_method": "euler", "steps": 5, "per_structure": 1, "sigma_start": 0.6},
    {"sampler": "sde", "ode_method": "euler", "steps": 5, "per_structure": 1, "sigma_start": 0.6},
    {"sampler": "ode", "ode_method": "euler", "steps": 8, "per_structure": 1, "sigma_start": 1.2},
]
#: fewer steps of the chosen setting (speed)
CONFIGS_STEPS = [
    {"sampler": "ode", "ode_method": "euler", "steps": 6, "per_structure": 1},
    {"sampler": "ode", "ode_method": "euler", "steps": 8, "per_structure": 1},
    {"sampler": "ode", "ode_method": "euler", "steps": 10, "per_structure": 1},
]
#: conformers per ETKDG local structure x steps (speed against quality)
CONFIGS_SHARE = [
    {"sampler": "ode", "ode_method": "euler", "steps": 8, "per_structure": 1},
    {"sampler": "ode", "ode_method": "euler", "steps": 6, "per_structure": 1},
    {"sampler": "ode", "ode_method": "euler", "steps": 8, "per_structure": 2},
    {"sampler": "ode", "ode_method": "euler", "steps": 6, "per_structure": 2},
    {"sampler": "ode", "ode_method": "euler", "steps": 8, "per_structure": 3},
]
#: amide-like bonds diffused freely, snapped to cis/trans, or kept at ETKDG's value; with shared structures
CONFIGS_PLANAR = [
    {"sampler": "ode", "ode_method": "euler", "steps": 8, "per_structure": 1, "planar_bonds": "free"},
    {"sampler": "ode", "ode_method": "euler", "steps": 8, "per_structure": 1, "planar_bonds": "snap"},
    {"sampler": "ode", "ode_method": "euler", "steps": 8, "per_structure": 1, "planar_bonds": "fixed"},
    {"sampler": "ode", "ode_method": "euler", "steps": 8, "per_structure": 2, "planar_bonds": "snap"},
    {"sampler": "ode", "ode_method": "euler", "steps": 8, "per_structure": 2, "planar_bonds": "fixed"},
    {"sampler": "ode", "ode_method": "euler", "steps": 6, "per_structure": 2, "planar_bonds": "fixed"},
]
#: score scale (inverse temperature) with snapped amide-like bonds
CONFIGS_SCALE = [
    {"sampler": "ode", "ode_method": "euler", "steps": 8, "per_structure": 1, "planar_bonds": "snap", "score_scale": s}
    for s in (1.0, 1.5, 2.0, 3.0)
]
#: final choice for a new model at N = 10: amide-like bonds, score scale, shared structures
CONFIGS_FINAL = [
    {"sampler": "ode", "ode_method": "euler", "steps": 8, "per_structure": 1, "planar_bonds": "free", "score_scale": 1.0},
    *({"sampler": "ode", "ode_method": "euler", "steps": 8, "per_structure": 1, "planar_bonds": "snap", "score_scale": s}
      for s in (1.0, 2.0, 3.0, 4.0)),
    {"sampler": "ode", "ode_method": "euler", "steps": 8, "per_structure": 2, "planar_bonds": "snap", "score_scale": 3.0},
]
#: two conformers per ETKDG structure (speed) at the best score scale of CONFIGS_FINAL
CONFIGS_SHARED_SCALE = [
    {"sampler": "ode", "ode_method": "euler", "steps": 8, "per_structure": 2, "planar_bonds": "snap", "score_scale": 2.0},
]
#: the same question at N = 50 (diversity against sharpness)
CONFIGS_N50 = [
    {"sampler": "ode", "ode_method": "euler", "steps": 8, "per_structure": 1, "planar_bonds": "snap", "score_scale": s}
    for s in (1.0, 2.0, 3.0)
]
#: full reverse diffusion from uniform torsions
CONFIGS_FROM_SCRATCH = [
    {"sampler": "ode", "ode_method": "euler", "steps": 10, "per_structure": 3},
    {"sampler": "ode", "ode_method": "euler", "steps": 20, "per_structure": 3},
    {"sampler": "ode", "ode_method": "heun", "steps": 10, "per_structure": 3},
    {"sampler": "sde", "ode_method": "heun", "steps": 20, "per_structure": 3},
    {"sampler": "ode", "ode_method": "euler", "steps": 10, "per_structure": 1},
    {"sampler": "sde", "ode_method": "heun", "steps": 20, "per_structure": 1},
]


def make_config_generator(model_path: str | None, cfg: dict[str, Any], seed: int = 42):
    """A ``generate(smiles, n)`` calling :func:`molgen.api.generate_conformers` with the settings ``cfg``.

    The same call as the benchmark's molgen generator (validation and resampling included), with the
    sampler options of ``cfg`` (``sampler``, ``steps``, ``ode_method``, ``per_structure``, ``sigma_start``).
    """
    from molgen.bench.generators import make_molgen_generator

    return make_molgen_generator(
        model=model_path, sampler=cfg["sampler"], steps=cfg["steps"], seed=seed,
        conformers_per_structure=cfg.get("per_structure"), ode_method=cfg.get("ode_method", "euler"),
        sigma_start=cfg.get("sigma_start"), planar_bonds=cfg.get("planar_bonds"),
        score_scale=cfg.get("score_scale"),
    )


def main(argv: list[str] | None = None) -> dict:
    import torch

    from molgen.bench.generators import make_etkdg_generator, warm_up
    from molgen.bench.references import select_references
    from molgen.bench.runner import benchmark
    from molgen.datasets.ccd import load_ccd_ligands

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None)
    p.add_argument("--num-molecules", type=int, default=80)
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--configs", choices=("scratch", "partial", "steps", "share", "planar", "scale", "final", "shared2", "n50"), default="scratch")
    p.add_argument("--out", default="tune_results")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    refs, stats = select_references(load_ccd_ligands(min_heavy_atoms=1, max_heavy_atoms=10**6), args.num_molecules,
                                    sample_seed=args.sample_seed, split="val")
    gens = {"etkdg": make_etkdg_generator()}
    configs = {"scratch": CONFIGS_FROM_SCRATCH, "partial": CONFIGS_PARTIAL, "steps": CONFIGS_STEPS,
               "share": CONFIGS_SHARE, "planar": CONFIGS_PLANAR, "scale": CONFIGS_SCALE,
               "final": CONFIGS_FINAL, "shared2": CONFIGS_SHARED_SCALE, "n50": CONFIGS_N50}[args.configs]
    for k, cfg in enumerate(configs):
        gens[f"molgen[{k}] " + ",".join(f"{a}={b}" for a, b in cfg.items())] = make_config_generator(args.model, cfg)
    warm_up(gens)
    results = {}
    lines = ["| method | median min-RMSD (Å) | < 1 Å | < 2 Å | conformers/s | failures |", "|---|---|---|---|---|---|"]
    for name, gen in gens.items():
        t0 = time.perf_counter()
        (entry,) = benchmark(refs, {name: gen}, [args.n], max_matches=1000, progress=False)
        s = entry["summary"]
        results[name] = {"summary": s, "wall_s": time.perf_counter() - t0}
        lines.append(f"| {name} | {s['median_min_rmsd']:.3f} | {s['frac_below_1']:.3f} | {s['frac_below_2']:.3f} | "
                     f"{s['conformers_per_second']:.1f} | {s['n_failures']} |")
        print(lines[-1], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"split": "val", "n": args.n, "selection": stats, "results": results, "configs": configs}
    (out / "tune.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "tune.md").write_text(f"`python -m molgen.bench.tune_sampler {' '.join(argv if argv is not None else sys.argv[1:])}` · "
                                 f"validation split, {len(refs)} molecules, N = {args.n}, 1 thread, "
                                 f"model `{args.model or 'default'}`, {time.strftime('%Y-%m-%d')}\n\n"
                                 + "\n".join(lines) + "\n")
    return report


if __name__ == "__main__":
    main()

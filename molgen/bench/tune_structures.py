"""How many ETKDG local structures does a molecule need? Chosen on the CCD **validation** split.

    python -m molgen.bench.tune_structures --n 10 --num-molecules 120 --out tune_results/structures_n10

Each configuration (``conformers_per_structure`` and ``rigid_conformers_per_structure``: conformers
sharing one local structure in molecules with and without flexible rings; ``max_structures``: a cap per
molecule; ``steps``) generates conformers for the same seeded sample of
validation ligands through :func:`molgen.api.generate_conformers_many` (validation and resampling
included, molecules packed into shared denoiser batches) and reports the median minimum heavy-atom RMSD
to the experimental conformer, the fraction under 1 Å, the ETKDG local structures embedded per
conformer, and seconds; RDKit ETKDGv3 runs on the same molecules as the reference. Quality numbers do not
depend on machine load; timings do, so speed is measured by ``molgen bench conformers`` instead.
The validation references are cached in ``~/.cache/molgen/val_refs_<seed>_<n>.pkl``.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

#: the settings each table ran with are pinned (defaults changed after some of these tables were made:
#: steps 8 -> 5, rigid_conformers_per_structure None -> 5, max_structures None -> 10)
_THEN = {"steps": 8, "max_structures": None}
CONFIGS: dict[str, list[dict[str, Any]]] = {
    "rigid": [
        {**_THEN, "rigid_conformers_per_structure": None},
        {**_THEN, "rigid_conformers_per_structure": 3},
        {**_THEN, "rigid_conformers_per_structure": 5},
        {**_THEN, "rigid_conformers_per_structure": 1000},
    ],
    "cap": [
        {**_THEN, "rigid_conformers_per_structure": 5},
        {**_THEN, "rigid_conformers_per_structure": 5, "max_structures": 10},
        {**_THEN, "rigid_conformers_per_structure": 5, "max_structures": 5},
        {**_THEN, "rigid_conformers_per_structure": 10, "max_structures": 5},
    ],
    "embedding": [
        {"steps": 8, "rigid_conformers_per_structure": 5, "max_structures": 10},
        {"steps": 8, "rigid_conformers_per_structure": 5, "max_structures": 10, "torsion_preferences": False},
    ],
    "steps": [
        {"rigid_conformers_per_structure": 5, "max_structures": 10, "steps": k} for k in (8, 6, 5, 4)
    ],
}


def _references(num: int, seed: int) -> list[Any]:
    from molgen.bench.references import select_references
    from molgen.datasets.ccd import load_ccd_ligands

    cache = Path.home() / ".cache" / "molgen" / f"val_refs_{seed}_{num}.pkl"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    refs, _ = select_references(load_ccd_ligands(min_heavy_atoms=1, max_heavy_atoms=10**6), num,
                                sample_seed=seed, split="val")
    cache.parent.mkdir(parents=True, exist_ok=True)
    from molgen.atomic import open_atomic

    with open_atomic(cache, binary=True) as fh:
        pickle.dump(refs, fh)
    return refs


def _score(refs: list[Any], mols: list[Any]) -> dict[str, Any]:
    from molgen.chem.metrics import symmetric_min_rmsd

    rmsd = []
    for ref, mol in zip(refs, mols):
        if isinstance(mol, Exception) or mol is None or mol.GetNumConformers() == 0:
            rmsd.append(np.inf)
            continue
        rmsd.append(float(symmetric_min_rmsd(ref.mol, mol, max_matches=1000).min()))
    r = np.array(rmsd)
    return {"median_min_rmsd": float(np.median(r)), "frac_below_1": float(np.mean(r < 1.0)),
            "frac_below_2": float(np.mean(r < 2.0)), "failures": int(np.sum(~np.isfinite(r)))}


def _etkdg(smiles: list[str], n: int, seed: int) -> list[Any]:
    from rdkit import Chem
    from rdkit.Chem import rdDistGeom

    out = []
    for s in smiles:
        mol = Chem.AddHs(Chem.MolFromSmiles(s))
        params = rdDistGeom.ETKDGv3()
        params.randomSeed = seed
        params.numThreads = 1
        rdDistGeom.EmbedMultipleConfs(mol, n, params)
        out.append(mol)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch
    from rdkit import rdBase

    from molgen import api
    from molgen.chem.torsions import has_flexible_rings
    from molgen.sampling.options import SamplingOptions

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", choices=sorted(CONFIGS), default="rigid")
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--num-molecules", type=int, default=120)
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default="tune_results/structures")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    blocker = rdBase.BlockLogs()
    refs = _references(args.num_molecules, args.sample_seed)
    smiles = [r.smiles for r in refs]
    from rdkit import Chem

    flexible = [has_flexible_rings(Chem.AddHs(Chem.MolFromSmiles(s))) for s in smiles]
    rows = []
    t0 = time.perf_counter()
    etkdg = _etkdg(smiles, args.n, args.seed)
    rows.append({"config": "ETKDGv3", **_score(refs, etkdg), "seconds": time.perf_counter() - t0,
                 "structures_per_conformer": 1.0})
    api.load_model(None)
    for cfg in CONFIGS[args.configs]:
        options = SamplingOptions(**{**SamplingOptions().to_dict(), "n": args.n, "seed": args.seed, **cfg})
        structures = sum(min(args.n, options.num_structures(args.n, f)) for f in flexible)
        t0 = time.perf_counter()
        mols = api.generate_conformers_many(smiles, options=options)
        seconds = time.perf_counter() - t0
        rows.append({"config": ", ".join(f"{k}={v}" for k, v in cfg.items()) or "defaults", **_score(refs, mols),
                     "seconds": seconds, "structures_per_conformer": structures / (args.n * len(smiles))})
        print(rows[-1], flush=True)
    del blocker
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m molgen.bench.tune_structures " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        f"`{command}` · validation split, {len(refs)} molecules ({sum(flexible)} with flexible rings), "
        f"N = {args.n}, 1 thread, {time.strftime('%Y-%m-%d')}; seconds depend on machine load",
        "",
        "| configuration | median min-RMSD (Å) | < 1 Å | < 2 Å | ETKDG structures per conformer | failures | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['config']} | {r['median_min_rmsd']:.3f} | {r['frac_below_1']:.3f} | {r['frac_below_2']:.3f} | "
                     f"{r['structures_per_conformer']:.2f} | {r['failures']} | {r['seconds']:.1f} |")
    report = {"split": "val", "n": args.n, "molecules": len(refs), "flexible": int(sum(flexible)), "rows": rows}
    (out / "tune.json").write_text(json.dumps(report, indent=1))
    (out / "tune.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()

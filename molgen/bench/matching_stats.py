"""Quality of conformer matching in a CCD build: how close the training targets are to experiment.

    python -m molgen.bench.matching_stats [--cache DIR]

Reads ``ccd_conformers.pkl`` and ``summary.json`` of :mod:`molgen.datasets.build_ccd` and prints the
median heavy-atom RMSD (Å) to the experimental conformation after copying the experimental torsions onto
the best ETKDG seed and after the Powell refinement, the fraction under 0.5 Å, and CPU seconds per ligand.
"""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    import numpy as np

    from molgen.datasets.build_ccd import dataset_dir

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", type=Path, default=None)
    p.add_argument("--workers", type=int, default=2, help="worker processes the build used")
    args = p.parse_args(argv)
    folder = dataset_dir(args.cache)
    with open(folder / "ccd_conformers.pkl", "rb") as fh:
        payload = pickle.load(fh)
    summary = json.loads((folder / "summary.json").read_text())
    copied = np.array([r["rmsd_copied"] for r in payload["records"]])
    refined = np.array([r["rmsd_match"] for r in payload["records"]])
    n = len(refined) + summary["match_failures"]
    stats = {
        "ligands_matched": len(refined),
        "failures": summary["match_failures"],
        "seeds": payload["num_seeds"],
        "median_rmsd_copied": round(float(np.median(copied)), 3),
        "median_rmsd_refined": round(float(np.median(refined)), 3),
        "frac_refined_below_0.5": round(float(np.mean(refined < 0.5)), 3),
        "cpu_seconds_per_ligand": round(summary["wall_s"] * args.workers / n, 3),
    }
    print(json.dumps(stats, indent=1))
    return stats


if __name__ == "__main__":
    main()

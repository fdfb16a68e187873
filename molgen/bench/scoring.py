"""Quality metric of the conformer benchmark: minimum RMSD to the experimental conformation.

Per molecule the minimum over its conformers of the symmetry-aware heavy-atom RMSD (Å) to the
experimental conformer (:func:`molgen.chem.metrics.symmetric_min_rmsd`). A molecule for which a
method returns no conformer (or raises) is a failure and counts as RMSD = inf: it is in the
denominator of the "fraction under x Å" columns and can never lower the median. The mean is over
molecules with at least one conformer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["ROTOR_BINS", "THRESHOLDS", "min_rmsd", "rmsd_summary"]

THRESHOLDS = (1.0, 1.5, 2.0)
ROTOR_BINS = ((0, 2), (3, 5), (6, 10), (11, 10**9))


def min_rmsd(ref_mol: Any, mol: Any, *, max_matches: int = 1000) -> tuple[float, str | None]:
    """``(lowest heavy-atom RMSD in Å of mol's conformers to ref_mol's conformer 0, error)``.

    ``inf`` with an error message when ``mol`` is None, has no conformer, or does not match.
    """
    from molgen.chem.metrics import symmetric_min_rmsd

    if mol is None or mol.GetNumConformers() == 0:
        return math.inf, "no conformer returned"
    try:
        return float(symmetric_min_rmsd(ref_mol, mol, max_matches=max_matches).min()), None
    except ValueError as exc:
        return math.inf, f"rmsd: {exc}"


def _num(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


def rmsd_summary(
    rows: Sequence[dict[str, Any]], references: Sequence[Any] | None = None
) -> dict[str, Any]:
    """Median / mean min-RMSD (Å), fractions under :data:`THRESHOLDS` and failures of per-molecule rows.

    ``rows``: ``{"id", "min_rmsd"}`` (inf = failure). With ``references`` (objects with ``id`` and
    ``n_rotatable_bonds``) also ``by_rotatable_bonds``: median and fraction under 1 Å per bin of
    :data:`ROTOR_BINS`.
    """
    rmsd = np.array([math.inf if r["min_rmsd"] is None else r["min_rmsd"] for r in rows], dtype=float)
    n_mol = len(rows)
    finite = rmsd[np.isfinite(rmsd)]
    out: dict[str, Any] = {
        "n_molecules": n_mol,
        "n_failures": int(n_mol - len(finite)),
        "median_min_rmsd": _num(float(np.median(rmsd))) if n_mol else None,
        "mean_min_rmsd": _num(float(finite.mean())) if len(finite) else None,
        **{f"frac_below_{t:g}": (float(np.mean(rmsd < t)) if n_mol else None) for t in THRESHOLDS},
    }
    if references is not None:
        rot = {r.id: r.n_rotatable_bonds for r in references}
        bins = {}
        for lo, hi in ROTOR_BINS:
            sel = np.array([lo <= rot.get(r["id"], -1) <= hi for r in rows], dtype=bool)
            label = f"{lo}-{hi}" if hi < 10**9 else f">={lo}"
            vals = rmsd[sel]
            bins[label] = {
                "n_molecules": int(sel.sum()),
                "median_min_rmsd": _num(float(np.median(vals))) if len(vals) else None,
                "frac_below_1": float(np.mean(vals < 1.0)) if len(vals) else None,
            }
        out["by_rotatable_bonds"] = bins
    return out

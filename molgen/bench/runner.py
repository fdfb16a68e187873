"""In-process benchmark loop: every generator, every N, every molecule (``--mode inprocess``).

The time of a method is ``time.perf_counter`` around the whole call, from the SMILES string to the
returned molecule, summed over molecules (the model is loaded and both methods are warmed up on one
small molecule beforehand, untimed; see :func:`molgen.bench.generators.warm_up`). Methods alternate
per molecule so background load affects both alike. Quality: :mod:`molgen.bench.scoring`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

from molgen.bench.generators import GenerateFn
from molgen.bench.references import Reference
from molgen.bench.scoring import min_rmsd, rmsd_summary

__all__ = ["DEFAULT_NS", "benchmark", "run_one", "summarize"]

DEFAULT_NS = (1, 10, 50)


def run_one(generate: GenerateFn, ref: Reference, n: int, max_matches: int = 1000) -> dict[str, Any]:
    """Generate ``n`` conformers of one reference and score them.

    Returns ``{"id", "min_rmsd" (Å; inf on failure), "n_conformers", "seconds" (wall time of the
    call), "error"}``; an exception of the generator is a failed molecule, not an error of the run.
    """
    error = None
    start = time.perf_counter()
    try:
        out = generate(ref.smiles, n)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - a failure of one molecule is a result
        out = None
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    seconds = time.perf_counter() - start
    n_confs = 0 if out is None else int(out.GetNumConformers())
    best, rmsd_error = min_rmsd(ref.mol, out, max_matches=max_matches)
    return {
        "id": ref.id,
        "min_rmsd": best,
        "n_conformers": n_confs,
        "seconds": seconds,
        "error": error or rmsd_error,
    }


def summarize(
    rows: Sequence[dict[str, Any]], references: Sequence[Reference] | None = None
) -> dict[str, Any]:
    """Aggregate per-molecule rows of one method and N: min-RMSD summary plus speed.

    Speed: ``total_seconds`` (sum of per-molecule call times, s), ``conformers_per_second``,
    ``seconds_per_molecule``.
    """
    quality = rmsd_summary(rows, references)
    bins = quality.pop("by_rotatable_bonds", None)
    n_mol = len(rows)
    total_s = float(sum(r["seconds"] for r in rows))
    n_confs = int(sum(r["n_conformers"] for r in rows))
    out: dict[str, Any] = {
        **quality,
        "total_conformers": n_confs,
        "total_seconds": total_s,
        "conformers_per_second": (n_confs / total_s) if total_s > 0 else None,
        "seconds_per_molecule": (total_s / n_mol) if n_mol else None,
    }
    if bins is not None:
        out["by_rotatable_bonds"] = bins
    return out


def benchmark(
    references: Sequence[Reference],
    generators: dict[str, GenerateFn],
    ns: Sequence[int] = DEFAULT_NS,
    *,
    max_matches: int = 1000,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run every generator for every N on every reference.

    Returns:
        one entry per (method, N): ``{"method", "n", "summary", "per_molecule"}`` with
        per-molecule rows ``{"id", "min_rmsd" (inf on failure), "n_conformers", "seconds",
        "error"}``.
    """
    from rdkit import rdBase
    from tqdm import tqdm

    rows: dict[tuple[str, int], list[dict]] = {(m, n): [] for n in ns for m in generators}
    bar = tqdm(
        total=len(ns) * len(references) * len(generators),
        desc="bench conformers",
        unit="run",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    )
    blocker = rdBase.BlockLogs()
    try:
        for n in ns:
            for ref in references:
                for method, generate in generators.items():
                    bar.set_postfix_str(f"N={n} {method} {ref.id}", refresh=False)
                    rows[(method, n)].append(run_one(generate, ref, n, max_matches))
                    bar.update(1)
    finally:
        bar.close()
        del blocker
    results = []
    for n in ns:
        for method in generators:
            r = rows[(method, n)]
            results.append(
                {
                    "method": method,
                    "n": int(n),
                    "summary": summarize(r, references),
                    "per_molecule": r,
                }
            )
    return results

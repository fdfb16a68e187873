"""PoseBusters pass rate of generated conformers (``posebusters.PoseBusters(config="mol")``).

Every tested conformer is its own molecule object (a copy holding that conformer alone, as
conformer 0), as PoseBusters expects one pose per molecule. A conformer passes when every check of the ``mol`` configuration
(loading, sanitization, InChI, connectivity, radicals, bond lengths and angles, internal clash, ring
and double-bond flatness, internal energy) is True; a check that is False or could not be evaluated
counts as a failure of that check. PoseBusters is slow (of order 0.05-0.1 s per conformer on one
core), so ``sample`` tests at most that many conformers per molecule (a seeded random choice).
posebusters is imported only when this runs.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

__all__ = ["posebusters_rate"]


def _single_conformer(mol: Any, conf_id: int, name: str) -> Any:
    """A copy of ``mol`` holding only conformer ``conf_id``, renumbered 0 (PoseBusters' energy check
    reads conformer 0: a copy keeping id 3 fails it with "Bad Conformer Id")."""
    from rdkit import Chem

    one = Chem.Mol(mol)
    one.RemoveAllConformers()
    conf = Chem.Conformer(mol.GetConformer(int(conf_id)))
    conf.SetId(0)
    one.AddConformer(conf, assignId=False)
    one.SetProp("_Name", name)
    return one


def posebusters_rate(
    mols: Mapping[str, Any],
    *,
    sample: int | None = None,
    seed: int = 0,
    config: str = "mol",
    chunk: int = 500,
) -> dict[str, Any]:
    """PoseBusters pass rate over the conformers of ``mols`` (molecule ID -> Mol with conformers).

    Args:
        mols: one RDKit Mol per molecule, holding its conformers (hydrogens as generated).
        sample: at most this many conformers per molecule (``random.Random(f"{seed}:{id}")``
            chooses them); None: all.
        seed: seed of that choice.
        config: PoseBusters configuration (``"mol"``: checks of a molecule on its own).
        chunk: conformers per ``PoseBusters.bust`` call.

    Returns:
        ``{"config", "sample", "n_molecules", "n_conformers", "n_passed", "pass_rate" (fraction of
        tested conformers passing every check; None if none tested), "n_failed_not_evaluated"
        (conformers that failed only through checks PoseBusters could not evaluate, e.g. an energy
        ratio without UFF parameters), "molecules_all_passed"
        (fraction of molecules whose tested conformers all pass), "failures_by_check" ({check:
        conformers failing it}), "per_molecule" ({id: [tested, passed]}), "seconds" (wall)}``.
    """
    from posebusters import PoseBusters
    from rdkit import rdBase

    started = time.perf_counter()
    jobs: list[tuple[str, Any]] = []
    for mol_id, mol in mols.items():
        if mol is None or mol.GetNumConformers() == 0:
            continue
        conf_ids = [c.GetId() for c in mol.GetConformers()]
        if sample is not None and len(conf_ids) > sample:
            conf_ids = sorted(random.Random(f"{seed}:{mol_id}").sample(conf_ids, int(sample)))
        for cid in conf_ids:
            jobs.append((mol_id, _single_conformer(mol, cid, str(mol_id))))

    buster = PoseBusters(config=config)
    failures: Counter[str] = Counter()
    checks: list[str] = []
    per_molecule: dict[str, list[int]] = {}
    n_passed = 0
    n_not_evaluated = 0  # failed only through checks PoseBusters could not evaluate (NaN)
    blocker = rdBase.BlockLogs()
    try:
        for start in range(0, len(jobs), max(1, chunk)):
            part = jobs[start : start + chunk]
            table = buster.bust([m for _, m in part], None, None)
            if not checks:
                checks = [str(c) for c in table.columns]
            ok = table.eq(True).to_numpy()  # NaN (not evaluated) and False fail
            false = table.eq(False).to_numpy()
            for (mol_id, _), row, row_false in zip(part, ok, false):
                passed = bool(row.all())
                n_not_evaluated += int(not passed and not row_false.any())
                n_passed += passed
                counts = per_molecule.setdefault(mol_id, [0, 0])
                counts[0] += 1
                counts[1] += int(passed)
                for name, good in zip(checks, row):
                    if not good:
                        failures[name] += 1
    finally:
        del blocker
    n = len(jobs)
    return {
        "config": config,
        "sample": sample,
        "n_molecules": len(per_molecule),
        "n_conformers": n,
        "n_passed": n_passed,
        "pass_rate": (n_passed / n) if n else None,
        "n_failed_not_evaluated": n_not_evaluated,
        "molecules_all_passed": (
            sum(t == p for t, p in per_molecule.values()) / len(per_molecule) if per_molecule else None
        ),
        "checks": checks,
        "failures_by_check": {name: failures.get(name, 0) for name in checks},
        "per_molecule": per_molecule,
        "seconds": time.perf_counter() - started,
    }

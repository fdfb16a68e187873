"""Does molgen's conformer validation agree with PoseBusters' molecule checks?

``python -m molgen.bench.posebusters_agreement --num-molecules 40 -n 5 --out bench_results/``

For a seeded sample of GEOM-DRUGS test-split SMILES (``../shared/data/geom/
drugs_test_smiles_corrected.csv``, column ``corrected_smiles``; used for evaluation only) it

1. generates ``n`` conformers per molecule with :func:`molgen.api.generate_conformers` (validated:
   the *delivered* conformers), and (unless ``--no-before``) once more with the validator restricted
   to the checks it had before the PoseBusters checks were added (``posebusters_checks=False``,
   swapped in for the pipeline's validator for that call);
2. samples ``--raw-n`` conformers per molecule with validation switched off
   (:func:`molgen.sampling.conformer_sampler.sample_conformers`, the sampler the API calls), which
   gives failing conformers to test against, and (unless ``--no-etkdg``) embeds ``n`` RDKit
   ETKDGv3 conformers as a reference of good ones;
3. runs PoseBusters (``posebusters.PoseBusters(config="mol")``) on every conformer, each as its own
   single-conformer Mol with conformer id 0 (PoseBusters' energy module reads conformer 0), and
   counts a conformer as passing when all 12 checks are True (NaN, i.e. not evaluated, fails);
4. validates the raw conformers with :class:`molgen.chem.validate.ConformerValidator` with and
   without the PoseBusters checks and reports the confusion table (validator verdict x PoseBusters
   verdict per conformer), the agreement of each validator check with the PoseBusters check it
   mirrors, the PoseBusters pass rate of the delivered conformers, the validator's reference energy
   against PoseBusters' ensemble mean, and the validator's cost per conformer before/after.

Outputs in ``--out``: ``posebusters_agreement.json`` (summary and one record per conformer) and
``posebusters_agreement.md``. posebusters and pandas are imported only when this runs. Run with one
thread (``OMP_NUM_THREADS=1``); about 6 minutes for 40 molecules at ``-n 5 --raw-n 20`` on a
loaded 2-core machine, most of it in PoseBusters.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import functools
import json
import logging
import platform
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MIRRORED", "MOLECULE_CHECKS", "PB_CHECKS", "main", "posebusters_verdicts", "run"]

DEFAULT_CSV = Path(__file__).resolve().parents[2].parent / "shared/data/geom/drugs_test_smiles_corrected.csv"

#: The 12 boolean checks of PoseBusters' ``mol`` configuration (posebusters 0.6.5).
PB_CHECKS = (
    "mol_pred_loaded",
    "sanitization",
    "inchi_convertible",
    "all_atoms_connected",
    "no_radicals",
    "bond_lengths",
    "bond_angles",
    "internal_steric_clash",
    "aromatic_ring_flatness",
    "non-aromatic_ring_non-flatness",
    "double_bond_flatness",
    "internal_energy",
)
#: Checks of the molecule rather than of the conformer (no conformer validator can catch them).
MOLECULE_CHECKS = PB_CHECKS[:5]
#: validator reason -> the PoseBusters check it implies or reproduces.
MIRRORED = {
    "bond_length": "bond_lengths",
    "bond_angle": "bond_angles",
    "planarity": "aromatic_ring_flatness",
    "internal_clash": "internal_steric_clash",
    "double_bond_planarity": "double_bond_flatness",
    "flat_ring": "non-aromatic_ring_non-flatness",
    "internal_energy": "internal_energy",
}


def _single_conformer_mols(mol: Any) -> list[Any]:
    """One Mol per conformer, each holding it as conformer 0."""
    from rdkit import Chem

    out = []
    for conf in mol.GetConformers():
        one = Chem.Mol(mol)
        one.RemoveAllConformers()
        one.AddConformer(Chem.Conformer(conf), assignId=True)
        out.append(one)
    return out


def posebusters_verdicts(mol: Any, buster: Any = None) -> list[dict[str, Any]]:
    """PoseBusters ``mol`` checks of every conformer of ``mol``.

    Args:
        mol: RDKit Mol with explicit hydrogens and one or more conformers (coordinates in Å).
        buster: a ``posebusters.PoseBusters(config="mol")`` to reuse; None: a new one.

    Returns:
        Per conformer: ``{"passes": bool (all 12 checks True), "failed": [check names that are
        False or NaN], "energy": UFF energy (kcal/mol), "ensemble_mean": PoseBusters' mean UFF
        energy of its 50-conformer ETKDG ensemble (kcal/mol), "energy_ratio": their ratio}``.
    """
    from rdkit import rdBase

    if buster is None:
        from posebusters import PoseBusters

        buster = PoseBusters(config="mol")
    mols = _single_conformer_mols(mol)
    if not mols:
        return []
    blocker = rdBase.BlockLogs()
    level = logging.getLogger("posebusters").level
    logging.getLogger("posebusters").setLevel(logging.ERROR)
    try:
        table = buster.bust(mols, None, None, full_report=True)
    finally:
        logging.getLogger("posebusters").setLevel(level)
        del blocker
    ok = table[list(PB_CHECKS)].eq(True).to_numpy()
    out = []
    for k in range(len(mols)):
        row = table.iloc[k]
        out.append(
            {
                "passes": bool(ok[k].all()),
                "failed": [c for c, good in zip(PB_CHECKS, ok[k]) if not good],
                "energy": float(row["mol_pred_energy"]),
                "ensemble_mean": float(row["ensemble_avg_energy"]),
                "energy_ratio": float(row["energy_ratio"]),
            }
        )
    return out


def _coords(mol: Any) -> np.ndarray:
    return np.array([c.GetPositions() for c in mol.GetConformers()], dtype=float).reshape(
        -1, mol.GetNumAtoms(), 3
    )


def _time_validator(mol: Any, coords: np.ndarray, n: int, posebusters_checks: bool) -> dict[str, float]:
    """Seconds: building the validator, validating the first ``n`` conformers (a fresh validator,
    so the energy reference is computed), and per conformer once the reference is known."""
    from molgen.chem.validate import ConformerValidator

    t0 = time.perf_counter()
    validator = ConformerValidator(mol, posebusters_checks=posebusters_checks)
    t1 = time.perf_counter()
    validator.validate_many(coords[:n])
    t2 = time.perf_counter()
    reps = 5
    for _ in range(reps):
        validator.validate_many(coords)
    t3 = time.perf_counter()
    return {"init": t1 - t0, "first_stack": t2 - t1, "per_conf_steady": (t3 - t2) / reps / len(coords)}


def _confusion(ours_ok: Sequence[bool], pb_ok: Sequence[bool]) -> dict[str, int]:
    table = Counter(
        ("pass" if a else "fail") + "/" + ("pass" if b else "fail") for a, b in zip(ours_ok, pb_ok)
    )
    return {k: int(table.get(k, 0)) for k in ("pass/pass", "pass/fail", "fail/pass", "fail/fail")}


def _git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except Exception:  # noqa: BLE001 - provenance only
        return None


def load_smiles(path: Path, num_molecules: int, seed: int) -> list[str]:
    """A seeded sample of ``corrected_smiles`` from the GEOM-DRUGS test CSV (evaluation only)."""
    with open(path, newline="") as handle:
        smiles = [row["corrected_smiles"] for row in csv.DictReader(handle)]
    idx = random.Random(seed).sample(range(len(smiles)), min(num_molecules, len(smiles)))
    return [smiles[i] for i in idx]


def run(
    smiles: Sequence[str],
    n: int = 5,
    *,
    raw_n: int = 20,
    seed: int = 0,
    before: bool = True,
    etkdg: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Compare molgen's validator with PoseBusters on ``smiles`` (see the module docstring).

    Args:
        smiles: molecules.
        n: conformers per molecule delivered by :func:`molgen.api.generate_conformers`.
        raw_n: conformers per molecule sampled without validation.
        seed: molgen seed of every molecule.
        before: also generate with the validator without its PoseBusters checks.
        etkdg: also embed ``n`` RDKit ETKDGv3 conformers per molecule (seed ``seed``) and check
            them with both (good conformers: the validator should pass what PoseBusters passes).
        progress: one line per molecule on stderr.

    Returns:
        ``{"summary": {...}, "molecules": [...], "conformers": [...]}`` (JSON-serialisable).
    """
    import torch
    from posebusters import PoseBusters
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdDistGeom

    from molgen.api import generate_conformers
    from molgen.chem.validate import REASONS, ConformerValidator
    from molgen.sampling import pipeline
    from molgen.sampling.conformer_sampler import sample_conformers

    RDLogger.DisableLog("rdApp.*")
    torch.set_num_threads(1)
    buster = PoseBusters(config="mol")
    generate_conformers("CCO", 1, seed=seed)  # warm-up (model load) outside the timings

    records: list[dict[str, Any]] = []
    molecules: list[dict[str, Any]] = []
    times: dict[str, list[float]] = {
        "generate_s": [], "generate_before_s": [], "before_init": [], "before_first": [],
        "before_steady": [], "after_init": [], "after_first": [], "after_steady": [],
        "etkdg_s": [],
    }
    for index, smi in enumerate(smiles):
        entry: dict[str, Any] = {"index": index, "smiles": smi}
        molecules.append(entry)
        sets: dict[str, Any] = {}
        try:
            t = time.perf_counter()
            delivered = generate_conformers(smi, n, seed=seed, num_threads=1)
            times["generate_s"].append(time.perf_counter() - t)
            entry["drop_reasons"] = json.loads(delivered.GetProp("molgen_drop_reasons"))
            sets["delivered"] = delivered
        except Exception as exc:  # noqa: BLE001 - report and go on
            entry["error"] = f"delivered: {exc}"
        if before and hasattr(pipeline, "ConformerValidator"):
            original = pipeline.ConformerValidator
            pipeline.ConformerValidator = functools.partial(original, posebusters_checks=False)
            try:
                t = time.perf_counter()
                sets["delivered_before"] = generate_conformers(smi, n, seed=seed, num_threads=1)
                times["generate_before_s"].append(time.perf_counter() - t)
            except Exception as exc:  # noqa: BLE001
                entry["error_before"] = str(exc)
            finally:
                pipeline.ConformerValidator = original
        try:
            raw = sample_conformers(Chem.AddHs(Chem.MolFromSmiles(smi)), raw_n, seed=seed)
            sets["raw"] = raw
        except Exception as exc:  # noqa: BLE001
            entry["error_raw"] = str(exc)
            raw = None

        if etkdg:
            ref = Chem.AddHs(Chem.MolFromSmiles(smi))
            params = rdDistGeom.ETKDGv3()
            params.randomSeed = seed
            t = time.perf_counter()
            if list(rdDistGeom.EmbedMultipleConfs(ref, n, params)):
                times["etkdg_s"].append(time.perf_counter() - t)
                sets["etkdg"] = ref
                etkdg_results = ConformerValidator(ref).validate_many(_coords(ref))
        if raw is not None and raw.GetNumConformers():
            x = _coords(raw)
            new = ConformerValidator(raw)
            old = ConformerValidator(raw, posebusters_checks=False)
            new_results = new.validate_many(x)
            old_results = old.validate_many(x)
            per_check = ConformerValidator(raw).failures(x)
            entry["quick_energy"] = new.quick_energy
            entry["reference_energy"] = new.compute_reference_energy(x)
            entry["uff_energy_min_raw"] = float(np.nanmin(new.uff_energies(x)))
            for which, pbc in (("before", False), ("after", True)):
                timing = _time_validator(raw, x, n, pbc)
                times[f"{which}_init"].append(timing["init"])
                times[f"{which}_first"].append(timing["first_stack"])
                times[f"{which}_steady"].append(timing["per_conf_steady"])
        for name, mol in sets.items():
            verdicts = posebusters_verdicts(mol, buster)
            if verdicts:
                entry["posebusters_ensemble_mean"] = verdicts[0]["ensemble_mean"]
            for k, pb in enumerate(verdicts):
                rec = {"molecule": index, "set": name, "conf": k, "pb_passes": pb["passes"],
                       "pb_failed": pb["failed"], "uff_energy": pb["energy"],
                       "pb_energy_ratio": pb["energy_ratio"]}
                if name == "etkdg":
                    rec["reason"] = etkdg_results[k].reason
                if name == "raw":
                    rec["reason"] = new_results[k].reason
                    rec["reason_before"] = old_results[k].reason
                    rec["failed_checks"] = [r for r in REASONS if per_check[r][k]]
                records.append(rec)
        if progress:
            raw_recs = [r for r in records if r["molecule"] == index and r["set"] == "raw"]
            dis = sum((r["reason"] is None) != r["pb_passes"] for r in raw_recs)
            print(f"[{index + 1}/{len(smiles)}] {smi[:60]}: raw {len(raw_recs)}, disagreements {dis}",
                  file=sys.stderr, flush=True)

    return {"summary": _summarise(records, molecules, times, n, raw_n), "molecules": molecules,
            "conformers": records}


def _rate(recs: list[dict[str, Any]]) -> dict[str, Any]:
    passed = sum(r["pb_passes"] for r in recs)
    fails = Counter(c for r in recs for c in r["pb_failed"])
    return {"n_conformers": len(recs), "n_pass": passed, "pass_rate": passed / len(recs) if recs else None,
            "failures_by_check": dict(sorted(fails.items()))}


def _summarise(
    records: list[dict[str, Any]], molecules: list[dict[str, Any]], times: dict[str, list[float]],
    n: int, raw_n: int,
) -> dict[str, Any]:
    raw = [r for r in records if r["set"] == "raw"]
    # verdict on the conformer-level checks only (molecule-level failures no validator can see)
    conf_level_ok = [not (set(r["pb_failed"]) - set(MOLECULE_CHECKS)) for r in raw]
    per_check = {}
    for reason, check in MIRRORED.items():
        per_check[f"{reason} vs {check}"] = _confusion(
            [reason not in r["failed_checks"] for r in raw], [check not in r["pb_failed"] for r in raw]
        )
    ref_ratio = [m["reference_energy"] / m["posebusters_ensemble_mean"] for m in molecules
                 if m.get("reference_energy") is not None and m.get("posebusters_ensemble_mean")]
    quick_ratio = [m["quick_energy"] / m["posebusters_ensemble_mean"] for m in molecules
                   if m.get("quick_energy") is not None and m.get("posebusters_ensemble_mean")]

    def ms(values: list[float], scale: float = 1.0) -> float | None:
        return float(np.mean(values) * 1e3 / scale) if values else None

    n_mols = len(times["after_init"])
    summary: dict[str, Any] = {
        "n_molecules": len(molecules),
        "n": n,
        "raw_n": raw_n,
        "errors": {m["index"]: m.get("error") for m in molecules if m.get("error")},
        "raw_confusion_after": _confusion([r["reason"] is None for r in raw], [r["pb_passes"] for r in raw]),
        "raw_confusion_before": _confusion(
            [r["reason_before"] is None for r in raw], [r["pb_passes"] for r in raw]
        ),
        "raw_confusion_after_conformer_checks": _confusion([r["reason"] is None for r in raw], conf_level_ok),
        "raw_reasons_after": dict(Counter(str(r["reason"]) for r in raw)),
        "raw_pb_failures": _rate(raw)["failures_by_check"],
        "per_check": per_check,
        "disagreements": [
            {k: r[k] for k in ("molecule", "conf", "reason", "failed_checks", "pb_failed", "pb_energy_ratio")}
            for r in raw if (r["reason"] is None) != r["pb_passes"]
        ],
        "etkdg_confusion": _confusion(
            [r["reason"] is None for r in records if r["set"] == "etkdg"],
            [r["pb_passes"] for r in records if r["set"] == "etkdg"],
        ),
        "etkdg": _rate([r for r in records if r["set"] == "etkdg"]),
        "delivered": _rate([r for r in records if r["set"] == "delivered"]),
        "delivered_before": _rate([r for r in records if r["set"] == "delivered_before"]),
        "drop_reasons": dict(sum((Counter(m.get("drop_reasons", {})) for m in molecules), Counter())),
        "reference_over_pb_mean": {
            "full": [float(np.min(ref_ratio)), float(np.median(ref_ratio)), float(np.max(ref_ratio))]
            if ref_ratio else None,
            "quick": [float(np.min(quick_ratio)), float(np.median(quick_ratio)), float(np.max(quick_ratio))]
            if quick_ratio else None,
        },
        "timing_ms": {
            "molecules_timed": n_mols,
            "validator_init_before": ms(times["before_init"]),
            "validator_init_after": ms(times["after_init"]),
            "first_stack_per_conf_before": ms(times["before_first"], n),
            "first_stack_per_conf_after": ms(times["after_first"], n),
            "steady_per_conf_before": ms(times["before_steady"]),
            "steady_per_conf_after": ms(times["after_steady"]),
            "per_conf_at_n_before": ms([(a + b) for a, b in zip(times["before_init"], times["before_first"])], n),
            "per_conf_at_n_after": ms([(a + b) for a, b in zip(times["after_init"], times["after_first"])], n),
            "generate_per_conf": ms(times["generate_s"], n),
            "generate_per_conf_before": ms(times["generate_before_s"], n),
            "etkdg_per_conf": ms(times["etkdg_s"], n),
        },
    }
    return summary


def _markdown(result: dict[str, Any], command: str) -> str:
    s = result["summary"]
    t = s["timing_ms"]

    def table(conf: dict[str, int]) -> list[str]:
        return [
            "| validator \\ PoseBusters | pass | fail |",
            "|---|---|---|",
            f"| pass | {conf['pass/pass']} | {conf['pass/fail']} |",
            f"| fail | {conf['fail/pass']} | {conf['fail/fail']} |",
        ]

    def fmt(v: float | None, d: int = 3) -> str:
        return "n/a" if v is None else f"{v:.{d}f}"

    def rate(r: dict[str, Any]) -> str:
        if not r["n_conformers"]:
            return "n/a"
        fails = ", ".join(f"{k} {v}" for k, v in r["failures_by_check"].items()) or "none"
        return f"{r['n_pass']}/{r['n_conformers']} ({100 * r['pass_rate']:.1f} %); failures: {fails}"

    lines = [
        "# molgen validator vs PoseBusters `config=\"mol\"`",
        "",
        f"`{command}`",
        "",
        (
            f"{s['n_molecules']} GEOM-DRUGS test SMILES (seeded sample), {s['n']} delivered and "
            f"{s['raw_n']} unvalidated (raw) molgen conformers each. A conformer passes PoseBusters "
            "when all 12 checks are True."
        ),
        "",
        "## Raw conformers: validator (with the PoseBusters checks) vs PoseBusters",
        "",
        *table(s["raw_confusion_after"]),
        "",
        "Before (validator without the PoseBusters checks):",
        "",
        *table(s["raw_confusion_before"]),
        "",
        f"Validator reasons (raw, after): {s['raw_reasons_after']}",
        "",
        f"PoseBusters failures (raw): {s['raw_pb_failures']}",
        "",
        "## Each mirrored check (raw conformers; pass/fail of the validator check / of the PoseBusters check)",
        "",
        "| validator check vs PoseBusters check | pass/pass | pass/fail | fail/pass | fail/fail |",
        "|---|---|---|---|---|",
        *[f"| {k} | {v['pass/pass']} | {v['pass/fail']} | {v['fail/pass']} | {v['fail/fail']} |"
          for k, v in s["per_check"].items()],
        "",
        "## Delivered conformers (`molgen.api.generate_conformers`)",
        "",
        f"- after: {rate(s['delivered'])}",
        f"- before: {rate(s['delivered_before'])}",
        f"- molgen drop reasons (after, all molecules): {s['drop_reasons']}",
        f"- molecules without conformers (after): {s['errors'] or 'none'}",
        f"- for comparison, RDKit ETKDGv3 ({s['n']} per molecule): {rate(s['etkdg'])}",
        "",
        "ETKDG conformers, validator vs PoseBusters:",
        "",
        *table(s["etkdg_confusion"]),
        "",
        "## Energy reference",
        "",
        (
            "Validator reference energy / PoseBusters' ensemble mean (min, median, max): "
            f"full (200 UFF steps) {[round(v, 2) for v in s['reference_over_pb_mean']['full'] or []]}, "
            f"quick (20 steps) {[round(v, 2) for v in s['reference_over_pb_mean']['quick'] or []]}"
        ),
        "",
        f"## Cost (ms, mean over {t['molecules_timed']} molecules, one thread)",
        "",
        "| | before | after |",
        "|---|---|---|",
        f"| building the validator (per molecule) | {fmt(t['validator_init_before'])} | {fmt(t['validator_init_after'])} |",
        f"| first stack of n, per conformer (incl. energy reference) | {fmt(t['first_stack_per_conf_before'])} | {fmt(t['first_stack_per_conf_after'])} |",
        f"| per conformer at n incl. building | {fmt(t['per_conf_at_n_before'])} | {fmt(t['per_conf_at_n_after'])} |",
        f"| per conformer, reference known (stack of raw_n) | {fmt(t['steady_per_conf_before'], 4)} | {fmt(t['steady_per_conf_after'], 4)} |",
        f"| molgen generate_conformers, per delivered conformer | {fmt(t['generate_per_conf_before'], 1)} | {fmt(t['generate_per_conf'], 1)} |",
        f"| (RDKit ETKDGv3 embedding, per conformer) | {fmt(t['etkdg_per_conf'], 1)} | |",
        "",
    ]
    if s["disagreements"]:
        lines += ["## Disagreements (raw)", "", "| molecule | conf | validator reason | validator failed checks | PoseBusters failed | PB energy ratio |",
                  "|---|---|---|---|---|---|"]
        for d in s["disagreements"]:
            lines.append(f"| {d['molecule']} | {d['conf']} | {d['reason']} | {', '.join(d['failed_checks'])} | "
                         f"{', '.join(d['pb_failed'])} | {fmt(d['pb_energy_ratio'], 1)} |")
        lines.append("")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m molgen.bench.posebusters_agreement", description=__doc__.split("\n")[0])
    p.add_argument("--num-molecules", type=int, default=40, help="molecules in the sample (40)")
    p.add_argument("-n", type=int, default=5, help="delivered conformers per molecule (5)")
    p.add_argument("--raw-n", type=int, default=20, help="unvalidated conformers per molecule (20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample and of molgen (0)")
    p.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="GEOM-DRUGS test CSV (corrected_smiles)")
    p.add_argument("--no-before", action="store_true", help="skip generating with the old validator")
    p.add_argument("--no-etkdg", action="store_true", help="skip the ETKDG conformers")
    p.add_argument("--out", type=Path, default=Path("bench_results"), help="output folder (bench_results/)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and write ``posebusters_agreement.{json,md}`` into ``--out``."""
    args = build_parser().parse_args(argv)
    smiles = load_smiles(args.csv, args.num_molecules, args.seed)
    started = time.perf_counter()
    result = run(
        smiles, args.n, raw_n=args.raw_n, seed=args.seed, before=not args.no_before,
        etkdg=not args.no_etkdg,
    )
    command = "python -m molgen.bench.posebusters_agreement " + " ".join(
        sys.argv[1:] if argv is None else list(argv)
    )
    result["provenance"] = {
        "command": command,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "machine": platform.platform(),
        "csv": str(args.csv),
        "seconds": time.perf_counter() - started,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "posebusters_agreement.json").write_text(json.dumps(result, indent=1, default=str))
    (args.out / "posebusters_agreement.md").write_text(_markdown(result, command))
    print(_markdown(result, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

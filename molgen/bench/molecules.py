"""``molgen bench molecules``: de novo QM9 generation measured as EDM measures it, beside the data.

For each sampler row (e.g. ``ddpm:1000`` and ``ddim:100``) it generates ``--num`` unconditional molecules
and reports, on everything generated (nothing dropped before counting):

* EDM's atom and molecule stability (distance-based bond orders, Hoogeboom et al. 2022), the
  charge-aware variant (:func:`molgen.chem.molecule_metrics.molecule_metrics`), validity (RDKit
  sanitisation after bond perception), uniqueness among valid, novelty against the QM9 training split;
* Wasserstein-1 distances of bond lengths (Å), bond angles and heavy-atom torsions (degrees) of the valid
  molecules against the QM9 test split;
* molecules per second on this machine (threads stated), sampling only and with bond perception.

The ``data`` row applies the same metrics to QM9 test molecules themselves (measured in the same run);
published rows are quoted from the papers, labelled as such.

With ``--guidance-sweep`` and a property regressor trained on EDM's ``D_a`` half (``--regressor``), it
generates molecules conditioned on property values (and atom counts) drawn from ``D_b`` molecules and
reports the MAE between requested and predicted property per guidance scale ``w``, beside the
regressor's MAE on ``D_b`` itself (lower bound) and on shuffled ``D_b`` properties (upper bound).

Writes ``<out>/molecules.json`` and ``<out>/molecules.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PUBLISHED", "main", "run"]

#: published QM9 numbers (atom stability, molecule stability, validity, uniqueness among valid), percent
PUBLISHED = [
    ("EDM (Hoogeboom et al. 2022), 1000 steps", 98.7, 82.0, 91.9, 90.7),
    ("GeoLDM (Xu et al. 2023)", 98.9, 89.4, 93.8, 92.7),
    ("EQGAT-diff (Le et al. 2024)", 99.9, 98.7, 99.0, None),
    ("QM9 data, EDM's definitions (Hoogeboom et al. 2022)", 99.0, 95.2, 97.7, None),
]


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return f"{cpu}, {torch.get_num_threads()} torch threads"


def _samples_of(gens: list[Any]) -> list[dict[str, Any]]:
    return [{"atomic_numbers": g.atomic_numbers, "positions": g.positions, "formal_charges": g.formal_charges}
            for g in gens]


def _valid_mols(perceived: list[Any]) -> list[Any]:
    """The molecules of the valid perception results."""
    return [r.mol for r in perceived if r.valid and r.mol is not None]


def _geometry_w1(mols: list[Any], reference: dict) -> dict[str, float]:
    from molgen.chem.molecule_metrics import (
        geometry_distributions,
        wasserstein_distances,
    )

    if not mols:
        return {}
    w = wasserstein_distances(geometry_distributions(mols), reference)
    return {k: float(v) for k, v in w.items() if isinstance(v, (int, float))}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark described by ``args`` (see :func:`main`); returns the JSON-able results."""
    import torch

    from molgen.chem.molecule_metrics import (
        canonicalize_smiles,
        geometry_distributions,
        molecule_metrics,
        perceive_sample,
    )
    from molgen.datasets.qm9 import load_qm9_split
    from molgen.models.registry import default_molecule_model_path, load_model
    from molgen.sampling.molecule_sampler import sample_atoms

    if args.threads:
        torch.set_num_threads(args.threads)
    model_path = Path(args.model) if args.model else default_molecule_model_path()
    loaded = load_model(model_path, "cpu")
    train = load_qm9_split("train", args.cache)
    test = load_qm9_split("test", args.cache)
    t0 = time.perf_counter()
    training_smiles = canonicalize_smiles(train.smiles.tolist())
    rng = np.random.default_rng(args.seed)
    ref_idx = rng.choice(len(test), size=min(args.reference, len(test)), replace=False)
    ref_samples = [{k: s[k] for k in ("atomic_numbers", "positions", "formal_charges")}
                   for s in (test.molecule(int(i)) for i in ref_idx)]
    ref_perceived = [perceive_sample(s) for s in ref_samples]
    reference = geometry_distributions(_valid_mols(ref_perceived))
    data_metrics = molecule_metrics(ref_samples, training_smiles, perceived=ref_perceived)
    prep_s = time.perf_counter() - t0
    rows = [{"label": f"QM9 test molecules (data, {len(ref_samples)})", **data_metrics}]
    for spec in args.samplers:
        method, _, steps = spec.partition(":")
        steps_i = int(steps or 100)
        t1 = time.perf_counter()
        gens = sample_atoms(loaded, args.num, method=method, steps=steps_i, seed=args.seed, batch_size=args.batch_size)
        sample_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        samples = _samples_of(gens)
        perceived = [perceive_sample(s) for s in samples]
        metrics = molecule_metrics(samples, training_smiles, perceived=perceived)
        eval_s = time.perf_counter() - t2
        valid_mols = _valid_mols(perceived[: args.geometry_samples])
        rows.append({
            "label": f"molgen {method}, {steps_i} steps", "method": method, "steps": steps_i, **metrics,
            "geometry_w1": _geometry_w1(valid_mols, reference),
            "sample_s": round(sample_s, 2), "molecules_per_s": round(args.num / sample_s, 3),
            "molecules_per_s_with_perception": round(args.num / (sample_s + eval_s), 3),
        })
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "reasons"}), flush=True)
    result: dict[str, Any] = {
        "date": date.today().isoformat(), "machine": _machine(), "model": str(model_path),
        "model_name": loaded.name, "model_step": loaded.meta.get("step"), "num": args.num, "seed": args.seed,
        "command": "molgen bench molecules " + " ".join(args.argv), "rows": rows, "prep_s": round(prep_s, 1),
        "published": PUBLISHED,
    }
    if args.guidance_sweep:
        result["guidance"] = guidance_sweep(loaded, train, args)
    return result


def guidance_sweep(loaded: Any, train: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Property MAE of guided samples per guidance scale, with the regressor's data and shuffled baselines."""
    from molgen.bench.property_mae import (
        load_property_regressor,
        mae_table,
        predict_properties,
    )
    from molgen.sampling.molecule_sampler import sample_atoms

    regressor = load_property_regressor(args.regressor)
    prop = args.property
    n = len(train)
    db = np.arange(n // 2, n)  # EDM's D_b: the generative model's half; the regressor never saw it
    rng = np.random.default_rng(args.seed + 1)
    pick = rng.choice(db, size=args.num_guided, replace=False)
    targets = train.properties[prop][pick]
    sizes = np.diff(train.ptr)[pick]
    out: dict[str, Any] = {"property": prop, "regressor": str(args.regressor), "rows": [], "num_guided": args.num_guided}
    base = mae_table(regressor, train, pick, prop, seed=args.seed)
    out["baselines"] = base
    for w in args.guidance:
        gens = sample_atoms(loaded, args.num_guided, conditions={prop: targets}, guidance=w, num_atoms=sizes,
                            method=args.guidance_method, steps=args.guidance_steps, seed=args.seed,
                            batch_size=args.batch_size)
        pred = predict_properties(regressor, [g.atomic_numbers for g in gens], [g.positions for g in gens])
        col = regressor.meta["task"]["properties"].index(prop)
        err = np.abs(pred[:, col] - targets)
        ok = np.isfinite(err)
        out["rows"].append({"w": w, "mae": float(err[ok].mean()) if ok.any() else None, "n": int(ok.sum())})
        print(json.dumps(out["rows"][-1]), flush=True)
    return out


def markdown(result: dict[str, Any]) -> str:
    """The results as markdown tables."""
    sampled = len(result["rows"]) > 1
    lines = [
        f"QM9 de novo generation, {str(result['num']) + ' molecules per sampler row' if sampled else 'no sampler rows'}, "
        f"{result['date']}, {result['machine']}; "
        f"model `{result['model_name']}` (step {result['model_step']}). Command: `{result['command']}`.",
        "",
        "| | atom stable % | molecule stable % | valid % | unique % of valid | novel % of unique | "
        "charge-aware mol. stable % | W1 bonds (Å) | W1 angles (°) | W1 torsions (°) | molecules/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def pct(v: Any) -> str:
        return "" if v is None else f"{100 * v:.1f}"

    for r in result["rows"]:
        w = r.get("geometry_w1", {})

        def g(key: str, w=w) -> str:
            return "" if key not in w else f"{w[key]:.3f}"

        lines.append(
            f"| {r['label']} | {pct(r.get('atom_stability'))} | {pct(r.get('mol_stability'))} | "
            f"{pct(r.get('validity'))} | {pct(r.get('uniqueness'))} | {pct(r.get('novelty'))} | "
            f"{pct(r.get('mol_stability_charged'))} | {g('bonds_mean')} | {g('angles_mean')} | {g('torsions_mean')} | "
            f"{r.get('molecules_per_s', '')} |")
    for label, a, m, v, u in result["published"]:
        lines.append(f"| {label} (published) | {a} | {m} | {v} | {'' if u is None else u} | | | | | | |")
    if "guidance" in result:
        from molgen.bench.property_mae import EDM_PUBLISHED

        gd = result["guidance"]
        prop = gd["property"]
        base = gd["baselines"]
        lines += ["", f"Guided generation, property `{prop}`: mean absolute error between the requested value and the "
                  f"regressor's prediction ({gd['rows'][0]['n'] if gd['rows'] else 0} molecules evaluated per row; "
                  "targets and atom counts of D_b molecules):", "", "| | MAE (this run) | EDM (published) |", "|---|---|---|"]
        shuffled, edm, data = EDM_PUBLISHED.get(prop, (None, None, None))
        lines.append(f"| shuffled targets (upper bound) | {base['shuffled']:.3f} | {shuffled or ''} |")
        for r in gd["rows"]:
            mae = "" if r["mae"] is None else f"{r['mae']:.3f}"
            lines.append(f"| molgen, w = {r['w']} | {mae} | |")
        lines.append(f"| EDM (conditional model) | | {edm or ''} |")
        lines.append(f"| data: the regressor on D_b molecules (lower bound) | {base['data']:.3f} | {data or ''} |")
    return "\n".join(lines) + "\n"


def rewrite_markdown(json_path: Path) -> str:
    """Regenerate ``molecules.md`` beside a ``molecules.json`` (tables only; nothing is rerun)."""
    result = json.loads(Path(json_path).read_text())
    text = markdown(result)
    Path(json_path).with_name("molecules.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``molgen bench molecules [--num 10000] [--samplers ddpm:1000 ddim:100] [--out DIR] ...``."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="molgen bench molecules", description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="checkpoint (default: the shipped QM9 model)")
    p.add_argument("--num", type=int, default=10000, help="molecules per sampler row")
    p.add_argument("--samplers", nargs="*", default=["ddpm:1000", "ddim:100"],
                   help="METHOD:STEPS rows (none: only the data row, e.g. with --guidance-sweep)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--cache", default=None, help="QM9 cache root")
    p.add_argument("--reference", type=int, default=2000, help="QM9 test molecules for the data row and geometry")
    p.add_argument("--geometry-samples", type=int, default=2000, help="generated molecules for the geometry W1")
    p.add_argument("--guidance-sweep", action="store_true")
    p.add_argument("--regressor", default=None, help="property regressor checkpoint (trained on D_a)")
    p.add_argument("--property", default="alpha")
    p.add_argument("--guidance", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 3.0])
    p.add_argument("--num-guided", type=int, default=1000)
    p.add_argument("--guidance-method", default="ddim")
    p.add_argument("--guidance-steps", type=int, default=100)
    p.add_argument("--out", default="benchmarks/molecules")
    args = p.parse_args(argv)
    args.argv = argv
    if args.guidance_sweep and not args.regressor:
        p.error("--guidance-sweep needs --regressor")
    result = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "molecules.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "molecules.md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()

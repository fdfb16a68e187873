"""Property MAE of conditioned generation, judged by a property regressor as EDM judges it.

EDM (Hoogeboom et al. 2022, Sec. 5.2, Table 3): a property network trained on the first half ``D_a`` of
the QM9 training split (:mod:`molgen.training.train_property`) predicts the property of each molecule
generated for a requested value; the score is the mean absolute error between request and prediction.
Two baselines bracket it, both on molecules of the second half ``D_b`` (the generative model's half,
never seen by the regressor):

* ``shuffled`` ("Naive (upper bound)"): predictions on ``D_b`` molecules against ``D_b`` property values
  randomly permuted, i.e. a generator that ignores the request;
* ``data`` ("QM9 (lower bound)"): predictions on ``D_b`` molecules against their own values, the
  regressor's own error.

Units are those of :data:`molgen.datasets.qm9.PROPERTY_UNITS`: alpha in Bohr^3, gap / homo / lumo in eV,
mu in Debye, Cv in cal/(mol K). EDM reports alpha MAE 2.76 Bohr^3 for its model, 9.01 shuffled and 0.10 on
data; gap 655 / 1470 / 64 meV.

Molecules whose elements (or, for a regressor that reads them, formal charges) are outside the
regressor's encoding, that have no atoms, or non-finite positions, are skipped and counted.

    python -m molgen.bench.property_mae --regressor runs/property_alpha/best.pt --split-half second --num 1000
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from molgen.models.property_regressor import load_property_regressor

if TYPE_CHECKING:
    from molgen.datasets.qm9 import QM9Split
    from molgen.models.registry import LoadedModel

__all__ = [
    "EDM_PUBLISHED",
    "baseline_maes",
    "generated_mae",
    "load_property_regressor",
    "mae_table",
    "main",
    "markdown_table",
    "predict_properties",
    "split_molecules",
]

#: EDM Table 3 (Hoogeboom et al. 2022), in this package's units: property -> (shuffled "Naive (upper
#: bound)", EDM, QM9 data "lower bound"); the orbital energies converted from meV to eV.
EDM_PUBLISHED: dict[str, tuple[float, float, float]] = {
    "alpha": (9.01, 2.76, 0.10),
    "gap": (1.470, 0.655, 0.064),
    "homo": (0.645, 0.356, 0.039),
    "lumo": (1.457, 0.584, 0.036),
    "mu": (1.616, 1.111, 0.043),
    "Cv": (6.857, 1.065, 0.040),
}


def _task_facts(regressor: LoadedModel) -> tuple[list[str], dict[str, dict[str, float]], Any, bool]:
    """``(properties, normalisation, AtomEncoding, charges)`` stored in the regressor's checkpoint."""
    from molgen.chem.atom_encoding import AtomEncoding

    task = regressor.meta.get("task") or {}
    missing = [k for k in ("properties", "normalisation", "encoding") if k not in task]
    if missing:
        raise ValueError(f"model {regressor.name!r} is not a property regressor checkpoint (no {missing} in its task facts)")
    return list(task["properties"]), task["normalisation"], AtomEncoding.from_dict(task["encoding"]), bool(task.get("charges", False))


def predict_properties(
    regressor: LoadedModel,
    atomic_numbers_list: Sequence[Any],
    positions_list: Sequence[Any],
    formal_charges_list: Sequence[Any] | None = None,
    *,
    batch_size: int = 256,
) -> np.ndarray:
    """Raw-unit properties of ``M`` molecules predicted by a property regressor.

    Args:
        regressor: from :func:`load_property_regressor`.
        atomic_numbers_list: ``M`` arrays ``(n_i,)`` of atomic numbers.
        positions_list: ``M`` arrays ``(n_i, 3)`` of positions in Å (any origin).
        formal_charges_list: ``M`` arrays ``(n_i,)`` of formal charges, read only by a regressor trained
            with ``charges=True`` (zeros when None).
        batch_size: molecules per forward pass.

    Returns:
        ``(M, P)`` float64 predictions in raw units (alpha Bohr^3, gap eV; columns in the order of
        ``regressor.meta["task"]["properties"]``); a row of NaN for a skipped molecule (element or charge
        outside the encoding, no atoms, non-finite positions).

    Raises:
        ValueError: list lengths differ, or a molecule's positions do not have shape ``(n_i, 3)``.
    """
    import torch

    from molgen.models.graph import node_batch

    props, norms, encoding, charges = _task_facts(regressor)
    m = len(atomic_numbers_list)
    if len(positions_list) != m or (formal_charges_list is not None and len(formal_charges_list) != m):
        raise ValueError(f"{m} atomic-number arrays but {len(positions_list)} position arrays"
                         + ("" if formal_charges_list is None else f" and {len(formal_charges_list)} charge arrays"))
    n_el = len(encoding.elements)
    rows: list[tuple[int, np.ndarray, np.ndarray]] = []
    for k in range(m):
        z = np.asarray(atomic_numbers_list[k], dtype=np.int64).reshape(-1)
        x = np.asarray(positions_list[k], dtype=np.float64)
        if x.shape != (len(z), 3):
            raise ValueError(f"molecule {k}: positions of shape {x.shape} for {len(z)} atoms (expected ({len(z)}, 3))")
        if len(z) == 0 or not np.isfinite(x).all():
            continue
        q = None if (formal_charges_list is None or not charges) else formal_charges_list[k]
        try:
            types = encoding.encode(z, q)
        except ValueError:
            continue
        rows.append((k, types if charges else types[:, :n_el], x))
    out = np.full((m, len(props)), np.nan)
    if not rows:
        return out
    module = regressor.module
    param = next(module.parameters())
    scale = np.array([norms[p]["mad"] for p in props])
    shift = np.array([norms[p]["mean"] for p in props])
    with torch.inference_mode():
        for a in range(0, len(rows), max(1, batch_size)):
            chunk = rows[a : a + max(1, batch_size)]
            batch = node_batch(
                torch.from_numpy(np.concatenate([r[1] for r in chunk])).to(param.device, param.dtype),
                torch.from_numpy(np.concatenate([r[2] for r in chunk])).to(param.device, param.dtype),
                [len(r[1]) for r in chunk],
            )
            pred = module(batch).double().cpu().numpy()
            out[[r[0] for r in chunk]] = pred * scale + shift
    return out


def _mae(pred: np.ndarray, target: np.ndarray) -> float | None:
    """Mean absolute error over the entries where both are finite (None if there is none)."""
    err = np.abs(np.asarray(pred, dtype=np.float64) - np.asarray(target, dtype=np.float64))
    ok = np.isfinite(err)
    return float(err[ok].mean()) if ok.any() else None


def _property_names(regressor: LoadedModel, properties: str | Sequence[str] | None) -> list[str]:
    names = _task_facts(regressor)[0]
    wanted = names if properties is None else ([properties] if isinstance(properties, str) else list(properties))
    unknown = [p for p in wanted if p not in names]
    if unknown:
        raise ValueError(f"the regressor predicts {names}, not {unknown}")
    return wanted


def generated_mae(
    regressor: LoadedModel,
    atomic_numbers_list: Sequence[Any],
    positions_list: Sequence[Any],
    requested: Mapping[str, Any] | Any,
    formal_charges_list: Sequence[Any] | None = None,
    *,
    properties: str | Sequence[str] | None = None,
    batch_size: int = 256,
) -> dict[str, Any]:
    """MAE between the requested properties of generated molecules and the regressor's predictions.

    Args:
        regressor, atomic_numbers_list, positions_list, formal_charges_list: as :func:`predict_properties`.
        requested: raw-unit requested values: ``{name: (M,)}``, or an ``(M,)`` array when one property
            is scored, or ``(M, P)`` in the order of ``properties``.
        properties: names to score (default: every property of the regressor, or the keys of ``requested``).

    Returns:
        ``{"mae": {name: float or None}, "num_molecules": M, "num_evaluated": int, "num_skipped": int}``.
    """
    if properties is None and isinstance(requested, Mapping):
        properties = list(requested)
    names = _property_names(regressor, properties)
    all_names = _task_facts(regressor)[0]
    m = len(atomic_numbers_list)
    if isinstance(requested, Mapping):
        target = np.stack([np.asarray(requested[p], dtype=np.float64).reshape(-1) for p in names], 1)
    else:
        target = np.asarray(requested, dtype=np.float64).reshape(m, -1)
    if target.shape != (m, len(names)):
        raise ValueError(f"requested values of shape {target.shape}; expected ({m}, {len(names)}) for {names}")
    pred = predict_properties(regressor, atomic_numbers_list, positions_list, formal_charges_list, batch_size=batch_size)
    pred = pred[:, [all_names.index(p) for p in names]]
    evaluated = int(np.isfinite(pred).all(1).sum())
    return {"mae": {p: _mae(pred[:, j], target[:, j]) for j, p in enumerate(names)}, "num_molecules": m,
            "num_evaluated": evaluated, "num_skipped": m - evaluated}


def split_molecules(split: QM9Split, indices: Sequence[int] | np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """``(atomic numbers (n_i,), positions (n_i, 3) Å, formal charges (n_i,))`` of molecules ``indices`` of a QM9 split."""
    zs, xs, qs = [], [], []
    for i in np.asarray(indices, dtype=np.int64).reshape(-1):
        a, b = int(split.ptr[i]), int(split.ptr[i + 1])
        zs.append(split.atomic_numbers[a:b])
        xs.append(split.positions[a:b])
        qs.append(split.formal_charges[a:b])
    return zs, xs, qs


def baseline_maes(
    regressor: LoadedModel,
    split: QM9Split,
    indices: Sequence[int] | np.ndarray | None = None,
    properties: str | Sequence[str] | None = None,
    *,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, Any]:
    """EDM's two baselines on QM9 molecules (``D_b``: pass the second half's indices).

    Args:
        regressor: from :func:`load_property_regressor`.
        split: a QM9 split (:func:`molgen.datasets.qm9.load_qm9_split`).
        indices: molecules of ``split`` to use (default all).
        properties: names to score (default every property of the regressor).
        seed: seed of the permutation of the ``shuffled`` baseline.

    Returns:
        ``{"shuffled": {name: MAE}, "data": {name: MAE}, "num_molecules", "num_evaluated", "num_skipped"}``,
        MAEs in raw units (None when no molecule could be evaluated). ``shuffled`` compares the predictions
        with the evaluated molecules' true values in a random order (EDM's upper bound), ``data`` with
        their own values (the lower bound).
    """
    from molgen.training.train_molecules import condition_values

    names = _property_names(regressor, properties)
    all_names = _task_facts(regressor)[0]
    idx = np.arange(len(split)) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
    zs, xs, qs = split_molecules(split, idx)
    pred = predict_properties(regressor, zs, xs, qs, batch_size=batch_size)[:, [all_names.index(p) for p in names]]
    truth = np.stack([condition_values(split, p)[idx] for p in names], 1) if len(names) else np.zeros((len(idx), 0))
    ok = np.isfinite(pred).all(1)
    perm = np.random.default_rng(seed).permutation(int(ok.sum()))
    shuffled = truth[ok][perm]
    return {
        "shuffled": {p: _mae(pred[ok, j], shuffled[:, j]) for j, p in enumerate(names)},
        "data": {p: _mae(pred[ok, j], truth[ok, j]) for j, p in enumerate(names)},
        "num_molecules": len(idx),
        "num_evaluated": int(ok.sum()),
        "num_skipped": int((~ok).sum()),
    }


def mae_table(
    regressor: LoadedModel,
    split: QM9Split | None = None,
    indices: Sequence[int] | np.ndarray | None = None,
    prop: str | None = None,
    *,
    atomic_numbers_list: Sequence[Any] | None = None,
    positions_list: Sequence[Any] | None = None,
    requested: Any = None,
    formal_charges_list: Sequence[Any] | None = None,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, float | int | None]:
    """One property's rows of EDM's Table 3, flat: ``{label: MAE or count}``.

    With ``split`` (``indices``: the ``D_b`` molecules) the baselines ``"shuffled"`` (upper bound) and
    ``"data"`` (lower bound) with ``"num_data"`` / ``"skipped_data"``; with generated molecules
    (``atomic_numbers_list``, ``positions_list`` and their ``requested`` raw values ``(M,)``) the row
    ``"generated"`` with ``"num_generated"`` / ``"skipped_generated"``. MAEs in raw units (alpha Bohr^3,
    gap eV), None where nothing could be evaluated.

    Args:
        prop: the property (default: the regressor's only property).

    Raises:
        ValueError: ``prop`` is None for a multi-property regressor, or not one of its properties.
    """
    names = _task_facts(regressor)[0]
    if prop is None:
        if len(names) != 1:
            raise ValueError(f"the regressor predicts {names}: name the property")
        prop = names[0]
    _property_names(regressor, prop)
    table: dict[str, float | int | None] = {}
    base = baseline_maes(regressor, split, indices, prop, seed=seed, batch_size=batch_size) if split is not None else None
    if base is not None:
        table["shuffled"] = base["shuffled"][prop]
    if atomic_numbers_list is not None:
        if positions_list is None or requested is None:
            raise ValueError("generated molecules need positions_list and requested values")
        gen = generated_mae(regressor, atomic_numbers_list, positions_list, {prop: requested}, formal_charges_list,
                            batch_size=batch_size)
        table["generated"] = gen["mae"][prop]
    if base is not None:
        table["data"] = base["data"][prop]
        table["num_data"] = base["num_evaluated"]
        table["skipped_data"] = base["num_skipped"]
    if atomic_numbers_list is not None:
        table["num_generated"] = gen["num_evaluated"]
        table["skipped_generated"] = gen["num_skipped"]
    return table


def markdown_table(result: dict[str, Any]) -> str:
    """Markdown of :func:`main`'s result: one row per property, beside EDM's published numbers."""
    from molgen.datasets.qm9 import PROPERTY_UNITS

    def f(v: Any) -> str:
        return "" if v is None else f"{v:.4g}"

    lines = [
        (f"Property regressor `{result['regressor']}` (trained on half `{result['trained_half']}`), evaluated on "
         f"{result['num_evaluated']} molecules of QM9 {result['split']} half `{result['split_half']}` "
         f"({result['num_skipped']} skipped), shuffle seed {result['seed']}."),
        "",
        "| property | unit | shuffled (upper bound) | data (lower bound) | EDM published: shuffled / EDM / data |",
        "|---|---|---|---|---|",
    ]
    for p in result["properties"]:
        pub = EDM_PUBLISHED.get(p)
        pub_s = " / ".join(f"{v:g}" for v in pub) if pub else ""
        lines.append(f"| {p} | {PROPERTY_UNITS.get(p, '')} | {f(result['shuffled'][p])} | {f(result['data'][p])} | {pub_s} |")
    if result.get("warning"):
        lines += ["", f"Warning: {result['warning']}."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``python -m molgen.bench.property_mae --regressor PATH [--split-half second] [--num 1000] [--format json]``:
    the regressor's ``shuffled`` and ``data`` baselines on QM9, printed as markdown (or JSON)."""
    from molgen.datasets.qm9 import load_qm9_split
    from molgen.training.train_property import half_indices

    p = argparse.ArgumentParser(prog="python -m molgen.bench.property_mae", description=__doc__.splitlines()[0])
    p.add_argument("--regressor", required=True, help="property regressor checkpoint (molgen-property-regressor/1)")
    p.add_argument("--cache", default=None, help="QM9 cache root (default $MOLGEN_CACHE or ~/.cache/molgen)")
    p.add_argument("--split", default="train", choices=["train", "val", "test"])
    p.add_argument("--split-half", default="second", choices=["all", "first", "second"],
                   help="half of the split (second = EDM's D_b, which the regressor did not see)")
    p.add_argument("--num", type=int, default=1000, help="random molecules of that half (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--format", default="markdown", choices=["markdown", "json"])
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    regressor = load_property_regressor(args.regressor, args.device)
    split = load_qm9_split(args.split, args.cache)
    rng = np.random.default_rng(args.seed)
    idx = half_indices(len(split), args.split_half)
    if 0 < args.num < len(idx):
        idx = np.sort(rng.choice(idx, size=args.num, replace=False))
    base = baseline_maes(regressor, split, idx, seed=args.seed, batch_size=args.batch_size)
    result = {
        "regressor": str(args.regressor), "trained_half": (regressor.meta.get("task") or {}).get("half"),
        "step": regressor.meta.get("step"), "split": args.split, "split_half": args.split_half, "seed": args.seed,
        "properties": _task_facts(regressor)[0], **base,
        "edm_published": {k: dict(zip(("shuffled", "edm", "data"), v)) for k, v in EDM_PUBLISHED.items()},
    }
    trained = result["trained_half"]
    if args.split == "train" and (trained == "all" or args.split_half == "all" or trained == args.split_half):
        result["warning"] = (f"the regressor was trained on half {trained!r} of the training split: the evaluated "
                             "molecules overlap its training data, so 'data' understates its error")
    print(json.dumps(result, indent=1) if args.format == "json" else markdown_table(result))
    return result


if __name__ == "__main__":
    main()

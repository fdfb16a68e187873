"""Stability and validity of the de novo QM9 model against training steps (issue 7).

``python -m molgen.bench.scaling_report DIR`` reads ``DIR/steps_<S>/molecules.json`` (each written by
``molgen bench molecules`` for a model trained ``S`` steps; see ``benchmarks/molecules/scaling/run.sh``),
and writes ``DIR/scaling.md`` (a table) and ``DIR/scaling.png`` (the curves on a log step axis).

It also fits a power law to the failure rates, ``1 − metric ≈ a · steps^(−b)``, by least squares in
log–log space over the measured points, and reports the steps each target would need *if* that trend held.
That is an extrapolation, labelled as one: it only says how far the measured trend is from a target.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["fit_power_law", "load_points", "main", "markdown", "steps_for"]

#: metric key -> (label, target fraction from issue 7)
TARGETS: dict[str, tuple[str, float]] = {
    "atom_stability": ("atom stability", 0.99),
    "mol_stability": ("molecule stability", 0.90),
    "validity": ("validity", 0.95),
}


def load_points(directory: Path) -> list[dict[str, Any]]:
    """One dict per ``steps_<S>/molecules.json`` in ``directory``: ``steps``, the generated row's metrics
    and the data row, sorted by steps. Raises FileNotFoundError when there is none."""
    points = []
    for path in sorted(directory.glob("steps_*/molecules.json")):
        m = re.fullmatch(r"steps_(\d+)", path.parent.name)
        if m is None:
            continue
        report = json.loads(path.read_text())
        rows = [r for r in report["rows"] if r.get("method")]
        data = [r for r in report["rows"] if not r.get("method")]
        if not rows:
            raise ValueError(f"{path}: no generated row (was it run with --samplers?)")
        points.append({"steps": int(m.group(1)), "row": rows[0], "data": data[0] if data else None,
                       "command": report.get("command", ""), "date": report.get("date", ""),
                       "machine": report.get("machine", ""), "model": report.get("model", "")})
    if not points:
        raise FileNotFoundError(f"no steps_<S>/molecules.json under {directory}")
    return sorted(points, key=lambda p: p["steps"])


def fit_power_law(steps: np.ndarray, failure: np.ndarray) -> tuple[float, float] | None:
    """Least-squares fit of ``log failure = log a − b log steps``; returns ``(a, b)``.

    Args:
        steps: (K,) training steps, > 0.
        failure: (K,) failure fractions (1 − metric) in (0, 1]; points at 0 are left out.

    Returns None with fewer than two usable points.
    """
    keep = (failure > 0) & (steps > 0)
    if keep.sum() < 2:
        return None
    slope, intercept = np.polyfit(np.log(steps[keep]), np.log(failure[keep]), 1)
    return float(math.exp(intercept)), float(-slope)


def steps_for(target: float, fit: tuple[float, float] | None) -> float | None:
    """Steps at which the fitted failure ``a · steps^(−b)`` reaches ``1 − target``; None if the trend
    does not fall (b ≤ 0) or there is no fit; ``inf`` when the trend is too flat to reach it in floats."""
    if fit is None or fit[1] <= 0:
        return None
    a, b = fit
    log_steps = (math.log(a) - math.log(1.0 - target)) / b
    return math.exp(log_steps) if log_steps < 700 else math.inf


def markdown(points: list[dict[str, Any]], seconds_per_step: float | None = None) -> str:
    """The table of metrics by steps, then the power-law extrapolation to each target."""
    lines = [
        "| steps | samples | atom stable % | molecule stable % | valid % | valid & connected % | unique % of valid |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        r = p["row"]
        lines.append(
            f"| {p['steps']:,} | {r['n_samples']:,} | {100 * r['atom_stability']:.1f} | "
            f"{100 * r['mol_stability']:.1f} | {100 * r['validity']:.1f} | "
            f"{100 * r['valid_and_connected']:.1f} | {100 * r['uniqueness']:.1f} |"
        )
    data = next((p["data"] for p in points if p["data"]), None)
    if data:
        lines.append(
            f"| data (QM9 test molecules) | {data['n_samples']:,} | {100 * data['atom_stability']:.1f} | "
            f"{100 * data['mol_stability']:.1f} | {100 * data['validity']:.1f} | "
            f"{100 * data['valid_and_connected']:.1f} | {100 * data['uniqueness']:.1f} |"
        )
    lines += ["", ("Power-law trend of the failure rate (1 − metric ≈ a · steps^−b, fit over the rows above), "
                   "and the steps each target would need if it held:"), "",
              "| metric | target | b | steps to target (extrapolated) |"
              + (" CPU time at the measured rate |" if seconds_per_step else ""),
              "|---|---:|---:|---:|" + ("---:|" if seconds_per_step else "")]
    steps = np.array([p["steps"] for p in points], dtype=float)
    for key, (label, target) in TARGETS.items():
        fail = np.array([1.0 - p["row"][key] for p in points])
        fit = fit_power_law(steps, fail)
        need = steps_for(target, fit)
        b = "–" if fit is None else f"{fit[1]:.2f}"
        need_s = "not falling" if need is None else ("never" if math.isinf(need) else f"{need:.2g}")
        row = f"| {label} | {100 * target:.0f} % | {b} | {need_s} |"
        if seconds_per_step:
            row += " – |" if need is None or math.isinf(need) else f" {need * seconds_per_step / 86400:.2g} days |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def plot(points: list[dict[str, Any]], path: Path) -> None:
    """Atom/molecule stability and validity (%) against steps (log axis), with the targets dashed."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [p["steps"] for p in points]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for (key, (label, target)), colour in zip(TARGETS.items(), ("C0", "C1", "C2")):
        ax.plot(steps, [100 * p["row"][key] for p in points], "o-", color=colour, label=label)
        ax.axhline(100 * target, color=colour, ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xticks(steps, [f"{s:,}" for s in steps])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("training steps")
    ax.set_ylabel("% (DDIM, 100 steps)")
    ax.set_ylim(0, 100)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("QM9 de novo model: quality against training (targets dashed)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> str:
    """CLI entry: ``python -m molgen.bench.scaling_report DIR [--seconds-per-step S]``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directory", type=Path)
    ap.add_argument("--seconds-per-step", type=float, default=None,
                    help="measured training seconds per step, to convert extrapolated steps to CPU time "
                         "(default: from the runs' summary.json files, when found)")
    ap.add_argument("--runs", type=Path, default=Path.home() / ".cache/molgen/runs",
                    help="folder of the qm9_scale_<S> runs (for their measured seconds per step)")
    args = ap.parse_args(argv)
    points = load_points(args.directory)
    sps = args.seconds_per_step
    if sps is None:
        rates = []
        for p in points:
            summary = args.runs / f"qm9_scale_{p['steps']}" / "summary.json"
            if summary.is_file():
                s = json.loads(summary.read_text())
                rates.append(s["wall_s"] / s["step"])
        sps = float(np.median(rates)) if rates else None
    text = (f"Generated by `python -m molgen.bench.scaling_report {args.directory}` from "
            f"{len(points)} `molgen bench molecules` runs ({points[-1]['date']}, {points[-1]['machine']})"
            + (f"; training measured at {sps:.3f} s per step" if sps else "") + ".\n\n")
    text += markdown(points, sps)
    (args.directory / "scaling.md").write_text(text)
    plot(points, args.directory / "scaling.png")
    print(text)
    return text


if __name__ == "__main__":
    main()

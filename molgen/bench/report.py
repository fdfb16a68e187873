"""Benchmark report: ``conformers.json`` (everything), ``conformers.md`` (table), ``conformers_rmsd.png``.

The markdown names the machine (CPU model, cores, RAM), date, git commit and exact command line.
Two layouts: the end-to-end comparison (:mod:`molgen.bench.endtoend`, one row per tool and thread
setting) and the in-process one (:mod:`molgen.bench.runner`, one row per method and N).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from molgen.bench.scoring import THRESHOLDS

__all__ = ["jsonable", "markdown", "write_outputs"]


def _fmt(x: float | None, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def _machine_line(report: dict[str, Any]) -> str:
    m = report["machine"]
    machine = f"{m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM"
    if m.get("gpu"):
        machine += f", GPU {m['gpu']}"
    load = m.get("load_average")
    extra = f" · load average at start {load[0]:.2f}" if load else ""
    return (
        f"Command: `{report['command']}` · Machine: {machine} · date: {report['date']} · "
        f"git commit {m.get('git_commit') or 'unknown'} · molgen {m['molgen']}, torch {m.get('torch')}, "
        f"RDKit {m['rdkit']}" + (f", PoseBusters {m['posebusters']}" if m.get("posebusters") else "") + extra
    )


def _selection_line(report: dict[str, Any]) -> str:
    sel = report["selection"]
    if sel.get("set") == "moses":
        return (
            f"{sel['n_selected']} MOSES test-set SMILES (`{sel.get('file', '')}`, of {sel.get('n_candidates', '?')}; "
            f"sample seed {sel.get('sample_seed')}); no reference conformations: speed and PoseBusters only."
        )
    if sel.get("set") == "qm9":
        src, ref = "QM9 test-split molecules", "DFT (B3LYP) geometry"
    else:
        src = "CCD test-split ligands" if sel.get("source", "").startswith("PDB") else "molecules"
        ref = "experimental conformation"
    return (
        f"{sel['n_selected']} {src} (of {sel.get('n_candidates', '?')} candidates; sample seed "
        f"{sel.get('sample_seed', '?')}). Min-RMSD: lowest symmetry-aware heavy-atom RMSD (Å) of a "
        f"molecule's conformers to the {ref}; failures count as ∞."
    )


def _markdown_inprocess(report: dict[str, Any]) -> str:
    cfg = report["config"]
    lines = [
        _machine_line(report) + f" · threads: {cfg['threads']}",
        "",
        _selection_line(report)
        + f" In process, per molecule: molgen model `{cfg.get('model') or 'default'}`, sampler "
        f"{cfg['sampler']}, {cfg['steps']} steps"
        + (f", {cfg['per_structure']} conformers per ETKDG structure" if cfg.get("per_structure") else "")
        + (f"; cartesian: model `{cfg.get('cartesian_model') or 'default'}`, {cfg.get('cartesian_steps')} steps"
           if "cartesian" in (cfg.get("methods") or []) else "")
        + "; time summed over molecules (start-up excluded).",
        "",
        (
            "| Method | N | Molecules | Failures | Median min-RMSD (Å) | Mean (Å) | < 1.0 Å "
            "| < 1.5 Å | < 2.0 Å | Conformers | Conformers/s | s/molecule |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        s = r["summary"]
        lines.append(
            f"| {r['method']} | {r['n']} | {s['n_molecules']} | {s['n_failures']} | "
            f"{_fmt(s['median_min_rmsd'], '.3f')} | {_fmt(s['mean_min_rmsd'], '.3f')} | "
            f"{_fmt(s['frac_below_1'], '.1%')} | {_fmt(s['frac_below_1.5'], '.1%')} | "
            f"{_fmt(s['frac_below_2'], '.1%')} | {s['total_conformers']} | "
            f"{_fmt(s['conformers_per_second'], '.1f')} | "
            f"{_fmt(s['seconds_per_molecule'], '.3f')} |"
        )
    mem = report.get("memory")
    if mem:
        lines += [
            "",
            f"Memory: `{mem['command']}` on {mem['n_smiles']} SMILES: peak RSS "
            f"{_fmt(mem['peak_rss_mib'], '.1f')} MiB, wall {_fmt(mem['wall_seconds'], '.1f')} s "
            f"(process start to exit), exit code {mem['exit_code']}"
            + (" (timed out)" if mem.get("timed_out") else "") + ".",
        ]
    return "\n".join(lines) + "\n"


def _threads_label(row: dict[str, Any], cores: int | None) -> str:
    if row["threads"] is not None:
        return str(row["threads"])
    if row["tool"] == "etkdg":
        return f"all ({cores})" if cores else "all"
    used = (row.get("runs") or [{}])[0].get("tool_summary") or {}
    return f"default ({used['threads']})" if used.get("threads") else "default"


def _rss(row: dict[str, Any]) -> str:
    """Peak RSS (MiB) of the largest process, and of all processes when workers add > 5 %."""
    one, tree = row.get("peak_rss_mib"), row.get("peak_rss_all_processes_mib")
    text = _fmt(one, ".0f")
    if one is not None and tree is not None and tree > 1.05 * one:
        text += f" ({tree:.0f} all processes)"
    return text


def _markdown_endtoend(report: dict[str, Any]) -> str:
    e2e = report["endtoend"]
    cores = report["machine"].get("cores")
    cfg = report["config"]
    rows = e2e["rows"]
    n0 = rows[0]["n"] if rows else None
    cmds = {(r["tool"], r["setting"]): r["command"] for r in rows if r["n"] == n0}
    repeats = cfg.get("repeats", 1)
    lines = [
        _machine_line(report),
        "",
        _selection_line(report),
        "",
        (
            "End to end, as a user runs each tool: one process per tool from the SMILES file to a "
            "multi-conformer SDF, start-up and model loading included; wall time from process start to "
            f"exit ({'median of ' + str(repeats) + ' repeats, ' if repeats > 1 else ''}runs alternate "
            "between the tools); conformers/s = conformers written / wall time; peak RSS: the largest "
            "process (rusage), in brackets the sampled peak summed over the tool's processes when it has "
            "worker processes. "
            f"Commands (N = {n0}; temporary file names): "
            + "; ".join(f"{tool} {setting}: `{cmd}`" for (tool, setting), cmd in cmds.items())
            + "."
        ),
        "",
        (
            "| Tool | Threads | N | Molecules | Conformers | Wall (s) | Conformers/s | × ETKDG same threads "
            "| × ETKDG defaults | Median min-RMSD (Å) | < 1 Å | PoseBusters pass | Peak RSS (MiB) |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        q = r.get("quality") or {}
        pb = r.get("posebusters") or {}
        lines.append(
            f"| {r['tool']} | {_threads_label(r, cores)} | {r['n']} | "
            f"{r['molecules_with_conformers']}/{r['molecules']} | {r['conformers']} | "
            f"{_fmt(r['wall_seconds'], '.1f')} | {_fmt(r['conformers_per_second'], '.1f')} | "
            f"{_fmt(r['ratio_same_threads'], '.2f')} | {_fmt(r['ratio_vs_etkdg_defaults'], '.2f')} | "
            f"{_fmt(q.get('median_min_rmsd'), '.3f')} | {_fmt(q.get('frac_below_1'), '.1%')} | "
            f"{_fmt(pb.get('pass_rate'), '.1%')} | {_rss(r)} |"
        )
    tested = [r for r in rows if r.get("posebusters") and not r.get("identical_to")]
    if tested:
        checks: list[str] = []
        for r in tested:
            checks += [c for c in r["posebusters"]["checks"] if c not in checks]
        heads = [f"{r['tool']} {_threads_label(r, cores)} N={r['n']}" for r in tested]
        sample = tested[0]["posebusters"].get("sample")
        lines += [
            "",
            "PoseBusters (`config=\"mol\"`, one conformer per molecule object; "
            + ("all conformers" if sample is None else f"at most {sample} conformers per molecule, seeded")
            + "): conformers tested and failures per check.",
            "",
            "| Check | " + " | ".join(heads) + " |",
            "|---|" + "---:|" * len(heads),
            "| conformers tested | " + " | ".join(str(r["posebusters"]["n_conformers"]) for r in tested) + " |",
            "| passed all | " + " | ".join(
                f"{r['posebusters']['n_passed']} ({_fmt(r['posebusters']['pass_rate'], '.1%')})" for r in tested
            ) + " |",
        ]  # fmt: skip
        for c in checks:
            lines.append(
                f"| {c} | " + " | ".join(str(r["posebusters"]["failures_by_check"].get(c, 0)) for r in tested) + " |"
            )
    failed = [(r, f) for r in rows for f in r.get("failed_runs") or []]
    if failed:
        lines += ["", "Runs left out of the wall time (crashed or timed out): " + "; ".join(
            f"{r['label']} N={r['n']} repeat {f['repeat']} (exit {f['exit_code']}"
            + (", timed out" if f["timed_out"] else "") + (f": {f['last_line']}" if f["last_line"] else "") + ")"
            for r, f in failed) + "."]  # fmt: skip
    same = [r for r in rows if r.get("identical_to")]
    if same:
        lines += ["", "Identical SDFs (scores shared): " + "; ".join(
            f"{r['label']} N={r['n']} = {r['identical_to']}" for r in same) + "."]  # fmt: skip
    return "\n".join(lines) + "\n"


def markdown(report: dict[str, Any]) -> str:
    """The markdown summary of a (JSON-able) report, end-to-end or in-process layout."""
    if report.get("endtoend"):
        return _markdown_endtoend(report)
    return _markdown_inprocess(report)


def _curves(report: dict[str, Any]) -> list[dict[str, Any]]:
    """(label, n, min-RMSD values, median) of every result with reference RMSDs."""
    out = []
    if report.get("endtoend"):
        for r in report["endtoend"]["rows"]:
            if r.get("quality") is None or r.get("identical_to"):
                continue
            out.append({"label": r["label"], "n": r["n"], "values": [p.get("min_rmsd") for p in r["per_molecule"]],
                        "median": r["quality"]["median_min_rmsd"]})  # fmt: skip
    else:
        for r in report.get("results", []):
            out.append({"label": r["method"], "n": r["n"], "values": [p["min_rmsd"] for p in r["per_molecule"]],
                        "median": r["summary"]["median_min_rmsd"]})  # fmt: skip
    return out


def _plot(report: dict[str, Any], path: Path) -> bool:
    """Cumulative distributions of min-RMSD, one panel per N; False (no file) without RMSDs."""
    curves = _curves(report)
    if not curves:
        return False
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    ns = sorted({c["n"] for c in curves})
    fig, axes = plt.subplots(1, len(ns), figsize=(4.2 * len(ns), 3.6), squeeze=False)
    for ax, n in zip(axes[0], ns):
        for c in curves:
            if c["n"] != n:
                continue
            vals = np.array([math.inf if v is None else v for v in c["values"]], dtype=float)
            total = len(vals)
            if total == 0:
                continue
            x = np.sort(vals[np.isfinite(vals)])
            y = np.arange(1, len(x) + 1) / total
            ax.step(np.concatenate([[0.0], x, [max(4.0, x[-1] if len(x) else 0)]]),
                    np.concatenate([[0.0], y, [y[-1] if len(y) else 0.0]]),
                    where="post", label=f"{c['label']} (median {_fmt(c['median'], '.2f')} Å)")  # fmt: skip
        for t in THRESHOLDS:
            ax.axvline(t, color="0.85", lw=0.8, zorder=0)
        ax.set_xlim(0, 4)
        ax.set_ylim(0, 1)
        ax.set_title(f"N = {n} conformers")
        ax.set_xlabel("min heavy-atom RMSD to the reference (Å)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    axes[0][0].set_ylabel("fraction of molecules")
    src = "QM9 test-split molecules" if report["selection"].get("set") == "qm9" else "CCD test-split ligands"
    fig.suptitle(f"{src} (n = {report['selection']['n_selected']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def jsonable(obj: Any) -> Any:
    """``obj`` with non-finite floats as None and NumPy scalars as Python numbers (for strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    return obj


def write_outputs(report: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``conformers.json``, ``conformers.md`` and (with RMSDs) ``conformers_rmsd.png`` to ``out_dir``.

    In the JSON an infinite min-RMSD (failure) is written as ``null``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = jsonable(report)
    paths = {"json": out / "conformers.json", "markdown": out / "conformers.md"}
    paths["json"].write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    paths["markdown"].write_text(markdown(report))
    plot = out / "conformers_rmsd.png"
    if _plot(report, plot):
        paths["plot"] = plot
    return paths

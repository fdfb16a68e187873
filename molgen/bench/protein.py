"""``molgen bench protein``: a protein model's samples against held-out molecular dynamics, with MD-versus-MD beside.

For one system: the model samples ``-n`` validated structures (:func:`molgen.protein.sample.sample_ensemble`),
and every metric compares them with held-out MD frames (``--heldout``); the same metric between the
training frames (``--train``) and the held-out frames is the MD-versus-MD noise floor. Trajectories are
given as ``FILE`` or ``FILE@start:stop[:step]`` (a frame slice, e.g. mdCATH NTL9 ``...xtc@0:400`` to train and
``...xtc@400:500`` held out).

Metrics (:mod:`molgen.protein.metrics`), each where the system has them:

* φ/ψ: Jensen-Shannon divergence of the 10° Ramachandran histograms (pooled over residues), basin
  populations (β/C7eq, αR, αL/C7ax), ΔF(φ > 0 vs φ < 0) in kJ/mol at 300 K;
* Cα (three or more residues): per-residue RMSF and its Pearson r against the held-out frames, the
  distribution of pairwise Cα RMSD (median, and the 1-D Wasserstein distance to the held-out one), the
  contact-map JS divergence;
* coverage: recall (held-out frames with a sample within each Cα-RMSD threshold) and precision (samples
  within it of a held-out frame), up to 300 of each, with the training frames in place of the samples as the
  MD floor;
* reference states (``--state NAME=PDB``, e.g. adenylate kinase open and closed): Cα RMSD of samples,
  training and held-out frames to each;
* validity: the fraction valid before the filter and the drops by reason, all delivered structures valid;
* speed: valid samples per CPU-second of this process (sampling and validation), against MD's rate of
  decorrelated frames per CPU-second. MD's rate is measured in the same run (``--md-structure``: a short
  OpenMM run with the settings of the reference MD's ``settings.json``, ``--md-ps`` picoseconds, CPU time
  of this process), divided by the slowest integrated autocorrelation time among cos/sin φ, ψ of the
  training frames (``--md-frame-ps`` apart).

Outputs in ``--out``: ``protein.json`` (everything), ``protein.md`` (tables), ``samples.xtc`` with its topology
PDB (the delivered structures), ``ramachandran.png`` (MD
train, MD held-out, samples), ``rmsf.png`` (Cα systems), ``states.png`` (two or more reference states).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main"]


def _load(top: str, specs: list[str], stride: int = 1) -> Any:
    from molgen.protein.io import load_trajectory

    return load_trajectory(top, specs, stride=stride)


def _dihedral_block(samples: Any, train: Any, heldout: Any) -> dict[str, Any] | None:
    from molgen.protein import metrics as m

    out: dict[str, Any] = {}
    angles = {}
    for label, traj in (("samples", samples), ("md_train", train), ("md_heldout", heldout)):
        phi, psi = m.phi_psi_degrees(traj)
        if phi.size == 0:
            return None
        angles[label] = (phi, psi)
    hist = {k: m.ramachandran_histogram(*v) for k, v in angles.items()}
    out["js_samples_vs_heldout"] = m.js_divergence(hist["samples"], hist["md_heldout"])
    out["js_md_train_vs_heldout"] = m.js_divergence(hist["md_train"], hist["md_heldout"])
    # the same number of training frames as samples, evenly spaced: the floor at equal sample size (a
    # histogram of fewer points is noisier, which alone raises the divergence)
    n = min(samples.n_frames, train.n_frames)
    idx = np.linspace(0, train.n_frames - 1, n).round().astype(int)
    phi, psi = angles["md_train"]
    out["js_md_train_equal_n_vs_heldout"] = m.js_divergence(m.ramachandran_histogram(phi[idx], psi[idx]),
                                                            hist["md_heldout"])
    out["equal_n"] = int(n)
    out["basins"] = {k: m.basin_populations(*v) for k, v in angles.items()}
    out["delta_f_kj_mol"] = {k: m.free_energy_difference(v[0]) for k, v in angles.items()}
    out["_angles"] = angles  # for the plot; dropped from the JSON
    return out


def _structural_block(samples: Any, train: Any, heldout: Any, thresholds: list[float]) -> dict[str, Any] | None:
    from scipy.stats import pearsonr, wasserstein_distance

    from molgen.protein import metrics as m

    if len(heldout.topology.select("name CA")) < 3:
        return None
    ref = heldout[0]
    rmsf = {"samples": m.ca_rmsf(samples, ref), "md_train": m.ca_rmsf(train, ref), "md_heldout": m.ca_rmsf(heldout, ref)}
    rng = np.random.default_rng(0)

    def sub(traj: Any, k: int = 300) -> Any:
        return traj[np.sort(rng.choice(traj.n_frames, size=min(k, traj.n_frames), replace=False))]

    pair = {k: m.pairwise_ca_rmsd(sub(t)) for k, t in (("samples", samples), ("md_train", train), ("md_heldout", heldout))}
    contacts = {k: m.contact_map(t) for k, t in (("samples", samples), ("md_train", train), ("md_heldout", heldout))}
    # recall/precision against the held-out frames: up to 300 samples, and up to 300 training frames for the
    # MD floor (recall grows with the number of frames: the counts are reported beside)
    ens = {"samples": sub(samples), "md_train": sub(train)}
    ref = sub(heldout)
    cov = {key: m.coverage(m.pairwise_ca_rmsd(ref, t), thresholds) for key, t in ens.items()}
    return {
        "coverage_vs_heldout": cov,
        "coverage_frames": {key: t.n_frames for key, t in ens.items()} | {"md_heldout": ref.n_frames},
        "rmsf_pearson_samples_vs_heldout": float(pearsonr(rmsf["samples"], rmsf["md_heldout"])[0]),
        "rmsf_pearson_md_train_vs_heldout": float(pearsonr(rmsf["md_train"], rmsf["md_heldout"])[0]),
        "rmsf_angstrom": {k: v.tolist() for k, v in rmsf.items()},
        "pairwise_rmsd_median_angstrom": {k: float(np.median(v)) for k, v in pair.items()},
        "pairwise_rmsd_w1_vs_heldout": {k: float(wasserstein_distance(v, pair["md_heldout"]))
                                        for k, v in pair.items() if k != "md_heldout"},
        "contact_js_samples_vs_heldout": m.contact_map_js(contacts["samples"], contacts["md_heldout"]),
        "contact_js_md_train_vs_heldout": m.contact_map_js(contacts["md_train"], contacts["md_heldout"]),
    }


def _states_block(states: list[str], samples: Any, train: Any, heldout: Any) -> dict[str, Any] | None:
    """Cα RMSD (Å) of every structure to each ``NAME=PDB`` reference state: summary and raw values."""
    from molgen.errors import InputError
    from molgen.protein import metrics as m
    from molgen.protein.io import load_structure

    if not states:
        return None
    out: dict[str, Any] = {}
    for spec in states:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--state {spec!r}: use NAME=PDB, for example open=adk_open.pdb")
        ref = load_structure(path)
        try:
            values = {k: m.rmsd_to_structure(t, ref) for k, t in
                      (("samples", samples), ("md_train", train), ("md_heldout", heldout))}
        except ValueError as exc:
            raise InputError(f"--state {spec}: {exc}") from None
        out[name] = {"path": path,
                     "summary": {k: {"min": float(v.min()), "median": float(np.median(v)), "max": float(v.max())}
                                 for k, v in values.items()},
                     "rmsd_angstrom": {k: v.tolist() for k, v in values.items()}}
    return out


def _md_rate(args: argparse.Namespace, train: Any) -> dict[str, Any] | None:
    """MD's decorrelated frames per CPU-second, measured now (see the module docstring)."""
    if not args.md_structure:
        return None
    import tempfile

    from molgen.protein import metrics as m
    from molgen.protein.simulate import MDSettings, run_md

    settings_file = Path(args.md_settings) if args.md_settings else None
    stored = json.loads(settings_file.read_text()) if settings_file and settings_file.is_file() else {}
    keep = {k: stored[k] for k in ("temperature_k", "friction_per_ps", "timestep_fs") if k in stored}
    md_ps = float(np.ceil(args.md_ps / args.md_frame_ps) * args.md_frame_ps)  # whole frames
    settings = MDSettings(structure=str(args.md_structure), total_ns=md_ps / 1000.0, segment_ns=md_ps / 1000.0,
                          frame_ps=args.md_frame_ps, equilibration_ps=0.0, seed=7, **keep)
    with tempfile.TemporaryDirectory() as tmp:
        c0 = time.process_time()
        w0 = time.perf_counter()
        run_md(settings, tmp, threads=1, log=lambda _: None)
        cpu = time.process_time() - c0
        wall = time.perf_counter() - w0
    phi, psi = m.phi_psi_degrees(train)
    series = [f(np.radians(a[:, k])) for a in (phi, psi) for k in range(a.shape[1]) for f in (np.cos, np.sin)]
    taus = [m.integrated_autocorrelation_time(s) for s in series]
    tau_frames = max(taus) if taus else 1.0
    cpu_per_frame = cpu / (md_ps / args.md_frame_ps)
    return {"md_ps": md_ps, "cpu_seconds": cpu, "wall_seconds": wall, "threads": 1,
            "ns_per_cpu_day": md_ps / 1000.0 / cpu * 86400.0, "frame_ps": args.md_frame_ps,
            "tau_frames": tau_frames, "tau_ps": tau_frames * args.md_frame_ps,
            "decorrelated_frames_per_cpu_second": 1.0 / (cpu_per_frame * tau_frames)}


def _plots(result: dict[str, Any], dihedral: dict[str, Any] | None, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from molgen.protein import metrics as m

    written = []
    if dihedral is not None:
        fig, axes = plt.subplots(1, 3, figsize=(12, 4), sharey=True)
        for ax, key, title in zip(axes, ("md_train", "md_heldout", "samples"), ("MD (training)", "MD (held out)", "molgen")):
            phi, psi = dihedral["_angles"][key]
            h = m.ramachandran_histogram(phi, psi)
            with np.errstate(divide="ignore"):
                f = -np.log(h.T)
            ax.imshow(f - np.nanmin(f[np.isfinite(f)]), origin="lower", extent=(-180, 180, -180, 180), cmap="viridis",
                      vmax=8)
            ax.set_title(f"{title} ({phi.shape[0]} frames)")
            ax.set_xlabel("φ (°)")
        axes[0].set_ylabel("ψ (°)")
        fig.suptitle(f"{result['system']}: -ln p(φ, ψ), 10° bins")
        fig.tight_layout()
        fig.savefig(out / "ramachandran.png", dpi=110)
        plt.close(fig)
        written.append("ramachandran.png")
    structural = result.get("structural")
    if structural:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for key, label in (("md_train", "MD (training)"), ("md_heldout", "MD (held out)"), ("samples", "molgen")):
            ax.plot(np.arange(1, len(structural["rmsf_angstrom"][key]) + 1), structural["rmsf_angstrom"][key], label=label)
        ax.set_xlabel("residue")
        ax.set_ylabel("Cα RMSF (Å)")
        ax.legend()
        ax.set_title(f"{result['system']}: Cα RMSF (r = {structural['rmsf_pearson_samples_vs_heldout']:.2f} vs held out)")
        fig.tight_layout()
        fig.savefig(out / "rmsf.png", dpi=110)
        plt.close(fig)
        written.append("rmsf.png")
    states = result.get("states")
    if states and len(states) >= 2:
        (a, sa), (b, sb) = list(states.items())[:2]
        fig, ax = plt.subplots(figsize=(4.8, 4.5))
        for key, label, style in (("md_train", "MD (training)", "o"), ("md_heldout", "MD (held out)", "s"),
                                  ("samples", "molgen", ".")):
            ax.plot(sa["rmsd_angstrom"][key], sb["rmsd_angstrom"][key], style, ms=4 if style != "." else 3,
                    alpha=0.6, label=label)
        ax.set_xlabel(f"Cα RMSD to {a} (Å)")
        ax.set_ylabel(f"Cα RMSD to {b} (Å)")
        ax.legend(fontsize=8)
        ax.set_title(f"{result['system']}: distance to the reference states")
        fig.tight_layout()
        fig.savefig(out / "states.png", dpi=110)
        plt.close(fig)
        written.append("states.png")
    return written


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def markdown(r: dict[str, Any]) -> str:
    """Tables of a result (see :func:`main`)."""
    lines = [f"`{r['command']}` · {r['machine']} · {r['date']} · model `{r['model']}` (step {r['model_step']})", ""]
    v = r["validity"]
    relief = (f", {100 * v['relieved_fraction']:.1f} % more after clash relief" if v.get("relieved") else "")
    lines += [f"{v['n_valid']} of {v['n_requested']} structures delivered, all valid; {100 * v['valid_fraction']:.1f} % "
              f"valid before the filter{relief} ({v['n_sampled']} sampled" + (", dropped: " + ", ".join(
                  f"{k} {c}" for k, c in v["dropped"].items()) if v["dropped"] else "") + ").", ""]
    d = r.get("dihedral")
    if d:
        lines += ["| Metric | molgen vs held-out MD | MD (training) vs held-out MD |", "|---|---:|---:|",
                  (f"| φ/ψ JS divergence (10° bins) | {_fmt(d['js_samples_vs_heldout'], '.4f')} | "
                  f"{_fmt(d['js_md_train_vs_heldout'], '.4f')} (all {r['md']['train_frames']} frames); "
                  f"{_fmt(d.get('js_md_train_equal_n_vs_heldout'), '.4f')} ({d.get('equal_n')} evenly spaced frames, "
                  "as many as samples) |"), ""]
        lines += ["| Ensemble | β/C7eq | αR | αL/C7ax | ΔF(φ>0 − φ<0) kJ/mol |", "|---|---:|---:|---:|---:|"]
        for key, label in (("samples", "molgen"), ("md_train", "MD (training)"), ("md_heldout", "MD (held out)")):
            b = d["basins"][key]
            lines.append(f"| {label} | {100 * b['beta_C7eq']:.1f} % | {100 * b['alpha_R']:.1f} % | "
                         f"{100 * b['alpha_L_C7ax']:.1f} % | {_fmt(d['delta_f_kj_mol'][key], '.2f')} |")
        lines.append("")
    s = r.get("structural")
    if s:
        med = s["pairwise_rmsd_median_angstrom"]
        w1 = s["pairwise_rmsd_w1_vs_heldout"]
        lines += ["| Metric | molgen vs held-out MD | MD (training) vs held-out MD |", "|---|---:|---:|",
                  (f"| Cα RMSF Pearson r | {_fmt(s['rmsf_pearson_samples_vs_heldout'])} | "
                  f"{_fmt(s['rmsf_pearson_md_train_vs_heldout'])} |"),
                  (f"| Pairwise Cα RMSD median (Å; held out {_fmt(med['md_heldout'], '.2f')}) | {_fmt(med['samples'], '.2f')} "
                  f"| {_fmt(med['md_train'], '.2f')} |"),
                  f"| Pairwise Cα RMSD W1 to held out (Å) | {_fmt(w1['samples'], '.2f')} | {_fmt(w1['md_train'], '.2f')} |",
                  (f"| Cα contact-map JS divergence | {_fmt(s['contact_js_samples_vs_heldout'], '.4f')} | "
                  f"{_fmt(s['contact_js_md_train_vs_heldout'], '.4f')} |")]
        cov = s.get("coverage_vs_heldout")
        if cov:
            for kind in ("recall", "precision"):
                for t in cov["samples"][kind]:
                    n = s["coverage_frames"]
                    lines.append(f"| Coverage {kind} at {t} Å Cα RMSD ({n['samples']} samples, {n['md_train']} "
                                 f"training and {n['md_heldout']} held-out frames) | "
                                 f"{100 * cov['samples'][kind][t]:.1f} % | {100 * cov['md_train'][kind][t]:.1f} % |")
        lines.append("")
    st = r.get("states")
    if st:
        lines += ["| Cα RMSD to reference state (Å): min / median / max | molgen | MD (training) | MD (held out) |",
                  "|---|---:|---:|---:|"]
        for name, v in st.items():
            cells = [f"{x['min']:.2f} / {x['median']:.2f} / {x['max']:.2f}"
                     for x in (v["summary"]["samples"], v["summary"]["md_train"], v["summary"]["md_heldout"])]
            lines.append(f"| {name} (`{v['path']}`) | " + " | ".join(cells) + " |")
        lines.append("")
    sp = r["speed"]
    line = (f"Speed: {sp['samples_per_cpu_second']:.1f} valid samples per CPU-second ({sp['cpu_seconds']:.1f} CPU s, "
            f"{sp['wall_seconds']:.1f} s wall, {sp['torch_threads']} torch thread(s))")
    md_rate = r.get("md_rate")
    if md_rate:
        ratio = sp["samples_per_cpu_second"] / md_rate["decorrelated_frames_per_cpu_second"]
        line += (f"; MD in the same run: {md_rate['ns_per_cpu_day']:.0f} ns per CPU-day, slowest integrated "
                 f"autocorrelation time {md_rate['tau_ps']:.1f} ps, so {md_rate['decorrelated_frames_per_cpu_second']:.2f} "
                 f"decorrelated frames per CPU-second: molgen is {ratio:,.0f}× faster")
    lines += [line + ".", ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="molgen bench protein", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="protein model checkpoint (default: the shipped model of --system)")
    p.add_argument("--system", default=None, help="shipped system (alanine-dipeptide) instead of --model")
    p.add_argument("--top", required=True, help="topology of the MD trajectories")
    p.add_argument("--train", nargs="+", required=True, help="training MD: FILE or FILE@start:stop[:step], one or more")
    p.add_argument("--heldout", nargs="+", required=True, help="held-out MD: FILE or FILE@start:stop[:step]")
    p.add_argument("--stride", type=int, default=1, help="use every k-th MD frame")
    p.add_argument("-n", "--num", type=int, default=1000, help="structures to sample")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sampler", default=None, choices=("ode", "sde"), help="default: molgen's for proteins (sde)")
    p.add_argument("--steps", type=int, default=None, help="diffusion steps (default molgen's for proteins, 20)")
    p.add_argument("--score-scale", type=float, default=None, help="score multiplier (default 1: the ensemble)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--start", default="prior", choices=("prior", "frames"),
                   help="prior: every torsion uniform; frames: partial diffusion from the model's stored frames")
    p.add_argument("--sigma-start", type=float, default=0.5, help="noise level of --start frames (radians)")
    p.add_argument("--clash-relief", action="store_true",
                   help="relieve structures that fail only for clashes by torsion moves, then validate again")
    p.add_argument("--coverage-thresholds", type=float, nargs="+", default=[1.0, 2.0, 3.0],
                   help="Cα-RMSD thresholds (Å) of the coverage recall/precision against the held-out frames")
    p.add_argument("--state", action="append", default=[], metavar="NAME=PDB",
                   help="reference state (e.g. open=adk_open.pdb): Cα RMSD of every structure to it; repeatable")
    p.add_argument("--md-structure", default=None, help="PDB of the short MD speed run (omit: no MD speed)")
    p.add_argument("--md-settings", default=None, help="settings.json of the reference MD (temperature, friction, step)")
    p.add_argument("--md-ps", type=float, default=50.0, help="length of the MD speed run (ps)")
    p.add_argument("--md-frame-ps", type=float, default=1.0, help="spacing of the training MD frames (ps)")
    p.add_argument("--out", default="bench_results/protein", help="output folder")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; writes ``protein.json``, ``protein.md`` and plots to ``--out``; returns the result."""
    import torch

    from molgen.bench.provenance import command_line, machine_info, utc_now
    from molgen.bench.report import jsonable
    from molgen.protein.io import write_ensemble
    from molgen.protein.sample import (
        load_protein_model,
        protein_sampling_options,
        protein_system_of,
        sample_ensemble,
    )
    from molgen.sampling.clash_relief import ClashRelief

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    loaded = load_protein_model(args.model, system=None if args.model else (args.system or "alanine-dipeptide"))
    system = protein_system_of(loaded)
    train = _load(args.top, args.train, args.stride)
    heldout = _load(args.top, args.heldout, args.stride)
    if train.n_atoms != system.num_atoms:
        raise SystemExit(f"error: the MD has {train.n_atoms} atoms, the model's system {system.num_atoms}")
    opts = protein_sampling_options(sampler=args.sampler, steps=args.steps, score_scale=args.score_scale)
    how = {"start": args.start, "sigma_start": args.sigma_start,
           "clash_relief": ClashRelief() if args.clash_relief else None}
    sample_ensemble(loaded, 8, seed=args.seed + 99, options=opts, **how)  # warm-up, untimed
    c0, w0 = time.process_time(), time.perf_counter()
    res = sample_ensemble(loaded, args.num, seed=args.seed, options=opts, **how)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    samples = res.traj
    written = write_ensemble(samples, out / "samples.xtc")  # for re-analysis; not committed (.gitignore)
    machine = machine_info("cpu")
    result: dict[str, Any] = {
        "benchmark": "protein", "command": command_line(["molgen", "bench", "protein"], argv), "date": utc_now(),
        "machine": f"{machine['cpu']}, {machine['cores']} cores", "machine_info": machine,
        "model": str(loaded.meta.get("path")), "model_step": loaded.meta.get("step"), "system": system.name,
        "md": {"train": args.train, "heldout": args.heldout, "train_frames": train.n_frames,
               "heldout_frames": heldout.n_frames, "stride": args.stride},
        "validity": res.summary(),
        "samples_files": [p.name for p in written],
        "speed": {"cpu_seconds": cpu, "wall_seconds": wall, "torch_threads": torch.get_num_threads(),
                  "samples_per_cpu_second": samples.n_frames / cpu if cpu > 0 else None},
        "sampler": {"sampler": opts.sampler, "steps": opts.steps, "planar_bonds": opts.planar_bonds,
                    "score_scale": opts.score_scale, **how},
    }
    dihedral = _dihedral_block(samples, train, heldout)
    if dihedral is not None:
        result["dihedral"] = {k: v for k, v in dihedral.items() if k != "_angles"}
    structural = _structural_block(samples, train, heldout, args.coverage_thresholds)
    if structural is not None:
        result["structural"] = structural
    states = _states_block(args.state, samples, train, heldout)
    if states is not None:
        result["states"] = states
    result["md_rate"] = _md_rate(args, train)
    result["plots"] = _plots(result, dihedral, out)
    result = jsonable(result)
    (out / "protein.json").write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(result)
    (out / "protein.md").write_text(text)
    sys.stderr.write(text)
    return result


if __name__ == "__main__":
    main()

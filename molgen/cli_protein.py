"""``molgen protein ...``: the protein commands (reference MD, training, sampling; the benchmark is ``molgen bench protein``).

Parsing and messages only: the work is in :mod:`molgen.protein`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from molgen.cli_options import (
    Device,
    LearningRate,
    MaxMinutes,
    ModelJson,
    Steps,
    Threads,
)

__all__ = ["protein_app"]

protein_app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode="markdown")


@protein_app.callback()
def _protein() -> None:
    """Protein and peptide ensembles: reference MD, training on trajectories, validated sampling
    (`molgen protein simulate | train | sample`; `molgen bench protein`)."""


@protein_app.command("simulate")
def simulate_cmd(
    structure: Annotated[Path, typer.Argument(help="Starting structure: PDB (amber14 + OBC2), or the PDB / inpcrd "
                                              "coordinates that go with --prmtop.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (resumes when it holds this run).")],
    prmtop: Annotated[Path | None, typer.Option("--prmtop", help="Amber topology (its force field, with OBC2).",
                                                show_default=False)] = None,
    ns: Annotated[float, typer.Option("--ns", help="Recorded length (ns).")] = 20.0,
    seed: Annotated[int, typer.Option("--seed", help="Velocity and Langevin seed (nonzero; one per replica).")] = 1,
    temperature: Annotated[float, typer.Option("--temperature", help="Bath temperature (K).")] = 300.0,
    friction: Annotated[float, typer.Option("--friction", help="Langevin friction (1/ps).")] = 1.0,
    timestep: Annotated[float, typer.Option("--timestep", help="Integration step (fs).")] = 2.0,
    frame_ps: Annotated[float, typer.Option("--frame-ps", help="Interval between recorded frames (ps).")] = 1.0,
    segment_ns: Annotated[float, typer.Option("--segment-ns", help="XTC segment and checkpoint length (ns).")] = 1.0,
    equilibration_ps: Annotated[float, typer.Option("--equilibration-ps", help="Unrecorded MD first (ps).")] = 100.0,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads (default: all).",
                                                show_default=False)] = None,
    max_minutes: Annotated[float | None, typer.Option("--max-minutes", help="Stop after the segment that passes "
                                                      "this wall time; rerun to resume.", show_default=False)] = None,
) -> None:
    """Langevin MD in OBC2 implicit solvent with OpenMM (`pip install molgen[md]`), written as XTC segments with
    a saved state after each: a killed run resumes where it stopped when the command is rerun."""
    from molgen.cli import EXIT_USAGE, _error
    from molgen.errors import InputError

    try:
        from molgen.protein.simulate import MDSettings, run_md
    except ImportError as exc:  # pragma: no cover - openmm missing
        _error(f"molgen protein simulate needs OpenMM ({exc}); install it with `pip install molgen[md]`")
        raise typer.Exit(EXIT_USAGE) from None
    try:
        import openmm  # noqa: F401
    except ImportError:
        _error("molgen protein simulate needs OpenMM; install it with `pip install molgen[md]`")
        raise typer.Exit(EXIT_USAGE) from None
    try:
        settings = MDSettings(structure=str(structure.resolve()), prmtop=str(prmtop.resolve()) if prmtop else None,
                              total_ns=ns, seed=seed, temperature_k=temperature, friction_per_ps=friction,
                              timestep_fs=timestep, frame_ps=frame_ps, segment_ns=segment_ns,
                              equilibration_ps=equilibration_ps)
        progress = run_md(settings, out, threads=threads, max_minutes=max_minutes,
                          log=lambda line: typer.echo(line, err=True))
    except InputError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    typer.echo(f"{out}: {progress.ns_done:g} of {settings.num_segments * segment_ns:g} ns recorded"
               + (f", {progress.ns_per_day:.0f} ns/day" if progress.ns_per_day else ""))


@protein_app.command("train")
def train_cmd(
    top: Annotated[Path, typer.Option("--top", help="Topology (PDB, prmtop, ...) of the trajectories.")],
    traj: Annotated[list[Path], typer.Option("--traj", help="Trajectory file (XTC, DCD, ...), or FILE@start:stop[:step] for a frame slice; repeatable.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder (resumes from last.pt).")],
    name: Annotated[str | None, typer.Option("--name", help="System name for reports (default: topology file stem).",
                                             show_default=False)] = None,
    stride: Annotated[int, typer.Option("--stride", min=1, help="Use every k-th frame.")] = 1,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="Last fraction of each trajectory kept for "
                                                "validation.")] = 0.1,
    val_traj: Annotated[list[Path] | None, typer.Option(
        "--val-traj", help="Validate on these frames (FILE or FILE@start:stop[:step], repeatable) instead of "
        "the last --val-fraction of each --traj.", show_default=False)] = None,
    keep_frames: Annotated[int, typer.Option("--keep-frames", min=0, help="Training frames (evenly spaced) stored "
                                             "in the checkpoint: the local structures (bond lengths, angles) "
                                             "samples are drawn on, and the starting points of `sample --start "
                                             "frames`; 0 samples on the first frame only.")] = 1000,
    steps: Steps = 20000,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Frames per step.")] = 32,
    lr: LearningRate = 1e-3,
    max_minutes: MaxMinutes = None,
    threads: Threads = None,
    device: Device = "auto",
    model_json: ModelJson = "{}",
) -> None:
    """Train the protein torsion model of one system on MD frames (mdtraj reads them; the last
    --val-fraction of each trajectory validates, or the --val-traj frames). The checkpoint holds the system: `molgen protein sample
    --model RUN/best.pt` needs nothing else."""
    import json

    from molgen.cli import EXIT_USAGE, _error
    from molgen.errors import InputError
    from molgen.training.trainer import TrainConfig, train

    try:
        options = {"top": str(top), "trajs": [str(t) for t in traj], "stride": stride, "val_fraction": val_fraction,
                   "keep_frames": keep_frames, "val_trajs": [str(t) for t in val_traj or []]}
        if name:
            options["name"] = name
        train(TrainConfig(task="protein", out=str(out), steps=steps, batch_size=batch_size, lr=lr, warmup=200,
                          max_minutes=max_minutes, threads=threads, device=device, val_molecules=1024,
                          model=json.loads(model_json), task_options=options))
    except (InputError, ValueError) as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None


@protein_app.command("sample")
def sample_cmd(
    output: Annotated[Path, typer.Option("--output", "-o", help="Ensemble file: .pdb, .cif (Biopython), .xtc or "
                                         ".dcd (mdtraj, topology written beside as NAME.top.pdb).")],
    n: Annotated[int, typer.Option("-n", "--num", min=1, help="Valid structures wanted.")] = 1000,
    model: Annotated[Path | None, typer.Option("--model", help="Protein model checkpoint.", show_default=False)] = None,
    system: Annotated[str | None, typer.Option("--system", help="Shipped model instead: alanine-dipeptide.",
                                               show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Sampling seed.")] = 1,
    sampler: Annotated[str, typer.Option("--sampler", help="sde (stochastic) or ode (deterministic).")] = "sde",
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Diffusion steps [default: 20].",
                                              show_default=False)] = None,
    planar_bonds: Annotated[str, typer.Option("--planar-bonds", help="Amide bonds (omega): fixed (the structure's), "
                                              "snap (nearer of cis/trans) or free.")] = "fixed",
    max_rounds: Annotated[int, typer.Option("--max-rounds", min=1, help="Bound on sampling rounds.")] = 10,
    start: Annotated[str, typer.Option("--start", help="prior (every torsion uniform) or frames (partial diffusion "
                                       "from the model's stored training frames).")] = "prior",
    sigma_start: Annotated[float, typer.Option("--sigma-start", help="Noise level of --start frames (radians).")] = 0.5,
    clash_relief: Annotated[bool, typer.Option(
        "--clash-relief/--no-clash-relief", help="Relieve structures that fail only for heavy-atom clashes by "
        "turning rotatable bonds (bonds and angles kept), then validate them again; without it they are "
        "dropped.")] = False,
    threads: Threads = None,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
) -> None:
    """Sample a validated ensemble of a protein model's system and write it (multi-model PDB / mmCIF, or XTC /
    DCD with a topology PDB). Exit 1 when fewer than N structures passed validation within --max-rounds."""
    from molgen.cli import EXIT_FAILURES, EXIT_USAGE, _error
    from molgen.errors import InputError

    try:
        import torch

        from molgen.protein.io import ensemble_format, write_ensemble
        from molgen.protein.sample import (
            load_protein_model,
            protein_sampling_options,
            sample_ensemble,
        )
        from molgen.sampling.clash_relief import ClashRelief

        ensemble_format(output)  # an unknown format fails before sampling

        if threads:
            torch.set_num_threads(threads)
        opts = protein_sampling_options(sampler=sampler, planar_bonds=planar_bonds, steps=steps)
        loaded = load_protein_model(model, system=system, device=device)
        result = sample_ensemble(loaded, n, seed=seed, options=opts, max_rounds=max_rounds, start=start,
                                 sigma_start=sigma_start, clash_relief=ClashRelief() if clash_relief else None)
        paths = write_ensemble(result.traj, output) if result.traj.n_frames else []
    except InputError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    s = result.summary()
    typer.echo(f"{s['n_valid']} of {n} structures valid ({s['n_sampled']} sampled in {s['rounds']} round(s), "
               f"{100 * s['valid_fraction']:.1f} % valid before the filter"
               + (f", {s['relieved']} more after clash relief" if s["relieved"] else "") + f", {s['seconds']:.1f} s)"
               + (f"; wrote {', '.join(str(p) for p in paths)}" if paths else ""), err=True)
    for reason, count in sorted(result.dropped.items(), key=lambda kv: -kv[1]):
        typer.echo(f"  dropped: {count} x {reason}", err=True)
    if s["n_valid"] < n:
        raise typer.Exit(EXIT_FAILURES)

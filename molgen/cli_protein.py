"""``molgen protein ...``: the protein commands (reference MD now; training, sampling and the benchmark next).

Parsing and messages only: the work is in :mod:`molgen.protein`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["protein_app"]

protein_app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode="markdown")


@protein_app.callback()
def _protein() -> None:
    """Protein and peptide ensembles (`molgen protein simulate`)."""


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

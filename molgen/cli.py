"""Command-line interface: ``molgen conformers INPUT -n 10 -o out.sdf``.

Heavy imports (rdkit, numpy, torch, molgen.api) happen inside commands, so that
``molgen --help`` / ``--version`` answer immediately.

Exit codes: 0 every molecule succeeded; 1 some molecules failed (reported on stderr and
in the failures CSV); 2 usage errors (missing/empty input, unwritable output, bad option
values).
"""

from __future__ import annotations

import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from molgen import __version__

__all__ = ["app", "bench_app", "main", "train_app"]

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2

app = typer.Typer(
    name="molgen",
    help="Generate 3D molecular conformers with a torsional-diffusion model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
train_app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode="markdown")
bench_app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode="markdown")
app.add_typer(train_app, name="train")
app.add_typer(bench_app, name="bench")


@train_app.callback()
def _train() -> None:
    """Train conformer models (`molgen train conformers`)."""


@bench_app.callback()
def _bench() -> None:
    """Benchmark conformer generation (`molgen bench conformers`)."""


class SamplerChoice(str, Enum):
    ode = "ode"
    sde = "sde"


class PlanarChoice(str, Enum):
    free = "free"
    snap = "snap"
    fixed = "fixed"


class OptimizeChoice(str, Enum):
    mmff = "mmff"


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"molgen {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    verbose: Annotated[
        bool,
        typer.Option("-v", "--verbose", help="More output (per-molecule lines, RDKit warnings)."),
    ] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only fatal errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Show the version and exit.",
        ),
    ] = False,
) -> None:
    """molgen: 3D conformers from SMILES with an E(3)-equivariant torsional-diffusion model."""
    ctx.obj = {"verbose": verbose, "quiet": quiet}


def _error(message: str) -> None:
    typer.echo(f"Error: {message}", err=True)


class _Reporter:
    """Per-molecule messages and failure bookkeeping (stderr; tqdm-safe)."""

    def __init__(self, quiet: bool, verbose: bool, bar: Any) -> None:
        self.quiet, self.verbose, self.bar = quiet, verbose, bar
        self.failures: list[tuple[str, str, str, str]] = []

    def say(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            typer.echo(message, err=True)

    def fail(self, source: str, name: str, text: str, reason: str) -> None:
        self.failures.append((source, name, text, reason))
        if not self.quiet:
            self.say(f"FAILED {source} ({name}): {reason}")


def _strip_prefix(error: str, source: str, name: str) -> str:
    prefix = f"{source} ({name}): "
    return error.removeprefix(prefix)


def _default_failed_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}.failed.csv")


def _check_writable(path: Path, what: str) -> None:
    from molgen.errors import InputError

    if path.is_dir():
        raise InputError(f"cannot write {what} {path}: it is a directory")
    if not path.parent.is_dir():
        raise InputError(f"cannot write {what} {path}: directory {path.parent} does not exist")


def _write_failures(path: Path, failures: list[tuple[str, str, str, str]]) -> None:
    import csv

    from molgen.chem.io import open_atomic

    with open_atomic(path) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["source", "name", "smiles_or_record", "reason"])
        writer.writerows(failures)


def _summary_lines(s: dict[str, Any]) -> list[str]:
    lines = [
        (
            f"molecules: {s['molecules_ok']} ok, {s['molecules_failed']} failed; "
            f"{s['conformers_written']} conformers written to {s['output']}"
        )
    ]
    if s["conformers_dropped"]:
        dropped = ", ".join(f"{k} {v}" for k, v in s["conformers_dropped"].items())
        lines.append(f"conformers dropped: {dropped}")
    if s["failed_file"]:
        lines.append(f"failures listed in {s['failed_file']}")
    lines.append(f"wall time: {s['wall_time_s']:.2f} s")
    return lines


@app.command("conformers")
def conformers(
    ctx: typer.Context,
    input: Annotated[
        str,
        typer.Argument(
            help="A SMILES string, or a file: .smi/.smiles/.txt (SMILES, then an optional name), "
            ".csv/.tsv (see --smiles-col, --id-col), .sdf; optionally .gz-compressed.",
            metavar="INPUT",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            help="Output file; format from the suffix: .sdf, .xyz or .pdb.",
            show_default=False,
        ),
    ],
    num_confs: Annotated[
        int, typer.Option("-n", "--num-confs", min=1, help="Conformers per molecule.")
    ] = 10,
    smiles_col: Annotated[
        str, typer.Option("--smiles-col", help="CSV column holding the SMILES.")
    ] = "smiles",
    id_col: Annotated[
        str | None,
        typer.Option("--id-col", help="CSV column holding molecule names.", show_default=False),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", help="Model checkpoint (default: the shipped model).", show_default=False
        ),
    ] = None,
    sampler: Annotated[
        SamplerChoice, typer.Option("--sampler", help="Reverse-diffusion sampler.")
    ] = SamplerChoice.ode,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Diffusion steps.")] = 8,
    per_structure: Annotated[
        int | None,
        typer.Option(
            "--per-structure",
            min=1,
            help="Conformers sharing one ETKDG local structure (bond lengths, angles, rings); "
            "larger is faster, less varied rings. Default: the model's tuned setting.",
            show_default=False,
        ),
    ] = None,
    planar_bonds: Annotated[
        PlanarChoice | None,
        typer.Option(
            "--planar-bonds",
            help="Amide, ester, carbamate, urea C-N/C-O bonds: diffuse freely, snap to cis/trans "
            "afterwards, or keep ETKDG's value. Default: the model's tuned setting.",
            show_default=False,
        ),
    ] = None,
    score_scale: Annotated[
        float | None,
        typer.Option(
            "--score-scale",
            help="Multiply the network's torsion scores (> 1 sharpens towards the modes). "
            "Default: the model's tuned setting.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed.")] = 42,
    rms: Annotated[
        float | None,
        typer.Option(
            "--rms",
            min=0.0,
            help="Drop conformers within this heavy-atom RMSD (Å) of a kept one.",
            show_default=False,
        ),
    ] = None,
    optimize: Annotated[
        OptimizeChoice | None,
        typer.Option("--optimize", help="Relax conformers with a force field.", show_default=False),
    ] = None,
    energy_window: Annotated[
        float | None,
        typer.Option(
            "--energy-window",
            min=0.0,
            help="Drop conformers more than this many kcal/mol above the lowest (MMFF94).",
            show_default=False,
        ),
    ] = None,
    failed: Annotated[
        Path | None,
        typer.Option(
            "--failed",
            help="CSV of failed molecules (default: <output stem>.failed.csv next to the output); "
            "written only if something failed.",
            show_default=False,
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads", min=1, help="CPU threads for torch and RDKit.", show_default=False
        ),
    ] = None,
    device: Annotated[
        str, typer.Option("--device", help="Torch device, e.g. cpu or cuda.")
    ] = "cpu",
    json_summary: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary on stdout.")
    ] = False,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Progress bar on stderr (default: when stderr is a terminal).",
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Same as the global -v.")
    ] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Same as the global -q.")] = False,
) -> None:
    """Generate conformers for one SMILES or every molecule of a file.

    Molecules are streamed (read -> generate -> write); a molecule that fails is reported
    on stderr and in the failures CSV, and the run goes on. Exit code 0 when all
    succeeded, 1 when some failed, 2 on usage errors.
    """
    started = time.perf_counter()
    glob = ctx.obj or {}
    verbose = verbose or glob.get("verbose", False)
    quiet = quiet or glob.get("quiet", False)

    import json
    import logging

    from molgen.errors import InputError

    _configure_logging(logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING)
    if score_scale is not None and not score_scale > 0:
        _error(f"--score-scale must be > 0, got {score_scale}")
        raise typer.Exit(EXIT_USAGE)
    try:
        from rdkit import rdBase

        from molgen import api
        from molgen.chem.io import ConformerWriter, read_molecules

        records = read_molecules(input, smiles_col=smiles_col, id_col=id_col)
        failed_path = failed if failed is not None else _default_failed_path(output)
        _check_writable(failed_path, "failures file")
        if threads is not None:
            _set_torch_threads(threads)
        api.load_model(model, device)
        writer = ConformerWriter(output)
    except InputError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    except Exception as exc:  # noqa: BLE001 - e.g. a broken model checkpoint
        _error(f"cannot start: {type(exc).__name__}: {exc}")
        raise typer.Exit(EXIT_USAGE) from None

    show_bar = sys.stderr.isatty() if progress is None else progress
    bar = None
    if show_bar and not quiet:
        from tqdm import tqdm

        bar = tqdm(total=None, unit="mol", file=sys.stderr, dynamic_ncols=True, desc="molecules")
    report = _Reporter(quiet, verbose, bar)
    rdkit_logs = None if verbose else rdBase.BlockLogs()
    n_ok = 0
    dropped: dict[str, int] = {}
    try:
        with writer:
            for record in records:
                if bar is not None:
                    bar.update(1)
                if record.mol is None:
                    reason = _strip_prefix(record.error or "unreadable", record.source, record.name)
                    report.fail(record.source, record.name, record.raw or "", reason)
                    continue
                try:
                    mol = api.generate_conformers(
                        record.mol,
                        num_confs,
                        model=model,
                        sampler=sampler.value,
                        steps=steps,
                        seed=seed,
                        rms=rms,
                        optimize=optimize.value if optimize is not None else None,
                        energy_window=energy_window,
                        device=device,
                        name=record.name,
                        num_threads=threads or 1,
                        conformers_per_structure=per_structure,
                        planar_bonds=planar_bonds.value if planar_bonds is not None else None,
                        score_scale=score_scale,
                    )
                    written = writer.write(mol)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # noqa: BLE001 - one molecule must not stop the batch
                    reason = str(exc) or type(exc).__name__
                    if verbose:
                        import traceback

                        report.say(traceback.format_exc().rstrip())
                    report.fail(record.source, record.name, record.raw or "", reason)
                    continue
                n_ok += 1
                for key, count in json.loads(mol.GetProp("molgen_drop_reasons")).items():
                    dropped[key] = dropped.get(key, 0) + int(count)
                if verbose:
                    report.say(f"ok {record.source} ({record.name}): {written} conformers")
    finally:
        if bar is not None:
            bar.close()
        del rdkit_logs

    failed_file = None
    if report.failures:
        try:
            _write_failures(failed_path, report.failures)
            failed_file = str(failed_path)
        except (InputError, OSError) as exc:
            _error(f"cannot write failures file: {exc}")

    summary = {
        "input": input,
        "output": str(output),
        "molecules_ok": n_ok,
        "molecules_failed": len(report.failures),
        "conformers_requested": num_confs,
        "conformers_written": writer.n_conformers,
        "conformers_dropped": dropped,
        "failed_file": failed_file,
        "wall_time_s": round(time.perf_counter() - started, 3),
    }
    if not quiet:
        for line in _summary_lines(summary):
            typer.echo(line, err=True)
    if json_summary:
        typer.echo(json.dumps(summary))
    raise typer.Exit(EXIT_FAILURES if report.failures else EXIT_OK)


@train_app.command("conformers")
def train_conformers(
    out: Annotated[
        Path, typer.Option("--out", help="Run folder: checkpoints, loss log, summary (resumes from last.pt).")
    ] = Path.home() / ".cache" / "molgen" / "runs" / "torsion_ccd",
    cache: Annotated[
        Path | None,
        typer.Option("--cache", help="Dataset cache (default $MOLGEN_CACHE or ~/.cache/molgen).", show_default=False),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Use these training arrays (.npz) instead of building from the CCD.", show_default=False),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes for the dataset build.")] = 2,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="ETKDG seeds per ligand in conformer matching.")] = 4,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimizer steps.")] = 20000,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Molecules per step.")] = 32,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (cosine decay).")] = 1e-3,
    max_minutes: Annotated[
        float | None,
        typer.Option("--max-minutes", help="Stop after this much training time (the LR schedule follows it).", show_default=False),
    ] = None,
    val_every: Annotated[int, typer.Option("--val-every", min=1, help="Steps between validation losses.")] = 1000,
    num_workers: Annotated[int, typer.Option("--num-workers", min=0, help="DataLoader worker processes.")] = 0,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="torch CPU threads.", show_default=False)] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Training seed.")] = 1,
    export: Annotated[
        Path | None,
        typer.Option("--export", help="Write slim weights + model card here when done.", show_default=False),
    ] = None,
) -> None:
    """Build the CCD conformer dataset (cached) and train the torsion denoiser (resumable).

    Held-out molecules are removed before anything else; the split is by InChIKey first block.
    """
    from molgen.training.pipeline import train_conformer_model

    train_conformer_model(
        out=out, cache=cache, data=data, workers=workers, seeds=seeds, export=export,
        steps=steps, batch_size=batch_size, lr=lr, max_minutes=max_minutes, val_every=val_every,
        num_workers=num_workers, threads=threads, device=device, seed=seed,
    )


@bench_app.command(
    "conformers",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def bench_conformers(ctx: typer.Context) -> None:
    """Benchmark molgen against RDKit ETKDGv3 on CCD test-split ligands (`--help` lists the options).

    Median minimum heavy-atom RMSD to the experimental conformation, fractions under 1.0/1.5/2.0 Å
    and conformers per second, for N = 1, 10, 50, both methods in the same run; writes JSON, a
    markdown table and a PNG plot.
    """
    from molgen.bench.conformers import main as bench_main

    bench_main(list(ctx.args))


def _configure_logging(level: int) -> None:
    """Send molgen's own log records (not other libraries') to stderr at ``level``."""
    import logging

    class _StderrHandler(logging.StreamHandler):
        """Writes to the *current* sys.stderr (which test runners swap)."""

        _molgen_cli = True

        @property
        def stream(self):  # type: ignore[override]
            return sys.stderr

        @stream.setter
        def stream(self, value) -> None:
            pass

    logger = logging.getLogger("molgen")
    logger.setLevel(level)
    if not any(getattr(h, "_molgen_cli", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


def _set_torch_threads(threads: int) -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    torch.set_num_threads(threads)


def main() -> None:
    """Console-script entry point (``molgen``)."""
    app(prog_name="molgen")


if __name__ == "__main__":
    main()

"""Command-line interface: ``molgen conformers INPUT -n 10 -o out.sdf``, ``molgen merge out/ -o all.sdf``,
``molgen sample molecules -n 100 -o new.sdf``, ``molgen train ...``, ``molgen bench ...``.

The CLI parses options into a :class:`molgen.sampling.options.SamplingOptions` and a
:class:`molgen.batch.runner.BatchConfig` and prints; it holds no tensors. Heavy imports (rdkit, numpy,
torch, molgen.api) happen inside commands, so that ``molgen --help`` / ``--version`` answer immediately.

Exit codes of ``conformers``: 0 every molecule succeeded; 1 some molecules failed (reported on stderr and
in the failures CSV); 2 usage errors (missing/empty input, unwritable output, bad option values, a folder
holding a run with other settings) or a worker process that died (finished chunks are kept); 130 / 143
interrupted by SIGINT / SIGTERM (a folder output resumes when the same command is rerun).
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from molgen import __version__
from molgen.cli_options import (
    Device,
    LearningRate,
    MaxMinutes,
    ModelJson,
    Steps,
    Threads,
)
from molgen.cli_protein import protein_app

__all__ = ["app", "bench_app", "main", "sample_app", "train_app"]

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2

app = typer.Typer(
    name="molgen",
    help="Generate 3D conformers (torsional diffusion), new 3D molecules (position/type diffusion) and protein "
    "ensembles (torsional diffusion learnt from MD).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
train_app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode="markdown")
bench_app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode="markdown")
sample_app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode="markdown")
app.add_typer(train_app, name="train")
app.add_typer(bench_app, name="bench")
app.add_typer(sample_app, name="sample")
app.add_typer(protein_app, name="protein")


@train_app.callback()
def _train() -> None:
    """Train models (`molgen train conformers`, `molgen train molecules`)."""


@bench_app.callback()
def _bench() -> None:
    """Benchmark generation (`molgen bench conformers`, `molgen bench molecules`)."""


@sample_app.callback()
def _sample() -> None:
    """Generate new molecules (`molgen sample molecules`)."""


class SamplerChoice(str, Enum):
    ode = "ode"
    sde = "sde"


class PlanarChoice(str, Enum):
    free = "free"
    snap = "snap"
    fixed = "fixed"


class OptimizeChoice(str, Enum):
    mmff = "mmff"


class MethodChoice(str, Enum):
    torsional = "torsional"
    cartesian = "cartesian"


class MoleculeSamplerChoice(str, Enum):
    ddim = "ddim"
    ddpm = "ddpm"
    sde = "sde"
    heun = "heun"


def _parse_conditions(values: list[str]) -> dict[str, float]:
    """``["alpha=80", "gap=5.5"]`` -> ``{"alpha": 80.0, "gap": 5.5}``; raises InputError naming a bad item."""
    from molgen.errors import InputError

    out: dict[str, float] = {}
    for item in values:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise InputError(f"--condition {item!r}: expected NAME=NUMBER, e.g. alpha=80") from None
    return out


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


def _summary_lines(s: dict[str, Any]) -> list[str]:
    lines = [
        (
            f"molecules: {s['molecules_ok']} ok, {s['molecules_failed']} failed"
            + (f", {s['molecules_skipped']} already done" if s.get("molecules_skipped") else "")
            + f"; {s['conformers_written']} conformers written to {s['output']}"
        )
    ]
    if s["conformers_dropped"]:
        dropped = ", ".join(f"{k} {v}" for k, v in s["conformers_dropped"].items())
        lines.append(f"conformers dropped: {dropped}")
    if s["failed_file"]:
        lines.append(f"failures listed in {s['failed_file']}")
    rate = s.get("conformers_per_s")
    lines.append(f"wall time: {s['wall_time_s']:.2f} s" + (f" ({rate:.1f} conformers/s)" if rate else ""))
    return lines


def _opt(value: Any) -> Any:
    """An Enum choice's value (None stays None)."""
    return getattr(value, "value", value)


@app.command("conformers")
def conformers(
    ctx: typer.Context,
    input: Annotated[
        str,
        typer.Argument(
            help="A SMILES string, or a file: .smi/.smiles/.txt (SMILES, then an optional name), "
            ".csv/.tsv (see --smiles-col, --id-col), .sdf; optionally .gz-compressed. Read as a stream.",
            metavar="INPUT",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            help="Output file (.sdf, .sdf.gz, .xyz, .pdb), or a folder (a trailing '/', an existing "
            "folder, or no suffix): chunked, resumable output for big inputs and clusters.",
            show_default=False,
        ),
    ],
    num_confs: Annotated[int, typer.Option("-n", "--num-confs", min=1, help="Conformers per molecule.")] = 10,
    smiles_col: Annotated[str, typer.Option("--smiles-col", help="CSV column holding the SMILES.")] = "smiles",
    id_col: Annotated[
        str | None, typer.Option("--id-col", help="CSV column holding molecule names.", show_default=False)
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="Model checkpoint (default: the shipped model).", show_default=False),
    ] = None,
    method: Annotated[
        MethodChoice,
        typer.Option("--method", help="torsional: torsions on ETKDG's local structure (the shipped model); "
                     "cartesian: every atom position generated (needs a Cartesian model, see --model)."),
    ] = MethodChoice.torsional,
    sampler: Annotated[SamplerChoice, typer.Option("--sampler", help="Reverse-diffusion sampler.")] = SamplerChoice.ode,
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Diffusion steps [default: 5].", show_default=False)] = None,
    per_structure: Annotated[
        int | None,
        typer.Option(
            "--per-structure", min=1,
            help="Conformers sharing one ETKDG local structure (bond lengths, angles, rings) in molecules "
            "with flexible rings; larger is faster, less varied rings [default: 2].",
            show_default=False,
        ),
    ] = None,
    max_structures: Annotated[
        int | None,
        typer.Option("--max-structures", min=1, help="At most this many ETKDG local structures per molecule.",
                     show_default=False),
    ] = None,
    planar_bonds: Annotated[
        PlanarChoice | None,
        typer.Option(
            "--planar-bonds",
            help="Amide, ester, carbamate, urea C-N/C-O bonds: diffuse freely, snap to cis/trans "
            "afterwards, or keep ETKDG's value [default: snap].",
            show_default=False,
        ),
    ] = None,
    score_scale: Annotated[
        float | None,
        typer.Option("--score-scale", help="Multiply the network's torsion scores (> 1 sharpens towards the "
                     "modes) [default: 2].", show_default=False),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Global seed; each molecule's seed derives from it "
                                      "and the molecule's ID.")] = 42,
    rms: Annotated[
        float | None,
        typer.Option("--rms", min=0.0, help="Drop conformers within this heavy-atom RMSD (Å) of a kept one.",
                     show_default=False),
    ] = None,
    optimize: Annotated[
        OptimizeChoice | None, typer.Option("--optimize", help="Relax conformers with a force field.", show_default=False)
    ] = None,
    energy_window: Annotated[
        float | None,
        typer.Option("--energy-window", min=0.0, help="Drop conformers more than this many kcal/mol above the "
                     "lowest (MMFF94).", show_default=False),
    ] = None,
    failed: Annotated[
        Path | None,
        typer.Option("--failed", help="CSV of failed molecules for file output (default: <output stem>.failed.csv "
                     "next to the output); written only if something failed.", show_default=False),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option("--threads", min=1, help="Worker processes (one core each) [default: all cores available: "
                     "SLURM_CPUS_PER_TASK, cgroup quota, CPU affinity; shared among torchrun ranks].",
                     show_default=False),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N (under torchrun/srun 'cuda' is "
                                        "the rank's own GPU).")] = "auto",
    batch_atoms: Annotated[
        int | None,
        typer.Option("--batch-atoms", min=1, help="Heavy atoms (conformers x atoms) per denoiser call "
                     "[default: 4096].", show_default=False),
    ] = None,
    chunk_size: Annotated[int, typer.Option("--chunk-size", min=1, help="Molecules per chunk file (folder output).")] = 1000,
    gzip_chunks: Annotated[bool, typer.Option("--gzip", help="Write chunks as .sdf.gz (folder output).")] = False,
    shard_index: Annotated[
        int | None,
        typer.Option("--shard-index", min=0, help="This run's shard [default: SLURM_ARRAY_TASK_ID, else 0].",
                     show_default=False),
    ] = None,
    num_shards: Annotated[
        int | None,
        typer.Option("--num-shards", min=1, help="Number of shards; a molecule's shard is a stable hash of its ID "
                     "[default: SLURM_ARRAY_TASK_COUNT, else 1].", show_default=False),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start again in an output folder that holds a run "
                                            "(default: resume it).")] = False,
    max_heavy_atoms: Annotated[
        int, typer.Option("--max-heavy-atoms", min=1, help="Report larger molecules as failures.")
    ] = 250,
    keep_salts: Annotated[bool, typer.Option("--keep-salts", help="Keep every fragment of salts and mixtures "
                                             "(default: the largest fragment).")] = False,
    log_every: Annotated[float, typer.Option("--log-every", min=0.0, help="Seconds between progress lines "
                                             "without a terminal.")] = 30.0,
    json_summary: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Progress bar on stderr (default: when stderr is a "
                     "terminal; plain log lines otherwise).", show_default=False),
    ] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Same as the global -v.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Same as the global -q.")] = False,
) -> None:
    """Generate conformers for one SMILES or every molecule of a file.

    Molecules are streamed (read, generate on all cores, write); a molecule that fails is reported
    on stderr and in the failures CSV, and the run goes on. With a folder as output the run is
    written in chunks, resumes when rerun, and can be sharded over a SLURM array or torchrun ranks.
    Exit code 0 when all succeeded, 1 when some failed, 2 on usage errors or when a worker process died
    (finished chunks are kept), 130/143 when interrupted.
    """
    glob = ctx.obj or {}
    verbose = verbose or glob.get("verbose", False)
    quiet = quiet or glob.get("quiet", False)

    import json
    import logging

    from molgen.errors import InputError

    _configure_logging(logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING)
    from molgen.batch.runner import BatchAborted, BatchConfig, run_batch

    try:
        from molgen.sampling.options import SamplingOptions

        if method is MethodChoice.cartesian and model is None:
            from molgen.models.registry import default_cartesian_model_path

            model = default_cartesian_model_path()
            if not model.exists():
                raise InputError("--method cartesian: no Cartesian conformer model is shipped yet; train one with "
                                 "`molgen train cartesian` and pass it with --model")
        options = SamplingOptions.from_kwargs(
            n=num_confs, sampler=sampler.value, steps=steps, seed=seed, conformers_per_structure=per_structure,
            max_structures=max_structures, planar_bonds=_opt(planar_bonds), score_scale=score_scale, rms=rms,
            optimize=_opt(optimize), energy_window=energy_window,
        )
        config = BatchConfig(
            input=input, output=output, options=options, model=str(model) if model is not None else None,
            device=device, smiles_col=smiles_col, id_col=id_col, threads=threads, batch_atoms=batch_atoms,
            chunk_size=chunk_size, gzip=gzip_chunks, shard_index=shard_index, num_shards=num_shards,
            overwrite=overwrite, failed=failed, max_heavy_atoms=max_heavy_atoms, keep_salts=keep_salts,
            progress=(sys.stderr.isatty() if progress is None else progress) and not quiet,
            log_every=log_every, quiet=quiet, verbose=verbose,
        )
        say = (lambda m: None) if quiet else (lambda m: typer.echo(m, err=True))
        summary = run_batch(config, say=say)
        code = EXIT_FAILURES if summary["molecules_failed"] else EXIT_OK
    except InputError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    except BatchAborted as exc:
        _error(str(exc))
        summary, code = exc.summary, EXIT_USAGE
    except KeyboardInterrupt as exc:
        summary = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else None
        if summary is None:
            _error("interrupted")
            raise typer.Exit(130) from None
        _error(f"interrupted ({summary['interrupted']}); rerun the same command to resume a folder output")
        code = 143 if summary["interrupted"] == "SIGTERM" else 130
    except Exception as exc:  # noqa: BLE001 - e.g. a broken model checkpoint
        if verbose:
            import traceback

            traceback.print_exc()
        _error(f"cannot run: {type(exc).__name__}: {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    if not quiet:
        for line in _summary_lines(summary):
            typer.echo(line, err=True)
    if json_summary:
        typer.echo(json.dumps(summary))
    raise typer.Exit(code)


@app.command("merge")
def merge(
    folder: Annotated[Path, typer.Argument(help="A run folder written by `molgen conformers ... -o FOLDER/`.",
                                            show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Merged file (.sdf or .sdf.gz).", show_default=False)],
    allow_missing: Annotated[bool, typer.Option("--allow-missing", help="Merge what is finished even if shards "
                                                "are missing or unfinished.")] = False,
    json_summary: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
) -> None:
    """Merge the finished chunks of every shard of a run folder into one SDF, and its failure lists.

    Exit code 0 when the run was complete, 1 when something was missing (with --allow-missing), 2 when
    nothing was written (not a run folder, or missing shards without --allow-missing).
    """
    import json

    from molgen.batch.merge import merge_run
    from molgen.errors import InputError

    try:
        summary = merge_run(folder, output, allow_missing=allow_missing)
    except InputError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    typer.echo(
        f"merged {summary['chunks']} chunks of {summary['shards']} shard(s): {summary['molecules_ok']} molecules, "
        f"{summary['conformers']} conformers into {summary['output']}; {summary['molecules_failed']} failed"
        + (f" (listed in {summary['failed_file']})" if summary["failed_file"] else ""),
        err=True,
    )
    if not summary["complete"]:
        typer.echo(f"incomplete: missing shards {summary['shards_missing']}, unfinished {summary['shards_unfinished']}, "
                   f"made with other settings {summary['shards_stale']}", err=True)
    if json_summary:
        typer.echo(json.dumps(summary))
    raise typer.Exit(EXIT_OK if summary["complete"] else EXIT_FAILURES)


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
    steps: Steps = 20000,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Molecules per step.")] = 32,
    lr: LearningRate = 1e-3,
    max_minutes: Annotated[
        float | None,
        typer.Option("--max-minutes", help="Stop after this much training time (the LR schedule follows it).", show_default=False),
    ] = None,
    val_every: Annotated[int, typer.Option("--val-every", min=1, help="Steps between validation losses.")] = 1000,
    num_workers: Annotated[int, typer.Option("--num-workers", min=0, help="DataLoader worker processes.")] = 0,
    threads: Threads = None,
    device: Device = "auto",
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


@sample_app.command("molecules")
def sample_molecules_cmd(
    output: Annotated[Path, typer.Option("-o", "--output", help="Output SDF (.sdf or .sdf.gz).", show_default=False)],
    num: Annotated[int, typer.Option("-n", "--num", min=1, help="Molecules to generate.")] = 100,
    condition: Annotated[
        list[str] | None,
        typer.Option("--condition", help="Target property NAME=VALUE, repeatable (QM9 model: alpha in Bohr^3, "
                     "gap in eV, num_heavy_atoms).", show_default=False),
    ] = None,
    guidance: Annotated[float, typer.Option("--guidance", help="Classifier-free guidance scale w (0: ignore the "
                                            "condition, 1: conditional model, > 1: stronger).")] = 1.0,
    num_atoms: Annotated[
        int | None, typer.Option("--num-atoms", min=1, help="Atoms per molecule with hydrogens [default: drawn "
                                 "from the training data].", show_default=False)
    ] = None,
    method: Annotated[MoleculeSamplerChoice, typer.Option("--sampler", help="ddim (deterministic), ddpm "
                                                          "(ancestral, EDM's), sde or heun.")] = MoleculeSamplerChoice.ddim,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Reverse-diffusion steps.")] = 100,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed.")] = 1,
    model: Annotated[
        Path | None, typer.Option("--model", help="Model checkpoint (default: the shipped QM9 model).", show_default=False)
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    keep_invalid: Annotated[bool, typer.Option("--keep-invalid", help="Also write molecules whose bonds could not be "
                                               "perceived (tagged valid=0 with a reason, no bonds).")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Molecules per denoiser call.")] = 256,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="torch CPU threads [default: all cores "
                                                "available].", show_default=False)] = None,
    json_summary: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No summary on stderr.")] = False,
) -> None:
    """Generate new 3D molecules with hydrogens from the de novo diffusion model, optionally steered
    towards properties by classifier-free guidance, and write the valid ones to an SDF.

    Each molecule's bonds are perceived from its geometry (RDKit); molecules that fail are counted by
    reason (and written, flagged, with --keep-invalid). Exit code 0 when the SDF was written, 2 on bad
    options or a model that cannot be loaded.
    """
    import json
    import time

    from molgen.errors import InputError

    try:
        from molgen.api import sample_molecules, torch_threads
        from molgen.chem.writers import output_format, write_molecules_sdf
        from molgen.cluster import available_cpus

        conditions = _parse_conditions(condition or [])
        if output_format(output)[0] != "sdf":
            raise InputError(f"{output}: molecules are written as SDF (.sdf or .sdf.gz)")
        start = time.perf_counter()
        with torch_threads(threads or available_cpus()):
            result = sample_molecules(num, conditions=conditions, guidance=guidance, num_atoms=num_atoms,
                                      method=method.value, steps=steps, seed=seed, model=model, device=device,
                                      keep_invalid=keep_invalid, batch_size=batch_size)
        write_molecules_sdf(list(result), output)
        wall = time.perf_counter() - start
    except InputError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    summary = {"generated": result.num_generated, "valid": result.num_valid, "written": len(result),
               "failed_by_reason": result.reasons, **{k: round(v, 4) for k, v in result.summary.items()},
               "wall_s": round(wall, 2), "molecules_per_s": round(result.num_generated / wall, 3) if wall else None,
               "output": str(output)}
    if not quiet:
        typer.echo(f"{result.num_valid}/{result.num_generated} valid, {len(result)} written to {output} "
                   f"in {wall:.1f} s; atom stability {result.summary['atom_stability']:.3f}, molecule stability "
                   f"{result.summary['mol_stability']:.3f}", err=True)
        for reason, count in sorted(result.reasons.items(), key=lambda kv: -kv[1]):
            typer.echo(f"  invalid: {count} x {reason}", err=True)
    if json_summary:
        typer.echo(json.dumps(summary))


@train_app.command("cartesian")
def train_cartesian_cmd(
    out: Annotated[Path, typer.Option("--out", help="Run folder (resumes from last.pt).")] = (
        Path.home() / ".cache" / "molgen" / "runs" / "cartesian_qm9"),
    cache: Annotated[Path | None, typer.Option("--cache", help="Dataset cache root.", show_default=False)] = None,
    steps: Steps = 200000,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Molecules per step.")] = 64,
    lr: LearningRate = 7e-4,
    max_minutes: MaxMinutes = None,
    threads: Threads = None,
    device: Device = "auto",
    model_json: ModelJson = "{}",
) -> None:
    """Train the Cartesian conformer model (every atom position of a given graph) on QM9's DFT geometries
    (EDM's split, held-out molecules removed; resumable)."""
    import json

    from molgen.errors import InputError
    from molgen.training.trainer import TrainConfig, train

    try:
        train(TrainConfig(task="cartesian", out=str(out), steps=steps, batch_size=batch_size, lr=lr, warmup=500,
                          grad_clip=2.0, max_minutes=max_minutes, threads=threads, device=device,
                          model=json.loads(model_json), task_options={"cache": str(cache)} if cache else {}))
    except (InputError, ValueError) as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None


@train_app.command("property")
def train_property_cmd(
    out: Annotated[Path, typer.Option("--out", help="Run folder (resumes from last.pt).")] = (
        Path.home() / ".cache" / "molgen" / "runs" / "property_qm9"),
    prop: Annotated[list[str] | None, typer.Option("--property", help="QM9 property to predict, repeatable "
                                                   "(alpha, gap, homo, lumo, mu, Cv) [default: alpha].",
                                                   show_default=False)] = None,
    half: Annotated[str, typer.Option("--half", help="Half of QM9's training split: first (EDM's D_a, which "
                                      "the guided generator never sees), second or all.")] = "first",
    cache: Annotated[Path | None, typer.Option("--cache", help="Dataset cache root.", show_default=False)] = None,
    steps: Steps = 200000,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Molecules per step.")] = 64,
    lr: LearningRate = 1e-3,
    max_minutes: MaxMinutes = None,
    threads: Threads = None,
    device: Device = "auto",
) -> None:
    """Train the property regressor that judges guided generation (EDM's protocol: trained on D_a, the
    generator on D_b; L1 loss on normalised properties; resumable)."""
    from molgen.errors import InputError
    from molgen.training.trainer import TrainConfig, train

    options: dict[str, Any] = {"properties": list(prop or ["alpha"]), "half": half}
    if cache is not None:
        options["cache"] = str(cache)
    try:
        train(TrainConfig(task="property", out=str(out), steps=steps, batch_size=batch_size, lr=lr, warmup=1000,
                          max_minutes=max_minutes, val_molecules=2000, threads=threads, device=device,
                          task_options=options))
    except (InputError, ValueError) as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None


@train_app.command("molecules")
def train_molecules_cmd(
    out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoints, loss log, summary (resumes from "
                                      "last.pt).")] = Path.home() / ".cache" / "molgen" / "runs" / "qm9_edm",
    condition: Annotated[
        list[str] | None,
        typer.Option("--condition", help="Property to condition on, repeatable (alpha, gap, homo, lumo, mu, Cv, "
                     "num_heavy_atoms); each is dropped at random in training (classifier-free guidance).",
                     show_default=False),
    ] = None,
    half: Annotated[str | None, typer.Option("--half", help="Train on all, the first or the second half of QM9's "
                                             "training split [default: second with conditions (EDM's D_b), "
                                             "else all].", show_default=False)] = None,
    cache: Annotated[Path | None, typer.Option("--cache", help="Dataset cache root (default $MOLGEN_CACHE or "
                                               "~/.cache/molgen).", show_default=False)] = None,
    steps: Steps = 200000,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Molecules per step.")] = 64,
    lr: LearningRate = 7e-4,
    max_minutes: Annotated[float | None, typer.Option("--max-minutes", help="Stop after this much training time "
                                                      "(the LR schedule follows it).", show_default=False)] = None,
    val_every: Annotated[int, typer.Option("--val-every", min=1, help="Steps between validation losses.")] = 1000,
    threads: Threads = None,
    device: Device = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Training seed.")] = 1,
    model_json: ModelJson = "{}",
    export: Annotated[Path | None, typer.Option("--export", help="Write slim weights + model card here when done.",
                                                show_default=False)] = None,
) -> None:
    """Train the de novo position/type diffusion model on QM9 (EDM's split, held-out molecules removed;
    resumable; data-parallel under torchrun)."""
    import json

    from molgen.errors import InputError
    from molgen.training.trainer import TrainConfig, train

    options: dict[str, Any] = {"conditions": list(condition or [])}
    if half is not None:
        options["half"] = half
    if cache is not None:
        options["cache"] = str(cache)
    try:
        cfg = TrainConfig(task="molecules", out=str(out), steps=steps, batch_size=batch_size, lr=lr, warmup=500,
                          grad_clip=2.0, max_minutes=max_minutes, val_every=val_every, threads=threads,
                          device=device, seed=seed, model=json.loads(model_json), task_options=options)
        best = train(cfg)
        if export is not None:
            import shlex

            from molgen.training.pipeline import export_weights

            command = "molgen " + " ".join(shlex.quote(a) for a in sys.argv[1:])
            export_weights(best, export, name=export.stem, command=command)
    except (InputError, ValueError) as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None


@bench_app.command(
    "molecules",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def bench_molecules(ctx: typer.Context) -> None:
    """Benchmark de novo generation on QM9 (`--help` lists the options): stability, validity, uniqueness,
    novelty, geometry Wasserstein distances, speed, and guided property MAE."""
    from molgen.bench.molecules import main as bench_main

    bench_main(list(ctx.args))


@bench_app.command(
    "protein",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def bench_protein(ctx: typer.Context) -> None:
    """Benchmark a protein model against held-out MD (`--help` lists the options): φ/ψ JS divergence, basin
    populations, ΔF, Cα RMSF r, pairwise RMSD, contact maps, validity and speed, each beside MD-versus-MD."""
    from molgen.bench.protein import main as bench_main

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


def main() -> None:
    """Console-script entry point (``molgen``)."""
    app(prog_name="molgen")


if __name__ == "__main__":
    main()

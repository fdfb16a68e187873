"""``molgen bench conformers`` / ``python -m molgen.bench.conformers``: molgen against RDKit ETKDGv3.

This module only wires the parts together:

* :mod:`molgen.bench.references`: the molecule sets: CCD test-split ligands with their experimental
  conformations (``--set ccd``; filters, seeded sample, candidates cached under ``~/.cache/molgen``)
  or a SMILES file without references (``--set moses``: ``data/moses_test_1000.smi``);
* :mod:`molgen.bench.endtoend` (``--mode endtoend``, default): each tool as a user runs it, one
  process from a SMILES file to an SDF, start-up included, at its defaults on the whole machine and
  at equal thread counts (:mod:`molgen.bench.etkdg_baseline` is the ETKDG command);
* :mod:`molgen.bench.runner` with :mod:`molgen.bench.generators` (``--mode inprocess``): both
  methods called per molecule inside this process, 1 thread each, start-up excluded;
* :mod:`molgen.bench.scoring` (min-RMSD to experiment), :mod:`molgen.bench.posebusters_rate`,
  :mod:`molgen.bench.memory` (rusage of a child process), :mod:`molgen.bench.provenance`
  (machine, date, git commit, command line) and :mod:`molgen.bench.report` (JSON, markdown, PNG).

Outputs (``--out``, default ``bench_results/``): ``conformers.json`` (everything, per-molecule
values included), ``conformers.md`` (table for BENCHMARKS.md), ``conformers_rmsd.png`` (cumulative
distributions of min-RMSD, one panel per N; CCD only). End to end also ``molecules.smi`` and
``logs/`` (stderr and stdout of every run).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from molgen.bench.generators import GenerateFn
from molgen.bench.references import Reference

__all__ = ["build_parser", "main"]

#: in-process methods: molgen's torsional model, molgen's Cartesian model (``--cartesian-model``), ETKDG
METHODS = ("molgen", "cartesian", "etkdg")
#: molgen options forwarded to ``molgen conformers`` in end-to-end mode when given (dest, flag)
_FORWARDED = (
    ("model", "--model"), ("sampler", "--sampler"), ("steps", "--steps"), ("score_scale", "--score-scale"),
    ("planar_bonds", "--planar-bonds"), ("per_structure", "--per-structure"), ("seed", "--seed"),
    ("device", "--device"),
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (``molgen bench conformers --help``)."""
    p = argparse.ArgumentParser(
        prog="molgen bench conformers",
        description="molgen vs RDKit ETKDGv3: speed end to end (default) or in process, min-RMSD to "
        "experimental CCD test-split conformations, PoseBusters pass rate.",
    )
    p.add_argument("--mode", choices=("endtoend", "inprocess"), default="endtoend",
                   help="endtoend: each tool as a separate process from a SMILES file, start-up "
                   "included, defaults and equal threads (default); inprocess: per-molecule calls, 1 thread")  # fmt: skip
    p.add_argument("--set", dest="molecule_set", choices=("ccd", "qm9", "moses"), default="ccd",
                   help="ccd: CCD test-split ligands with experimental conformations; qm9: QM9 test-split "
                   "molecules with DFT geometries; moses: SMILES only (speed and PoseBusters)")  # fmt: skip
    p.add_argument("--smiles-file", default=None,
                   help="SMILES file of --set moses (default data/moses_test_1000.smi)")  # fmt: skip
    p.add_argument("--num-molecules", type=int, default=None,
                   help="molecules sampled (ccd: 300; moses: the whole file)")  # fmt: skip
    p.add_argument("--ns", type=int, nargs="+", default=None,
                   help="conformers per molecule, one run each (endtoend: 10 50; inprocess: 1 10 50)")  # fmt: skip
    p.add_argument("--repeats", type=int, default=1, help="endtoend: timed runs per row (median wall time)")
    p.add_argument("--equal-threads", type=int, nargs="*", default=[1],
                   help="endtoend: thread counts of the equal-thread rows (1; none: only defaults)")  # fmt: skip
    p.add_argument("--posebusters-sample", type=int, default=None, metavar="K",
                   help="endtoend: PoseBusters on at most K conformers per molecule (default all; 0: off)")  # fmt: skip
    p.add_argument("--posebusters-rows", choices=("defaults", "all"), default="defaults",
                   help="endtoend: rows checked by PoseBusters (rows at defaults)")  # fmt: skip
    p.add_argument("--keep-sdf", action="store_true", help="endtoend: keep the SDFs under OUT/sdf")
    p.add_argument("--timeout", type=float, default=None, help="endtoend: seconds per process")
    p.add_argument("--no-warmup", action="store_true", help="endtoend: no untimed warm-up runs")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=["molgen", "etkdg"],
                   help="inprocess only (default molgen etkdg; cartesian needs a Cartesian model)")  # fmt: skip
    p.add_argument("--cartesian-model", default=None,
                   help="Cartesian conformer checkpoint of method cartesian (default: the shipped one)")  # fmt: skip
    p.add_argument("--cartesian-steps", type=int, default=None,
                   help="diffusion steps of method cartesian (default: molgen's)")  # fmt: skip
    p.add_argument("--model", default=None, help="molgen checkpoint (default: shipped model)")
    p.add_argument("--sampler", choices=("ode", "sde"), default=None, help="molgen sampler (ode)")
    p.add_argument("--steps", type=int, default=None, help="molgen diffusion steps (default: molgen's)")
    p.add_argument("--score-scale", type=float, default=None,
                   help="molgen's score multiplier (default: molgen's)")  # fmt: skip
    p.add_argument("--planar-bonds", choices=("free", "snap", "fixed"), default=None,
                   help="molgen's treatment of amide-like bonds (default: molgen's)")  # fmt: skip
    p.add_argument("--per-structure", type=int, default=None,
                   help="molgen conformers per ETKDG local structure (default: molgen's)")  # fmt: skip
    p.add_argument("--seed", type=int, default=None,
                   help="generation seed (inprocess: both methods, 42; endtoend: molgen's --seed)")  # fmt: skip
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the molecule sample")
    p.add_argument("--min-heavy-atoms", type=int, default=4)
    p.add_argument("--max-heavy-atoms", type=int, default=60)
    p.add_argument("--no-cache", action="store_true", help="parse the CCD even if the candidates are cached")
    p.add_argument("--device", default=None, help="torch device (cpu)")
    p.add_argument("--threads", type=int, default=1, help="inprocess: torch and RDKit threads (1)")
    p.add_argument("--max-matches", type=int, default=1000,
                   help="cap on atom mappings per molecule in the RMSD")  # fmt: skip
    p.add_argument("--memory-smiles", type=int, default=0, metavar="K",
                   help="inprocess: also measure peak RSS of `molgen conformers` on K SMILES (0: off)")  # fmt: skip
    p.add_argument("--out", default="bench_results", help="output directory")
    p.add_argument("--no-progress", action="store_true", help="no progress output")
    return p


def _molecules(
    args: argparse.Namespace, references: Sequence[Reference] | None
) -> tuple[list[Reference], dict[str, Any]]:
    """The benchmark molecules of ``--set`` and their selection statistics."""
    from molgen.bench import references as refs_mod

    t0 = time.perf_counter()
    if args.molecule_set == "moses":
        path = Path(args.smiles_file) if args.smiles_file else refs_mod.moses_path()
        if not path.is_file():
            raise SystemExit(f"error: SMILES file {path} not found (pass --smiles-file)")
        pool = [Reference.from_smiles(i, s) for i, s in refs_mod.read_smiles_file(path)]
        k = len(pool) if args.num_molecules is None else args.num_molecules
        refs = refs_mod.sample_references(pool, k, sample_seed=args.sample_seed) if k < len(pool) else pool
        selection: dict[str, Any] = {"set": "moses", "file": str(path), "n_candidates": len(pool),
                                     "n_selected": len(refs), "sample_seed": args.sample_seed if k < len(pool) else None}  # fmt: skip
    elif args.molecule_set == "qm9" and references is None:
        print("selecting QM9 test-split molecules ...", file=sys.stderr)
        refs, selection = refs_mod.load_qm9_references(args.num_molecules or 300, sample_seed=args.sample_seed)
    elif references is not None:
        refs = list(references)[: args.num_molecules or 300]
        selection = {"set": args.molecule_set, "source": "injected", "n_candidates": len(references),
                     "n_selected": len(refs), "sample_seed": None}  # fmt: skip
    else:
        print("selecting CCD test-split ligands (cached after the first run) ...", file=sys.stderr)
        filters = refs_mod.Filters(min_heavy_atoms=args.min_heavy_atoms, max_heavy_atoms=args.max_heavy_atoms)
        refs, selection = refs_mod.load_references(
            args.num_molecules or 300, sample_seed=args.sample_seed, filters=filters, use_cache=not args.no_cache
        )
        selection["set"] = "ccd"
    selection["seconds"] = time.perf_counter() - t0
    print(f"{selection['n_selected']} molecules selected of {selection['n_candidates']}", file=sys.stderr)
    return refs, selection


def _inprocess(
    args: argparse.Namespace, refs: Sequence[Reference], selection: dict[str, Any],
    generators: dict[str, GenerateFn] | None,
) -> dict[str, Any]:  # fmt: skip
    """Per-molecule calls in this process (the earlier benchmark; numbers comparable with it)."""
    import torch

    from molgen.bench.generators import (
        etkdg_seed,
        make_etkdg_generator,
        make_molgen_generator,
        warm_up,
    )
    from molgen.bench.memory import measure_memory
    from molgen.bench.runner import benchmark
    from molgen.bench.scoring import THRESHOLDS
    from molgen.sampling.options import SamplingOptions

    sampler, steps = args.sampler or "ode", args.steps or SamplingOptions().steps
    seed, device = 42 if args.seed is None else args.seed, args.device or "cpu"
    torch.set_num_threads(args.threads)
    gens: dict[str, GenerateFn] = {}
    for method in args.methods:
        if generators is not None and method in generators:
            gens[method] = generators[method]
        elif method == "molgen":
            from molgen import api

            t_load = time.perf_counter()
            try:
                api.load_model(args.model, device)
            except Exception as exc:  # noqa: BLE001 - report, don't trace back
                raise SystemExit(f"error: cannot load the molgen model: {exc}") from None
            selection["model_load_seconds"] = time.perf_counter() - t_load
            gens[method] = make_molgen_generator(
                model=args.model, sampler=sampler, steps=steps, seed=seed, device=device,
                threads=args.threads, conformers_per_structure=args.per_structure,
                planar_bonds=args.planar_bonds, score_scale=args.score_scale,
            )  # fmt: skip
        elif method == "cartesian":
            gens[method] = make_molgen_generator(
                model=_cartesian_model(args), sampler=sampler, seed=seed, device=device, threads=args.threads,
                cartesian_steps=args.cartesian_steps,
            )  # fmt: skip
        else:
            gens[method] = make_etkdg_generator(seed=seed, threads=args.threads)
    warm = warm_up(gens)
    results = benchmark(refs, gens, args.ns, max_matches=args.max_matches, progress=not args.no_progress)
    memory = None
    if args.memory_smiles > 0:
        print(f"measuring memory of molgen conformers on {args.memory_smiles} SMILES ...", file=sys.stderr)
        memory = measure_memory(
            [r.smiles for r in refs], args.memory_smiles, num_confs=10, model=args.model,
            sampler=sampler, steps=steps, seed=seed, device=device, threads=args.threads,
            per_structure=args.per_structure,
        )  # fmt: skip
    config = {
        **{k: v for k, v in vars(args).items() if k not in ("out", "no_progress")},
        "sampler": sampler, "steps": steps, "seed": seed, "device": device,
        "cartesian_steps": args.cartesian_steps or SamplingOptions().cartesian_steps,
        "torch_threads": torch.get_num_threads(),
        "rdkit_threads": args.threads,
        "etkdg": f"ETKDGv3 defaults, randomSeed={etkdg_seed(seed)}",
        "thresholds": list(THRESHOLDS),
    }  # fmt: skip
    return {"config": config, "warmup": warm, "results": results, "memory": memory}


def _cartesian_model(args: argparse.Namespace) -> str:
    """The Cartesian checkpoint of method ``cartesian``: ``--cartesian-model`` or the shipped default."""
    from molgen.models.registry import default_cartesian_model_path

    path = Path(args.cartesian_model).expanduser() if args.cartesian_model else default_cartesian_model_path()
    if not path.is_file():
        raise SystemExit(f"error: method cartesian: no Cartesian model at {path} (pass --cartesian-model)")
    return str(path)


def _endtoend(args: argparse.Namespace, refs: Sequence[Reference]) -> dict[str, Any]:
    """Each tool as a separate process from a SMILES file (:mod:`molgen.bench.endtoend`)."""
    from molgen.bench.endtoend import run_endtoend
    from molgen.bench.scoring import THRESHOLDS

    extra: list[str] = []
    for dest, flag in _FORWARDED:
        value = getattr(args, dest)
        if value is not None:
            extra += [flag, str(Path(value).expanduser().resolve()) if dest == "model" else str(value)]
    e2e = run_endtoend(
        refs, args.ns, out_dir=args.out, repeats=args.repeats, equal_threads=args.equal_threads,
        posebusters_sample=args.posebusters_sample, posebusters_rows=args.posebusters_rows,
        max_matches=args.max_matches, molgen_extra=extra, keep_sdf=args.keep_sdf,
        warmup=not args.no_warmup, timeout=args.timeout, progress=not args.no_progress,
    )  # fmt: skip
    config = {
        "mode": "endtoend", "set": args.molecule_set, "ns": list(args.ns), "repeats": args.repeats,
        "equal_threads": list(args.equal_threads), "posebusters_sample": args.posebusters_sample,
        "posebusters_rows": args.posebusters_rows, "molgen_extra_args": extra,
        "etkdg": "python -m molgen.bench.etkdg_baseline: ETKDGv3 defaults, randomSeed=42",
        "max_matches": args.max_matches, "thresholds": list(THRESHOLDS),
        "num_molecules": args.num_molecules, "sample_seed": args.sample_seed,
    }  # fmt: skip
    return {"config": config, "endtoend": e2e}


def _posebusters_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("posebusters")
    except Exception:  # noqa: BLE001 - not installed
        return None


def main(
    argv: Sequence[str] | None = None,
    *,
    references: Sequence[Reference] | None = None,
    generators: dict[str, GenerateFn] | None = None,
) -> dict[str, Any]:
    """Run the benchmark; returns the report (also written to ``--out``).

    ``references`` (instead of parsing the CCD; ``--set ccd``) and ``generators`` (method name ->
    function, in place of the built-in ones; ``--mode inprocess``) can be injected, e.g. by tests.
    """
    from molgen.bench.endtoend import DEFAULT_NS as ENDTOEND_NS
    from molgen.bench.provenance import command_line, machine_info, utc_now
    from molgen.bench.report import jsonable, markdown, write_outputs
    from molgen.bench.runner import DEFAULT_NS as INPROCESS_NS

    args = build_parser().parse_args(argv)
    if args.ns is None:
        args.ns = list(ENDTOEND_NS if args.mode == "endtoend" else INPROCESS_NS)
    if (args.num_molecules is not None and args.num_molecules < 1) or args.threads < 1 or args.repeats < 1 \
            or any(n < 1 for n in args.ns) or any(t < 1 for t in args.equal_threads):  # fmt: skip
        raise SystemExit("error: --num-molecules, --threads, --repeats, --equal-threads and --ns must be >= 1")
    if args.mode == "inprocess" and args.molecule_set == "moses":
        raise SystemExit("error: --mode inprocess needs --set ccd or qm9 (reference conformations)")
    started = time.perf_counter()
    command = command_line(["molgen", "bench", "conformers"], argv)
    date = utc_now()
    machine = machine_info(args.device or "cpu")

    refs, selection = _molecules(args, references)
    if args.mode == "inprocess":
        body = _inprocess(args, refs, selection, generators)
    else:
        body = _endtoend(args, refs)
        machine["posebusters"] = _posebusters_version()
    report = {
        "benchmark": "conformers",
        "command": command,
        "argv": list(sys.argv if argv is None else argv),
        "date": date,
        "machine": machine,
        "selection": selection,
        **body,
        "molecules": [r.record() for r in refs],
        "wall_seconds": time.perf_counter() - started,
    }
    paths = write_outputs(report, args.out)
    sys.stderr.write(markdown(jsonable(report)))
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return report


if __name__ == "__main__":
    main()

"""Benchmark: how close do generated conformers come to experimental ligand conformations?

``molgen bench conformers`` / ``python -m molgen.bench.conformers``.

Reference set
    Ligands of the PDB Chemical Component Dictionary (:func:`molgen.datasets.ccd.load_ccd_ligands`:
    heavy atoms with the experimental "model" conformation of one PDB entry, stereo assigned from
    3D, held-out molecules removed), **test split only**. Before sampling, a candidate must pass
    (:func:`reject_reason`):

    * ``heavy_atoms``: ``min_heavy_atoms <= heavy atoms <= max_heavy_atoms`` (default 4..60);
    * ``element``: every element is in molgen's element vocabulary
      (:data:`molgen.chem.feature_spec.ELEMENTS`, so nothing falls in the "other" slot: no
      metals, no hydrogen-only species);
    * ``radical``: no radical electrons;
    * ``geometry``: a sane experimental conformer (every bond 0.8-2.8 Å, no two non-bonded heavy
      atoms closer than 0.7 Å);
    * ``smiles``: the isomeric SMILES round-trips through RDKit to the same heavy-atom graph
      (so both methods get a valid input and the RMSD can map atoms);
    * ``duplicate``: first occurrence of each InChIKey only (CCD has synonyms).

    Rigid molecules are kept (no filter on rotatable bonds). From the sorted candidates a
    seeded random sample of ``num_molecules`` is drawn (``--sample-seed``).

Methods
    Both start from the reference's isomeric SMILES (``Chem.MolToSmiles(ref)``), never from the
    experimental coordinates:

    * ``molgen``: :func:`molgen.api.generate_conformers` (``n=N``, model/sampler/steps/seed
      configurable; validated conformers, so fewer than N may come back);
    * ``etkdg``: RDKit ETKDGv3, ``EmbedMultipleConfs(AddHs(MolFromSmiles(smiles)), N)`` with a
      nonzero ``randomSeed`` and otherwise default parameters.

    The time of a method is ``time.perf_counter`` around the whole call, from the SMILES string
    to the returned molecule, summed over molecules (the model is loaded and both methods are
    warmed up on one small molecule beforehand, untimed). Methods alternate per molecule so
    background load affects both alike.

Metric
    Per molecule the minimum over its conformers of the symmetry-aware heavy-atom RMSD to the
    experimental conformer (:func:`molgen.chem.metrics.symmetric_min_rmsd`). A molecule for which a
    method returns no conformer (or raises) is a failure and counts as RMSD = inf: it is in the
    denominator of the "fraction under x Å" columns and can never lower the median. The mean is
    over molecules with at least one conformer.

Outputs (``--out``, default ``bench_results/``): ``conformers.json`` (everything, per-molecule
values included), ``conformers.md`` (table for BENCHMARKS.md), ``conformers_rmsd.png``
(cumulative distributions of min-RMSD, one panel per N).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_NS",
    "Filters",
    "Reference",
    "benchmark",
    "machine_info",
    "main",
    "make_etkdg_generator",
    "make_molgen_generator",
    "measure_memory",
    "reject_reason",
    "select_references",
    "summarize",
    "write_outputs",
]

DEFAULT_NS = (1, 10, 50)
THRESHOLDS = (1.0, 1.5, 2.0)
METHODS = ("molgen", "etkdg")
ROTOR_BINS = ((0, 2), (3, 5), (6, 10), (11, 10**9))
WARMUP_SMILES = "CC(=O)Nc1ccc(O)cc1"  # paracetamol

#: a generator maps (smiles, n) to a Mol holding the conformers (None or 0 conformers = failure)
GenerateFn = Callable[[str, int], Any]


# --------------------------------------------------------------------------- references


@dataclass
class Reference:
    """One benchmark molecule: heavy-atom ``mol`` with the experimental conformer (id 0)."""

    id: str
    smiles: str
    mol: Any  # rdkit.Chem.Mol
    pdb_entry: str = ""
    inchikey: str = ""
    n_heavy_atoms: int = 0
    n_rotatable_bonds: int = 0

    @classmethod
    def from_mol(cls, id: str, mol: Any, *, pdb_entry: str = "", inchikey: str = "") -> Reference:
        from rdkit import Chem
        from rdkit.Chem import rdMolDescriptors

        mol = Chem.RemoveHs(mol)
        return cls(
            id=id,
            smiles=Chem.MolToSmiles(mol),
            mol=mol,
            pdb_entry=pdb_entry,
            inchikey=inchikey,
            n_heavy_atoms=mol.GetNumAtoms(),
            n_rotatable_bonds=int(rdMolDescriptors.CalcNumRotatableBonds(mol)),
        )

    def record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pdb_entry": self.pdb_entry,
            "inchikey": self.inchikey,
            "smiles": self.smiles,
            "n_heavy_atoms": self.n_heavy_atoms,
            "n_rotatable_bonds": self.n_rotatable_bonds,
        }


@dataclass
class Filters:
    """Candidate filters applied before sampling (see the module docstring)."""

    min_heavy_atoms: int = 4
    max_heavy_atoms: int = 60
    elements: tuple[str, ...] = field(default_factory=lambda: _default_elements())
    min_bond_length: float = 0.8
    max_bond_length: float = 2.8
    min_nonbonded_distance: float = 0.7


def _default_elements() -> tuple[str, ...]:
    from molgen.chem.feature_spec import ELEMENTS

    return tuple(ELEMENTS)


def _bad_geometry(mol: Any, f: Filters) -> bool:
    xyz = mol.GetConformer().GetPositions()
    if not np.all(np.isfinite(xyz)):
        return True
    d = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    bonded = np.zeros_like(d, dtype=bool)
    for b in mol.GetBonds():
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        bonded[i, j] = bonded[j, i] = True
        if not f.min_bond_length <= d[i, j] <= f.max_bond_length:
            return True
    np.fill_diagonal(bonded, True)
    return bool(np.any(d[~bonded] < f.min_nonbonded_distance))


def reject_reason(mol: Any, filters: Filters | None = None) -> str | None:
    """Why a heavy-atom reference molecule is not a benchmark candidate (None: it is)."""
    from rdkit import Chem

    f = filters or Filters()
    n = mol.GetNumAtoms()
    if not f.min_heavy_atoms <= n <= f.max_heavy_atoms:
        return "heavy_atoms"
    allowed = set(f.elements)
    if any(a.GetSymbol() not in allowed for a in mol.GetAtoms()):
        return "element"
    if any(a.GetNumRadicalElectrons() for a in mol.GetAtoms()):
        return "radical"
    if mol.GetNumConformers() == 0 or _bad_geometry(mol, f):
        return "geometry"
    smiles = Chem.MolToSmiles(mol)
    again = Chem.MolFromSmiles(smiles)
    if again is None or again.GetNumAtoms() != n or not again.HasSubstructMatch(mol):
        return "smiles"
    return None


def select_references(
    ligands: Iterable[Any],
    num_molecules: int,
    *,
    sample_seed: int = 0,
    filters: Filters | None = None,
    split: str = "test",
) -> tuple[list[Reference], dict[str, Any]]:
    """Filter CCD ligands to candidates and draw a seeded sample.

    Args:
        ligands: what :func:`molgen.datasets.ccd.load_ccd_ligands` yields (CCDLigand objects and
            ``(ccd_id, reason)`` tuples for components the loader rejected).
        num_molecules: sample size (all candidates if there are fewer).
        sample_seed: seed of the sample (``random.Random(seed).sample`` over candidates sorted
            by id).
        filters: candidate filters.
        split: the dataset split to use (the benchmark uses ``"test"`` only).

    Returns:
        ``(references sorted by id, selection statistics)``.
    """
    f = filters or Filters()
    loader_rejects: Counter[str] = Counter()
    split_counts: Counter[str] = Counter()
    rejects: Counter[str] = Counter()
    seen: set[str] = set()
    candidates: list[Reference] = []
    for item in ligands:
        if isinstance(item, tuple):
            loader_rejects[str(item[1]).split(":")[0]] += 1
            continue
        split_counts[item.split] += 1
        if item.split != split:
            continue
        reason = reject_reason(item.mol, f)
        if reason is None and item.inchikey in seen:
            reason = "duplicate"
        if reason is not None:
            rejects[reason] += 1
            continue
        seen.add(item.inchikey)
        candidates.append(
            Reference.from_mol(
                item.ccd_id, item.mol, pdb_entry=item.pdb_entry, inchikey=item.inchikey
            )
        )
    candidates.sort(key=lambda r: r.id)
    k = min(num_molecules, len(candidates))
    chosen = sorted(random.Random(sample_seed).sample(candidates, k), key=lambda r: r.id)
    stats = {
        "source": "PDB Chemical Component Dictionary (biotite), experimental model coordinates",
        "split": split,
        "filters": {**asdict(f), "elements": list(f.elements)},
        "loader_rejected": dict(sorted(loader_rejects.items())),
        "split_counts": dict(sorted(split_counts.items())),
        "filter_rejected": dict(sorted(rejects.items())),
        "n_candidates": len(candidates),
        "n_selected": k,
        "sample_seed": sample_seed,
    }
    return chosen, stats


def load_references(
    num_molecules: int, *, sample_seed: int = 0, filters: Filters | None = None
) -> tuple[list[Reference], dict[str, Any]]:
    """Parse the CCD (~40 s) and select the benchmark molecules from its test split."""
    from molgen.datasets.ccd import load_ccd_ligands

    f = filters or Filters()
    # the loader's own size bounds are wider than ours; rejected sizes are reported by us
    ligands = load_ccd_ligands(min_heavy_atoms=1, max_heavy_atoms=10**6)
    return select_references(ligands, num_molecules, sample_seed=sample_seed, filters=f)


# --------------------------------------------------------------------------- generators


def _etkdg_seed(seed: int) -> int:
    return int(seed) % 2_147_483_647 or 1  # nonzero: seed 0 means "same seed" in some paths


def make_etkdg_generator(seed: int = 42, threads: int = 1) -> GenerateFn:
    """RDKit ETKDGv3 from a SMILES: ``EmbedMultipleConfs(AddHs(mol), n)``, default parameters."""
    from rdkit import Chem
    from rdkit.Chem import rdDistGeom

    def generate(smiles: str, n: int) -> Any:
        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            raise ValueError(f"RDKit cannot parse {smiles!r}")
        mol = Chem.AddHs(mol)
        params = rdDistGeom.ETKDGv3()
        params.randomSeed = _etkdg_seed(seed)
        params.numThreads = int(threads)
        rdDistGeom.EmbedMultipleConfs(mol, int(n), params)
        return mol

    return generate


def make_molgen_generator(
    *,
    model: str | None = None,
    sampler: str = "ode",
    steps: int = 8,
    seed: int = 42,
    device: str = "cpu",
    threads: int = 1,
    **sampler_options: Any,
) -> GenerateFn:
    """molgen from a SMILES: :func:`molgen.api.generate_conformers` (validated conformers).

    ``sampler_options`` (``conformers_per_structure``, ``ode_method``, ``sigma_start``) are passed on
    to the API when not None.
    """
    from molgen import api

    kwargs: dict[str, Any] = {
        "model": model,
        "sampler": sampler,
        "steps": steps,
        "seed": seed,
        "device": device,
        "num_threads": int(threads),
        **{k: v for k, v in sampler_options.items() if v is not None},
    }

    def generate(smiles: str, n: int) -> Any:
        return api.generate_conformers(smiles, n=int(n), **kwargs)

    return generate


# --------------------------------------------------------------------------- benchmark


def _one(
    generate: GenerateFn, ref: Reference, n: int, max_matches: int
) -> dict[str, Any]:
    from molgen.chem.metrics import symmetric_min_rmsd

    error = None
    start = time.perf_counter()
    try:
        out = generate(ref.smiles, n)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - a failure of one molecule is a result
        out = None
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    seconds = time.perf_counter() - start
    n_confs = 0 if out is None else int(out.GetNumConformers())
    min_rmsd = math.inf
    if n_confs:
        try:
            min_rmsd = float(symmetric_min_rmsd(ref.mol, out, max_matches=max_matches).min())
        except ValueError as exc:
            error = f"rmsd: {exc}"
    elif error is None:
        error = "no conformer returned"
    return {
        "id": ref.id,
        "min_rmsd": min_rmsd,
        "n_conformers": n_confs,
        "seconds": seconds,
        "error": error,
    }


def summarize(
    rows: Sequence[dict[str, Any]], references: Sequence[Reference] | None = None
) -> dict:
    """Aggregate per-molecule rows of one method and N (see the module docstring)."""
    rmsd = np.array([r["min_rmsd"] for r in rows], dtype=float)
    n_mol = len(rows)
    finite = rmsd[np.isfinite(rmsd)]
    total_s = float(sum(r["seconds"] for r in rows))
    n_confs = int(sum(r["n_conformers"] for r in rows))

    def num(x: float) -> float | None:
        return None if not math.isfinite(x) else float(x)

    out: dict[str, Any] = {
        "n_molecules": n_mol,
        "n_failures": int(n_mol - len(finite)),
        "median_min_rmsd": num(float(np.median(rmsd))) if n_mol else None,
        "mean_min_rmsd": num(float(finite.mean())) if len(finite) else None,
        **{
            f"frac_below_{t:g}": (float(np.mean(rmsd < t)) if n_mol else None)
            for t in THRESHOLDS
        },
        "total_conformers": n_confs,
        "total_seconds": total_s,
        "conformers_per_second": (n_confs / total_s) if total_s > 0 else None,
        "seconds_per_molecule": (total_s / n_mol) if n_mol else None,
    }
    if references is not None:
        rot = {r.id: r.n_rotatable_bonds for r in references}
        bins = {}
        for lo, hi in ROTOR_BINS:
            sel = np.array([lo <= rot.get(r["id"], -1) <= hi for r in rows], dtype=bool)
            label = f"{lo}-{hi}" if hi < 10**9 else f">={lo}"
            vals = rmsd[sel]
            bins[label] = {
                "n_molecules": int(sel.sum()),
                "median_min_rmsd": num(float(np.median(vals))) if len(vals) else None,
                "frac_below_1": float(np.mean(vals < 1.0)) if len(vals) else None,
            }
        out["by_rotatable_bonds"] = bins
    return out


def benchmark(
    references: Sequence[Reference],
    generators: dict[str, GenerateFn],
    ns: Sequence[int] = DEFAULT_NS,
    *,
    max_matches: int = 1000,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run every generator for every N on every reference.

    Returns:
        one entry per (method, N): ``{"method", "n", "summary", "per_molecule"}`` with
        per-molecule rows ``{"id", "min_rmsd" (inf on failure), "n_conformers", "seconds",
        "error"}``.
    """
    from rdkit import rdBase
    from tqdm import tqdm

    rows: dict[tuple[str, int], list[dict]] = {(m, n): [] for n in ns for m in generators}
    bar = tqdm(
        total=len(ns) * len(references) * len(generators),
        desc="bench conformers",
        unit="run",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    )
    blocker = rdBase.BlockLogs()
    try:
        for n in ns:
            for ref in references:
                for method, generate in generators.items():
                    bar.set_postfix_str(f"N={n} {method} {ref.id}", refresh=False)
                    rows[(method, n)].append(_one(generate, ref, n, max_matches))
                    bar.update(1)
    finally:
        bar.close()
        del blocker
    results = []
    for n in ns:
        for method in generators:
            r = rows[(method, n)]
            results.append(
                {
                    "method": method,
                    "n": int(n),
                    "summary": summarize(r, references),
                    "per_molecule": r,
                }
            )
    return results


def warm_up(generators: dict[str, GenerateFn], smiles: str = WARMUP_SMILES) -> dict[str, Any]:
    """One untimed-for-the-benchmark call per method (loads models, JIT/caches)."""
    info = {}
    for method, generate in generators.items():
        start = time.perf_counter()
        try:
            generate(smiles, 2)
            err = None
        except Exception as exc:  # noqa: BLE001
            err = f"{type(exc).__name__}: {exc}"[:300]
        info[method] = {"seconds": time.perf_counter() - start, "error": err}
    return info


# --------------------------------------------------------------------------- memory


#: run in a small, fresh interpreter: starts the measured command and reports its rusage. The
#: detour matters: a child forked directly from this (large) process inherits our RSS high-water
#: mark up to its exec, which would inflate its ru_maxrss.
_MEASURE_HELPER = r"""
import json, os, resource, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - start
with open(out, "w") as fh:
    json.dump({"exit_code": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss,
               "children_maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
               "wall_seconds": wall}, fh)
"""


def run_measured(
    cmd: Sequence[str], *, timeout: float | None = None, log_path: Path | None = None
) -> dict[str, Any]:
    """Run ``cmd`` (stdout+stderr to ``log_path``) under the helper; its exit code and rusage.

    Returns ``{"exit_code", "maxrss_kib", "children_maxrss_kib", "wall_seconds", "timed_out",
    "output_tail"}`` (``None`` values when the helper was killed by the timeout).
    """
    with tempfile.TemporaryDirectory(prefix="molgen-bench-rusage-") as tmp:
        result_path = Path(tmp) / "rusage.json"
        log = Path(log_path) if log_path is not None else Path(tmp) / "child.log"
        helper = [sys.executable, "-I", "-S", "-c", _MEASURE_HELPER, str(result_path), *cmd]
        timed_out = False
        with open(log, "wb") as logf:
            proc = subprocess.Popen(
                helper, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        usage = json.loads(result_path.read_text()) if result_path.exists() else {}
        tail = log.read_text(errors="replace")[-2000:]
    keys = ("exit_code", "maxrss_kib", "children_maxrss_kib", "wall_seconds")
    return {**{k: usage.get(k) for k in keys}, "timed_out": timed_out, "output_tail": tail}


def measure_memory(
    smiles: Sequence[str],
    k: int,
    *,
    num_confs: int = 10,
    model: str | None = None,
    sampler: str = "ode",
    steps: int = 8,
    seed: int = 42,
    device: str = "cpu",
    threads: int = 1,
    timeout: float | None = None,
    per_structure: int | None = None,
) -> dict[str, Any]:
    """Peak resident memory and wall time of ``molgen conformers`` on ``k`` SMILES (subprocess).

    Writes ``k`` SMILES (cycled if fewer are given) to a temporary ``.smi`` file and runs
    ``python -m molgen.cli conformers FILE -n num_confs -o FILE.sdf ...`` as a child of a small
    helper interpreter, which reports the child's ``ru_maxrss`` (KiB on Linux; from ``os.wait4``,
    equal to its ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``) and wall time (process start
    to exit, imports and model loading included).
    """
    if not smiles:
        raise ValueError("no SMILES for the memory measurement")
    with tempfile.TemporaryDirectory(prefix="molgen-bench-mem-") as tmp:
        smi = Path(tmp) / "molecules.smi"
        smi.write_text("".join(f"{smiles[i % len(smiles)]} mol{i}\n" for i in range(k)))
        sdf = Path(tmp) / "out.sdf"
        cmd = [
            sys.executable, "-m", "molgen.cli", "conformers", str(smi),
            "-n", str(num_confs), "-o", str(sdf),
            "--sampler", sampler, "--steps", str(steps), "--seed", str(seed),
            "--device", device, "--threads", str(threads), "--no-progress", "-q",
        ]  # fmt: skip
        if model is not None:
            cmd += ["--model", str(Path(model).expanduser().resolve())]
        if per_structure is not None:
            cmd += ["--per-structure", str(per_structure)]
        usage = run_measured(cmd, timeout=timeout, log_path=Path(tmp) / "child.log")
        n_written = sdf.read_text().count("$$$$") if sdf.exists() else 0
    exit_code, maxrss = usage["exit_code"], usage["maxrss_kib"]
    shown = ["molecules.smi" if c == str(smi) else "out.sdf" if c == str(sdf) else c for c in cmd]
    return {
        "command": shlex.join(["molgen", *shown[3:]]),
        "n_smiles": k,
        "num_confs": num_confs,
        "exit_code": exit_code,
        "timed_out": usage["timed_out"],
        "peak_rss_kib": maxrss,
        "peak_rss_mib": None if maxrss is None else round(maxrss / 1024, 1),
        "rusage_children_max_rss_kib": usage["children_maxrss_kib"],
        "wall_seconds": usage["wall_seconds"],
        "conformers_written": n_written,
        "output_tail": "" if exit_code in (0, 1) else usage["output_tail"],
    }


# --------------------------------------------------------------------------- reporting


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root, capture_output=True, text=True, timeout=10, check=False,
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """CPU model, cores, RAM, library versions, molgen version and git commit."""
    import rdkit

    import molgen

    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_available": (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        ),
        "ram_gib": _ram_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "rdkit": rdkit.__version__,
        "numpy": np.__version__,
        "molgen": molgen.__version__,
        "git_commit": _git_commit(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        if str(device).startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    except ImportError:  # pragma: no cover
        info["torch"] = None
    return info


def _fmt(x: float | None, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def _markdown(report: dict[str, Any]) -> str:
    m, cfg, sel = report["machine"], report["config"], report["selection"]
    machine = f"{m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM"
    if m.get("gpu"):
        machine += f", GPU {m['gpu']}"
    lines = [
        (
            f"Command: `{report['command']}` · Machine: {machine} · threads: {cfg['threads']} · "
            f"date: {report['date']} · molgen {m['molgen']} ({m.get('git_commit') or 'no git'}), "
            f"torch {m.get('torch')}, RDKit {m['rdkit']}"
        ),
        "",
        (
            f"{sel['n_selected']} CCD test-split ligands (of {sel.get('n_candidates', '?')} "
            f"candidates; sample seed {sel.get('sample_seed', '?')}); molgen model "
            f"`{cfg.get('model') or 'default'}`, sampler {cfg['sampler']}, {cfg['steps']} steps"
            + (f", {cfg['per_structure']} conformers per ETKDG structure" if cfg.get("per_structure") else "")
            + ". "
            "Min-RMSD: lowest symmetry-aware heavy-atom RMSD (Å) of a molecule's conformers to "
            "the experimental conformation; failures count as ∞."
        ),
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


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    ns = sorted({r["n"] for r in report["results"]})
    fig, axes = plt.subplots(1, len(ns), figsize=(4.2 * len(ns), 3.6), squeeze=False)
    for ax, n in zip(axes[0], ns):
        for r in report["results"]:
            if r["n"] != n:
                continue
            vals = np.array(
                [math.inf if p["min_rmsd"] is None else p["min_rmsd"] for p in r["per_molecule"]]
            )
            total = len(vals)
            x = np.sort(vals[np.isfinite(vals)])
            if total == 0:
                continue
            y = np.arange(1, len(x) + 1) / total
            ax.step(np.concatenate([[0.0], x, [max(4.0, x[-1] if len(x) else 0)]]),
                    np.concatenate([[0.0], y, [y[-1] if len(y) else 0.0]]),
                    where="post", label=f"{r['method']} (median "
                    f"{_fmt(r['summary']['median_min_rmsd'], '.2f')} Å)")  # fmt: skip
        for t in THRESHOLDS:
            ax.axvline(t, color="0.85", lw=0.8, zorder=0)
        ax.set_xlim(0, 4)
        ax.set_ylim(0, 1)
        ax.set_title(f"N = {n} conformers")
        ax.set_xlabel("min heavy-atom RMSD to experiment (Å)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    axes[0][0].set_ylabel("fraction of molecules")
    fig.suptitle(f"CCD test-split ligands (n = {report['selection']['n_selected']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    return obj


def write_outputs(report: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``conformers.json``, ``conformers.md`` and ``conformers_rmsd.png`` to ``out_dir``.

    In the JSON an infinite min-RMSD (failure) is written as ``null``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = _jsonable(report)
    paths = {
        "json": out / "conformers.json",
        "markdown": out / "conformers.md",
        "plot": out / "conformers_rmsd.png",
    }
    paths["json"].write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    paths["markdown"].write_text(_markdown(report))
    _plot(report, paths["plot"])
    return paths


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="molgen bench conformers",
        description="Min-RMSD of molgen vs RDKit ETKDGv3 conformers to experimental CCD "
        "test-split ligand conformations.",
    )
    p.add_argument("--num-molecules", type=int, default=300, help="molecules sampled (300)")
    p.add_argument("--ns", type=int, nargs="+", default=list(DEFAULT_NS),
                   help="conformers per molecule, one run each (1 10 50)")  # fmt: skip
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--model", default=None, help="molgen checkpoint (default: shipped model)")
    p.add_argument("--sampler", choices=("ode", "sde"), default="ode")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--score-scale", type=float, default=None,
                   help="molgen's score multiplier (default: molgen's)")  # fmt: skip
    p.add_argument("--planar-bonds", choices=("free", "snap", "fixed"), default=None,
                   help="molgen's treatment of amide-like bonds (default: molgen's)")  # fmt: skip
    p.add_argument("--per-structure", type=int, default=None,
                   help="molgen conformers per ETKDG local structure (default: molgen's)")  # fmt: skip
    p.add_argument("--seed", type=int, default=42, help="generation seed of both methods")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the molecule sample")
    p.add_argument("--min-heavy-atoms", type=int, default=4)
    p.add_argument("--max-heavy-atoms", type=int, default=60)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch and RDKit threads (1)")
    p.add_argument("--max-matches", type=int, default=1000,
                   help="cap on atom mappings per molecule in the RMSD")  # fmt: skip
    p.add_argument("--memory-smiles", type=int, default=0, metavar="K",
                   help="also measure peak RSS of `molgen conformers` on K SMILES (0: off)",
                   )  # fmt: skip
    p.add_argument("--out", default="bench_results", help="output directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(
    argv: Sequence[str] | None = None,
    *,
    references: Sequence[Reference] | None = None,
    generators: dict[str, GenerateFn] | None = None,
) -> dict[str, Any]:
    """Run the benchmark; returns the report (also written to ``--out``).

    ``references`` (instead of parsing the CCD) and ``generators`` (method name -> function, in
    place of the built-in ones) can be injected, e.g. by tests.
    """
    args = build_parser().parse_args(argv)
    if args.num_molecules < 1 or args.threads < 1 or any(n < 1 for n in args.ns):
        raise SystemExit("error: --num-molecules, --threads and --ns must be >= 1")
    started = time.perf_counter()
    command = shlex.join(
        ["molgen", "bench", "conformers", *(sys.argv[1:] if argv is None else argv)]
    )

    import torch

    torch.set_num_threads(args.threads)

    filters = Filters(min_heavy_atoms=args.min_heavy_atoms, max_heavy_atoms=args.max_heavy_atoms)
    t0 = time.perf_counter()
    if references is None:
        print("parsing the CCD and selecting test-split ligands ...", file=sys.stderr)
        refs, selection = load_references(
            args.num_molecules, sample_seed=args.sample_seed, filters=filters
        )
    else:
        refs = list(references)[: args.num_molecules]
        selection = {
            "source": "injected",
            "n_candidates": len(references),
            "n_selected": len(refs),
            "sample_seed": None,
        }
    selection["seconds"] = time.perf_counter() - t0
    print(
        f"{selection['n_selected']} molecules selected of {selection['n_candidates']} candidates",
        file=sys.stderr,
    )

    gens: dict[str, GenerateFn] = {}
    for method in args.methods:
        if generators is not None and method in generators:
            gens[method] = generators[method]
        elif method == "molgen":
            from molgen import api

            t_load = time.perf_counter()
            try:
                api.load_model(args.model, args.device)
            except Exception as exc:  # noqa: BLE001 - report, don't trace back
                raise SystemExit(f"error: cannot load the molgen model: {exc}") from None
            selection["model_load_seconds"] = time.perf_counter() - t_load
            gens[method] = make_molgen_generator(
                model=args.model, sampler=args.sampler, steps=args.steps, seed=args.seed,
                device=args.device, threads=args.threads,
                conformers_per_structure=args.per_structure, planar_bonds=args.planar_bonds,
                score_scale=args.score_scale,
            )  # fmt: skip
        else:
            gens[method] = make_etkdg_generator(seed=args.seed, threads=args.threads)
    warm = warm_up(gens)

    results = benchmark(
        refs, gens, args.ns, max_matches=args.max_matches, progress=not args.no_progress
    )
    memory = None
    if args.memory_smiles > 0:
        print(f"measuring memory of molgen conformers on {args.memory_smiles} SMILES ...",
              file=sys.stderr)  # fmt: skip
        memory = measure_memory(
            [r.smiles for r in refs], args.memory_smiles, num_confs=10, model=args.model,
            sampler=args.sampler, steps=args.steps, seed=args.seed, device=args.device,
            threads=args.threads, per_structure=args.per_structure,
        )  # fmt: skip

    report = {
        "benchmark": "conformers",
        "command": command,
        "argv": list(sys.argv if argv is None else argv),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(args.device),
        "config": {
            **{k: v for k, v in vars(args).items() if k not in ("out", "no_progress")},
            "torch_threads": torch.get_num_threads(),
            "rdkit_threads": args.threads,
            "etkdg": f"ETKDGv3 defaults, randomSeed={_etkdg_seed(args.seed)}",
            "thresholds": list(THRESHOLDS),
        },
        "selection": selection,
        "warmup": warm,
        "molecules": [r.record() for r in refs],
        "results": results,
        "memory": memory,
        "wall_seconds": time.perf_counter() - started,
    }
    paths = write_outputs(report, args.out)
    sys.stderr.write(_markdown(_jsonable(report)))
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return report


if __name__ == "__main__":
    main()

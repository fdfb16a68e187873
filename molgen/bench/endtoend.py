"""End-to-end comparison, as a user meets both tools (``--mode endtoend``, the default).

The benchmark molecules are written to a SMILES file (``SMILES ID`` per line) and each tool runs as
its own process, from that file to a multi-conformer SDF, start-up (imports, model loading)
included:

* molgen: ``molgen conformers molecules.smi -n N -o molgen.sdf --json`` (its defaults; with
  ``--threads T`` for the equal-thread rows);
* ETKDG: ``python -m molgen.bench.etkdg_baseline molecules.smi -n N -o etkdg.sdf --threads 0``
  (:mod:`molgen.bench.etkdg_baseline`: ETKDGv3, all cores, what an RDKit user runs; ``--threads T``
  for the equal-thread rows).

Each process runs under the rusage helper (:func:`molgen.bench.memory.run_measured`): wall time
from process start to exit (s) and peak resident memory (rusage: the largest single process; for a
tool with worker processes also the sampled peak of the RSS summed over its process tree). Rows: both tools at their defaults, then
both at each ``equal_threads`` count. Per N and repeat the four (or more) runs go in one block;
every other repeat reverses the order within each molgen/ETKDG pair, so background load affects
both alike. Wall time of a row is the median over repeats that did not crash (exit code >= 2)
or time out (those are listed as ``failed_runs``), conformers per second = conformers
delivered / that wall time, and the ratio is molgen's rate over ETKDG's (at the same threads, and
at ETKDG's defaults). Both tools run once, untimed, on one molecule first (page cache, bytecode).

Both SDFs of repeat 0 are read back and grouped by title (= molecule ID). With reference
conformations: per-molecule minimum symmetry-aware heavy-atom RMSD (:mod:`molgen.bench.scoring`;
a molecule without conformers counts as inf). PoseBusters (:mod:`molgen.bench.posebusters_rate`)
on the rows at defaults; a row whose SDF is byte-identical to another's reuses its scores.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from molgen.bench.memory import run_measured
from molgen.bench.references import Reference
from molgen.bench.scoring import min_rmsd, rmsd_summary

__all__ = [
    "DEFAULT_NS",
    "RunSpec",
    "etkdg_command",
    "molgen_command",
    "read_sdf_conformers",
    "run_endtoend",
    "run_specs",
    "write_smiles",
]

DEFAULT_NS = (10, 50)
WARMUP_SMILES = "CC(=O)Nc1ccc(O)cc1"  # paracetamol


@dataclass(frozen=True)
class RunSpec:
    """One row of the comparison: a tool at its defaults (``threads`` None) or at ``threads``."""

    tool: str  # "molgen" or "etkdg"
    threads: int | None  # None: the tool's default (molgen: no --threads; ETKDG: --threads 0)

    @property
    def setting(self) -> str:
        """``"defaults"`` or ``"threads=T"``: rows with the same setting are compared."""
        return "defaults" if self.threads is None else f"threads={self.threads}"

    @property
    def label(self) -> str:
        """File-name-safe label, e.g. ``molgen_defaults``, ``etkdg_t1``."""
        return f"{self.tool}_{'defaults' if self.threads is None else f't{self.threads}'}"


def run_specs(equal_threads: Sequence[int] = (1,)) -> list[RunSpec]:
    """Rows in run order: (molgen, ETKDG) at defaults, then a pair per thread count."""
    specs = [RunSpec("molgen", None), RunSpec("etkdg", None)]
    for t in equal_threads:
        specs += [RunSpec("molgen", int(t)), RunSpec("etkdg", int(t))]
    return specs


def _molgen_prefix() -> list[str]:
    exe = Path(sys.executable).with_name("molgen")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "molgen.cli"]


def molgen_command(
    smi: str | Path, sdf: str | Path, n: int, *, threads: int | None = None, extra: Sequence[str] = ()
) -> list[str]:
    """``molgen conformers SMI -n N -o SDF --json [--threads T] [extra]`` (the installed console script)."""
    cmd = [*_molgen_prefix(), "conformers", str(smi), "-n", str(int(n)), "-o", str(sdf), "--json"]
    if threads is not None:
        cmd += ["--threads", str(int(threads))]
    return cmd + list(extra)


def etkdg_command(smi: str | Path, sdf: str | Path, n: int, *, threads: int | None = None) -> list[str]:
    """``python -m molgen.bench.etkdg_baseline SMI -n N -o SDF --threads T --json`` (None: 0 = all cores)."""
    t = 0 if threads is None else int(threads)
    return [sys.executable, "-m", "molgen.bench.etkdg_baseline", str(smi), "-n", str(int(n)),
            "-o", str(sdf), "--threads", str(t), "--json"]  # fmt: skip


def _command(spec: RunSpec, smi: Path, sdf: Path, n: int, extra: Sequence[str]) -> list[str]:
    if spec.tool == "molgen":
        return molgen_command(smi, sdf, n, threads=spec.threads, extra=extra)
    return etkdg_command(smi, sdf, n, threads=spec.threads)


def _shown(cmd: Sequence[str]) -> str:
    """A command as a user types it: ``molgen ...`` / ``python -m ...``, files by their base name."""
    out = list(cmd)
    if out and out[0] == sys.executable:
        out[0] = "python"
    if out and Path(out[0]).name == "molgen":
        out[0] = "molgen"
    if out[:3] == ["python", "-m", "molgen.cli"]:
        out = ["molgen", *out[3:]]
    return shlex.join(Path(c).name if "/" in c else c for c in out)


def write_smiles(molecules: Sequence[Reference], path: str | Path) -> Path:
    """Write ``SMILES ID`` lines (the isomeric SMILES both tools start from); returns the path."""
    path = Path(path)
    path.write_text("".join(f"{m.smiles} {m.id}\n" for m in molecules))
    return path


def read_sdf_conformers(path: str | Path) -> tuple[dict[str, Any], int]:
    """Group the records of a multi-conformer SDF by title into one Mol per molecule ID.

    Records of one ID need not be contiguous; each must have the atoms of the first (a record that
    does not is skipped and counted, as is one RDKit cannot read).

    Returns:
        ``({id: Mol with every conformer of that ID, in file order}, unreadable records)``.
    """
    from rdkit import Chem, rdBase

    out: dict[str, Any] = {}
    bad = 0
    blocker = rdBase.BlockLogs()
    try:
        for mol in Chem.SDMolSupplier(str(path), removeHs=False, sanitize=True):
            if mol is None:
                bad += 1
                continue
            name = mol.GetProp("_Name") if mol.HasProp("_Name") else ""
            held = out.get(name)
            if held is None:
                out[name] = Chem.Mol(mol)
            elif held.GetNumAtoms() == mol.GetNumAtoms():
                held.AddConformer(Chem.Conformer(mol.GetConformer()), assignId=True)
            else:
                bad += 1
    finally:
        del blocker
    return out, bad


def _sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _json_tail(path: Path) -> dict[str, Any] | None:
    """The last JSON object line a tool printed on stdout (its ``--json`` summary)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def _run_once(spec: RunSpec, smi: Path, sdf: Path, n: int, extra: Sequence[str], log_dir: Path,
              tag: str, timeout: float | None) -> dict[str, Any]:  # fmt: skip
    cmd = _command(spec, smi, sdf, n, extra)
    sdf.unlink(missing_ok=True)
    log = log_dir / f"{tag}.log"
    stdout = log_dir / f"{tag}.stdout"
    usage = run_measured(cmd, timeout=timeout, log_path=log, stdout_path=stdout)
    n_conf = sdf.read_bytes().count(b"$$$$") if sdf.is_file() else 0
    wall = usage["wall_seconds"]
    cpu = None
    if wall and usage.get("user_seconds") is not None:
        cpu = (usage["user_seconds"] + usage["system_seconds"]) / wall
    return {
        "command": _shown(cmd),
        "exit_code": usage["exit_code"],
        "timed_out": usage["timed_out"],
        "wall_seconds": wall,
        "cpu_seconds_per_wall_second": cpu,
        "peak_rss_kib": usage["maxrss_kib"],
        "tree_rss_peak_kib": usage["tree_rss_peak_kib"],
        "conformers": n_conf,
        "sha256": _sha256(sdf),
        "tool_summary": _json_tail(stdout),
        "output_tail": "" if usage["exit_code"] in (0, 1) else usage["output_tail"],
    }


def _score(mols: dict[str, Any], molecules: Sequence[Reference], max_matches: int) -> dict[str, Any]:
    """Per-molecule conformer counts and (with references) min-RMSD rows and their summary."""
    per_molecule = []
    with_refs = all(m.mol is not None for m in molecules)
    for m in molecules:
        got = mols.get(m.id)
        row: dict[str, Any] = {"id": m.id, "n_conformers": 0 if got is None else got.GetNumConformers()}
        if with_refs:
            row["min_rmsd"], row["error"] = min_rmsd(m.mol, got, max_matches=max_matches)
        per_molecule.append(row)
    quality = rmsd_summary(per_molecule, molecules) if with_refs and molecules else None
    return {"per_molecule": per_molecule, "quality": quality}


def run_endtoend(
    molecules: Sequence[Reference],
    ns: Sequence[int] = DEFAULT_NS,
    *,
    out_dir: str | Path,
    repeats: int = 1,
    equal_threads: Sequence[int] = (1,),
    posebusters_sample: int | None = None,
    posebusters_rows: str = "defaults",
    max_matches: int = 1000,
    molgen_extra: Sequence[str] = (),
    keep_sdf: bool = False,
    warmup: bool = True,
    timeout: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the end-to-end comparison (module docstring) and return its results.

    Args:
        molecules: benchmark molecules (``mol`` None: no reference conformation, no RMSD).
        ns: conformers per molecule, one block of runs each.
        out_dir: gets ``molecules.smi``, ``logs/`` (each run's stderr and stdout) and, with
            ``keep_sdf``, ``sdf/``.
        repeats: timed runs per row and N (wall time: median).
        equal_threads: thread counts of the equal-thread rows (each tool gets ``--threads T``).
        posebusters_sample: conformers per molecule given to PoseBusters (None: all; 0: skip).
        posebusters_rows: ``"defaults"`` (rows at defaults) or ``"all"``.
        max_matches: cap on atom mappings per molecule in the RMSD.
        molgen_extra: extra arguments for ``molgen conformers`` (e.g. ``--model PATH``).
        keep_sdf: keep every SDF under ``out_dir/sdf`` (otherwise only long enough to score).
        warmup: one untimed run of each tool on one molecule first.
        timeout: per-process limit in seconds (None: none).
        progress: one line per run on stderr.

    Returns:
        ``{"smiles_file", "specs", "warmup", "rows"}``; each row: ``{"tool", "setting",
        "threads", "n", "command", "runs" (per repeat), "wall_seconds" (median, s),
        "failed_runs" (crashed or timed out: left out of the wall time), "conformers",
        "molecules", "molecules_with_conformers", "conformers_per_second",
        "ratio_same_threads", "ratio_vs_etkdg_defaults", "peak_rss_mib" (largest process, rusage),
        "peak_rss_all_processes_mib" (sampled sum over the process tree), "quality",
        "per_molecule", "posebusters", "identical_to"}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_dir = out / "logs"
    log_dir.mkdir(exist_ok=True)
    smi = write_smiles(molecules, out / "molecules.smi")
    specs = run_specs(equal_threads)

    def say(msg: str) -> None:
        if progress:
            print(msg, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="molgen-bench-e2e-") as tmp:
        sdf_dir = out / "sdf" if keep_sdf else Path(tmp)
        sdf_dir.mkdir(exist_ok=True)
        warm: dict[str, Any] = {}
        if warmup:
            one = write_smiles([Reference.from_smiles("warmup", WARMUP_SMILES)], Path(tmp) / "warmup.smi")
            for spec in specs[:2]:
                r = _run_once(spec, one, Path(tmp) / "warmup.sdf", 2, molgen_extra, log_dir,
                              f"warmup_{spec.tool}", timeout)  # fmt: skip
                warm[spec.tool] = {k: r[k] for k in ("command", "exit_code", "wall_seconds", "conformers")}
                say(f"warm-up {spec.tool}: {r['wall_seconds'] or 0:.1f} s, exit {r['exit_code']}")

        rows: list[dict[str, Any]] = []
        for n in ns:
            block: dict[RunSpec, list[dict[str, Any]]] = {s: [] for s in specs}
            kept: dict[RunSpec, Path] = {}
            for rep in range(repeats):
                order = list(specs)
                if rep % 2 == 1:  # swap each molgen/ETKDG pair
                    order = [s for i in range(0, len(order), 2) for s in (order[i + 1], order[i])]
                for spec in order:
                    sdf = sdf_dir / f"{spec.label}_n{n}_r{rep}.sdf"
                    r = _run_once(spec, smi, sdf, n, molgen_extra, log_dir, f"{spec.label}_n{n}_r{rep}", timeout)
                    block[spec].append(r)
                    say(f"N={n} repeat {rep} {spec.tool} {spec.setting}: {r['wall_seconds'] or 0:.1f} s, "
                        f"{r['conformers']} conformers, exit {r['exit_code']}")  # fmt: skip
                    if rep == 0:
                        kept[spec] = sdf
                    elif not keep_sdf:
                        sdf.unlink(missing_ok=True)
            rows += _rows_of_block(n, specs, block, kept, molecules, max_matches,
                                   posebusters_sample, posebusters_rows, say)  # fmt: skip
            if not keep_sdf:
                for path in kept.values():
                    path.unlink(missing_ok=True)
    _ratios(rows)
    return {
        "smiles_file": str(smi),
        "specs": [{"tool": s.tool, "setting": s.setting, "threads": s.threads} for s in specs],
        "warmup": warm,
        "rows": rows,
    }


def _rows_of_block(n: int, specs: Sequence[RunSpec], block: dict[RunSpec, list[dict[str, Any]]],
                   kept: dict[RunSpec, Path], molecules: Sequence[Reference], max_matches: int,
                   pb_sample: int | None, pb_rows: str, say: Any) -> list[dict[str, Any]]:  # fmt: skip
    """Score repeat 0 of every row of one N (reusing scores of byte-identical SDFs)."""
    from molgen.bench.posebusters_rate import posebusters_rate

    rows: list[dict[str, Any]] = []
    by_hash: dict[str, dict[str, Any]] = {}
    for spec in specs:
        runs = block[spec]
        first = runs[0]
        # a run that crashed (exit >= 2), was killed or timed out tells nothing about speed
        bad = {k for k, r in enumerate(runs) if r["exit_code"] not in (0, 1) or r["timed_out"]}
        good = [r for k, r in enumerate(runs) if k not in bad]
        walls = [r["wall_seconds"] for r in good if r["wall_seconds"] is not None]
        wall = statistics.median(walls) if walls else None
        rss = [r["peak_rss_kib"] for r in runs if r["peak_rss_kib"] is not None]
        tree = [r["tree_rss_peak_kib"] for r in runs if r["tree_rss_peak_kib"] is not None]
        digest = first["sha256"]
        same = by_hash.get(digest) if digest else None
        want_pb = pb_sample != 0 and (pb_rows == "all" or spec.threads is None)
        if same is not None:
            scored = {"per_molecule": same["per_molecule"], "quality": same["quality"]}
            mols = None
        else:
            mols, _bad = read_sdf_conformers(kept[spec]) if kept[spec].is_file() else ({}, 0)
            scored = _score(mols, molecules, max_matches)
        pb = same.get("posebusters") if same is not None else None  # same bytes, same verdicts
        if want_pb and pb is None:
            if mols is None:
                mols, _bad = read_sdf_conformers(kept[spec])
            say(f"N={n} PoseBusters {spec.tool} {spec.setting} ...")
            pb = posebusters_rate(mols, sample=pb_sample)
        row = {
            "tool": spec.tool,
            "setting": spec.setting,
            "threads": spec.threads,
            "n": int(n),
            "command": first["command"],
            "runs": [{k: v for k, v in r.items() if k != "command"} for r in runs],
            "wall_seconds": wall,
            "wall_seconds_all": walls,
            "failed_runs": [
                {"repeat": k, "exit_code": r["exit_code"], "timed_out": r["timed_out"],
                 "last_line": (r["output_tail"].strip().splitlines() or [""])[-1][:200]}
                for k, r in enumerate(runs) if k in bad
            ],  # fmt: skip
            "conformers": first["conformers"],
            "molecules": len(molecules),
            "molecules_with_conformers": sum(1 for p in scored["per_molecule"] if p["n_conformers"]),
            "conformers_per_second": (first["conformers"] / wall) if wall else None,
            "peak_rss_mib": round(max(rss) / 1024, 1) if rss else None,
            "peak_rss_all_processes_mib": round(max(tree) / 1024, 1) if tree else None,
            "deterministic_across_repeats": len({r["sha256"] for r in good}) <= 1,
            "identical_to": same["label"] if same is not None else None,
            "quality": scored["quality"],
            "per_molecule": scored["per_molecule"],
            "posebusters": pb,
            "label": f"{spec.tool} {spec.setting}",
        }
        if digest and digest not in by_hash:
            by_hash[digest] = row
        rows.append(row)
    return rows


def _ratios(rows: list[dict[str, Any]]) -> None:
    """Conformers-per-second ratio of every row to ETKDG at the same setting and N, and at defaults."""
    etkdg = {(r["n"], r["setting"]): r["conformers_per_second"] for r in rows if r["tool"] == "etkdg"}
    for r in rows:
        rate = r["conformers_per_second"]
        same = etkdg.get((r["n"], r["setting"]))
        base = etkdg.get((r["n"], "defaults"))
        r["ratio_same_threads"] = (rate / same) if rate is not None and same else None
        r["ratio_vs_etkdg_defaults"] = (rate / base) if rate is not None and base else None

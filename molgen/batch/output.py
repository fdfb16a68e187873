"""Where batch results go: one file, or a folder of chunks that a rerun resumes.

Folder layout (``molgen conformers big.smi -o out/``)::

    out/run.json                                  what produced the folder (options, input, model)
    out/shard-00003-of-00064/chunk-000012.sdf     conformers of chunk 12 of shard 3 (.sdf.gz with --gzip)
    out/shard-00003-of-00064/manifest.jsonl       one JSON line per finished chunk (counts, failures)
    out/shard-00003-of-00064/run.json             the settings this shard's chunks were made with
    out/shard-00003-of-00064/failures.csv         every failed molecule of the shard (when a run ends)
    out/shard-00003-of-00064/summary.json         the last run's summary

A chunk is ``chunk_size`` consecutive molecules of the shard's share of the input. Its file is written
under a temporary name and renamed when complete; only then is its manifest line appended (and fsynced).
A run that is killed leaves at most the chunk in progress unfinished; the rerun skips every chunk in the
manifest without parsing its molecules and redoes the rest. A torn last manifest line (a kill during the
append) is cut off, so that chunk is redone and its file atomically replaced; temporary files left by a
killed run are deleted.

Every shard folder keeps a copy of ``run.json`` (the settings its chunks were made with): after a shard
was restarted with ``--overwrite`` and other settings, a shard still holding chunks of the earlier run
is neither resumed nor merged.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from molgen.atomic import check_output_path, open_atomic
from molgen.batch.work import MoleculeOutcome
from molgen.chem.writers import ConformerWriter
from molgen.errors import InputError

__all__ = [
    "FAILURE_COLUMNS", "ChunkRecord", "FileSink", "FolderSink", "default_failed_path", "describe_changes",
    "is_folder_output", "read_manifest", "read_run_file", "write_failures",
]

FAILURE_COLUMNS = ["source", "name", "smiles_or_record", "reason"]
RUN_FILE = "run.json"
MANIFEST = "manifest.jsonl"
SHARD_GLOB = "shard-?????-of-?????"

#: the command-line option behind each setting of a run fingerprint (``options.*``: SamplingOptions)
_OPTION_NAMES = {
    "input": "INPUT", "smiles_col": "--smiles-col", "id_col": "--id-col", "model": "--model",
    "chunk_size": "--chunk-size", "num_shards": "--num-shards", "gzip": "--gzip",
    "max_heavy_atoms": "--max-heavy-atoms", "keep_salts": "--keep-salts",
    "options.n": "-n/--num-confs", "options.sampler": "--sampler", "options.steps": "--steps",
    "options.seed": "--seed", "options.planar_bonds": "--planar-bonds", "options.score_scale": "--score-scale",
    "options.conformers_per_structure": "--per-structure", "options.max_structures": "--max-structures",
    "options.rms": "--rms", "options.optimize": "--optimize", "options.energy_window": "--energy-window",
}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for k, v in value.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def describe_changes(previous: dict[str, Any], now: dict[str, Any]) -> str:
    """``-n/--num-confs: 10 then, 20 now; --chunk-size: 1000 then, 500 now``: the settings that differ
    between two run fingerprints, by their command-line option where there is one."""
    before, after = _flatten(previous), _flatten(now)
    keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return "; ".join(f"{_OPTION_NAMES.get(k, k)}: {before.get(k)!r} then, {after.get(k)!r} now" for k in keys)


def read_run_file(path: Path) -> dict[str, Any] | None:
    """A ``run.json`` (None when missing or not a JSON object)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_folder_output(output: str | Path) -> bool:
    """An output is a folder when it ends in a path separator, is an existing directory, or has no
    file suffix."""
    text = str(output)
    path = Path(text)
    return text.endswith(("/", os.sep)) or path.is_dir() or not path.suffix


def default_failed_path(output: Path) -> Path:
    """``ligands.sdf`` / ``ligands.sdf.gz`` -> ``ligands.failed.csv`` beside it."""
    stem = output.name[: -len(".gz")] if output.name.lower().endswith(".gz") else output.name
    return output.with_name(f"{Path(stem).stem}.failed.csv")


def _failure_row(o: MoleculeOutcome) -> list[str]:
    return [o.source, o.name, o.raw, o.error or ""]


def write_failures(path: Path, rows: list[list[str]]) -> None:
    """A failure list (:data:`FAILURE_COLUMNS`), written atomically."""
    with open_atomic(path) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(FAILURE_COLUMNS)
        writer.writerows(rows)


class FileSink:
    """All conformers into one file (``.sdf``, ``.sdf.gz``, ``.xyz``, ``.pdb``), failures into a CSV
    written next to it only when something failed. No resume: the file appears, complete, at the end."""

    def __init__(self, output: Path, failed: Path | None = None) -> None:
        self.output = output
        self.failed_path = failed if failed is not None else default_failed_path(output)
        self.default_failed = failed is None
        check_output_path(self.failed_path)
        self.writer = ConformerWriter(output)
        self.fmt = self.writer.fmt
        self.failures: list[list[str]] = []
        self.failed_file: str | None = None

    def done_chunks(self) -> set[int]:
        return set()

    def write_chunk(self, index: int, outcomes: list[MoleculeOutcome]) -> None:
        for o in outcomes:
            if o.ok:
                self.writer.write_text(o.text, o.n_conformers)
            else:
                self.failures.append(_failure_row(o))

    def close(self, ok: bool) -> None:
        if not ok:
            self.writer.abort()
            return
        self.writer.close()
        if self.failures:
            write_failures(self.failed_path, self.failures)
            self.failed_file = str(self.failed_path)
        elif self.default_failed:
            self.failed_path.unlink(missing_ok=True)  # from an earlier run: it would list old failures

    @property
    def where(self) -> str:
        return str(self.output)


@dataclass
class ChunkRecord:
    """One manifest line: a finished chunk."""

    chunk: int
    file: str
    molecules: int
    ok: int
    conformers: int
    failures: list[list[str]] = field(default_factory=list)
    drops: dict[str, int] = field(default_factory=dict)


def read_manifest(shard_dir: Path) -> dict[int, ChunkRecord]:
    """Finished chunks of a shard folder (a torn or corrupt line is skipped, as is a line whose chunk
    file is missing)."""
    path = shard_dir / MANIFEST
    done: dict[int, ChunkRecord] = {}
    if not path.exists():
        return done
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = ChunkRecord(**json.loads(line))
            except (ValueError, TypeError):
                continue
            if (shard_dir / rec.file).exists():
                done[rec.chunk] = rec
    return done


def _repair_manifest(path: Path) -> None:
    """Cut a torn last line (a kill during the append) so that the next line starts on its own."""
    try:
        with open(path, "rb+") as fh:
            data = fh.read()
            if data and not data.endswith(b"\n"):
                fh.truncate(data.rfind(b"\n") + 1)
    except FileNotFoundError:
        pass


class FolderSink:
    """Chunks of one shard in ``output/<shard label>/``, resumable (see the module docstring).

    Args:
        output: the run folder (created if missing).
        shard_label: e.g. ``shard-00003-of-00064``.
        fingerprint: what decides the content of the folder (input, options, model, chunk size,
            shard count, format); a rerun with a different fingerprint is refused.
        gzip: write ``.sdf.gz`` chunks.
        overwrite: delete this shard's earlier chunks (and the shard folders of another shard count) and
            start again.

    Raises:
        InputError: the folder, or this shard's folder, holds a run made with other settings (naming
            them), or cannot be written.
    """

    def __init__(self, output: Path, shard_label: str, fingerprint: dict[str, Any], *, gzip: bool = False,
                 overwrite: bool = False) -> None:
        self.output = output
        fingerprint = json.loads(json.dumps(fingerprint))  # as it reads back from run.json
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create output folder {output}: {exc.strerror or exc}") from None
        self._check_run(fingerprint, overwrite)
        self.dir = output / shard_label
        if overwrite:
            self._remove_earlier_run(shard_label)
        self.dir.mkdir(exist_ok=True)
        self._check_shard(fingerprint)
        for stale in self.dir.glob(".*.part"):  # temporary files of a killed run (one writer per shard)
            stale.unlink(missing_ok=True)
        (self.dir / "summary.json").unlink(missing_ok=True)  # written again when this run ends
        _repair_manifest(self.dir / MANIFEST)
        self.fmt = "sdf"
        self.suffix = ".sdf.gz" if gzip else ".sdf"
        self.gzip = gzip
        self.done = read_manifest(self.dir)
        self.failed_file: str | None = None

    def _remove_earlier_run(self, shard_label: str) -> None:
        """``--overwrite``: this shard's folder, and shard folders of another shard count (they cannot
        belong to this run; other tasks of an array may be removing them too)."""
        count = shard_label.rsplit("-", 1)[-1]
        for shard in self.output.glob(SHARD_GLOB):
            if shard == self.dir or (shard.is_dir() and not shard.name.endswith(f"-of-{count}")):
                shutil.rmtree(shard, ignore_errors=True)

    def _check_run(self, fingerprint: dict[str, Any], overwrite: bool) -> None:
        path = self.output / RUN_FILE
        if path.exists() and not overwrite:
            previous = read_run_file(path)
            if previous is None:
                raise InputError(f"{path} is not a molgen run file; use another output folder")
            if previous != fingerprint:
                raise InputError(
                    f"{self.output} holds a run made with other settings ({describe_changes(previous, fingerprint)}). "
                    "Rerun the same command to resume it, use --overwrite to start again, or choose another "
                    "output folder"
                )
            return
        with open_atomic(path) as fh:
            json.dump(fingerprint, fh, indent=1, sort_keys=True)

    def _check_shard(self, fingerprint: dict[str, Any]) -> None:
        """The shard's own copy of the settings: its chunks may be from a run that another task restarted
        with ``--overwrite`` and other settings since."""
        path = self.dir / RUN_FILE
        if path.exists():
            previous = read_run_file(path)
            if previous != fingerprint:
                detail = describe_changes(previous, fingerprint) if previous is not None else "unreadable run.json"
                raise InputError(
                    f"{self.dir} holds chunks made with other settings ({detail}); the run was restarted with "
                    "--overwrite since. Pass --overwrite to redo this shard too"
                )
            return
        with open_atomic(path) as fh:
            json.dump(fingerprint, fh, indent=1, sort_keys=True)

    def done_chunks(self) -> set[int]:
        return set(self.done)

    def chunk_file(self, index: int) -> str:
        return f"chunk-{index:06d}{self.suffix}"

    def write_chunk(self, index: int, outcomes: list[MoleculeOutcome]) -> None:
        """Write chunk ``index`` atomically, then record it in the manifest."""
        name = self.chunk_file(index)
        n_conf = 0
        drops: dict[str, int] = {}
        with open_atomic(self.dir / name, compress=self.gzip) as fh:
            for o in outcomes:
                if o.ok:
                    fh.write(o.text)
                    n_conf += o.n_conformers
                    for k, v in o.drops.items():
                        drops[k] = drops.get(k, 0) + v
        rec = ChunkRecord(index, name, len(outcomes), sum(o.ok for o in outcomes), n_conf,
                          [_failure_row(o) for o in outcomes if not o.ok], drops)
        line = json.dumps(rec.__dict__, separators=(",", ":")) + "\n"
        fd = os.open(self.dir / MANIFEST, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        self.done[index] = rec

    def _write_failures(self) -> None:
        rows = [row for k in sorted(self.done) for row in self.done[k].failures]
        path = self.dir / "failures.csv"
        if rows or path.exists():
            write_failures(path, rows)
            self.failed_file = str(path)

    def close(self, ok: bool) -> None:
        """Write ``failures.csv`` from the manifest (the failures of every finished chunk, also those of
        earlier runs; rewritten once per run, not per chunk)."""
        self._write_failures()

    def write_summary(self, summary: dict[str, Any]) -> None:
        with open_atomic(self.dir / "summary.json") as fh:
            json.dump(summary, fh, indent=1)

    @property
    def where(self) -> str:
        return str(self.dir)

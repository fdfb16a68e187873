"""``molgen merge out/ -o all.sdf``: one file from the finished chunks of every shard of a run folder.

Chunks are taken shard by shard, chunk by chunk, from the manifests (only finished chunks count); the
merged SDF (``.sdf`` or ``.sdf.gz``) and a merged failure list are written atomically. What is missing
is reported: shards without a folder (never started), shards whose run did not finish (their
``summary.json`` is missing or records an interruption, or finished chunks are missing), and shards that
hold chunks made with other settings than the run (left from before an ``--overwrite``; never merged).
"""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path
from typing import Any

from molgen.atomic import open_atomic
from molgen.batch.output import (
    RUN_FILE,
    default_failed_path,
    read_manifest,
    read_run_file,
    write_failures,
)
from molgen.chem.writers import output_format
from molgen.errors import InputError

__all__ = ["merge_run"]

_SHARD = re.compile(r"^shard-(\d{5})-of-(\d{5})$")


def _shards(folder: Path) -> tuple[int, dict[int, Path]]:
    found: dict[int, Path] = {}
    counts = set()
    for child in sorted(folder.iterdir()):
        m = _SHARD.match(child.name)
        if m and child.is_dir():
            found[int(m.group(1))] = child
            counts.add(int(m.group(2)))
    if not found:
        raise InputError(f"{folder} holds no shard folders (shard-XXXXX-of-YYYYY): not a molgen run folder?")
    if len(counts) > 1:
        raise InputError(f"{folder} mixes runs with different shard counts {sorted(counts)}")
    return counts.pop(), found


def merge_run(folder: str | Path, output: str | Path, *, allow_missing: bool = False) -> dict[str, Any]:
    """Merge a run folder into ``output``.

    Returns:
        ``{"output", "failed_file", "shards", "shards_missing", "shards_unfinished", "shards_stale",
        "chunks", "molecules_ok", "molecules_failed", "conformers", "complete"}``.

    Raises:
        InputError: not a run folder, a bad output name, or something missing without ``allow_missing``
            (the message lists it; nothing is written).
    """
    folder, output = Path(folder), Path(output)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    run = read_run_file(folder / RUN_FILE)
    if run is None:
        raise InputError(f"{folder} has no readable {RUN_FILE}: not a molgen run folder")
    fmt, gz = output_format(output)
    if fmt != "sdf":
        raise InputError(f"cannot merge into {output}: chunks are SDF, name the output .sdf or .sdf.gz")
    count, shards = _shards(folder)
    missing = [i for i in range(count) if i not in shards]
    unfinished, stale, manifests = [], [], {}
    for index, path in shards.items():
        own = path / RUN_FILE
        if own.exists() and read_run_file(own) != run:
            stale.append(index)  # chunks of an earlier run, restarted with --overwrite since
            continue
        done = read_manifest(path)
        manifests[index] = done
        summary = read_run_file(path / "summary.json")
        finished = summary is not None and not summary.get("interrupted")
        expected = summary.get("chunks") if finished else None
        if expected is None and done:
            expected = max(done) + 1
        if not finished or sorted(done) != list(range(expected or 0)):
            unfinished.append(index)
    complete = not missing and not unfinished and not stale
    if not complete and not allow_missing:
        parts = []
        if missing:
            parts.append(f"{len(missing)} shard(s) never started: {_ranges(missing)}")
        if unfinished:
            parts.append(f"{len(unfinished)} shard(s) unfinished: {_ranges(sorted(unfinished))}")
        if stale:
            parts.append(f"{len(stale)} shard(s) hold chunks made with other settings than {RUN_FILE} (from "
                         f"before an --overwrite; rerun them with --overwrite): {_ranges(sorted(stale))}")
        raise InputError(f"{folder}: " + "; ".join(parts) + ". Rerun them, or pass --allow-missing")
    n_chunks = n_ok = n_fail = n_conf = 0
    failures: list[list[str]] = []
    with open_atomic(output, binary=True, compress=gz) as out:
        for index in sorted(manifests):
            for k in sorted(manifests[index]):
                rec = manifests[index][k]
                chunk = shards[index] / rec.file
                opener = gzip.open if rec.file.endswith(".gz") else open
                with opener(chunk, "rb") as fh:  # type: ignore[operator]
                    shutil.copyfileobj(fh, out)
                n_chunks += 1
                n_ok += rec.ok
                n_fail += len(rec.failures)
                n_conf += rec.conformers
                failures.extend(rec.failures)
    failed_path = default_failed_path(output)
    if failures:
        write_failures(failed_path, failures)
    else:
        failed_path.unlink(missing_ok=True)  # from an earlier merge: it would list old failures
    return {
        "output": str(output),
        "failed_file": str(failed_path) if failures else None,
        "shards": count,
        "shards_missing": missing,
        "shards_unfinished": sorted(unfinished),
        "shards_stale": sorted(stale),
        "chunks": n_chunks,
        "molecules_ok": n_ok,
        "molecules_failed": n_fail,
        "conformers": n_conf,
        "complete": complete,
    }


def _ranges(values: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    out, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            out.append(f"{start}-{v}" if v != start else f"{v}")
            start = None
    return ", ".join(out)

"""``molgen merge out/ -o all.sdf``: one file from the finished chunks of every shard of a run folder.

Chunks are taken shard by shard, chunk by chunk, from the manifests (only finished chunks count); the
merged SDF (``.sdf`` or ``.sdf.gz``) and a merged failure list are written atomically. What is missing
is reported: shards without a folder (never started), and shards whose run did not finish (their
``summary.json`` is missing or records an interruption, or chunk numbers have gaps).
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import shutil
from pathlib import Path
from typing import Any

from molgen.atomic import open_atomic
from molgen.batch.output import FAILURE_COLUMNS, RUN_FILE, read_manifest
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
        ``{"output", "failed_file", "shards", "shards_missing", "shards_unfinished", "chunks",
        "molecules_ok", "molecules_failed", "conformers", "complete"}``.

    Raises:
        InputError: not a run folder, a bad output name, or something missing without ``allow_missing``
            (the message lists it; nothing is written).
    """
    folder, output = Path(folder), Path(output)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    if not (folder / RUN_FILE).exists():
        raise InputError(f"{folder} has no {RUN_FILE}: not a molgen run folder")
    fmt, gz = output_format(output)
    if fmt != "sdf":
        raise InputError(f"cannot merge into {output}: chunks are SDF, name the output .sdf or .sdf.gz")
    count, shards = _shards(folder)
    missing = [i for i in range(count) if i not in shards]
    unfinished, manifests = [], {}
    for index, path in shards.items():
        done = read_manifest(path)
        manifests[index] = done
        summary = path / "summary.json"
        finished = summary.exists() and not json.loads(summary.read_text()).get("interrupted")
        if not finished or (done and sorted(done) != list(range(max(done) + 1))):
            unfinished.append(index)
    complete = not missing and not unfinished
    if not complete and not allow_missing:
        parts = []
        if missing:
            parts.append(f"{len(missing)} shard(s) never started: {_ranges(missing)}")
        if unfinished:
            parts.append(f"{len(unfinished)} shard(s) unfinished: {_ranges(unfinished)}")
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
    stem = output.name[: -len(".gz")] if gz else output.name
    failed_path = output.with_name(f"{Path(stem).stem}.failed.csv")
    if failures:
        with open_atomic(failed_path) as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(FAILURE_COLUMNS)
            writer.writerows(failures)
    return {
        "output": str(output),
        "failed_file": str(failed_path) if failures else None,
        "shards": count,
        "shards_missing": missing,
        "shards_unfinished": sorted(unfinished),
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

"""Folder output in this process (fake sampler): resume, a changed command on an existing folder,
--overwrite, merge (missing shards, .sdf.gz), the JSON summary and log lines."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from batchtools import (
    SMALL,
    chunk_files,
    cli,
    conformers_by_name,
    manifest,
    merged_names,
    read_sdf,
    write_smi,
)

SHARD = "shard-00000-of-00001"


@pytest.fixture
def smi(tmp_path: Path) -> Path:
    return write_smi(tmp_path / "in.smi", SMALL[:7])


def _conformers(inp: Path, out: Path, *extra: object):
    return cli("conformers", inp, "-o", f"{out}/", "-n", "2", "--chunk-size", "3", "--threads", "1",
               "--no-progress", *extra)


def test_rerun_of_a_finished_run_does_nothing(fake_sampler, smi: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _conformers(smi, out).exit_code == 0
    shard = out / SHARD
    assert [c.name for c in chunk_files(shard)] == ["chunk-000000.sdf", "chunk-000001.sdf", "chunk-000002.sdf"]
    assert [(m["chunk"], m["molecules"], m["ok"]) for m in manifest(shard)] == [(0, 3, 3), (1, 3, 3), (2, 1, 1)]
    stamps = {c.name: c.stat().st_mtime_ns for c in chunk_files(shard)}
    calls = len(fake_sampler.calls)
    result = _conformers(smi, out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["molecules_skipped"] == 7 and summary["molecules_ok"] == 0
    assert len(fake_sampler.calls) == calls  # nothing sampled again
    assert {c.name: c.stat().st_mtime_ns for c in chunk_files(shard)} == stamps
    assert len(manifest(shard)) == 3


def test_resume_after_a_torn_manifest_line_and_a_stale_temp_file(fake_sampler, smi: Path, tmp_path: Path) -> None:
    """A kill during the manifest append leaves a torn last line; one during a chunk write, a .part file."""
    out = tmp_path / "out"
    assert _conformers(smi, out).exit_code == 0
    shard = out / SHARD
    lines = (shard / "manifest.jsonl").read_text().splitlines(keepends=True)
    (shard / "manifest.jsonl").write_text("".join(lines[:-1]) + lines[-1][:25])  # torn: no newline
    (shard / "summary.json").unlink()  # as after a SIGKILL
    (shard / ".chunk-000003.sdf.abc123.part").write_text("half a chunk")
    result = _conformers(smi, out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["molecules_skipped"] == 6 and summary["molecules_ok"] == 1  # only the last chunk again
    assert [m["chunk"] for m in manifest(shard)] == [0, 1, 2]  # the torn line is gone, every line parses
    assert not list(shard.glob(".*.part"))
    # and the manifest stays appendable: a further rerun has nothing to do
    result = _conformers(smi, out, "--json")
    assert json.loads(result.stdout)["molecules_skipped"] == 7
    merged = tmp_path / "all.sdf"
    assert cli("merge", out, "-o", merged).exit_code == 0
    assert sorted(merged_names(merged)) == sorted(name for _, name in SMALL[:7])


def test_merge_notices_a_lost_last_chunk(fake_sampler, smi: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _conformers(smi, out).exit_code == 0
    shard = out / SHARD
    (shard / "chunk-000002.sdf").unlink()  # e.g. deleted by hand: its manifest line no longer counts
    result = cli("merge", out, "-o", tmp_path / "all.sdf")
    assert result.exit_code == 2, result.output
    assert "unfinished: 0" in result.stderr
    assert _conformers(smi, out).exit_code == 0  # a rerun redoes it
    assert cli("merge", out, "-o", tmp_path / "all.sdf").exit_code == 0


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (["-n", "3"], "-n/--num-confs: 2 then, 3 now"),
        (["--chunk-size", "4"], "--chunk-size: 3 then, 4 now"),
        (["--seed", "1"], "--seed: 42 then, 1 now"),
        (["--gzip"], "--gzip: False then, True now"),
        (["--num-shards", "2", "--shard-index", "0"], "--num-shards: 1 then, 2 now"),
    ],
)
def test_changed_command_is_refused(fake_sampler, smi: Path, tmp_path: Path, change: list[str], named: str) -> None:
    out = tmp_path / "out"
    assert _conformers(smi, out).exit_code == 0
    before = {c: c.read_bytes() for c in chunk_files(out / SHARD)}
    args = ["conformers", smi, "-o", f"{out}/", "-n", "2", "--chunk-size", "3", "--threads", "1", "--no-progress"]
    args = _replace(args, change)
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert named in result.stderr and "--overwrite" in result.stderr
    assert {c: c.read_bytes() for c in chunk_files(out / SHARD)} == before
    assert len(list(out.iterdir())) == 2  # run.json and the one shard: nothing else created


def _replace(args: list, change: list[str]) -> list:
    """``args`` with the options of ``change`` set to their new values (or added)."""
    args = list(args)
    i = 0
    while i < len(change):
        option = change[i]
        has_value = i + 1 < len(change) and not change[i + 1].startswith("--")
        if option in args and has_value:
            args[args.index(option) + 1] = change[i + 1]
        else:
            args += change[i: i + 2] if has_value else [option]
        i += 2 if has_value else 1
    return args


def test_overwrite_starts_again(fake_sampler, smi: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _conformers(smi, out).exit_code == 0
    result = _conformers(smi, out, "--chunk-size", "5", "--overwrite", "--json")  # later --chunk-size wins
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["molecules_skipped"] == 0
    assert json.loads((out / "run.json").read_text())["chunk_size"] == 5
    assert [c.name for c in chunk_files(out / SHARD)] == ["chunk-000000.sdf", "chunk-000001.sdf"]
    assert [m["molecules"] for m in manifest(out / SHARD)] == [5, 2]


def test_overwrite_with_another_shard_count_leaves_a_mergeable_folder(fake_sampler, smi: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _conformers(smi, out).exit_code == 0
    for index in (0, 1):
        result = _conformers(smi, out, "--num-shards", "2", "--shard-index", index, "--overwrite")
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["run.json", "shard-00000-of-00002", "shard-00001-of-00002"]
    result = cli("merge", out, "-o", tmp_path / "all.sdf")
    assert result.exit_code == 0, result.output
    assert sorted(merged_names(tmp_path / "all.sdf")) == sorted(name for _, name in SMALL[:7])


def test_shard_left_from_before_an_overwrite_is_not_merged(fake_sampler, smi: Path, tmp_path: Path) -> None:
    """Shard 0 restarted with other settings, shard 1 not yet: its chunks are from the old run."""
    out = tmp_path / "out"
    for index in (0, 1):
        assert _conformers(smi, out, "--num-shards", "2", "--shard-index", index).exit_code == 0
    result = _conformers(smi, out, "--num-shards", "2", "--shard-index", "0", "-n", "3", "--overwrite")
    assert result.exit_code == 0, result.output
    result = cli("merge", out, "-o", tmp_path / "all.sdf")
    assert result.exit_code == 2, result.output
    assert "1 shard(s) hold chunks made with other settings than run.json" in result.stderr
    assert "--overwrite): 1." in result.stderr
    result = cli("merge", out, "-o", tmp_path / "part.sdf", "--allow-missing", "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["shards_stale"] == [1]
    assert {len(c) for c in conformers_by_name(tmp_path / "part.sdf").values()} == {3}  # shard 0 only
    # resuming shard 1 with the new settings must not keep its old chunks
    result = _conformers(smi, out, "--num-shards", "2", "--shard-index", "1", "-n", "3")
    assert result.exit_code == 2, result.output
    assert "-n/--num-confs: 2 then, 3 now" in result.stderr
    result = _conformers(smi, out, "--num-shards", "2", "--shard-index", "1", "-n", "3", "--overwrite")
    assert result.exit_code == 0, result.output
    assert cli("merge", out, "-o", tmp_path / "all.sdf").exit_code == 0
    merged = conformers_by_name(tmp_path / "all.sdf")
    assert sorted(merged) == sorted(name for _, name in SMALL[:7])
    assert {len(c) for c in merged.values()} == {3}


def test_merge_reports_missing_shards(fake_sampler, smi: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    for index in (0, 2):
        assert _conformers(smi, out, "--num-shards", "3", "--shard-index", index).exit_code == 0
    merged = tmp_path / "all.sdf"
    result = cli("merge", out, "-o", merged)
    assert result.exit_code == 2, result.output
    assert "1 shard(s) never started: 1" in result.stderr and "--allow-missing" in result.stderr
    assert not merged.exists()
    result = cli("merge", out, "-o", merged, "--allow-missing", "--json")
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert summary["shards_missing"] == [1] and summary["complete"] is False
    from molgen.batch.sharding import shard_of

    expected = sorted(name for _, name in SMALL[:7] if shard_of(name, 3) != 1)
    assert sorted(merged_names(merged)) == expected
    assert summary["molecules_ok"] == len(expected)


def test_merge_refuses_what_is_not_a_run_folder(tmp_path: Path) -> None:
    result = cli("merge", tmp_path, "-o", tmp_path / "all.sdf")
    assert result.exit_code == 2 and "run.json" in result.stderr
    result = cli("merge", tmp_path / "nope", "-o", tmp_path / "all.sdf")
    assert result.exit_code == 2 and "not a folder" in result.stderr


def test_gzip_chunks_and_gzip_merge_round_trip(fake_sampler, smi: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _conformers(smi, out, "--gzip").exit_code == 0
    chunks = chunk_files(out / SHARD)
    assert [c.name for c in chunks] == [f"chunk-00000{i}.sdf.gz" for i in range(3)]
    assert [m["file"] for m in manifest(out / SHARD)] == [c.name for c in chunks]
    per_chunk = [conformers_by_name(c) for c in chunks]  # every chunk is a complete gzip stream
    result = cli("merge", out, "-o", tmp_path / "all.sdf.gz", "--json")
    assert result.exit_code == 0, result.output
    with gzip.open(tmp_path / "all.sdf.gz", "rb") as fh:
        assert fh.read(4)  # a gzip file
    merged = conformers_by_name(tmp_path / "all.sdf.gz")
    assert sorted(merged) == sorted(name for _, name in SMALL[:7])
    assert all(len(v) == 2 for v in merged.values())
    plain = tmp_path / "all.sdf"
    assert cli("merge", out, "-o", plain).exit_code == 0
    assert merged_names(plain) == merged_names(tmp_path / "all.sdf.gz")
    assert sum(len(p) for p in per_chunk) == 7
    assert json.loads(result.stdout)["conformers"] == len(read_sdf(plain)) == 14


def test_merge_writes_the_failures(fake_sampler, tmp_path: Path) -> None:
    smi = tmp_path / "in.smi"
    smi.write_text("CCO a\nC1CC( broken\nCCN b\n")
    out = tmp_path / "out"
    assert cli("conformers", smi, "-o", f"{out}/", "-n", "1", "--threads", "1", "--chunk-size", "2").exit_code == 1
    result = cli("merge", out, "-o", tmp_path / "all.sdf.gz", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["failed_file"] == str(tmp_path / "all.failed.csv") and summary["molecules_failed"] == 1
    assert "in.smi:2,broken" in (tmp_path / "all.failed.csv").read_text()


def test_json_summary_and_log_lines(fake_sampler, smi: Path, tmp_path: Path) -> None:
    result = _conformers(smi, tmp_path / "out", "--json", "--log-every", "0")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    for key in ("molecules_ok", "molecules_failed", "molecules_skipped", "wall_time_s", "conformers_per_s",
                "molecules_per_s", "conformers_written", "peak_rss_mib", "threads", "device", "interrupted"):
        assert key in summary, key
    assert summary["molecules_ok"] == 7 and summary["conformers_written"] == 14
    assert summary["interrupted"] is None and summary["threads"] == 1
    assert summary["peak_rss_mib"]["main"] > 0
    assert summary["conformers_per_s"] > 0
    assert json.loads((tmp_path / "out" / SHARD / "summary.json").read_text())["molecules_ok"] == 7
    logs = [line for line in result.stderr.splitlines() if line.startswith("molgen: ")]
    assert logs and "molecules (" in logs[-1] and "mol/s" in logs[-1]
    assert "\r" not in result.stderr  # no progress bar
    assert "7 ok, 0 failed" in result.stderr and "conformers/s" in result.stderr


def test_progress_bar_and_quiet(fake_sampler, smi: Path, tmp_path: Path) -> None:
    result = cli("conformers", smi, "-o", tmp_path / "a.sdf", "-n", "1", "--threads", "1", "--progress")
    assert result.exit_code == 0 and "molecules" in result.stderr and "mol/s" in result.stderr
    result = cli("-q", "conformers", smi, "-o", tmp_path / "b.sdf", "-n", "1", "--threads", "1", "--progress",
                 "--log-every", "0")
    assert result.exit_code == 0 and result.stderr == ""

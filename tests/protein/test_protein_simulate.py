"""Reference MD: a short alanine-dipeptide run in segments, resumed where it stopped, continuous across the
resume; settings that differ from the stored run and missing inputs are refused with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openmm")

from molgen.errors import InputError
from molgen.protein.simulate import (
    MDSettings,
    load_progress,
    run_md,
    segment_paths,
    trajectory_of,
)

ALA2_PDB = Path(__file__).resolve().parents[1] / "data" / "protein" / "alanine-dipeptide-implicit.pdb"


def _settings(**kw) -> MDSettings:
    base = dict(structure=str(ALA2_PDB), total_ns=0.004, segment_ns=0.002, frame_ps=0.1, equilibration_ps=0.2,
                seed=11)
    return MDSettings(**{**base, **kw})


def test_md_runs_in_segments_and_resumes_continuously(tmp_path):
    out = tmp_path / "run"
    progress = run_md(_settings(), out, threads=1, log=lambda _: None)
    assert progress.segments_done == 2 and progress.ns_done == pytest.approx(0.004) and progress.ns_per_day > 0
    assert [p.name for p in segment_paths(out)] == ["seg_00000.xtc", "seg_00001.xtc"]
    first = trajectory_of(out)
    assert first.n_frames == 40 and first.n_atoms == 22
    # extend the same run: it resumes from the saved state instead of starting over
    progress = run_md(_settings(total_ns=0.006), out, threads=1, log=lambda _: None)
    assert progress.segments_done == 3 and len(progress.history) == 3
    full = trajectory_of(out)
    assert full.n_frames == 60
    np.testing.assert_allclose(full.xyz[:40], first.xyz, atol=1e-3)  # nothing written before was changed
    step = np.linalg.norm(full.xyz[1:] - full.xyz[:-1], axis=-1).max(axis=1)  # nm per 0.1 ps frame, per frame
    assert step[39] < 3 * np.median(step[:39]) + 0.01  # the resumed frame continues the trajectory
    settings = json.loads((out / "settings.json").read_text())
    assert settings["forcefield"] == ["amber14-all.xml", "implicit/obc2.xml"] and settings["seed"] == 11


def test_md_refuses_other_settings_and_bad_input(tmp_path):
    out = tmp_path / "run"
    run_md(_settings(total_ns=0.002), out, threads=1, log=lambda _: None)
    with pytest.raises(InputError, match="other settings"):
        run_md(_settings(total_ns=0.002, seed=12), out, threads=1, log=lambda _: None)
    assert load_progress(out).segments_done == 1  # the stored run is untouched
    with pytest.raises(InputError, match="not found"):
        run_md(_settings(structure=str(tmp_path / "missing.pdb")), tmp_path / "x", log=lambda _: None)
    with pytest.raises(InputError, match="seed=0"):
        _settings(seed=0)
    with pytest.raises(InputError, match="frame_ps"):
        _settings(frame_ps=0.0031)


def test_cli_simulate(tmp_path):
    from typer.testing import CliRunner

    from molgen.cli import app

    out = tmp_path / "cli"
    args = ["protein", "simulate", str(ALA2_PDB), "-o", str(out), "--ns", "0.002", "--segment-ns", "0.002",
            "--frame-ps", "0.1", "--equilibration-ps", "0.2", "--seed", "3", "--threads", "1"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "0.002 of 0.002 ns recorded" in res.output
    res = CliRunner().invoke(app, args[:2] + [str(tmp_path / "nope.pdb")] + args[3:])
    assert res.exit_code == 2 and "not found" in res.output

"""`molgen bench protein` end to end on the smoke model: every table and plot is written, MD-versus-MD sits
beside each metric, the MD speed run happens in the same process."""

from __future__ import annotations

import json
from pathlib import Path

import mdtraj
import pytest

from molgen.bench.protein import main
from molgen.errors import InputError
from molgen.protein.io import load_structure, parse_trajectory_spec

DATA = Path(__file__).resolve().parents[1] / "data" / "protein"


def test_trajectory_spec():
    assert parse_trajectory_spec("a.xtc") == (Path("a.xtc"), slice(None))
    assert parse_trajectory_spec("a.xtc@10:20") == (Path("a.xtc"), slice(10, 20))
    assert parse_trajectory_spec("a.xtc@:5") == (Path("a.xtc"), slice(None, 5))
    assert parse_trajectory_spec("adk.dcd@1::2") == (Path("adk.dcd"), slice(1, None, 2))
    for bad in ("a.xtc@x:y", "a.xtc@5", "a.xtc@0:10:0", "a.xtc@0:1:2:3"):
        with pytest.raises(InputError, match="frame range"):
            parse_trajectory_spec(bad)


def test_bench_protein_smoke(checkpoint, tmp_path):
    pytest.importorskip("openmm")
    out = tmp_path / "bench"
    traj = str(DATA / "frame0.xtc")
    result = main(["--model", str(checkpoint), "--top", str(DATA / "native.pdb"), "--train", f"{traj}@0:250",
                   "--heldout", f"{traj}@250:501", "-n", "30", "--steps", "4", "--md-structure",
                   str(DATA / "alanine-dipeptide-implicit.pdb"), "--md-ps", "4", "--md-frame-ps", "2", "--out", str(out)])
    stored = json.loads((out / "protein.json").read_text())
    assert stored["validity"]["n_valid"] <= 30 and stored["md"]["train_frames"] == 250
    d = result["dihedral"]
    assert 0 <= d["js_samples_vs_heldout"] <= 0.7 and 0 < d["js_md_train_vs_heldout"] < 0.7
    for pops in d["basins"].values():
        assert sum(pops.values()) == pytest.approx(1.0)
    assert "structural" not in result  # one Cα: no RMSF / contact metrics
    rate = result["md_rate"]
    assert rate["md_ps"] == 4 and rate["decorrelated_frames_per_cpu_second"] > 0 and rate["tau_frames"] >= 1
    md = (out / "protein.md").read_text()
    assert "MD (training) vs held-out MD" in md and "decorrelated frames per CPU-second" in md
    assert (out / "ramachandran.png").is_file()
    delivered = mdtraj.load(str(out / "samples.xtc"), top=str(out / "samples.top.pdb"))
    assert delivered.n_frames == stored["validity"]["n_valid"] and stored["samples_files"] == ["samples.xtc", "samples.top.pdb"]


def test_bench_structural_coverage_and_states_on_nmr_models(tmp_path):
    from molgen.bench.protein import _states_block, _structural_block, markdown

    nmr = load_structure(DATA / "2EQQ.pdb")
    samples, train, heldout = nmr[:8], nmr[8:14], nmr[14:]
    s = _structural_block(samples, train, heldout, [1.0, 50.0])
    cov = s["coverage_vs_heldout"]
    assert s["coverage_frames"] == {"samples": 8, "md_train": 6, "md_heldout": 6}
    for key in ("samples", "md_train"):
        assert cov[key]["recall"]["50"] == 1.0 and cov[key]["precision"]["50"] == 1.0  # everything within 50 Å
        assert 0.0 <= cov[key]["recall"]["1"] <= 1.0
    ref = tmp_path / "model1.pdb"
    nmr[0].save_pdb(str(ref))
    st = _states_block([f"first={ref}"], samples, train, heldout)
    assert st["first"]["summary"]["samples"]["min"] == pytest.approx(0.0, abs=1e-2)  # model 1 is a sample
    assert len(st["first"]["rmsd_angstrom"]["md_heldout"]) == heldout.n_frames
    with pytest.raises(InputError, match="NAME=PDB"):
        _states_block(["no-equals-sign"], samples, train, heldout)
    result = {"command": "x", "machine": "m", "date": "d", "model": "p", "model_step": 1,
              "validity": {"n_valid": 8, "n_requested": 8, "valid_fraction": 1.0, "n_sampled": 8, "dropped": {}},
              "structural": s, "states": st,
              "speed": {"samples_per_cpu_second": 1.0, "cpu_seconds": 1.0, "wall_seconds": 1.0, "torch_threads": 1}}
    text = markdown(result)
    assert "Coverage recall at 1 Å" in text and "| first (`" in text

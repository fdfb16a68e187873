"""`molgen bench protein` end to end on the smoke model: every table and plot is written, MD-versus-MD sits
beside each metric, the MD speed run happens in the same process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from molgen.bench.protein import main
from molgen.errors import InputError
from molgen.protein.io import parse_trajectory_spec

DATA = Path(__file__).resolve().parents[1] / "data" / "protein"


def test_trajectory_spec():
    assert parse_trajectory_spec("a.xtc") == (Path("a.xtc"), slice(None))
    assert parse_trajectory_spec("a.xtc@10:20") == (Path("a.xtc"), slice(10, 20))
    assert parse_trajectory_spec("a.xtc@:5") == (Path("a.xtc"), slice(None, 5))
    with pytest.raises(InputError, match="frame range"):
        parse_trajectory_spec("a.xtc@x:y")


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

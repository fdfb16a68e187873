"""`molgen bench molecules` end to end on the QM9 sample with a tiny model: every row and table exists,
the data row is measured in the same run, and the guidance sweep needs a regressor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from molgen.bench.molecules import main

SAMPLE_CSV = Path(__file__).resolve().parents[1] / "data" / "qm9_sample.csv"


@pytest.fixture(scope="module")
def setup(qm9_sample_cache, train_tiny_qm9):
    return qm9_sample_cache, train_tiny_qm9("molecules", half="all")


def test_bench_molecules_rows_and_files(setup, tmp_path):
    cache, model = setup
    out = tmp_path / "bench"
    result = main(["--model", str(model), "--num", "4", "--samplers", "ddim:3", "ddpm:3", "--cache", str(cache),
                   "--reference", "5", "--geometry-samples", "4", "--threads", "1", "--out", str(out)])
    labels = [r["label"] for r in result["rows"]]
    assert labels[0].startswith("QM9 test molecules (data") and len(labels) == 3
    data = result["rows"][0]
    assert data["n_samples"] == 5 and data["validity"] == 1.0  # real molecules are valid
    for row in result["rows"][1:]:
        assert row["n_samples"] == 4 and 0.0 <= row["atom_stability"] <= 1.0
        assert row["molecules_per_s"] > 0
    saved = json.loads((out / "molecules.json").read_text())
    assert saved["rows"][1]["method"] == "ddim" and saved["machine"]
    table = (out / "molecules.md").read_text()
    assert "published" in table and "molgen ddpm, 3 steps" in table


def test_guidance_sweep_needs_a_regressor(setup, tmp_path):
    cache, model = setup
    with pytest.raises(SystemExit):
        main(["--model", str(model), "--guidance-sweep", "--cache", str(cache), "--out", str(tmp_path)])

"""`molgen sample molecules`, `molgen train molecules`, `molgen bench molecules` on the command line:
a tiny model trained for two steps on the shipped QM9 sample; SDF written atomically with its tags; bad
options refused with a message that names them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from rdkit import Chem
from typer.testing import CliRunner

from molgen.cli import app

SAMPLE_CSV = Path(__file__).resolve().parent / "data" / "qm9_sample.csv"
runner = CliRunner()


@pytest.fixture(scope="module")
def model_path(train_tiny_qm9) -> Path:
    return train_tiny_qm9("molecules", conditions=["alpha"], half="all")


def test_sample_molecules_writes_tagged_sdf(model_path, tmp_path):
    out = tmp_path / "new.sdf"
    res = runner.invoke(app, ["sample", "molecules", "-n", "6", "--model", str(model_path), "--steps", "4",
                              "--condition", "alpha=75", "--guidance", "2", "--keep-invalid", "--threads", "1",
                              "--device", "cpu", "--json", "-o", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["generated"] == 6 and summary["written"] == 6
    assert summary["valid"] + sum(summary["failed_by_reason"].values()) == 6
    mols = [m for m in Chem.SDMolSupplier(str(out), sanitize=False, removeHs=False)]
    assert len(mols) == 6
    for m in mols:
        props = m.GetPropsAsDict()
        assert props["valid"] in (0, 1) and 0.0 <= props["atom_stable_fraction"] <= 1.0
        assert props["condition_alpha"] == pytest.approx(75.0) and props["guidance"] == pytest.approx(2.0)
        assert props["valid"] == 1 or "reason" in props
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


def test_sample_molecules_valid_only_by_default(model_path, tmp_path):
    out = tmp_path / "valid.sdf.gz"
    res = runner.invoke(app, ["sample", "molecules", "-n", "4", "--model", str(model_path), "--steps", "3",
                              "--threads", "1", "--device", "cpu", "--json", "-o", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["written"] == summary["valid"]
    assert out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--condition", "alpha"], "NAME=NUMBER"),
        (["--condition", "gap=5"], "unknown to this model"),
        (["--condition", "alpha=nan"], "finite"),
        (["-o", "x.pdb"], "SDF"),
        (["--sampler", "rk4"], "rk4"),
    ],
)
def test_sample_molecules_bad_options(model_path, tmp_path, args, message):
    base = ["sample", "molecules", "-n", "2", "--model", str(model_path), "--steps", "2", "--device", "cpu"]
    if "-o" not in args:
        args = [*args, "-o", str(tmp_path / "x.sdf")]
    res = runner.invoke(app, base + args)
    assert res.exit_code == 2
    assert message in res.output


def test_sample_molecules_missing_model(tmp_path):
    res = runner.invoke(app, ["sample", "molecules", "-n", "2", "--model", str(tmp_path / "none.pt"),
                              "-o", str(tmp_path / "x.sdf")])
    assert res.exit_code == 2
    assert "not found" in res.output


def test_train_molecules_bad_half(tmp_path):
    res = runner.invoke(app, ["train", "molecules", "--out", str(tmp_path / "run"), "--half", "third",
                              "--cache", str(tmp_path / "nocache")])
    assert res.exit_code == 2
    assert "half" in res.output


def test_train_property_bad_options(tmp_path):
    res = runner.invoke(app, ["train", "property", "--out", str(tmp_path / "run"), "--property", "colour",
                              "--cache", str(tmp_path / "nocache")])
    assert res.exit_code == 2
    assert "colour" in res.output


def test_export_of_a_molecule_model_has_its_own_card(model_path, tmp_path):
    from molgen.models.registry import load_checkpoint_model
    from molgen.training.pipeline import export_weights

    out = export_weights(model_path, tmp_path / "qm9_tiny.pt", name="qm9_tiny", command="molgen train molecules")
    card = out.with_suffix(".md").read_text()
    assert "De novo 3D molecule generator" in card and "conditions | alpha" in card
    assert "Torsional" not in card
    loaded = load_checkpoint_model(out)
    assert loaded.kind == "molecules" and loaded.name == "qm9_tiny"
    assert "optimizer" not in torch.load(out, weights_only=False)

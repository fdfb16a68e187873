"""The shipped default model: loads offline, generates validated conformers, end to end through the CLI."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from rdkit import Chem

import molgen
from molgen.chem.io import read_conformers_sdf
from molgen.models.registry import DEFAULT_WEIGHTS, default_model_path


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_default_weights_ship_with_a_model_card():
    path = default_model_path()
    assert path.exists() and path.stat().st_size < 20 * 1024**2
    card = path.with_suffix(".md").read_text()
    facts = json.loads(path.with_suffix(".json").read_text())
    assert facts["data_hash"] in card and facts["steps_trained"] > 0
    assert facts["validation_loss"] < 1.0  # better than predicting a zero score


def test_generate_conformers_with_default_model_keeps_stereo():
    smiles = "C/C=C/[C@@H](O)[C@H](N)Cc1ccccc1"
    mol = molgen.generate_conformers(smiles, n=6, seed=3)
    assert mol.GetNumConformers() + int(mol.GetProp("molgen_n_dropped")) >= 6
    assert mol.GetNumConformers() >= 4
    ref = Chem.MolToSmiles(Chem.MolFromSmiles(smiles))
    for conf in mol.GetConformers():
        copy = Chem.Mol(mol, confId=conf.GetId())
        Chem.AssignStereochemistryFrom3D(copy, confId=conf.GetId())
        assert Chem.MolToSmiles(Chem.RemoveHs(copy)) == ref
        assert conf.GetProp("model") == Path(DEFAULT_WEIGHTS).stem


def test_same_seed_same_conformers():
    a = molgen.generate_conformers("CCOC(=O)c1ccccc1NCCO", n=3, seed=11)
    b = molgen.generate_conformers("CCOC(=O)c1ccccc1NCCO", n=3, seed=11)
    np.testing.assert_allclose(a.GetConformer(0).GetPositions(), b.GetConformer(0).GetPositions(), atol=1e-4)


def test_cli_end_to_end_with_default_model(tmp_path):
    smi = tmp_path / "in.smi"
    smi.write_text("CC(=O)Nc1ccc(O)cc1 paracetamol\nC1CC1(((( broken\nc1ccccc1 benzene\n")
    out = tmp_path / "out.sdf"
    proc = subprocess.run([sys.executable, "-m", "molgen.cli", "conformers", str(smi), "-n", "3", "-o", str(out),
                           "--threads", "1", "--json", "-q"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr  # one molecule failed
    summary = json.loads(proc.stdout)
    assert summary["molecules_ok"] == 2 and summary["molecules_failed"] == 1
    mols = read_conformers_sdf(out)
    assert [m.GetProp("_Name") for m in mols] == ["paracetamol", "benzene"]
    assert all(m.GetNumConformers() == 3 for m in mols)
    failed = (tmp_path / "out.failed.csv").read_text()
    assert "in.smi:2" in failed and "broken" in failed


def test_shipped_molecule_model_samples_offline(tmp_path, monkeypatch):
    """`molgen sample molecules` works right after install: the shipped QM9 model loads from the package."""
    import torch
    from typer.testing import CliRunner

    from molgen.cli import app

    monkeypatch.delenv("MOLGEN_MOLECULE_MODEL", raising=False)
    torch.set_num_threads(1)
    out = tmp_path / "new.sdf"
    res = CliRunner().invoke(app, ["sample", "molecules", "-n", "4", "--steps", "5", "--threads", "1", "--device", "cpu",
                                   "--keep-invalid", "--json", "-o", str(out)])
    assert res.exit_code == 0, res.output
    import json

    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["generated"] == 4 and summary["written"] == 4

"""The shipped alanine-dipeptide model: loads offline by name, samples a validated ensemble through the CLI."""

from __future__ import annotations

import json

import mdtraj as md
import pytest
import torch
from typer.testing import CliRunner

from molgen.cli import app
from molgen.protein.sample import SHIPPED_SYSTEMS, _shipped_path, load_protein_model, protein_system_of


def test_shipped_ala2_model_has_a_card_and_its_system():
    path = _shipped_path("alanine-dipeptide")
    assert set(SHIPPED_SYSTEMS) == {"alanine-dipeptide"}
    assert path.is_file() and path.stat().st_size < 20 * 1024**2
    facts = json.loads(path.with_suffix(".json").read_text())
    assert facts["data_hash"] in path.with_suffix(".md").read_text() and facts["validation_loss"] < 1.0
    system = protein_system_of(load_protein_model(system="alanine-dipeptide"))
    assert system.num_atoms == 22 and sorted(n.split()[-1] for n in system.torsion_names) == ["omega", "omega", "phi", "psi"]


def test_cli_samples_the_shipped_system(tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "ala2.pdb"
    res = CliRunner().invoke(app, ["protein", "sample", "--system", "alanine-dipeptide", "-n", "40", "-o", str(out),
                                   "--threads", "1"])
    assert res.exit_code == 0, res.output
    traj = md.load(str(out))
    assert traj.n_frames == 40 and traj.n_atoms == 22 and "40 of 40 structures valid" in res.output

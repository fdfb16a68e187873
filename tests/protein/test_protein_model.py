"""The protein torsion model: a training smoke run on the 1 ns alanine-dipeptide trajectory, the system stored in
the checkpoint, sampling that keeps bond lengths and validates every structure, and the CLI."""

from __future__ import annotations

from pathlib import Path

import mdtraj as md
import numpy as np
import pytest

from molgen.datasets.trajectory import time_split
from molgen.errors import InputError
from molgen.models.registry import load_checkpoint_model
from molgen.protein.featurize import protein_mol, torsion_names
from molgen.protein.sample import load_protein_model, protein_system_of, sample_ensemble
from molgen.protein.system import ProteinSystem
from molgen.sampling.options import SamplingOptions

DATA = Path(__file__).resolve().parents[1] / "data" / "protein"
TOP, TRAJ = DATA / "native.pdb", DATA / "frame0.xtc"


def test_time_split_keeps_the_end_of_each_file_for_validation():
    train, val = time_split([10, 5], 0.2)
    assert train.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13] and val.tolist() == [8, 9, 14]
    with pytest.raises(ValueError):
        time_split([3], 1.0)


def test_alanine_dipeptide_molecule_and_torsions():
    frame = md.load(str(TOP))
    mol = protein_mol(frame)
    assert mol.GetNumAtoms() == 22 and sum(a.GetFormalCharge() != 0 for a in mol.GetAtoms()) == 0
    np.testing.assert_allclose(mol.GetConformer().GetPositions(), frame.xyz[0] * 10.0, atol=1e-3)
    system = ProteinSystem.from_frames(frame)
    assert sorted(system.torsion_names) == ["ACE1 omega", "ALA2 omega", "ALA2 phi", "ALA2 psi"]
    assert torsion_names(frame.topology, np.zeros((0, 4), dtype=int)) == []


def test_training_smoke_and_system_in_checkpoint(checkpoint):
    loaded = load_checkpoint_model(checkpoint)
    assert loaded.kind == "protein" and set(loaded.processes) == {"torsion"}
    task = loaded.meta["task"]
    assert task["frames"] == [501] and task["trajs"] == ["frame0.xtc"]
    system = protein_system_of(loaded)
    assert system.name == "ala2-test" and system.num_atoms == 22
    ref = ProteinSystem.from_frames(md.load(str(TRAJ), top=str(TOP))[:451])  # the training frames (90 %)
    np.testing.assert_allclose(system.geometry.bond_range, ref.geometry.bond_range, atol=1e-4)


def test_sampling_keeps_bond_lengths_and_validates(checkpoint):
    loaded = load_protein_model(checkpoint)
    result = sample_ensemble(loaded, 24, seed=5, options=SamplingOptions(steps=4, planar_bonds="fixed"))
    system = protein_system_of(loaded)
    traj = result.traj
    assert traj.n_frames + sum(result.dropped.values()) <= result.n_sampled
    assert traj.n_frames == 24 or result.rounds == 10
    # every sample is drawn on one stored training frame: it keeps that frame's bond lengths (torsion moves
    # never change them) and, omega being fixed, its amide torsion; phi/psi move
    assert system.frames is not None and len(system.frames) > 1
    stored = md.Trajectory(system.frames / 10.0, system.topology)
    bonds = system.geometry.bonds
    ref = md.compute_distances(stored, bonds)  # (F, B) nm
    got = md.compute_distances(traj, bonds)  # (S, B)
    gap = np.abs(got[:, None, :] - ref[None, :, :]).max(-1)  # (S, F)
    match = gap.argmin(1)
    assert gap.min(1).max() < 2e-5  # nm
    assert len(set(match.tolist())) > 1  # drawn on several frames
    omega = md.compute_dihedrals(traj, [[1, 4, 6, 8]])
    np.testing.assert_allclose(omega, md.compute_dihedrals(stored, [[1, 4, 6, 8]])[match], atol=1e-3)
    phi = md.compute_phi(traj)[1]
    assert phi.std() > 0.1
    again = sample_ensemble(loaded, 24, seed=5, options=SamplingOptions(steps=4, planar_bonds="fixed"))
    np.testing.assert_array_equal(again.traj.xyz, traj.xyz)  # seeded


def test_cli_train_sample_and_bad_input(checkpoint, tmp_path):
    from typer.testing import CliRunner

    from molgen.cli import app

    runner = CliRunner()
    out = tmp_path / "ens.pdb"
    res = runner.invoke(app, ["protein", "sample", "--model", str(checkpoint), "-n", "6", "--steps", "3",
                              "--threads", "1", "-o", str(out)])
    assert res.exit_code in (0, 1), res.output
    if res.exit_code == 0:
        assert md.load(str(out)).n_frames == 6 and "6 of 6 structures valid" in res.output
    relieved = tmp_path / "relieved.xtc"
    res = runner.invoke(app, ["protein", "sample", "--model", str(checkpoint), "-n", "4", "--steps", "3",
                              "--threads", "1", "--clash-relief", "-o", str(relieved)])
    assert res.exit_code in (0, 1), res.output
    if res.exit_code == 0:
        assert md.load(str(relieved), top=str(relieved.with_suffix(".top.pdb"))).n_frames == 4
    res = runner.invoke(app, ["protein", "sample", "--model", str(checkpoint), "-n", "2", "-o", str(tmp_path / "e.mol2")])
    assert res.exit_code == 2 and "unknown format" in res.output
    res = runner.invoke(app, ["protein", "sample", "-n", "2", "-o", str(out)])
    assert res.exit_code == 2 and "--model" in res.output
    res = runner.invoke(app, ["protein", "sample", "--system", "villin", "-n", "2", "-o", str(out)])
    assert res.exit_code == 2 and "unknown system" in res.output
    res = runner.invoke(app, ["protein", "train", "--top", str(TOP), "--traj", str(tmp_path / "none.xtc"),
                              "--out", str(tmp_path / "run"), "--steps", "1"])
    assert res.exit_code == 2 and "none.xtc: file not found" in res.output
    with pytest.raises(InputError, match="not a protein model"):
        from molgen.models.registry import default_model_path

        load_protein_model(default_model_path())


def test_public_api_returns_mdtraj_or_biopython(checkpoint):
    import molgen

    traj = molgen.sample_ensemble(5, model=checkpoint, steps=3, max_rounds=3)
    assert isinstance(traj, md.Trajectory) and traj.n_atoms == 22 and traj.n_frames <= 5
    structure = molgen.sample_ensemble(3, model=checkpoint, steps=3, max_rounds=3, output="biopython")
    assert len(structure) <= 3 and len(list(structure[0].get_atoms())) == 22
    with pytest.raises(InputError, match="output="):
        molgen.sample_ensemble(3, model=checkpoint, output="pdb")


def test_partial_diffusion_from_stored_frames(checkpoint):
    loaded = load_protein_model(checkpoint)
    system = protein_system_of(loaded)
    assert system.frames is not None and system.frames.shape == (50, 22, 3)
    opts = SamplingOptions(steps=4, planar_bonds="fixed")
    result = sample_ensemble(loaded, 10, seed=2, options=opts, start="frames", sigma_start=0.2)
    traj = result.traj
    assert 0 < traj.n_frames <= 10
    # each structure is near some stored frame: small phi/psi changes from sigma 0.2 and a short reverse run
    phi = md.compute_phi(traj)[1][:, 0]
    ref_phi = md.compute_phi(md.Trajectory(system.frames / 10.0, system.topology))[1][:, 0]
    gap = np.abs((phi[:, None] - ref_phi[None, :] + np.pi) % (2 * np.pi) - np.pi).min(1)
    assert np.median(gap) < 1.0
    # the start and its noise level are honoured (a timer once shadowed `start`, so every run began from the
    # prior): from a small sigma, phi stays near the stored frames; the three starts give three ensembles
    near = sample_ensemble(loaded, 10, seed=2, options=opts, start="frames", sigma_start=0.04)
    prior = sample_ensemble(loaded, 10, seed=2, options=opts, start="prior")
    phi_near = md.compute_phi(near.traj)[1][:, 0]
    gap_near = np.abs((phi_near[:, None] - ref_phi[None, :] + np.pi) % (2 * np.pi) - np.pi).min(1)
    assert np.median(gap_near) < 0.2
    n = min(near.traj.n_frames, prior.traj.n_frames, traj.n_frames)
    assert not np.allclose(near.traj.xyz[:n], prior.traj.xyz[:n])
    assert not np.allclose(near.traj.xyz[:n], traj.xyz[:n])
    with pytest.raises(InputError, match="start="):
        sample_ensemble(loaded, 2, start="nowhere")


def test_explicit_validation_frames_replace_the_tail(tmp_path):
    from molgen.training.train_protein import ProteinTask
    from molgen.training.trainer import TrainConfig

    xtc = TOP.parent / "frame0.xtc"

    def task(**options):
        return ProteinTask(TrainConfig(task="protein", out=str(tmp_path), val_molecules=1000,
                                       task_options={"top": str(TOP), **options}))

    split = task(trajs=[f"{xtc}@0:400:2"], val_trajs=[f"{xtc}@1:400:4"])
    train, val = split.datasets()
    assert len(train) == 200 and len(val) == 100  # every training frame trains; the others validate
    tail = task(trajs=[f"{xtc}@0:400:2"])
    train_t, val_t = tail.datasets()
    assert len(train_t) == 180 and len(val_t) == 20  # default: the last 10 % validates
    hashes = {split.data_hash(), tail.data_hash(), task(trajs=[f"{xtc}@0:400"]).data_hash()}
    assert len(hashes) == 3  # the step and the validation frames are part of the data's identity
    with pytest.raises(InputError, match="validation trajectory .*none.xtc: file not found"):
        task(trajs=[str(xtc)], val_trajs=[str(tmp_path / "none.xtc")])


def test_denoiser_chunks_do_not_change_an_ensemble(checkpoint):
    """Memory bound: denoiser calls of one structure each give the same ensemble as the default batch."""
    loaded = load_protein_model(checkpoint)
    opts = SamplingOptions(sampler="sde", steps=3)
    whole = sample_ensemble(loaded, 7, seed=5, options=opts)
    heavy = protein_system_of(loaded).topology.select("element != H").size
    chunked = sample_ensemble(loaded, 7, seed=5, options=opts, batch_atoms=heavy)
    assert chunked.traj.n_frames == whole.traj.n_frames == 7
    np.testing.assert_allclose(chunked.traj.xyz, whole.traj.xyz, atol=1e-4)  # nm, float32 rounding only
    with pytest.raises(InputError, match="n=0"):
        sample_ensemble(loaded, 0)


def test_local_structures_are_drawn_from_stored_frames(checkpoint):
    """Samples start from stored training frames drawn at random; a model without frames uses its structure."""
    import copy

    from molgen.protein.sample import _drawn_frames

    system = protein_system_of(load_protein_model(checkpoint))
    drawn = _drawn_frames(system, 50, np.random.default_rng(3))
    assert drawn.shape == (50, system.num_atoms, 3)
    exact = [int(np.argmin(np.abs(system.frames - d).reshape(len(system.frames), -1).max(1))) for d in drawn]
    assert all(np.abs(system.frames[k] - d).max() < 1e-5 for k, d in zip(exact, drawn))
    assert len(set(exact)) > 10
    bare = copy.copy(system)
    bare.frames = None
    np.testing.assert_allclose(_drawn_frames(bare, 3, np.random.default_rng(3)),
                               np.repeat(system.structure.xyz[:1] * 10.0, 3, axis=0), atol=1e-5)

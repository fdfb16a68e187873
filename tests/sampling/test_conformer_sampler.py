"""Torsional-diffusion sampling with a (small, untrained) denoiser: shapes, local structure, stereo."""

import numpy as np
import pytest
import torch
from rdkit import Chem

from molgen.models.torsion_denoiser import DenoiserConfig, TorsionDenoiser
from molgen.sampling.conformer_sampler import load_model, sample_conformers
from molgen.training.checkpoint import save_checkpoint
from molgen.training.train_conformers import TorsionTask, TrainConfig


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(path, TorsionDenoiser(DenoiserConfig(ns=16, nv=4, num_layers=2)), TorsionTask(TrainConfig()),
                    data_hash="0" * 64, step=0)
    return path


def bond_lengths(mol, conf_id):
    xyz = mol.GetConformer(conf_id).GetPositions()
    return np.array([np.linalg.norm(xyz[b.GetBeginAtomIdx()] - xyz[b.GetEndAtomIdx()]) for b in mol.GetBonds()])


@pytest.mark.parametrize("sampler", ["ode", "sde"])
def test_sampling_keeps_local_structure_and_stereo(model_path, sampler):
    torch.set_num_threads(1)
    smiles = "C/C=C/[C@@H](O)[C@H](N)CCOc1ccccc1"
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    out = sample_conformers(mol, 6, model=load_model(model_path), sampler=sampler, steps=4, seed=3,
                            max_structures=1)
    assert out.GetNumConformers() == 6
    # one local structure: every conformer has exactly its bond lengths
    ref = bond_lengths(out, 0)
    for conf in out.GetConformers():
        np.testing.assert_allclose(bond_lengths(out, conf.GetId()), ref, atol=1e-3)
        assert conf.GetProp("sampler").startswith(sampler) and conf.GetIntProp("steps") == 4
    # torsions did move: conformers differ
    xyz = np.stack([c.GetPositions() for c in out.GetConformers()])
    assert np.abs(xyz[1] - xyz[0]).max() > 0.1
    for conf in out.GetConformers():
        copy = Chem.Mol(out, confId=conf.GetId())
        Chem.AssignStereochemistryFrom3D(copy, confId=conf.GetId())
        assert Chem.MolToSmiles(Chem.RemoveHs(copy)) == Chem.MolToSmiles(Chem.MolFromSmiles(smiles))


def test_ode_is_deterministic_and_rigid_molecules_work(model_path):
    mol = Chem.AddHs(Chem.MolFromSmiles("CCOC(=O)c1ccccc1NCC"))
    a = sample_conformers(mol, 3, model=load_model(model_path), steps=3, seed=5)
    b = sample_conformers(mol, 3, model=load_model(model_path), steps=3, seed=5)
    np.testing.assert_allclose(a.GetConformer(2).GetPositions(), b.GetConformer(2).GetPositions(), atol=1e-5)
    rigid = sample_conformers(Chem.AddHs(Chem.MolFromSmiles("c1ccc2ccccc2c1")), 2, model=load_model(model_path), steps=2)
    assert rigid.GetNumConformers() == 2


def test_bad_arguments(model_path):
    mol = Chem.AddHs(Chem.MolFromSmiles("CCCC"))
    with pytest.raises(ValueError):
        sample_conformers(mol, 0, model=load_model(model_path))
    with pytest.raises(ValueError):
        sample_conformers(mol, 2, model=load_model(model_path), sampler="langevin")
    with pytest.raises(ValueError, match="structures must have shape"):
        sample_conformers(mol, 2, model=load_model(model_path), structures=np.zeros((1, 3, 3)))


def test_given_structures_are_reused(model_path):
    """Resampling on given local structures: their bond lengths, new torsions, no new embedding."""
    mol = Chem.AddHs(Chem.MolFromSmiles("CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)OCC"))
    first = sample_conformers(mol, 2, model=load_model(model_path), steps=3, seed=5)
    given = np.stack([c.GetPositions() for c in first.GetConformers()])
    again = sample_conformers(mol, 3, model=load_model(model_path), steps=3, seed=9, structures=given)
    for i, conf in enumerate(again.GetConformers()):  # conformer i starts from structure i mod 2
        np.testing.assert_allclose(bond_lengths(again, conf.GetId()), bond_lengths(first, i % 2), atol=1e-3)
    assert np.abs(again.GetConformer(0).GetPositions() - given[0]).max() > 0.1  # torsions redrawn
    # with sigma_start the given structures are the starting points of partial diffusion: a tiny noise level
    # (0.05 rad) leaves them almost where they are
    refined = sample_conformers(mol, 2, model=load_model(model_path), steps=3, structures=given, sigma_start=0.05)
    assert np.abs(np.stack([c.GetPositions() for c in refined.GetConformers()]) - given).max() < 0.05


@pytest.mark.parametrize("sampler", ["ode", "sde"])
def test_planar_bond_modes(model_path, sampler):
    """Amide / ester bonds: "snap" ends exactly cis or trans, "fixed" keeps ETKDG's dihedral."""
    from molgen.chem.torsions import (
        dihedral_angles,
        planar_bond_references,
        rotatable_torsions,
    )

    mol = Chem.AddHs(Chem.MolFromSmiles("CC(C)NC(=O)c1ccccc1OC(=O)CCN(C)C(=O)OCC"))
    torsions, _ = rotatable_torsions(mol)
    is_planar, refs = planar_bond_references(mol, torsions)
    assert is_planar.sum() == 4  # amide C(=O)-N, ester C(=O)-O, carbamate C(=O)-N and C(=O)-O
    kw = {"model": load_model(model_path), "sampler": sampler, "steps": 3, "seed": 11}
    snapped = sample_conformers(mol, 4, planar_bonds="snap", **kw)
    xyz = np.stack([c.GetPositions() for c in snapped.GetConformers()])
    phi = np.abs(dihedral_angles(xyz, refs[is_planar]))
    assert np.allclose(np.minimum(phi, np.pi - phi), 0.0, atol=1e-3)
    free = sample_conformers(mol, 4, planar_bonds="free", **kw)
    phi_free = np.abs(dihedral_angles(np.stack([c.GetPositions() for c in free.GetConformers()]), refs[is_planar]))
    assert np.minimum(phi_free, np.pi - phi_free).max() > 0.05  # an untrained model leaves them anywhere
    fixed = sample_conformers(mol, 4, planar_bonds="fixed", max_structures=1, **kw)
    xyz = np.stack([c.GetPositions() for c in fixed.GetConformers()])
    phi = dihedral_angles(xyz, refs[is_planar])
    assert np.allclose(phi, phi[0], atol=1e-3)  # one local structure: all conformers share ETKDG's value
    assert not np.allclose(dihedral_angles(xyz, torsions[~is_planar]), dihedral_angles(xyz[:1], torsions[~is_planar]))
    with pytest.raises(ValueError, match="planar_bonds"):
        sample_conformers(mol, 2, planar_bonds="flat", **kw)


def test_score_scale(model_path):
    mol = Chem.AddHs(Chem.MolFromSmiles("CCCCOc1ccccc1CCN"))
    kw = {"model": load_model(model_path), "steps": 3, "seed": 4}
    from molgen.sampling.options import SamplingOptions

    DEFAULT_SCORE_SCALE = SamplingOptions().score_scale

    default = np.stack([c.GetPositions() for c in sample_conformers(mol, 2, **kw).GetConformers()])
    same = np.stack([c.GetPositions() for c in sample_conformers(mol, 2, score_scale=DEFAULT_SCORE_SCALE, **kw).GetConformers()])
    plain = np.stack([c.GetPositions() for c in sample_conformers(mol, 2, score_scale=1.0, **kw).GetConformers()])
    sharp = np.stack([c.GetPositions() for c in sample_conformers(mol, 2, score_scale=2.5, **kw).GetConformers()])
    np.testing.assert_allclose(default, same)
    assert np.abs(sharp - plain).max() > 1e-3  # same prior, scores scaled: another end point
    with pytest.raises(ValueError, match="score_scale"):
        sample_conformers(mol, 2, score_scale=0.0, **kw)

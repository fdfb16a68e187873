"""MMFF energies/relaxation, energy window and RMSD pruning."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import rdDistGeom

from molgen.chem.postprocess import (
    apply_energy_window,
    heavy_atom_rms_matrix,
    mmff_energies,
    optimize_mmff,
    prune_by_rms,
    select_conformers,
)
from molgen.errors import MoleculeError


def _embed(smiles: str, n: int, seed: int = 21) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = seed
    rdDistGeom.EmbedMultipleConfs(mol, n, params)
    mol.SetProp("_Name", smiles)
    return mol


def _rotated_copy(conf: Chem.Conformer, seed: int = 0) -> Chem.Conformer:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    x = conf.GetPositions() @ q.T + rng.normal(size=3) * 5.0
    out = Chem.Conformer(conf)
    for i, p in enumerate(x):
        out.SetAtomPosition(i, p.tolist())
    return out


def test_optimize_mmff_lowers_energies_and_sets_props() -> None:
    mol = _embed("CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O", 4)
    before = mmff_energies(mol, set_props=False)
    assert not mol.GetConformer(0).HasProp("energy")
    after = optimize_mmff(mol, max_iters=500)
    assert len(after) == 4
    assert all(a <= b + 1e-6 for a, b in zip(after, before))
    assert [c.GetDoubleProp("energy") for c in mol.GetConformers()] == pytest.approx(after)
    assert mmff_energies(mol) == pytest.approx(after, abs=1e-4)


def test_mmff_without_parameters() -> None:
    mol = _embed("OB(O)c1ccccc1", 2)
    with pytest.raises(MoleculeError, match="MMFF94 has no parameters"):
        optimize_mmff(mol)
    with pytest.raises(MoleculeError, match="MMFF94"):
        mmff_energies(mol)


def test_energy_window() -> None:
    mol = _embed("CCCCO", 3)
    for conf, e in zip(mol.GetConformers(), [5.0, 1.0, 3.5]):
        conf.SetDoubleProp("energy", e)
    out = apply_energy_window(mol, 3.0)
    assert [c.GetDoubleProp("energy") for c in out.GetConformers()] == [1.0, 3.5]
    assert [c.GetDoubleProp("delta_energy") for c in out.GetConformers()] == [0.0, 2.5]
    assert mol.GetNumConformers() == 3  # input untouched
    with pytest.raises(ValueError):
        apply_energy_window(mol, -1.0)


def test_energy_window_computes_missing_energies() -> None:
    mol = _embed("CCCCO", 3)
    out = apply_energy_window(mol, 1000.0)
    assert out.GetNumConformers() == 3
    assert min(c.GetDoubleProp("delta_energy") for c in out.GetConformers()) == 0.0
    assert all(c.HasProp("energy") for c in out.GetConformers())


def test_prune_removes_rigid_duplicates() -> None:
    mol = _embed("CC(=O)Nc1ccc(O)cc1", 1)
    mol.AddConformer(_rotated_copy(mol.GetConformer(0)), assignId=True)
    other = _embed("CC(=O)Nc1ccc(O)cc1", 1, seed=99).GetConformer(0)
    mol.AddConformer(Chem.Conformer(other), assignId=True)
    rms = heavy_atom_rms_matrix(mol)
    assert rms.shape == (3, 3) and rms[0, 1] < 1e-3 and np.allclose(rms, rms.T)
    out = prune_by_rms(mol, 0.1)
    assert out.GetNumConformers() == (2 if rms[0, 2] >= 0.1 else 1)
    assert np.allclose(out.GetConformer(0).GetPositions(), mol.GetConformer(0).GetPositions())
    assert prune_by_rms(mol, 0.0).GetNumConformers() == 3


def test_prune_is_symmetry_aware() -> None:
    # Swapping the labels of the two ortho (and meta) carbons of toluene's ring is a
    # symmetry: the RMSD to the relabelled copy must be ~0.
    mol = _embed("Cc1ccccc1", 1)
    perm = [0, 1, 6, 5, 4, 3, 2]  # heavy atoms: methyl, ipso, mirror the ring
    x = mol.GetConformer(0).GetPositions()
    heavy = x[:7][perm]
    conf = Chem.Conformer(mol.GetConformer(0))
    for i, p in enumerate(heavy):
        conf.SetAtomPosition(i, p.tolist())
    mol.AddConformer(conf, assignId=True)
    assert heavy_atom_rms_matrix(mol)[0, 1] < 1e-3
    assert prune_by_rms(mol, 0.1).GetNumConformers() == 1


def test_prune_keeps_lower_energy() -> None:
    mol = _embed("CC(=O)Nc1ccc(O)cc1", 1)
    mol.AddConformer(_rotated_copy(mol.GetConformer(0)), assignId=True)
    mol.GetConformer(0).SetDoubleProp("energy", 2.0)
    mol.GetConformer(1).SetDoubleProp("energy", 1.0)
    out = prune_by_rms(mol, 0.5)
    assert out.GetNumConformers() == 1
    assert out.GetConformer(0).GetDoubleProp("energy") == 1.0


def test_select_conformers_keeps_props() -> None:
    mol = _embed("CCO", 3)
    for k, conf in enumerate(mol.GetConformers()):
        conf.SetIntProp("seed", k)
    out = select_conformers(mol, [2, 0])
    assert [c.GetId() for c in out.GetConformers()] == [0, 1]
    assert [c.GetIntProp("seed") for c in out.GetConformers()] == [2, 0]

"""Rotatable-torsion rules and exact torsion setting (NumPy)."""

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import rdDistGeom

from molgen.chem.torsions import (
    apply_torsion_deltas,
    dihedral_angles,
    rotatable_torsions,
    set_torsion_angles,
)


def embedded(smiles: str, seed: int = 7) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = seed
    assert rdDistGeom.EmbedMolecule(mol, params) == 0
    return mol


def internal_geometry(mol: Chem.Mol, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All bond lengths and all 1-3 distances (which fix the bond angles), Å."""
    bonds = np.array([[b.GetBeginAtomIdx(), b.GetEndAtomIdx()] for b in mol.GetBonds()])
    d = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    topo = Chem.GetDistanceMatrix(mol)
    i, j = np.nonzero(np.triu(topo == 2))
    return d[bonds[:, 0], bonds[:, 1]], d[i, j]


def test_rotatable_bond_rules():
    # butane: only the central C-C bond has heavy atoms on both sides
    tors, _ = rotatable_torsions(Chem.AddHs(Chem.MolFromSmiles("CCCC")))
    assert len(tors) == 1
    # ring bonds, double bonds, terminal methyl/hydroxyl and bonds to sp atoms are never rotatable
    assert len(rotatable_torsions(Chem.MolFromSmiles("C1CCCCC1"))[0]) == 0
    assert len(rotatable_torsions(Chem.MolFromSmiles("C/C=C/C"))[0]) == 0
    assert len(rotatable_torsions(Chem.MolFromSmiles("CCO"))[0]) == 0
    assert len(rotatable_torsions(Chem.MolFromSmiles("CC#CC"))[0]) == 0
    # biphenyl: one rotatable bond between the rings
    assert len(rotatable_torsions(Chem.MolFromSmiles("c1ccccc1-c1ccccc1"))[0]) == 1


def test_moving_side_is_the_smaller_side():
    mol = Chem.AddHs(Chem.MolFromSmiles("CC(C)(C)CCc1ccccc1"))
    tors, masks = rotatable_torsions(mol)
    for (a, u, v, b), mask in zip(tors, masks):
        assert mask[v] and not mask[u] and not mask[a] and mask[b]
        assert mask.sum() <= mol.GetNumAtoms() - mask.sum()


@pytest.mark.parametrize("smiles", ["CC(=O)Nc1ccc(O)cc1OCCN(C)C", "C[C@H](N)C(=O)N[C@@H](Cc1ccccc1)C(=O)OCC"])
def test_torsion_setting_is_exact_and_keeps_local_structure(smiles):
    mol = embedded(smiles)
    xyz = mol.GetConformer().GetPositions()
    tors, masks = rotatable_torsions(mol)
    assert len(tors) >= 3
    rng = np.random.default_rng(3)
    deltas = rng.uniform(-np.pi, np.pi, len(tors))
    moved = apply_torsion_deltas(xyz, tors, masks, deltas)
    before, after = internal_geometry(mol, xyz), internal_geometry(mol, moved)
    np.testing.assert_allclose(after[0], before[0], atol=1e-9)
    np.testing.assert_allclose(after[1], before[1], atol=1e-9)
    change = dihedral_angles(moved, tors) - dihedral_angles(xyz, tors)
    np.testing.assert_allclose(np.angle(np.exp(1j * (change - deltas))), 0.0, atol=1e-9)
    targets = rng.uniform(-np.pi, np.pi, len(tors))
    set_xyz = set_torsion_angles(xyz, tors, masks, targets)
    np.testing.assert_allclose(np.angle(np.exp(1j * (dihedral_angles(set_xyz, tors) - targets))), 0.0, atol=1e-9)


def test_torsion_setting_preserves_stereo():
    smiles = "C/C=C/[C@@H](O)[C@H](N)CC(=O)O"
    mol = embedded(smiles)
    tors, masks = rotatable_torsions(mol)
    moved = apply_torsion_deltas(mol.GetConformer().GetPositions(), tors, masks, np.full(len(tors), 2.0))
    out = Chem.Mol(mol)
    out.GetConformer().SetPositions(moved)
    Chem.AssignStereochemistryFrom3D(out)
    assert Chem.MolToSmiles(Chem.RemoveHs(out)) == Chem.MolToSmiles(Chem.MolFromSmiles(smiles))


def test_planar_bond_references_follow_the_torsion():
    from molgen.chem.torsions import planar_bond_references

    mol = Chem.AddHs(Chem.MolFromSmiles("CC(=O)N(C)CCOC(=O)c1ccccc1NC(=S)NC"))
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = 7
    rdDistGeom.EmbedMolecule(mol, params)
    xyz = mol.GetConformer().GetPositions()
    torsions, masks = rotatable_torsions(mol)
    is_planar, refs = planar_bond_references(mol, torsions)
    # amide C(=O)-N, ester C(=O)-O, thiourea C(=S)-N twice; the ester's O-CH2 and the aryl C-C(=O) are free
    assert is_planar.sum() == 4
    for k in np.flatnonzero(is_planar):
        assert mol.GetAtomWithIdx(int(refs[k, 0])).GetSymbol() in ("O", "S")
        assert {int(refs[k, 1]), int(refs[k, 2])} == {int(torsions[k, 1]), int(torsions[k, 2])}
    deltas = np.linspace(0.3, 1.2, len(torsions))
    moved = apply_torsion_deltas(xyz, torsions, masks, deltas)
    change = dihedral_angles(moved, refs) - dihedral_angles(xyz, refs)
    np.testing.assert_allclose(np.angle(np.exp(1j * change)), deltas, atol=1e-6)

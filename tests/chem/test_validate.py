"""ConformerValidator: ETKDG conformers pass; broken geometries fail with the right key."""

from __future__ import annotations

import time

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import rdDistGeom, rdMolTransforms

from molgen.chem.validate import REASONS, ConformerValidator, ValidationResult

DRUG_LIKE = [
    "CC(=O)Nc1ccc(O)cc1",  # paracetamol
    "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O",  # (S)-ibuprofen
    "OC(=O)c1ccccc1O",  # salicylic acid (intramolecular H-bond)
    "CN1C(=O)CN=C(c2ccccc2)c2cc(Cl)ccc21",  # diazepam
    "CCOC(=O)C1=C[C@@H](OC(CC)CC)[C@H](NC(C)=O)[C@@H](N)C1",  # oseltamivir
    "CN1CC[C@]23c4c5ccc(O)c4O[C@H]2[C@@H](O)C=C[C@H]3[C@H]1C5",  # morphine
    "C[C@]12CC[C@H]3[C@@H](CCC4=CC(=O)CC[C@@]43C)[C@@H]1CC[C@@H]2O",  # testosterone
    "CC/C(=C(/c1ccccc1)c1ccc(OCCN(C)C)cc1)c1ccccc1",  # tamoxifen (E/Z)
    "COc1ccc2[nH]c([S@@](=O)Cc3ncc(C)c(OC)c3C)nc2c1",  # esomeprazole (chiral S)
    "C1CCCCCCCCCCC(=O)NCCCCCCCCC1",  # macrocycle
]
MULTI = "C/C=C/[C@@H](O)[C@H](N)C(=O)O"


def _embed(smiles: str, n: int = 5, seed: int = 13) -> tuple[Chem.Mol, np.ndarray]:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = seed
    ids = list(rdDistGeom.EmbedMultipleConfs(mol, n, params))
    assert ids, smiles
    return mol, np.array([mol.GetConformer(i).GetPositions() for i in ids])


def _cip_from_3d(mol: Chem.Mol, coords: np.ndarray) -> dict[int, str]:
    m = Chem.Mol(mol)
    m.RemoveAllConformers()
    conf = Chem.Conformer(m.GetNumAtoms())
    for i, p in enumerate(coords):
        conf.SetAtomPosition(i, p.tolist())
    conf.Set3D(True)
    m.AddConformer(conf)
    Chem.AssignStereochemistryFrom3D(m)
    return {a.GetIdx(): a.GetProp("_CIPCode") for a in m.GetAtoms() if a.HasProp("_CIPCode")}


@pytest.mark.parametrize("smiles", DRUG_LIKE)
def test_etkdg_conformers_pass(smiles: str) -> None:
    mol, coords = _embed(smiles)
    validator = ConformerValidator(mol)
    results = validator.validate_many(coords)
    assert all(r.ok for r in results), [r.reason for r in results]
    assert validator.validate(coords[0]) == ValidationResult(True, None)


@pytest.mark.parametrize("smiles", [s for s in DRUG_LIKE if "@" in s] + [MULTI])
def test_stereo_check_agrees_with_cip(smiles: str) -> None:
    mol, coords = _embed(smiles, n=3)
    validator = ConformerValidator(mol)
    expected = {i: c for i, c in validator.stereo_centres.items() if c in "RS"}
    assert expected
    mirror = coords * np.array([1.0, 1.0, -1.0])
    for x, xm in zip(coords, mirror):
        assert {i: c for i, c in _cip_from_3d(mol, x).items() if i in expected} == expected
        assert validator.validate(x).ok
        flipped = {i: c for i, c in _cip_from_3d(mol, xm).items() if i in expected}
        assert flipped != expected
        assert validator.validate(xm) == ValidationResult(False, "stereo")


def test_mirror_image_of_achiral_molecule_passes() -> None:
    mol, coords = _embed("CC(=O)Nc1ccc(O)cc1", n=2)
    validator = ConformerValidator(mol)
    assert all(r.ok for r in validator.validate_many(coords * np.array([1.0, 1.0, -1.0])))


def test_unspecified_stereocentre_is_not_checked() -> None:
    mol, coords = _embed("CC(N)C(=O)O", n=2)
    validator = ConformerValidator(mol)
    assert validator.stereo_centres == {}
    assert all(r.ok for r in validator.validate_many(-coords))


def test_inverted_stereocentre_fails() -> None:
    ref, _ = _embed("C[C@H](N)C(=O)O", n=1)
    _, epimer = _embed("C[C@@H](N)C(=O)O", n=3)  # same atom order, other configuration
    validator = ConformerValidator(ref)
    assert [r.reason for r in validator.validate_many(epimer)] == ["stereo"] * 3


def test_flipped_double_bond_fails() -> None:
    ref, coords = _embed("C/C=C/C(=O)O", n=2)
    _, z_coords = _embed("C/C=C\\C(=O)O", n=2)
    validator = ConformerValidator(ref)
    assert validator.stereo_bonds == {(1, 2): "E"}
    assert all(r.ok for r in validator.validate_many(coords))
    assert [r.reason for r in validator.validate_many(z_coords)] == ["stereo", "stereo"]


def test_several_stereo_elements_are_kept() -> None:
    mol, coords = _embed(MULTI, n=10)
    validator = ConformerValidator(mol)
    assert validator.stereo_centres == {3: "R", 5: "S"}
    assert validator.stereo_bonds == {(1, 2): "E"}
    assert all(r.ok for r in validator.validate_many(coords))
    # every single change of configuration is caught
    for other in (
        "C/C=C\\[C@@H](O)[C@H](N)C(=O)O",
        "C/C=C/[C@H](O)[C@H](N)C(=O)O",
        "C/C=C/[C@@H](O)[C@@H](N)C(=O)O",
    ):
        _, wrong = _embed(other, n=3)
        assert [r.reason for r in validator.validate_many(wrong)] == ["stereo"] * 3, other


def test_stretched_bond_fails() -> None:
    mol, coords = _embed("CCOc1ccccc1", n=1)
    x = coords[0].copy()
    bond = mol.GetBondBetweenAtoms(0, 1)
    assert bond is not None
    # move the methyl carbon and its hydrogens 0.6 Å away along the C-C bond
    direction = (x[0] - x[1]) / np.linalg.norm(x[0] - x[1])
    moving = [0] + [
        n.GetIdx() for n in mol.GetAtomWithIdx(0).GetNeighbors() if n.GetAtomicNum() == 1
    ]
    x[moving] += 0.6 * direction
    assert ConformerValidator(mol).validate(x) == ValidationResult(False, "bond_length")


def test_distorted_angle_fails() -> None:
    mol, coords = _embed("CCC(C)(C)C", n=1)
    x = coords[0].copy()
    # swing atom 0 (and its H) about atom 1 by 35° (bond length kept, C-C-C angle changed)
    centre = x[1]
    axis = np.cross(x[0] - x[1], x[2] - x[1])
    axis /= np.linalg.norm(axis)
    theta = np.deg2rad(35.0)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * k @ k
    moving = [0] + [
        n.GetIdx() for n in mol.GetAtomWithIdx(0).GetNeighbors() if n.GetAtomicNum() == 1
    ]
    x[moving] = (x[moving] - centre) @ rot.T + centre
    assert ConformerValidator(mol).validate(x) == ValidationResult(False, "bond_angle")


def test_heavy_atom_clash_fails() -> None:
    # All-syn torsions curl hexane into a near-ring: C0 and C5 (5 bonds apart) collide,
    # while every bond length and angle stays ideal.
    mol, coords = _embed("CCCCCC", n=1)
    conf = mol.GetConformer()
    for i in range(3):
        rdMolTransforms.SetDihedralDeg(conf, i, i + 1, i + 2, i + 3, 0.0)
    x = conf.GetPositions()
    assert np.linalg.norm(x[0] - x[5]) < 1.5
    validator = ConformerValidator(mol)
    assert validator.validate(coords[0]).ok
    assert validator.validate(x) == ValidationResult(False, "clash")


def test_bent_aromatic_ring_fails() -> None:
    mol, coords = _embed("Cc1ccccc1", n=1)
    x = coords[0].copy()
    ring = [1, 2, 3, 4, 5, 6]
    p = x[ring] - x[ring].mean(axis=0)
    normal = np.linalg.svd(p)[2][2]
    moving = [4] + [
        n.GetIdx() for n in mol.GetAtomWithIdx(4).GetNeighbors() if n.GetAtomicNum() == 1
    ]
    x[moving] += 0.35 * normal
    assert ConformerValidator(mol).validate(x) == ValidationResult(False, "planarity")


def test_salt_fragments_are_not_clash_checked() -> None:
    # ETKDG places disconnected fragments on top of each other; that is not a clash.
    mol, coords = _embed("CC(=O)Nc1ccc(O)cc1.Cl", n=3)
    assert all(r.ok for r in ConformerValidator(mol).validate_many(coords))


def test_nonfinite_and_shape() -> None:
    mol, coords = _embed("CCO", n=1)
    validator = ConformerValidator(mol)
    x = coords[0].copy()
    x[2, 1] = np.nan
    assert validator.validate(x) == ValidationResult(False, "nonfinite")
    with pytest.raises(ValueError, match="shape"):
        validator.validate(x[:-1])
    assert REASONS[0] == "nonfinite" and "clash" in REASONS


def test_validation_is_fast() -> None:
    mol, coords = _embed(DRUG_LIKE[4], n=20)  # oseltamivir, 3 stereocentres
    validator = ConformerValidator(mol)
    validator.validate(coords[0])
    start = time.perf_counter()
    for x in coords:
        validator.validate(x)
    per_conf = (time.perf_counter() - start) / len(coords)
    assert per_conf < 5e-3  # typically ~0.1 ms; generous for loaded CI machines

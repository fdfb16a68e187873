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


# -- the checks that reproduce PoseBusters' conformer checks --------------------------------------


def _set_dihedrals(mol: Chem.Mol, quads: list[tuple[int, int, int, int]], degrees: list[float]) -> np.ndarray:
    conf = Chem.Conformer(mol.GetConformer(0))
    for quad, deg in zip(quads, degrees):
        rdMolTransforms.SetDihedralDeg(conf, *quad, float(deg))
    return conf.GetPositions()


def syn_pentane() -> tuple[Chem.Mol, np.ndarray, np.ndarray]:
    """Pentane: 5 ETKDG conformers and one driven to g+g- (60°, -60°): no heavy atoms collide,
    but hydrogens of C0 and C4 overlap (UFF energy ~1e5 x the relaxed one)."""
    mol, coords = _embed("CCCCC")
    return mol, coords, _set_dihedrals(mol, [(0, 1, 2, 3), (1, 2, 3, 4)], [60.0, -60.0])


def twisted_alkene() -> tuple[Chem.Mol, np.ndarray, np.ndarray]:
    """Tetramethylethylene with the C=C twisted by 60° (bond lengths and angles unchanged)."""
    mol, coords = _embed("CC(C)=C(C)C")
    return mol, coords, _set_dihedrals(mol, [(0, 1, 3, 4)], [60.0])


def flat_cyclohexane() -> tuple[Chem.Mol, np.ndarray, np.ndarray]:
    """Cyclohexane with every ring atom (and its hydrogens) projected onto the mean ring plane."""
    mol, coords = _embed("C1CCCCC1")
    x = coords[0].copy()
    centre = x[:6].mean(axis=0)
    normal = np.linalg.svd(x[:6] - centre)[2][2]
    for a in range(6):
        moving = [a] + [
            n.GetIdx() for n in mol.GetAtomWithIdx(a).GetNeighbors() if n.GetAtomicNum() == 1
        ]
        x[moving] -= np.dot(x[a] - centre, normal) * normal
    return mol, coords, x


def curled_hexane() -> tuple[Chem.Mol, np.ndarray, np.ndarray]:
    """Hexane with all-syn torsions: C0 and C5 collide (see test_heavy_atom_clash_fails)."""
    mol, coords = _embed("CCCCCC")
    return mol, coords, _set_dihedrals(mol, [(0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5)], [0.0] * 3)


def test_new_reasons_are_appended_in_order() -> None:
    assert REASONS[:6] == ("nonfinite", "stereo", "bond_length", "bond_angle", "clash", "planarity")
    assert REASONS[6:] == ("internal_clash", "double_bond_planarity", "flat_ring", "internal_energy")


def test_hydrogen_overlap_fails_internal_energy() -> None:
    mol, coords, bad = syn_pentane()
    validator = ConformerValidator(mol)
    assert all(r.ok for r in validator.validate_many(coords))
    assert validator.validate(bad) == ValidationResult(False, "internal_energy")
    failed = {k for k, v in ConformerValidator(mol).failures(bad[None]).items() if v[0]}
    assert failed == {"internal_energy"}  # no heavy-atom check sees it
    energy = validator.uff_energies(bad[None])[0]
    assert energy / validator.compute_reference_energy() > 1000


def test_energy_reference_from_a_strained_start_is_recomputed() -> None:
    # a validator whose first stack is the broken conformer alone: the quick estimate from that
    # start is not trusted, the full minimisation relaxes the overlap, the conformer still fails
    mol, coords, bad = syn_pentane()
    validator = ConformerValidator(mol)
    assert validator.validate(bad) == ValidationResult(False, "internal_energy")
    assert validator.quick_energy is None and validator.reference_energy is not None
    assert validator.reference_energy < 20.0  # kcal/mol, relaxed pentane
    assert all(r.ok for r in validator.validate_many(coords))


def test_quick_energy_estimate_decides_clear_cases_and_defers_close_ones() -> None:
    mol, coords, bad = syn_pentane()
    validator = ConformerValidator(mol)
    validator.validate_many(coords)
    # clear cases: the 200-step reference is not needed
    assert validator.quick_energy is not None and validator.reference_energy is None
    assert validator.validate(bad).reason == "internal_energy"
    assert validator.reference_energy is None
    # a ratio between quick_gate x and 1 x the threshold needs the full reference
    ratio = validator.uff_energies(coords).max() / validator.quick_energy
    close = ConformerValidator(mol, energy_ratio=ratio / 0.6)
    assert all(r.ok for r in close.validate_many(coords))
    assert close.quick_energy == validator.quick_energy
    assert close.reference_energy is not None
    assert close.reference_energy <= close.quick_energy
    # same verdicts with the quick stage switched off
    full = ConformerValidator(mol, quick_iters=0)
    both = np.concatenate([coords, bad[None]])
    assert full.validate_many(both) == ConformerValidator(mol).validate_many(both)
    assert full.quick_energy is None and full.reference_energy is not None


def test_given_reference_energy_is_used() -> None:
    mol, coords = _embed("CCCCC")
    energy = ConformerValidator(mol).uff_energies(coords[:1])[0]
    validator = ConformerValidator(mol, reference_energy=energy / 150.0)
    assert validator.validate(coords[0]) == ValidationResult(False, "internal_energy")
    assert ConformerValidator(mol, reference_energy=energy / 50.0).validate(coords[0]).ok


def test_twisted_double_bond_fails() -> None:
    mol, coords, bad = twisted_alkene()
    validator = ConformerValidator(mol)
    assert all(r.ok for r in validator.validate_many(coords))
    assert validator.validate(bad) == ValidationResult(False, "double_bond_planarity")


def test_flat_saturated_ring_fails() -> None:
    mol, coords, bad = flat_cyclohexane()
    # flattening also opens the ring's angles; widen that tolerance to see this check alone
    validator = ConformerValidator(mol, angle_tol=1.0)
    assert all(r.ok for r in validator.validate_many(coords))
    assert validator.validate(bad) == ValidationResult(False, "flat_ring")
    assert ConformerValidator(mol).validate(bad).reason == "bond_angle"


def test_internal_clash_uses_distance_geometry_lower_bounds() -> None:
    mol, coords, bad = curled_hexane()
    # the older, vdW-radius clash check fires first; switched off, the new one catches it
    validator = ConformerValidator(mol, clash_scale=0.0)
    assert all(r.ok for r in validator.validate_many(coords))
    assert validator.validate(bad) == ValidationResult(False, "internal_clash")
    # 1-4 heavy pairs are included (as in PoseBusters), bonds and angles are not
    assert validator._ic_idx.shape[1] == 6  # C0-C3, C0-C4, C0-C5, C1-C4, C1-C5, C2-C5


@pytest.mark.parametrize("smiles", DRUG_LIKE[:6])
def test_failures_agrees_with_validate_many(smiles: str) -> None:
    mol, coords = _embed(smiles, n=4)
    broken = coords.copy()
    broken[1, 0] += 5.0  # one atom pulled away: bonds and more fail
    failures = ConformerValidator(mol).failures(broken)
    assert set(failures) == set(REASONS)
    results = ConformerValidator(mol).validate_many(broken)
    for k, result in enumerate(results):
        failed = [r for r in REASONS if failures[r][k]]
        assert (failed[0] if failed else None) == result.reason


def test_posebusters_checks_can_be_switched_off() -> None:
    mol, _, bad = syn_pentane()
    validator = ConformerValidator(mol, posebusters_checks=False)
    assert validator.validate(bad).ok and not validator.energy_checked


def test_core_import_does_not_load_posebusters() -> None:
    import subprocess
    import sys

    code = (
        "import sys, molgen.chem.validate as v; "
        "v.ConformerValidator(__import__('rdkit.Chem', fromlist=['x']).AddHs("
        "__import__('rdkit.Chem', fromlist=['x']).MolFromSmiles('CCO'))); "
        "assert 'posebusters' not in sys.modules and 'pandas' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("smiles", ["C", "FC(F)F", "ClCCl"])
def test_tiny_molecules_pass_the_energy_check(smiles: str) -> None:
    """Relaxed UFF energy near zero: the ratio is meaningless, the 10 kcal/mol margin lets them pass."""
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMultipleConfs(mol, 3, randomSeed=3)
    coords = np.array([c.GetPositions() for c in mol.GetConformers()])
    assert [r.reason for r in ConformerValidator(mol).validate_many(coords)] == [None, None, None]

"""Evaluation of generated 3D molecules: bond perception, EDM and charge-aware stability,
validity / uniqueness / novelty, geometry distributions and Wasserstein distances."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import rdDistGeom, rdForceFieldHelpers

from molgen.chem.molecule_metrics import (
    atom_stability,
    atom_stability_charged,
    bond_order_matrix,
    canonicalize_smiles,
    circular_wasserstein_distance,
    edm_bond_order,
    edm_bond_order_matrix,
    geometry_distributions,
    mol_atom_stability_charged,
    molecule_metrics,
    wasserstein_distances,
)
from molgen.chem.perception import canonical_smiles, mol_from_atoms

GOOD = ["CCO", "CC(N)=O", "c1ccccc1", "c1cc[nH]c1", "OC(=O)c1ccncc1"]


@cache
def _embedded(smiles: str) -> Chem.Mol:
    """ETKDGv3 + MMFF conformer with explicit hydrogens (seed 42)."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = 42
    assert rdDistGeom.EmbedMolecule(mol, params) == 0
    rdForceFieldHelpers.MMFFOptimizeMolecule(mol, maxIters=2000)
    return mol


def _arrays(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    q = np.array([a.GetFormalCharge() for a in mol.GetAtoms()])
    return z, mol.GetConformer().GetPositions(), q


def _sample(smiles: str) -> dict[str, np.ndarray]:
    z, pos, _ = _arrays(_embedded(smiles))
    return {"atomic_numbers": z, "positions": pos}


# --------------------------------------------------------------------------- EDM stability


def test_edm_bond_order_thresholds() -> None:
    # C-C: single < 154+10 pm, double < 134+5 pm, triple < 120+3 pm
    assert edm_bond_order("C", "C", 1.65) == 0
    assert edm_bond_order("C", "C", 1.53) == 1
    assert edm_bond_order("C", "C", 1.37) == 2
    assert edm_bond_order("C", "C", 1.21) == 3
    assert edm_bond_order("C", "O", 1.22) == 2  # carbonyl: < 120+5 pm
    assert edm_bond_order("H", "C", 1.09) == edm_bond_order("C", "H", 1.09) == 1
    assert edm_bond_order("H", "H", 0.74) == 1
    assert (
        edm_bond_order("B", "C", 1.5) == 0
    )  # pair missing from EDM's single-bond table
    assert edm_bond_order("C", "C", float("nan")) == 0


def test_edm_bond_order_matrix_matches_scalar() -> None:
    mol = _embedded("OC(=O)c1ccncc1")
    z, pos, _ = _arrays(mol)
    sym = [a.GetSymbol() for a in mol.GetAtoms()]
    mat = edm_bond_order_matrix(z, pos)
    assert (mat == mat.T).all() and (np.diag(mat) == 0).all()
    for i in range(len(z)):
        for j in range(len(z)):
            if i != j:
                assert mat[i, j] == edm_bond_order(
                    sym[i], sym[j], np.linalg.norm(pos[i] - pos[j])
                )


@pytest.mark.parametrize("smiles", ["CCO", "CC(N)=O", "CC#N", "c1cc[nH]c1"])
def test_good_molecules_are_edm_stable(smiles: str) -> None:
    z, pos, _ = _arrays(_embedded(smiles))
    assert atom_stability(z, pos).all()


def test_edm_benzene_is_unstable_as_in_edm() -> None:
    """Faithful to EDM: an aromatic C-C of 1.395 Å is above the double-bond cut (1.39 Å), so
    ring carbons get valence 3. Kept on purpose: this is EDM's metric, not chemistry."""
    z, pos, _ = _arrays(_embedded("c1ccccc1"))
    stable = atom_stability(z, pos)
    assert not stable[z == 6].any() and stable[z == 1].all()


# ------------------------------------------------------------ perception and validity


@pytest.mark.parametrize("smiles", [*GOOD, "[NH3+]CC(=O)[O-]"])
def test_perception_round_trip(smiles: str) -> None:
    mol = _embedded(smiles)
    z, pos, q = _arrays(mol)
    res = mol_from_atoms(z, pos, q)
    assert res.valid and res.reason is None and res.num_fragments == 1
    assert res.smiles == res.largest_fragment_smiles == canonical_smiles(mol)
    assert res.mol is not None and res.mol.GetNumAtoms() == len(z)
    assert res.mol.GetNumConformers() == 1
    np.testing.assert_allclose(res.mol.GetConformer().GetPositions(), pos)
    assert [a.GetFormalCharge() for a in res.mol.GetAtoms()] == q.tolist()
    assert mol_atom_stability_charged(res.mol).all()
    assert mol_atom_stability_charged(res.mol, table="midi").all()


@pytest.mark.parametrize("smiles", GOOD)
def test_good_molecules_charge_aware_stable_without_charges(smiles: str) -> None:
    mol = _embedded(smiles)
    z, pos, _ = _arrays(mol)
    res = mol_from_atoms(
        z, pos
    )  # no charges given: neutral molecules perceived as neutral
    assert res.valid and res.smiles == canonical_smiles(mol) and res.charge_used == 0
    assert res.charges_from_input is None
    assert atom_stability_charged(z, None, bond_order_matrix(mol)).all()
    assert mol_atom_stability_charged(Chem.RemoveHs(mol)).all()  # implicit hydrogens


def test_aromatic_one_and_a_half_counting() -> None:
    """Aromatic bonds as 1.5: fine for benzene carbons (1.5 + 1.5 + 1 = 4), wrong for
    pyrrole's NH (1.5 + 1.5 + 1 = 4 for a neutral N); kekulised orders (default) are right."""
    benzene, pyrrole = _embedded("c1ccccc1"), _embedded("c1cc[nH]c1")
    for mol in (benzene, pyrrole):
        assert mol_atom_stability_charged(mol).all()
    z, _, q = _arrays(benzene)
    assert atom_stability_charged(
        z, q, bond_order_matrix(benzene, kekulize=False)
    ).all()
    z, _, q = _arrays(pyrrole)
    stable = atom_stability_charged(z, q, bond_order_matrix(pyrrole, kekulize=False))
    assert not stable[z == 7].any() and stable[z != 7].all()


def _ethanol_broken(kind: str) -> tuple[np.ndarray, np.ndarray]:
    mol = _embedded("CCO")
    z, pos, _ = _arrays(mol)
    pos = pos.copy()
    h = next(a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() == 1)
    c = mol.GetAtomWithIdx(h).GetNeighbors()[0].GetIdx()
    if kind == "moved":  # one hydrogen pulled 3 Å further out along its C-H bond
        u = pos[h] - pos[c]
        pos[h] += 3.0 * u / np.linalg.norm(u)
    elif kind == "removed":
        keep = np.arange(len(z)) != h
        return z[keep], pos[keep]
    elif kind == "overlap":  # a hydrogen on top of the oxygen
        pos[h] = pos[int(np.flatnonzero(z == 8)[0])]
    return z, pos


@pytest.mark.parametrize("kind", ["removed", "overlap"])
def test_broken_molecules_invalid(kind: str) -> None:
    z, pos = _ethanol_broken(kind)
    assert not atom_stability(z, pos).all()
    res = mol_from_atoms(z, pos)
    assert not res.valid and res.mol is None and res.smiles is None
    assert res.reason is not None and res.reason.startswith("bond perception failed")
    out = molecule_metrics([{"atomic_numbers": z, "positions": pos}])
    assert out["reasons"] == {res.reason: 1}
    assert (
        out["validity"] == out["mol_stability"] == out["mol_stability_charged"] == 0.0
    )


def test_moved_hydrogen_is_valid_but_disconnected_and_unstable() -> None:
    """As in EDM (largest fragment sanitises), a hydrogen pulled 3 Å away leaves a valid but
    disconnected sample; RDKit makes it [CH2-]CO.[H+], which the charge-aware check with the
    sample's own (neutral) charges rejects, and EDM's distance check rejects too."""
    z, pos = _ethanol_broken("moved")
    stable = atom_stability(z, pos)
    assert stable.sum() == len(z) - 2  # the lone H and the carbon it left
    res = mol_from_atoms(z, pos, np.zeros_like(z))
    assert (
        res.valid
        and res.num_fragments == 2
        and res.reason == "disconnected (2 fragments)"
    )
    assert res.smiles == "[CH2-]CO.[H+]" and res.largest_fragment_smiles == "[CH2-]CO"
    assert res.charges_from_input is True and res.charges_consistent is False
    out = molecule_metrics([{"atomic_numbers": z, "positions": pos}])
    assert out["reasons"] == {"disconnected (2 fragments)": 1}
    assert out["validity"] == 1.0 and out["connected"] == 0.0
    assert out["mol_stability"] == out["mol_stability_charged"] == 0.0
    assert out["atom_stability_charged"] == pytest.approx((len(z) - 2) / len(z))


def test_missing_hydrogen_charge_aware_tables() -> None:
    """A CH2 radical carbon has valence 3: unstable under the strict table, stable under
    MiDi's lenient one (C⁰ 3 allowed)."""
    rw = Chem.RWMol(_embedded("CCO"))
    h = next(a.GetIdx() for a in rw.GetAtoms() if a.GetAtomicNum() == 1)
    c = rw.GetAtomWithIdx(h).GetNeighbors()[0].GetIdx()
    rw.RemoveAtom(h)
    c -= int(c > h)
    z = np.array([a.GetAtomicNum() for a in rw.GetAtoms()])
    bo = bond_order_matrix(rw)
    strict = atom_stability_charged(z, None, bo)
    assert not strict[c] and strict.sum() == len(z) - 1
    assert atom_stability_charged(z, None, bo, table="midi").all()


def test_zwitterion_charge_aware() -> None:
    mol = _embedded("[NH3+]CC(=O)[O-]")
    z, pos, q = _arrays(mol)
    assert sorted(q.tolist()) == [-1] + [0] * 8 + [1]
    res = mol_from_atoms(z, pos, q)
    assert res.valid and res.smiles == "[NH3+]CC(=O)[O-]"
    assert res.charges_from_input is True and res.charges_consistent is True
    assert res.charge_used == 0
    bo = bond_order_matrix(res.mol)
    assert atom_stability_charged(z, q, bo).all()
    neutral = atom_stability_charged(z, np.zeros_like(q), bo)
    assert not neutral[z == 7].any()  # N with 4 bonds needs its + charge
    assert not atom_stability(z, pos).all()  # EDM's definition is charge-blind


def test_charge_fallback_to_neutral() -> None:
    z, pos, _ = _arrays(_embedded("CCO"))
    res = mol_from_atoms(z, pos, total_charge=1)  # wrong charge: retried as neutral
    assert res.valid and res.charge_used == 0 and res.smiles == "CCO"


@pytest.mark.parametrize(
    ("z", "pos", "reason"),
    [
        ([6, 8], [[0.0, 0, 0], [np.nan, 0, 0]], "non-finite positions"),
        ([6, 8], [[0.0, 0, 0], [np.inf, 0, 0]], "non-finite positions"),
        ([6, 8], np.zeros((2, 3)), None),  # overlapping atoms
        ([6] * 12, np.zeros((12, 3)), None),
        ([6, 0], [[0.0, 0, 0], [1.2, 0, 0]], "unknown element"),
        ([6, 250], [[0.0, 0, 0], [1.2, 0, 0]], "unknown element"),
        (
            [80, 6],
            [[0.0, 0, 0], [2.0, 0, 0]],
            "bond perception failed: unsupported element",
        ),
        ([6.5, 6], np.zeros((2, 3)), "invalid input: non-integer"),
        ([6, 6], np.zeros((3, 3)), "invalid input: shape"),
        ([], np.zeros((0, 3)), "empty"),
        ("CCO", None, None),
        (None, None, None),
    ],
)
def test_perception_never_raises(z: object, pos: object, reason: str | None) -> None:
    res = mol_from_atoms(z, pos)  # type: ignore[arg-type]
    assert not res.valid and res.mol is None and res.reason
    if reason is not None:
        assert res.reason == reason


def test_nan_sample_in_metrics() -> None:
    sample = _sample("CCO")
    bad = {
        "atomic_numbers": sample["atomic_numbers"],
        "positions": sample["positions"].copy(),
    }
    bad["positions"][0] = np.nan
    out = molecule_metrics([sample, bad])
    assert out["validity"] == 0.5 and out["mol_stability"] == 0.5
    assert out["reasons"] == {"non-finite positions": 1}


# ---------------------------------------------------------------- sample-level metrics


def test_molecule_metrics_uniqueness_novelty() -> None:
    ethanol, acetamide, pyridine_acid = (
        _sample("CCO"),
        _sample("CC(N)=O"),
        _sample("OC(=O)c1ccncc1"),
    )
    water = _sample("O")
    far = {
        "atomic_numbers": np.concatenate(
            [ethanol["atomic_numbers"], water["atomic_numbers"]]
        ),
        "positions": np.concatenate([ethanol["positions"], water["positions"] + 10.0]),
    }
    z, pos = _ethanol_broken("removed")
    broken = {"atomic_numbers": z, "positions": pos}
    samples = [ethanol, ethanol, acetamide, pyridine_acid, far, broken]
    training = canonicalize_smiles(["OCC", "O=C(O)c1ccncc1.Cl", "not a smiles"])
    assert training == {"CCO", "O=C(O)c1ccncc1"}

    out = molecule_metrics(samples, training)
    assert out["n_samples"] == 6 and out["n_valid"] == 5
    assert out["validity"] == pytest.approx(5 / 6)
    assert out["connected"] == pytest.approx(
        5 / 6
    )  # `far` has 2 fragments, `broken` has 1
    assert out["valid_and_connected"] == pytest.approx(4 / 6)
    # largest fragments: CCO x3, CC(N)=O, O=C(O)c1ccncc1 -> 3 unique of 5 valid
    assert out["n_unique"] == 3 and out["uniqueness"] == pytest.approx(3 / 5)
    assert out["novelty"] == pytest.approx(1 / 3)  # only acetamide is new
    assert out["reasons"] == {
        "disconnected (2 fragments)": 1,
        "bond perception failed: charge mismatch": 1,
    }
    # EDM: ethanol x2 (+ ethanol & water), acetamide, pyridine acid (aromatic ring, unstable)
    assert out["mol_stability"] == pytest.approx(4 / 6)
    assert out["mol_stability_charged"] == pytest.approx(5 / 6)
    assert 0.9 < out["atom_stability"] < 1.0
    assert molecule_metrics(samples)["novelty"] is None


def test_molecule_metrics_empty() -> None:
    out = molecule_metrics([])
    assert out["n_samples"] == 0 and np.isnan(out["validity"]) and out["reasons"] == {}


# ------------------------------------------------------------------------- geometry


def test_geometry_distributions_keys_and_values() -> None:
    mols = [_embedded(s) for s in ("CCO", "c1ccccc1", "CC(N)=O")]
    geo = geometry_distributions(mols)
    bonds, angles, torsions = geo["bonds"], geo["angles"], geo["torsions"]
    assert bonds["C:C"].size == 6 and np.allclose(bonds["C:C"], 1.395, atol=0.01)
    assert bonds["C=O"].size == 1 and 1.2 < bonds["C=O"][0] < 1.25
    assert {"C-C", "C-H", "C-O", "H-O", "C-N", "H-N"} <= set(bonds)
    assert np.allclose(angles["C:C:C"], 120.0, atol=1.0)
    assert angles["C-C-O"].size == 1 and 105 < angles["C-C-O"][0] < 115
    assert "C-C-C" not in angles and "C:C-H" in angles
    assert np.allclose(np.abs(torsions["C:C:C:C"]), 0.0, atol=1.0)  # planar ring
    assert torsions["C:C:C:C"].size == 6  # one a-b-c-d path around each ring bond
    assert "C-C-O" not in torsions and set(torsions) == {
        "C:C:C:C"
    }  # no heavy 4-paths else
    no_h = geometry_distributions(mols, include_hydrogens=False)
    assert not any("H" in k for k in [*no_h["bonds"], *no_h["angles"]])


def test_wasserstein_self_zero_and_shift() -> None:
    mols = [_embedded(s) for s in ("CCCCCO", "c1ccccc1CC", "CCOC(=O)CCN")]
    geo = geometry_distributions(mols * 10)
    same = wasserstein_distances(geo, geo)
    assert same["bonds"] and same["angles"] and same["torsions"]
    for kind in ("bonds", "angles", "torsions"):
        assert all(v == pytest.approx(0.0, abs=1e-9) for v in same[kind].values())
        assert same[f"{kind}_mean"] == pytest.approx(0.0, abs=1e-9)

    rng = np.random.default_rng(42)
    bonds = rng.normal(1.5, 0.02, 200)
    angles = rng.normal(110.0, 3.0, 200)
    torsions = (
        np.mod(rng.normal(178.0, 3.0, 200) + 180.0, 360.0) - 180.0
    )  # straddles ±180
    gen = {
        "bonds": {"C-C": bonds, "C-O": bonds[:10]},
        "angles": {"C-C-C": angles},
        "torsions": {"C-C-C-C": torsions},
    }
    shifted = {
        "bonds": {"C-C": bonds + 0.05, "C-O": bonds[:10] + 1.0, "C=O": bonds},
        "angles": {"C-C-C": angles - 2.5},
        "torsions": {"C-C-C-C": np.mod(torsions + 4.0 + 180.0, 360.0) - 180.0},
    }
    w = wasserstein_distances(gen, shifted)
    assert set(w["bonds"]) == {"C-C"}  # C-O has < 20 values, C=O is only in one set
    assert w["bonds"]["C-C"] == pytest.approx(0.05)
    assert w["angles"]["C-C-C"] == pytest.approx(2.5)
    assert w["torsions"]["C-C-C-C"] == pytest.approx(4.0)  # on the circle, not ~350
    assert w["bonds_mean"] == pytest.approx(0.05) and w[
        "torsions_mean"
    ] == pytest.approx(4.0)
    assert np.isnan(wasserstein_distances({}, shifted)["angles_mean"])


def test_circular_wasserstein_small_cases() -> None:
    assert circular_wasserstein_distance(
        np.array([179.0]), np.array([-179.0])
    ) == pytest.approx(2.0)
    assert circular_wasserstein_distance(
        np.array([0.0, 180.0]), np.array([90.0, -90.0])
    ) == pytest.approx(90.0)
    assert (
        circular_wasserstein_distance(np.array([10.0]), np.array([10.0, 10.0])) == 0.0
    )
    assert np.isnan(circular_wasserstein_distance(np.array([]), np.array([1.0])))

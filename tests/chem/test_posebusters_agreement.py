"""ConformerValidator's verdicts agree with PoseBusters' molecule checks (``config="mol"``).

Good conformers (ETKDG) and deliberately broken ones (built in test_validate.py) of a few small
molecules: PoseBusters and the validator must pass and fail the same conformers, and each new
validator check must agree with the PoseBusters check it reproduces. About 5 s on one core.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem
from test_validate import (
    _embed,
    curled_hexane,
    flat_cyclohexane,
    syn_pentane,
    twisted_alkene,
)

from molgen.chem.validate import (
    DOUBLE_BOND_SMARTS,
    NONFLAT_RING_SMARTS,
    ConformerValidator,
)

posebusters = pytest.importorskip("posebusters")
yaml = pytest.importorskip("yaml")

from molgen.bench.posebusters_agreement import MIRRORED, posebusters_verdicts


@pytest.fixture(scope="module")
def buster():
    return posebusters.PoseBusters(config="mol")


def _with_conformers(mol: Chem.Mol, coords: np.ndarray) -> Chem.Mol:
    out = Chem.Mol(mol)
    out.RemoveAllConformers()
    for x in coords:
        conf = Chem.Conformer(out.GetNumAtoms())
        conf.SetPositions(np.ascontiguousarray(x, dtype=np.float64))
        out.AddConformer(conf, assignId=True)
    return out


def test_thresholds_and_patterns_match_posebusters_config() -> None:
    config = yaml.safe_load((Path(posebusters.__file__).parent / "config" / "mol.yml").read_text())
    modules = {m["function"] + str(m.get("parameters", {}).get("check_nonflat", "")): m for m in config["modules"]}
    geometry = modules["distance_geometry"]["parameters"]
    assert geometry["threshold_clash"] == pytest.approx(1 - 0.7)  # internal_clash_scale
    assert geometry["ignore_hydrogens"] is True
    bounds = geometry["bound_matrix_params"]
    assert bounds["set15bounds"] and bounds["doTriangleSmoothing"] and not bounds["useMacrocycle14config"]
    # stricter validator checks imply PoseBusters' bond (25 %), angle (25 %) and ring checks (0.25 Å)
    assert geometry["threshold_bad_bond_length"] == 0.25 and geometry["threshold_bad_angle"] == 0.25
    assert modules["flatness"]["parameters"]["threshold_flatness"] == 0.25
    flat = [m for m in config["modules"] if m["function"] == "flatness"]
    double = next(m for m in flat if "trigonal_planar_double_bonds" in m["parameters"]["flat_systems"])
    assert tuple(double["parameters"]["flat_systems"].values()) == DOUBLE_BOND_SMARTS
    assert double["parameters"]["threshold_flatness"] == 0.25  # double_bond_tol
    nonflat = next(m for m in flat if m["parameters"].get("check_nonflat"))
    assert tuple(nonflat["parameters"]["flat_systems"].values()) == NONFLAT_RING_SMARTS
    assert nonflat["parameters"]["threshold_flatness"] == 0.05
    defaults = ConformerValidator(Chem.AddHs(Chem.MolFromSmiles("C1CCCCC1")))
    # molgen is at least as strict as PoseBusters, with a margin for rounding and for its estimate of
    # PoseBusters' reference energy
    assert defaults.flat_ring_tol >= 0.05 and defaults.energy_ratio <= 100.0
    energy = [m for m in config["modules"] if m["function"] == "energy_ratio"]
    assert {m["parameters"]["threshold_energy_ratio"] for m in energy} == {100.0}  # energy_ratio
    assert {m["parameters"]["ensemble_number_conformations"] for m in energy} == {50}


NEW = ("internal_clash", "double_bond_planarity", "flat_ring", "internal_energy")
CASES = {
    # name: (mol, good conformers, broken conformer, validator check it must trip)
    "syn_pentane": (syn_pentane, "internal_energy"),
    "twisted_alkene": (twisted_alkene, "double_bond_planarity"),
    "flat_cyclohexane": (flat_cyclohexane, "flat_ring"),
    "curled_hexane": (curled_hexane, "internal_clash"),
}


@pytest.mark.parametrize("name", CASES)
def test_broken_and_good_conformers_agree_with_posebusters(name: str, buster) -> None:
    make, check = CASES[name]
    mol, good, bad = make()
    coords = np.concatenate([good[:3], bad[None]])
    results = ConformerValidator(mol).validate_many(coords)
    failures = ConformerValidator(mol).failures(coords)
    pb = posebusters_verdicts(_with_conformers(mol, coords), buster)
    assert [r.ok for r in results] == [v["passes"] for v in pb] == [True, True, True, False]
    assert failures[check].tolist() == [False, False, False, True]
    assert MIRRORED[check] in pb[-1]["failed"]
    # the new checks fail exactly where PoseBusters' checks they reproduce fail; the older, stricter
    # bond, angle and aromatic-ring checks fail at least there
    for reason, pb_check in MIRRORED.items():
        pb_failed = [pb_check in v["failed"] for v in pb]
        if reason in NEW:
            assert failures[reason].tolist() == pb_failed, reason
        else:
            assert all(f or not p for f, p in zip(failures[reason], pb_failed)), reason


@pytest.mark.parametrize("smiles", ["CC(=O)Nc1ccc(O)cc1", "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O"])
def test_drug_like_conformers_agree_with_posebusters(smiles: str, buster) -> None:
    mol, coords = _embed(smiles, n=3)
    bad = coords[0].copy()
    # a heavy atom moved to 0.5 Å from another 4 bonds away (its own bonds stretch too)
    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    topo = Chem.GetDistanceMatrix(mol)
    i, j = next((i, j) for i in heavy for j in heavy if topo[i, j] == 4)
    bad[j] = bad[i] + 0.5 * (bad[j] - bad[i]) / np.linalg.norm(bad[j] - bad[i])
    validator = ConformerValidator(mol)
    stack = np.concatenate([coords, bad[None]])
    ours = [r.ok for r in validator.validate_many(stack)]
    pb = posebusters_verdicts(_with_conformers(mol, stack), buster)
    assert ours == [v["passes"] for v in pb] == [True, True, True, False]
    # UFF energies are PoseBusters' numbers; the reference is close to its ensemble mean
    energies = validator.uff_energies(stack)
    assert np.allclose(energies, [v["energy"] for v in pb], rtol=1e-6)
    ratio = validator.compute_reference_energy() / pb[0]["ensemble_mean"]
    assert 0.6 < ratio < 1.2

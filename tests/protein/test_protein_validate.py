"""Protein validation: every check passes on the 2EQQ NMR models and fires on a structure broken on purpose."""

from __future__ import annotations

from pathlib import Path

import mdtraj as md
import numpy as np
import pytest

from molgen.protein.validate import (
    CHECKS,
    ProteinChecks,
    ProteinGeometry,
    bonds_from_geometry,
    validate_frames,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "protein"



def _atom(traj, resi: int, name: str) -> int:
    return traj.topology.select(f"resid {resi} and name {name}")[0]


def test_nmr_models_pass_every_check(nmr):
    result = validate_frames(nmr, nmr[0])  # each model against the first one's bonds (angles within 20°)
    assert result.valid.all() and result.counts == {}
    assert 3.7 < result.worst["ca_ca"] < 4.0 and 1.3 < result.worst["peptide_bond"] < 1.4
    assert result.worst["chirality"] < -90 and result.worst["clash"] > 1.5


def test_geometry_bonds_and_peptide_lists(nmr):
    geo = ProteinGeometry.of(nmr[0])
    assert len(geo.peptide_bonds) == len(geo.ca_pairs) == nmr.n_residues - 1
    n_gly = sum(r.name == "GLY" for r in nmr.topology.residues)
    assert len(geo.chiral) == nmr.n_residues - n_gly
    # perceived bonds agree with mdtraj's template bonds for this standard PDB
    template = {tuple(sorted((a.index, b.index))) for a, b in nmr.topology.bonds}
    assert {tuple(b) for b in geo.bonds.tolist()} == template


def _broken(nmr, check: str) -> md.Trajectory:
    t = nmr[0]
    xyz = t.xyz.copy()
    if check == "ca_ca":  # pull residue 10 onwards 0.2 nm away along Cα9 -> Cα10: Cα-Cα about 5.8 Å
        a, b = _atom(t, 9, "CA"), _atom(t, 10, "CA")
        xyz[0, t.topology.select("resid 10 to 100")] += 0.2 * (xyz[0, b] - xyz[0, a]) / np.linalg.norm(xyz[0, b] - xyz[0, a])
    elif check == "peptide_bond":  # move residue 10's N 0.08 nm further from residue 9's C
        c, n = _atom(t, 9, "C"), _atom(t, 10, "N")
        xyz[0, n] += 0.08 * (xyz[0, n] - xyz[0, c]) / np.linalg.norm(xyz[0, n] - xyz[0, c])
    elif check == "clash":  # put one side-chain atom onto another residue's atom (0.05 nm apart)
        a, b = _atom(t, 3, "CB"), _atom(t, 20, "CA")
        xyz[0, a] = xyz[0, b] + np.array([0.05, 0.0, 0.0])
    elif check == "chirality":  # mirror image: every Cα becomes D
        xyz[0, :, 0] *= -1.0
    elif check == "bond_length":  # stretch one C=O bond by 0.03 nm
        c, o = _atom(t, 5, "C"), _atom(t, 5, "O")
        xyz[0, o] += 0.03 * (xyz[0, o] - xyz[0, c]) / np.linalg.norm(xyz[0, o] - xyz[0, c])
    elif check == "bond_angle":  # bend a carbonyl O towards Cα in the peptide plane (about 26°), bond length kept
        c, o, ca = _atom(t, 5, "C"), _atom(t, 5, "O"), _atom(t, 5, "CA")
        u = xyz[0, o] - xyz[0, c]
        w = xyz[0, ca] - xyz[0, c]
        side = w - (w @ u) / (u @ u) * u
        v = u + 0.06 * side / np.linalg.norm(side)
        xyz[0, o] = xyz[0, c] + v * np.linalg.norm(u) / np.linalg.norm(v)
    return md.Trajectory(xyz, t.topology)


@pytest.mark.parametrize("check", CHECKS)
def test_each_check_fires_on_a_broken_structure(nmr, check):
    broken = _broken(nmr, check)
    result = validate_frames(broken, nmr[0])
    assert not result.valid[0]
    assert result.failures[0, CHECKS.index(check)], (check, result.reason, result.worst)


def test_mixed_frames_are_counted_by_reason(nmr):
    frames = md.join([nmr[0], _broken(nmr, "chirality"), nmr[1], _broken(nmr, "clash")])
    result = validate_frames(frames, nmr)
    assert result.valid.tolist() == [True, False, True, False]
    assert result.reason[1] == "chirality" and result.reason[3] == "clash"
    assert result.counts == {"chirality": 1, "clash": 1} and result.n_valid == 2
    nan = md.Trajectory(np.full_like(nmr.xyz[:1], np.nan), nmr.topology)
    assert not validate_frames(nan, nmr).valid[0]
    strict = validate_frames(nmr[1:3], nmr[0], ProteinChecks(angle_tolerance=0.01))
    assert strict.counts.get("bond_angle", 0) == 2


def test_bonds_from_geometry_water():
    xyz = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    assert bonds_from_geometry(["O", "H", "H"], xyz).tolist() == [[0, 1], [0, 2]]

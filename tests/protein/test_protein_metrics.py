"""Ensemble metrics on cases with known answers."""

from __future__ import annotations

from pathlib import Path

import mdtraj as md
import numpy as np
import pytest

from molgen.protein import metrics as m

DATA = Path(__file__).resolve().parents[1] / "data" / "protein"


def test_js_divergence_bounds_and_symmetry():
    p = np.array([1.0, 0.0, 0.0])
    q = np.array([0.0, 1.0, 0.0])
    assert m.js_divergence(p, p) == 0.0
    assert m.js_divergence(p, q) == pytest.approx(np.log(2))
    r = np.array([0.2, 0.3, 0.5])
    assert m.js_divergence(r, q) == pytest.approx(m.js_divergence(q, r))


def test_ramachandran_histogram_and_basins():
    phi = np.array([-60.0, -60.0, -120.0, 60.0, 179.9, -180.0])
    psi = np.array([-45.0, 0.0, 130.0, 45.0, 0.0, 170.0])
    h = m.ramachandran_histogram(phi, psi)
    assert h.shape == (36, 36) and h.sum() == pytest.approx(1.0)
    assert h[12, 13] == pytest.approx(1 / 6)  # phi -60 -> row 12, psi -45 -> column 13
    pops = m.basin_populations(phi, psi)
    assert pops == {"beta_C7eq": pytest.approx(2 / 6), "alpha_R": pytest.approx(2 / 6),
                    "alpha_L_C7ax": pytest.approx(2 / 6)}
    assert sum(pops.values()) == pytest.approx(1.0)


def test_free_energy_difference():
    kt = m.KB_KJ_PER_MOL_K * 300.0
    phi = np.array([-60.0] * 90 + [60.0] * 10)
    assert m.free_energy_difference(phi) == pytest.approx(-kt * np.log(10 / 90))
    assert m.free_energy_difference(np.array([-60.0])) == np.inf


def test_rmsf_rmsd_and_contacts_on_nmr_models():
    nmr = md.load(str(DATA / "2EQQ.pdb"))
    rmsf = m.ca_rmsf(nmr)
    assert rmsf.shape == (28,) and (rmsf >= 0).all() and rmsf.max() < 10
    # a rigid copy moved and rotated has zero fluctuation
    one = nmr[0]
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    moved = md.Trajectory(np.stack([one.xyz[0], one.xyz[0] @ rot.T + 0.5]), one.topology)
    np.testing.assert_allclose(m.ca_rmsf(moved), 0.0, atol=1e-3)
    np.testing.assert_allclose(m.pairwise_ca_rmsd(moved), [0.0], atol=1e-3)
    d = m.pairwise_ca_rmsd(nmr)
    assert d.shape == (20 * 19 // 2,) and (d > 0).all()
    c = m.contact_map(nmr)
    assert c.shape == (28 * 27 // 2 - 27 - 26,) and ((c >= 0) & (c <= 1)).all()
    assert m.contact_map_js(c, c) == pytest.approx(0.0, abs=1e-12)
    assert m.contact_map_js(np.ones(4), np.zeros(4)) == pytest.approx(np.log(2))


def test_integrated_autocorrelation_time():
    rng = np.random.default_rng(0)
    white = rng.normal(size=20000)
    assert m.integrated_autocorrelation_time(white) == pytest.approx(1.0, abs=0.2)
    a = 0.9  # AR(1): tau = (1 + a) / (1 - a) = 19
    x = np.zeros(200000)
    for k in range(1, len(x)):
        x[k] = a * x[k - 1] + rng.normal()
    assert m.integrated_autocorrelation_time(x) == pytest.approx(19.0, rel=0.15)


def test_coverage_recall_and_precision():
    # 2 reference frames x 3 generated: ref 0 has a sample at 0.5 Å, ref 1 only at 2.5 Å; sample 2 is far
    rmsd = np.array([[0.5, 3.0, 9.0], [4.0, 2.5, 8.0]])
    cov = m.coverage(rmsd, [1.0, 3.0])
    assert cov["recall"] == {"1": 0.5, "3": 1.0}
    assert cov["precision"] == {"1": pytest.approx(1 / 3), "3": pytest.approx(2 / 3)}
    with pytest.raises(ValueError, match="non-empty"):
        m.coverage(np.zeros((0, 3)), [1.0])


def test_rmsd_to_structure_on_nmr_models():
    nmr = md.load(str(DATA / "2EQQ.pdb"))
    d = m.rmsd_to_structure(nmr, nmr[3])
    assert d.shape == (nmr.n_frames,) and d[3] == pytest.approx(0.0, abs=1e-3)
    # the same as mdtraj's Cα RMSD after superposition, in Å
    ca = nmr.topology.select("name CA")
    assert d == pytest.approx(md.rmsd(nmr, nmr, 3, atom_indices=ca) * 10.0, abs=1e-4)
    # a rigid motion of the reference changes nothing; a different protein is refused
    moved = nmr[3]
    moved.xyz = moved.xyz @ np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float32) + 1.0
    assert m.rmsd_to_structure(nmr, moved) == pytest.approx(d, abs=1e-3)
    with pytest.raises(ValueError, match="Cα"):
        m.rmsd_to_structure(nmr, nmr.atom_slice(ca[:5]))

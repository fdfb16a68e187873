"""Clash relief in torsion space: overlaps removed, bonds, angles, stereo and fixed torsions kept."""

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import rdDistGeom

from molgen.chem.torsions import apply_torsion_deltas
from molgen.sampling.clash_relief import ClashRelief, relieve_clashes
from molgen.sampling.conformer_sampler import TorsionSystem


def _min_distance(xyz, tsys, min_separation=4):
    h = tsys.graph.heavy_atoms
    hi, hj = np.nonzero(np.triu(tsys.topo >= min_separation, k=1))
    return np.linalg.norm(xyz[:, h[hi]] - xyz[:, h[hj]], axis=-1).min(1)


def _bond_geometry(mol, xyz):
    bonds = np.array([[b.GetBeginAtomIdx(), b.GetEndAtomIdx()] for b in mol.GetBonds()])
    lengths = np.linalg.norm(xyz[:, bonds[:, 0]] - xyz[:, bonds[:, 1]], axis=-1)
    angles = []
    for a in mol.GetAtoms():
        nb = [n.GetIdx() for n in a.GetNeighbors()]
        for i in range(len(nb)):
            for j in range(i + 1, len(nb)):
                u, v = xyz[:, nb[i]] - xyz[:, a.GetIdx()], xyz[:, nb[j]] - xyz[:, a.GetIdx()]
                angles.append((u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1))
    return lengths, np.stack(angles, axis=1)


@pytest.fixture(scope="module")
def folded():
    """A flexible chain (one stereocentre) embedded, then folded onto itself by torsion turns until heavy
    atoms overlap."""
    smiles = "CCCCCC[C@H](O)CCCCCCCCC(=O)NCCCCCC"
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = 11
    rdDistGeom.EmbedMultipleConfs(mol, 12, params)
    tsys = TorsionSystem.build(mol)
    g = tsys.graph
    rng = np.random.default_rng(2)
    xyz = []
    for conf in mol.GetConformers():
        x = conf.GetPositions()
        for _ in range(400):  # random turns until something overlaps badly
            y = apply_torsion_deltas(x, g.full_torsions, g.full_torsion_masks,
                                     rng.uniform(-np.pi, np.pi, len(g.full_torsions)) * ~tsys.is_planar.astype(bool))
            if _min_distance(y[None], tsys)[0] < 1.5:
                x = y
                break
        xyz.append(x)
    return mol, tsys, np.stack(xyz)


def test_relief_removes_overlaps_and_keeps_local_structure(folded):
    mol, tsys, xyz = folded
    g = tsys.graph
    before = _min_distance(xyz, tsys)
    assert (before < 1.5).sum() >= 6  # most start badly clashed
    fixed = ~tsys.is_planar.astype(bool)
    cfg = ClashRelief(min_distance=2.5, tolerance=0.1)
    out, worst = relieve_clashes(xyz, g.full_torsions[:, 1:3], g.full_torsion_masks, g.heavy_atoms, tsys.topo,
                                 fixed, cfg)
    after = _min_distance(out, tsys)
    assert out.shape == xyz.shape
    assert (worst <= cfg.tolerance + 1e-9).mean() >= 0.9
    np.testing.assert_allclose(after[worst <= cfg.tolerance], np.maximum(0, 2.5 - worst[worst <= cfg.tolerance]),
                               atol=0.3)  # worst overlap reported
    assert (after >= 2.5 - cfg.tolerance - 1e-6)[worst <= cfg.tolerance].all()
    # bonds and angles exactly kept; the amide keeps its torsion; the stereocentre survives
    for a, b in zip(_bond_geometry(mol, xyz), _bond_geometry(mol, out)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    amide = tsys.planar_refs[tsys.is_planar.astype(bool)]
    from molgen.chem.torsions import dihedral_angles

    np.testing.assert_allclose(dihedral_angles(out, amide), dihedral_angles(xyz, amide), atol=1e-6)
    for x in out:
        m = Chem.Mol(mol)
        m.RemoveAllConformers()
        conf = Chem.Conformer(m.GetNumAtoms())
        conf.SetPositions(x)
        m.AddConformer(conf)
        Chem.AssignStereochemistryFrom3D(m)
        assert Chem.MolToSmiles(Chem.RemoveHs(m)) == Chem.MolToSmiles(Chem.RemoveHs(mol))


def test_structures_without_overlap_are_untouched(folded):
    mol, tsys, xyz = folded
    g = tsys.graph
    clean = np.stack([c.GetPositions() for c in mol.GetConformers()])
    ok = _min_distance(clean, tsys) > 2.6
    assert ok.any()
    out, worst = relieve_clashes(clean[ok], g.full_torsions[:, 1:3], g.full_torsion_masks, g.heavy_atoms, tsys.topo)
    np.testing.assert_array_equal(out, clean[ok])
    assert (worst == 0).all()

"""symmetric_min_rmsd: agrees with RDKit GetBestRMS, symmetry/atom-order aware, fast."""

from __future__ import annotations

import time

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import rdDistGeom, rdMolAlign

from molgen.chem.metrics import atom_mappings, kabsch_rmsd_many, symmetric_min_rmsd

SMILES = [
    "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O",  # ibuprofen (symmetric ring, isopropyl, COOH)
    "OC(=O)c1ccccc1",  # benzoic acid
    "[O-][N+](=O)c1ccc(cc1)C(=O)[O-]",  # nitro + carboxylate (conjugated terminal groups)
    "CC(C)(C)c1cc(cc(c1)C(F)(F)F)C(C)(C)C",  # many automorphisms
    "CN1CC[C@]23c4c5ccc(O)c4O[C@H]2[C@@H](O)C=C[C@H]3[C@H]1C5",  # morphine (rigid, chiral)
    "CCOC(=O)C1=C[C@@H](OC(CC)CC)[C@H](NC(C)=O)[C@@H](N)C1",  # oseltamivir (flexible)
]


def _embed(smiles: str, n: int, seed: int) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = seed
    assert len(rdDistGeom.EmbedMultipleConfs(mol, n, params)) == n
    return mol


def _reference(smiles: str, seed: int = 11) -> Chem.Mol:
    """Heavy-atom reference with one conformer and a scrambled atom order."""
    ref = Chem.RemoveHs(_embed(smiles, 1, seed))
    order = list(np.random.default_rng(seed).permutation(ref.GetNumAtoms()).tolist())
    return Chem.RenumberAtoms(ref, order)


def _rdkit_best(ref: Chem.Mol, probe: Chem.Mol, sym: bool = True) -> np.ndarray:
    heavy = Chem.RemoveHs(probe)
    return np.array(
        [
            rdMolAlign.GetBestRMS(
                Chem.Mol(heavy),
                ref,
                prbId=c.GetId(),
                refId=0,
                symmetrizeConjugatedTerminalGroups=sym,
            )
            for c in heavy.GetConformers()
        ]
    )


@pytest.mark.parametrize("smiles", SMILES)
@pytest.mark.parametrize("sym", [True, False])
def test_agrees_with_getbestrms(smiles: str, sym: bool) -> None:
    ref = _reference(smiles)
    probe = _embed(smiles, 8, seed=5)
    ours = symmetric_min_rmsd(
        ref, probe, max_matches=100_000, symmetrize_conjugated_terminal_groups=sym
    )
    assert ours.shape == (8,)
    np.testing.assert_allclose(ours, _rdkit_best(ref, probe, sym), atol=1e-4)


def test_symmetric_group_swap_is_free() -> None:
    """Swapping the two O of a carboxylate (or two ring atoms) costs nothing."""
    mol = Chem.RemoveHs(_embed("[O-]C(=O)c1ccccc1", 1, seed=3))
    probe = Chem.Mol(mol)
    conf = probe.GetConformer()
    a, b = 0, 2  # the two oxygens
    pa, pb = conf.GetAtomPosition(a), conf.GetAtomPosition(b)
    conf.SetAtomPosition(a, pb)
    conf.SetAtomPosition(b, pa)
    assert symmetric_min_rmsd(mol, probe)[0] < 1e-5
    plain = symmetric_min_rmsd(mol, probe, symmetrize_conjugated_terminal_groups=False)[0]
    assert plain > 1e-3


def test_identity_is_zero() -> None:
    mol = _embed(SMILES[0], 3, seed=1)
    for cid in range(3):
        rmsd = symmetric_min_rmsd(mol, mol, ref_conf_id=cid)
        assert rmsd[cid] == pytest.approx(0.0, abs=1e-5)
        assert rmsd.shape == (3,)


def test_invariant_to_probe_atom_order_and_rigid_motion() -> None:
    ref = _reference(SMILES[0])
    probe = _embed(SMILES[0], 6, seed=9)
    base = symmetric_min_rmsd(ref, probe)
    order = np.random.default_rng(0).permutation(probe.GetNumAtoms()).tolist()
    shuffled = Chem.RenumberAtoms(probe, order)
    np.testing.assert_allclose(symmetric_min_rmsd(ref, shuffled), base, atol=1e-8)
    # rotate + translate every probe conformer
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    moved = Chem.Mol(probe)
    for conf in moved.GetConformers():
        xyz = conf.GetPositions() @ q.T + np.array([3.0, -2.0, 7.5])
        for i, p in enumerate(xyz):
            conf.SetAtomPosition(i, p.tolist())
    np.testing.assert_allclose(symmetric_min_rmsd(ref, moved), base, atol=1e-8)


def test_mirror_image_is_not_superposable() -> None:
    """Proper rotations only: the mirror image of a chiral conformer has RMSD > 0."""
    ref = Chem.RemoveHs(_embed(SMILES[4], 1, seed=2))
    mirror = Chem.Mol(ref)
    conf = mirror.GetConformer()
    for i, p in enumerate(conf.GetPositions() * np.array([-1.0, 1.0, 1.0])):
        conf.SetAtomPosition(i, p.tolist())
    assert symmetric_min_rmsd(ref, mirror)[0] > 0.1


def test_kabsch_many_matches_bruteforce() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(7, 3))
    probe = rng.normal(size=(4, 7, 3))
    maps = np.array([rng.permutation(7) for _ in range(5)])
    got = kabsch_rmsd_many(probe, ref, maps)
    for c in range(4):
        for k in range(5):
            x = probe[c, maps[k]] - probe[c, maps[k]].mean(0)
            y = ref - ref.mean(0)
            u, _, vt = np.linalg.svd(x.T @ y)
            d = np.sign(np.linalg.det(u @ vt))
            r = u @ np.diag([1, 1, d]) @ vt
            want = np.sqrt(((x @ r - y) ** 2).sum() / 7)
            assert got[c, k] == pytest.approx(want, abs=1e-9)


def test_errors_and_empty() -> None:
    ref = _reference("CCO")
    other = _embed("CCN", 2, seed=1)
    with pytest.raises(ValueError):
        symmetric_min_rmsd(ref, other)
    with pytest.raises(ValueError):
        symmetric_min_rmsd(ref, _embed("CCCO", 1, seed=1))
    empty = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    assert symmetric_min_rmsd(ref, empty).shape == (0,)


def test_mapping_cap() -> None:
    ref = Chem.RemoveHs(_embed(SMILES[3], 1, seed=1))
    assert len(atom_mappings(ref, ref, max_matches=10)) == 10


def test_fast_for_50_conformers() -> None:
    smiles = SMILES[5]  # 20 heavy atoms
    ref = _reference(smiles)
    probe = _embed(smiles, 50, seed=4)
    symmetric_min_rmsd(ref, probe)
    start = time.perf_counter()
    out = symmetric_min_rmsd(ref, probe)
    assert out.shape == (50,)
    assert time.perf_counter() - start < 0.5

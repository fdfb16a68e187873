"""Symmetries of the torsion denoiser: E(3) invariance, sign flip under reflection, atom permutations."""

import numpy as np
import pytest
import torch
from e3nn.util.test import assert_equivariant
from rdkit import Chem
from rdkit.Chem import rdDistGeom

from molgen.chem.featurize import featurize
from molgen.models.graph import collate_graphs
from molgen.models.torsion_denoiser import DenoiserConfig, TorsionDenoiser

SMILES = ["C[C@H](N)C(=O)N[C@@H](Cc1ccccc1)C(=O)OCC", "CC(=O)Nc1ccc(OCCN(C)C)cc1"]


def graph_item(mol: Chem.Mol) -> dict:
    g = featurize(mol)
    return {
        "node_features": g.node_features, "bond_index": g.bond_index, "bond_features": g.bond_features,
        "torsions": g.torsions, "torsion_masks": g.torsion_masks,
        "pos": mol.GetConformer().GetPositions()[g.heavy_atoms],
    }


def embedded(smiles: str) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = 11
    rdDistGeom.EmbedMolecule(mol, params)
    return mol


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TorsionDenoiser(DenoiserConfig(ns=16, nv=4, num_layers=2)).double().eval()


@pytest.fixture(scope="module")
def batch():
    return collate_graphs([graph_item(embedded(s)) for s in SMILES])


@pytest.mark.parametrize("reference", [False, True], ids=["fast", "reference"])
def test_e3nn_assert_equivariant(model, batch, reference):
    """Rotations and translations leave torsion scores unchanged; parity flips their sign (irreps 0o)."""
    sigma = torch.tensor([0.3, 1.2], dtype=torch.float64)

    def scores(pos):
        return model(batch.with_pos(pos), sigma, reference=reference)[:, None]

    pos = batch.pos.double()
    assert_equivariant(scores, args_in=[pos], irreps_in=["cartesian_points"], irreps_out=["0o"], tolerance=1e-7)
    out = scores(pos)
    assert out.abs().max() > 0  # the test is not vacuous


def test_mirror_image_negates_scores(model, batch):
    sigma = torch.tensor([0.5, 0.5], dtype=torch.float64)
    pos = batch.pos.double()
    mirrored = pos * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    with torch.no_grad():
        np.testing.assert_allclose(model(batch.with_pos(mirrored), sigma), -model(batch.with_pos(pos), sigma), atol=1e-9)


def test_atom_permutation_leaves_torsion_scores_unchanged(model):
    mol = embedded(SMILES[0])
    rng = np.random.default_rng(0)
    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    hydrogens = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() == 1]
    order = list(rng.permutation(heavy)) + hydrogens
    permuted = Chem.RenumberAtoms(mol, [int(i) for i in order])
    sigma = torch.tensor([0.7], dtype=torch.float64)
    a = graph_item(mol)
    b = graph_item(permuted)
    out_a = model(collate_graphs([a]).to("cpu").with_pos(torch.as_tensor(a["pos"])), sigma)
    out_b = model(collate_graphs([b]).to("cpu").with_pos(torch.as_tensor(b["pos"])), sigma)
    # match torsions by their rotatable bond (atom indices mapped back to the original numbering)
    key_a = {tuple(sorted((heavy[u], heavy[v]))): k for k, (_, u, v, _) in enumerate(a["torsions"])}
    inv = {new: old for new, old in enumerate(order)}
    for k, (_, u, v, _) in enumerate(b["torsions"]):
        ka = key_a[tuple(sorted((inv[int(u)], inv[int(v)])))]
        sign = 1.0 if (heavy[a["torsions"][ka][1]], heavy[a["torsions"][ka][2]]) == (inv[int(u)], inv[int(v)]) else -1.0
        assert out_b[k].item() == pytest.approx(sign * out_a[ka].item(), abs=1e-9)

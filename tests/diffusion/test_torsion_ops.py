"""Batched torch torsion rotations agree with the NumPy reference."""

import numpy as np
import torch
from rdkit import Chem
from rdkit.Chem import rdDistGeom

from molgen.chem.featurize import featurize
from molgen.chem.torsions import apply_torsion_deltas as apply_np
from molgen.diffusion.torsion_ops import apply_torsion_deltas, dihedrals
from molgen.models.graph import collate_graphs


def item(smiles: str, seed: int) -> dict:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = seed
    rdDistGeom.EmbedMolecule(mol, params)
    g = featurize(mol)
    return {
        "node_features": g.node_features, "bond_index": g.bond_index, "bond_features": g.bond_features,
        "torsions": g.torsions, "torsion_masks": g.torsion_masks,
        "pos": mol.GetConformer().GetPositions()[g.heavy_atoms],
    }


def test_batched_rotation_matches_numpy_and_changes_dihedrals_exactly():
    items = [item("CCCCOc1ccccc1C(=O)NCC", 3), item("CC(C)Cc1ccc(cc1)C(C)C(=O)O", 5), item("c1ccccc1", 9)]
    batch = collate_graphs(items).to("cpu")
    torch.manual_seed(0)
    deltas = (torch.rand(len(batch.torsions), dtype=torch.float64) * 2 - 1) * np.pi
    pos = batch.pos.double()
    out = apply_torsion_deltas(pos, batch.torsion_index, deltas)
    # per molecule reference
    t0 = 0
    for g, it in enumerate(items):
        n_t = len(it["torsions"])
        s, e = batch.ptr[g].item(), batch.ptr[g + 1].item()
        ref = apply_np(pos[s:e].numpy(), it["torsions"], it["torsion_masks"], deltas[t0 : t0 + n_t].numpy())
        np.testing.assert_allclose(out[s:e].numpy(), ref, atol=1e-9)
        t0 += n_t
    change = dihedrals(out, batch.torsions) - dihedrals(pos, batch.torsions)
    assert torch.allclose(torch.remainder(change - deltas + np.pi, 2 * np.pi) - np.pi, torch.zeros_like(change), atol=1e-9)


def _replicated(smiles: str, copies: int, seed: int = 7):
    """(positions (copies * N, 3) float64 Å, TorsionIndex, graph) of ``copies`` embeddings of one molecule."""
    from molgen.diffusion.torsion_ops import TorsionIndex

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = seed
    rdDistGeom.EmbedMultipleConfs(mol, copies, params)
    g = featurize(mol)
    pos = torch.as_tensor(np.concatenate([c.GetPositions() for c in mol.GetConformers()]))
    index = TorsionIndex.replicated([(torch.as_tensor(g.full_torsions[:, 1:3]), torch.as_tensor(g.full_torsion_masks),
                                      copies, mol.GetNumAtoms())])
    return pos, index, g


def test_torsion_gradient_matches_finite_differences():
    """dE/dtheta from the Cartesian gradient equals central differences of E along each torsion."""
    from molgen.diffusion.torsion_ops import torsion_displacement, torsion_gradient

    pos, index, g = _replicated("CCOC(=O)c1ccccc1NC(C)CCO", 2)
    target = torch.randn(pos.shape, generator=torch.Generator().manual_seed(3), dtype=pos.dtype)

    def energy(x):  # any smooth function of all positions
        return ((x - target) ** 2).sum() + (x[:, 0] * x[:, 1]).sin().sum()

    x = pos.clone().requires_grad_(True)
    grad = torch.autograd.grad(energy(x), x)[0]
    analytic = torsion_gradient(pos, index, grad)
    h = 1e-5
    numeric = torch.zeros_like(analytic)
    for t in range(len(analytic)):
        e = torch.zeros_like(analytic)
        e[t] = h
        numeric[t] = (energy(apply_torsion_deltas(pos, index, e)) - energy(apply_torsion_deltas(pos, index, -e))) / (2 * h)
    assert len(analytic) == 2 * len(g.full_torsions) > 4
    torch.testing.assert_close(analytic, numeric, rtol=1e-5, atol=1e-5)
    # the displacement is the first-order change of positions
    deltas = 1e-6 * torch.randn(len(analytic), generator=torch.Generator().manual_seed(4), dtype=pos.dtype)
    moved = apply_torsion_deltas(pos, index, deltas) - pos
    torch.testing.assert_close(torsion_displacement(pos, index, deltas), moved, rtol=1e-4, atol=1e-11)

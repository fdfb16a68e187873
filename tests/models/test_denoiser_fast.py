"""The fast denoiser path (default ``forward``) computes what the reference path computes.

``TorsionDenoiser.forward(batch, sigma)`` runs ``forward_fast`` (hand-written tensor product, blocked
edges, folded linear layers); ``forward(..., reference=True)`` runs the original e3nn implementation.
They must agree to float rounding on random graphs and on real molecules, at several noise levels,
with random and with the shipped weights, and give the same gradients.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from e3nn import o3
from rdkit import Chem
from rdkit.Chem import rdDistGeom

from molgen.chem.feature_spec import BOND_FEATURE_DIM, NODE_FEATURE_DIM
from molgen.chem.featurize import featurize
from molgen.models.graph import collate_graphs, radius_edges
from molgen.models.layers import EdgeSet, GaussianRBF, Interaction
from molgen.models.registry import (
    default_model_path,
    load_checkpoint_model,
    read_checkpoint,
)
from molgen.models.torsion_denoiser import DenoiserConfig, TorsionDenoiser

SIGMAS = (0.03, 0.3, 1.0, 3.0)
SMILES = [
    "C[C@H](N)C(=O)N[C@@H](Cc1ccccc1)C(=O)OCC",
    "CC(=O)Nc1ccc(OCCN(C)C)cc1",
    "CN1CCN(CC1)c1ccc(cc1)C(=O)Nc1ccccc1",
    "O=C(O)CCCc1ccc(N(CCCl)CCCl)cc1",
]


def random_item(rng: np.random.Generator, n: int, stretch: bool = False) -> dict:
    """A random tree-shaped heavy-atom graph with a ring closure, torsions on its inner bonds."""
    parent = [-1] + [int(rng.integers(max(0, i - 3), i)) for i in range(1, n)]
    edges = [(parent[i], i) for i in range(1, n)]
    pos = np.zeros((n, 3))
    for i in range(1, n):
        step = rng.normal(size=3)
        pos[i] = pos[parent[i]] + 1.5 * step / np.linalg.norm(step)
    if stretch and n > 2:  # a bond longer than the 5 A radius: an edge through the bond rule only
        pos[n - 1] = pos[parent[n - 1]] + np.array([6.0, 0.0, 0.0])
    if n > 5:
        edges.append((0, n - 1))  # ring closure
    bond_index = np.array([[a for a, b in edges] + [b for a, b in edges], [b for a, b in edges] + [a for a, b in edges]])
    kinds = rng.integers(0, BOND_FEATURE_DIM, size=len(edges))
    bond_features = np.zeros((len(edges), BOND_FEATURE_DIM), dtype=np.uint8)
    bond_features[np.arange(len(edges)), kinds] = 1
    bond_features = np.concatenate([bond_features, bond_features])
    node_features = (rng.random((n, NODE_FEATURE_DIM)) < 0.15).astype(np.uint8)
    neighbours = [[] for _ in range(n)]
    for a, b in edges:
        neighbours[a].append(b)
        neighbours[b].append(a)
    torsions, masks = [], []
    for a, b in edges[: n - 1]:  # tree bonds
        if len(neighbours[a]) < 2 or len(neighbours[b]) < 2:
            continue
        side, stack = {b}, [b]
        while stack:  # atoms on b's side of the bond (ignoring the ring closure)
            x = stack.pop()
            for y in neighbours[x]:
                if y not in side and y != a and (x, y) != (0, n - 1) and (x, y) != (n - 1, 0):
                    side.add(y)
                    stack.append(y)
        k = next(y for y in neighbours[a] if y != b)
        m = next(y for y in neighbours[b] if y != a)
        torsions.append((k, a, b, m))
        masks.append([i in side for i in range(n)])
    return {
        "node_features": node_features, "bond_index": bond_index, "bond_features": bond_features,
        "torsions": np.array(torsions, dtype=np.int64).reshape(-1, 4),
        "torsion_masks": np.array(masks, dtype=bool).reshape(len(torsions), n), "pos": pos,
    }


def random_batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    sizes = [2, 9, 17, 30, 24, 12, 41]
    return collate_graphs([random_item(rng, n, stretch=(k == 3)) for k, n in enumerate(sizes)])


def molecule_items(per_mol: int = 3) -> list[dict]:
    items = []
    for k, smi in enumerate(SMILES):
        mol = Chem.AddHs(Chem.MolFromSmiles(smi))
        params = rdDistGeom.ETKDGv3()
        params.randomSeed = 7 + k
        cids = list(rdDistGeom.EmbedMultipleConfs(mol, per_mol, params))
        g = featurize(mol)
        items.extend(g.item(mol.GetConformer(c).GetPositions()[g.heavy_atoms]) for c in cids)
    return items


def sigmas_for(batch, dtype, base: float) -> torch.Tensor:
    # different noise levels across the graphs of one batch, around ``base``
    return base * torch.linspace(0.5, 1.5, batch.num_graphs, dtype=dtype)


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint_model(default_model_path()).module


@pytest.fixture(scope="module")
def molecules():
    return collate_graphs(molecule_items())


def random_model(seed: int, **config) -> TorsionDenoiser:
    torch.manual_seed(seed)
    model = TorsionDenoiser(DenoiserConfig(**config)).eval()
    with torch.no_grad():  # no zero biases, weights of varied sizes
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("config", [{}, {"ns": 16, "nv": 4, "num_layers": 2}])
def test_fast_matches_reference_on_random_graphs_float64(config):
    model = random_model(1, **config).double()
    batch = random_batch(0)
    batch = batch.with_pos(batch.pos.double())
    assert batch.torsions.shape[0] > 10
    with torch.no_grad():
        for base in SIGMAS:
            sigma = sigmas_for(batch, torch.float64, base)
            ref = model(batch, sigma, reference=True)
            fast = model(batch, sigma)
            assert ref.abs().max() > 0
            # e3nn keeps float32 copies of its constants, so float64 agrees to ~1e-8, not 1e-15
            torch.testing.assert_close(fast, ref, rtol=0, atol=1e-6 * ref.abs().max().item())


def test_fast_matches_reference_on_random_graphs_float32():
    model = random_model(2)
    batch = random_batch(1)
    with torch.no_grad():
        for base in SIGMAS:
            sigma = sigmas_for(batch, torch.float32, base)
            ref, fast = model(batch, sigma, reference=True), model(batch, sigma)
            torch.testing.assert_close(fast, ref, rtol=0, atol=1e-4 * ref.abs().max().item())


def test_fast_matches_reference_on_molecules_with_shipped_weights(shipped, molecules):
    with torch.inference_mode():
        for base in SIGMAS:
            sigma = sigmas_for(molecules, torch.float32, base)
            ref, fast = shipped(molecules, sigma, reference=True), shipped(molecules, sigma)
            assert fast.shape == ref.shape == (molecules.torsions.shape[0],)
            torch.testing.assert_close(fast, ref, rtol=0, atol=1e-4 * ref.abs().max().item())


def test_block_size_does_not_change_the_result(shipped, molecules):
    sigma = sigmas_for(molecules, torch.float32, 0.5)
    with torch.no_grad():
        default = shipped(molecules, sigma)
        for chunk in (37, 1000, 10**6):
            torch.testing.assert_close(shipped.forward_fast(molecules, sigma, chunk=chunk), default, rtol=0, atol=1e-5)


def test_gradients_match_reference():
    model = random_model(3, ns=16, nv=4, num_layers=2).double().train()
    batch = random_batch(2)
    sigma = sigmas_for(batch, torch.float64, 0.4)

    def grads(reference: bool):
        model.zero_grad()
        pos = batch.pos.double().clone().requires_grad_(True)
        out = model(batch.with_pos(pos), sigma, reference=reference)
        (out * torch.arange(len(out), dtype=out.dtype).sin()).sum().backward()
        return pos.grad, {name: p.grad.clone() for name, p in model.named_parameters()}

    pos_ref, params_ref = grads(True)
    pos_fast, params_fast = grads(False)
    torch.testing.assert_close(pos_fast, pos_ref, rtol=1e-5, atol=1e-7 * pos_ref.abs().max().item())
    for name, g in params_ref.items():
        torch.testing.assert_close(params_fast[name], g, rtol=1e-5, atol=1e-7 * max(g.abs().max().item(), 1e-12), msg=name)


def test_cached_matrices_follow_weight_updates():
    model = random_model(4, ns=16, nv=4, num_layers=2)
    batch = random_batch(3)
    sigma = sigmas_for(batch, torch.float32, 0.5)
    with torch.no_grad():
        before = model(batch, sigma)
        for layer in model.layers:  # in-place updates, as an optimizer step makes them
            layer.linear.weight.mul_(1.5)
            layer.weights[2].weight.add_(0.05)
            if layer.skip is not None:
                layer.skip.weight.mul_(-1.0)
        ref, fast = model(batch, sigma, reference=True), model(batch, sigma)
    assert (fast - before).abs().max() > 1e-3
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-4 * ref.abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scalar_input", [True, False])
def test_interaction_layer_fast_matches_reference(dtype, scalar_input):
    torch.manual_seed(5)
    hidden = o3.Irreps("12x0e + 3x1o + 3x1e")
    irreps_in = o3.Irreps("12x0e") if scalar_input else hidden
    layer = Interaction(irreps_in, hidden, o3.Irreps.spherical_harmonics(2), 8, 12).to(dtype)
    n, e = 23, 150
    h = torch.randn(n, irreps_in.dim, dtype=dtype)
    src, dst = torch.randint(0, n, (e,)), torch.randint(0, n - 3, (e,)).sort().values  # some nodes without edges
    sh = o3.spherical_harmonics(o3.Irreps.spherical_harmonics(2), torch.randn(e, 3, dtype=dtype), True, "component")
    emb = torch.randn(e, 8, dtype=dtype)
    with torch.no_grad():
        ref = layer(h, src, dst, sh, emb)
        edges = EdgeSet.build(src, dst, sh, emb, n, chunk=64)
        tol = 1e-5 if dtype == torch.float32 else 1e-7
        torch.testing.assert_close(layer.forward_fast(h, edges), ref, rtol=0, atol=tol * ref.abs().max().item())
        term = emb @ layer.weights[0].weight[:, :8].t()
        torch.testing.assert_close(layer.forward_fast(h, edges, term), ref, rtol=0, atol=tol * ref.abs().max().item())


def test_edge_set_matches_radius_edges(molecules, shipped):
    src, dst, _, _ = radius_edges(molecules, shipped.config.radius)
    sigma = sigmas_for(molecules, torch.float32, 0.5)
    with torch.no_grad():
        edges = shipped.edge_set(molecules, shipped.sigma_embed(sigma))
    assert torch.equal(edges.src, src) and torch.equal(edges.dst, dst)


def test_rbf_fast_matches():
    rbf = GaussianRBF(16, 5.0)
    d = torch.linspace(0.0, 7.0, 1001)
    torch.testing.assert_close(rbf.forward_fast(d), rbf(d), rtol=0, atol=1e-30)
    torch.testing.assert_close(rbf.double().forward_fast(d.double()), rbf.double()(d.double()), rtol=0, atol=0)


def test_no_torsions_gives_empty_scores(shipped):
    item = molecule_items(1)[0]
    item = {**item, "torsions": np.zeros((0, 4), dtype=np.int64), "torsion_masks": np.zeros((0, len(item["pos"])), bool)}
    batch = collate_graphs([item])
    with torch.no_grad():
        assert shipped(batch, torch.tensor([0.5])).shape == (0,)


def test_state_dict_is_unchanged(shipped):
    """The fast path adds no module state: the shipped checkpoint loads strictly, keys and shapes match."""
    state = read_checkpoint(default_model_path())["state_dict"]
    fresh = TorsionDenoiser(DenoiserConfig(**read_checkpoint(default_model_path())["model_config"]))
    assert {k: tuple(v.shape) for k, v in fresh.state_dict().items()} == {k: tuple(v.shape) for k, v in state.items()}
    fresh.load_state_dict(state, strict=True)

"""Symmetries of the position/type denoiser: E(3) equivariance, permutations, zero-mean output."""

import pytest
import torch
from e3nn.util.test import assert_equivariant

from molgen.models.graph import node_batch
from molgen.models.molecule_denoiser import MoleculeDenoiser, MoleculeDenoiserConfig

SIZES = [5, 9, 3]
TYPE_DIM = 8


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = MoleculeDenoiserConfig(type_dim=TYPE_DIM, cond_dim=2, ns=16, nv=4, num_layers=2, num_rbf=8)
    return MoleculeDenoiser(cfg).double().eval()


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(3)
    n = sum(SIZES)
    types = torch.randn((n, TYPE_DIM), generator=g, dtype=torch.float64)
    pos = torch.randn((n, 3), generator=g, dtype=torch.float64) * 1.5
    rho = torch.tensor([0.2, 1.0, 3.0], dtype=torch.float64)
    cond = torch.tensor([[0.5, -1.0], [0.0, 0.3], [1.2, 0.1]], dtype=torch.float64)
    mask = torch.tensor([[True, False], [True, True], [False, False]])
    return types, pos, rho, cond, mask


@pytest.mark.parametrize("reference", [False, True], ids=["fast", "reference"])
def test_e3nn_assert_equivariant(model, inputs, reference):
    """Rotating/reflecting/translating the input rotates/reflects eps_pos (1o), leaves eps_type (0e)."""
    types, pos, rho, cond, mask = inputs

    def fn(p):
        eps_pos, eps_type = model(node_batch(types, p, SIZES), rho, cond, mask, reference=reference)
        return eps_pos, eps_type

    assert_equivariant(
        fn, args_in=[pos], irreps_in=["cartesian_points"], irreps_out=["1o", f"{TYPE_DIM}x0e"], tolerance=1e-7
    )
    eps_pos, eps_type = fn(pos)
    assert eps_pos.abs().max() > 1e-3 and eps_type.abs().max() > 1e-3  # not vacuous


def test_fast_equals_reference(model, inputs):
    types, pos, rho, cond, mask = inputs
    b = node_batch(types, pos, SIZES)
    fast = model(b, rho, cond, mask)
    ref = model(b, rho, cond, mask, reference=True)
    for a, r in zip(fast, ref):
        torch.testing.assert_close(a, r, rtol=1e-9, atol=1e-10)


def test_permuting_atoms_permutes_outputs(model, inputs):
    types, pos, rho, cond, mask = inputs
    perm = torch.cat([torch.randperm(n, generator=torch.Generator().manual_seed(n)) + off
                      for n, off in zip(SIZES, [0, 5, 14])])
    a_pos, a_type = model(node_batch(types, pos, SIZES), rho, cond, mask)
    b_pos, b_type = model(node_batch(types[perm], pos[perm], SIZES), rho, cond, mask)
    torch.testing.assert_close(b_pos, a_pos[perm])
    torch.testing.assert_close(b_type, a_type[perm])


def test_position_noise_has_zero_mean_and_molecules_do_not_interact(model, inputs):
    types, pos, rho, cond, mask = inputs
    eps_pos, eps_type = model(node_batch(types, pos, SIZES), rho, cond, mask)
    for start, n in zip([0, 5, 14], SIZES):
        assert eps_pos[start : start + n].mean(0).abs().max() < 1e-12
    # the second molecule alone gives the same outputs as inside the batch
    alone_pos, alone_type = model(node_batch(types[5:14], pos[5:14], [9]), rho[1:2], cond[1:2], mask[1:2])
    torch.testing.assert_close(alone_pos, eps_pos[5:14])
    torch.testing.assert_close(alone_type, eps_type[5:14])


def test_dropped_condition_is_the_unconditional_input(model, inputs):
    """A fully masked condition equals passing no condition (the classifier-free 'null' input)."""
    types, pos, rho, cond, _ = inputs
    b = node_batch(types, pos, SIZES)
    none = model(b, rho)
    masked = model(b, rho, cond * 7.0, torch.zeros_like(cond, dtype=torch.bool))
    given = model(b, rho, cond)
    torch.testing.assert_close(none[1], masked[1])
    assert not torch.allclose(none[1], given[1])


def test_graph_model_needs_bonds(inputs):
    types, pos, rho, _, _ = inputs
    m = MoleculeDenoiser(MoleculeDenoiserConfig(type_dim=TYPE_DIM, bond_dim=4, ns=8, nv=2, num_layers=1)).double()
    with pytest.raises(ValueError, match="bond_dense"):
        m(node_batch(types, pos, SIZES), rho)

"""SamplingOptions checks, local-structure counts, and batch packing that does not change results."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem

from molgen.chem.torsions import has_flexible_rings
from molgen.errors import InputError
from molgen.sampling.options import SamplingOptions


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"n": 0}, "n must be"),
        ({"steps": 0}, "steps must be"),
        ({"sampler": "euler"}, "sampler must be"),
        ({"ode_method": "rk4"}, "ode_method"),
        ({"planar_bonds": "flat"}, "planar_bonds"),
        ({"score_scale": 0.0}, "score_scale"),
        ({"sigma_start": 0.0}, "sigma_start"),
        ({"rms": -1.0}, "rms"),
        ({"energy_window": -1.0}, "energy_window"),
        ({"optimize": "uff"}, "optimize"),
        ({"seed": -1}, "seed"),
        ({"max_structures": 0}, "max_structures"),
        ({"conformers_per_structure": 0}, "conformers_per_structure"),
        ({"rigid_conformers_per_structure": 0}, "rigid_conformers_per_structure"),
        ({"n": True}, "n must be"),
    ],
)
def test_options_are_checked_once_with_a_clear_message(bad, match) -> None:
    with pytest.raises(InputError, match=match):
        SamplingOptions(**bad)
    with pytest.raises(InputError, match=match):
        SamplingOptions().replace(**bad)


def test_options_round_trip_and_defaults() -> None:
    opts = SamplingOptions.from_kwargs(n=5, steps=None, rms=0.5)
    assert opts.n == 5 and opts.steps == SamplingOptions().steps and opts.rms == 0.5
    assert SamplingOptions(**opts.to_dict()) == opts
    assert SamplingOptions().sampler_label == "ode-euler" and SamplingOptions(sampler="sde").sampler_label == "sde"


def test_number_of_local_structures() -> None:
    opts = SamplingOptions()  # 2 conformers per structure
    assert opts.num_structures(10, True) == 5 and opts.num_structures(1, True) == 1
    assert opts.replace(max_structures=3).num_structures(50, True) == 3
    rigid = opts.replace(rigid_conformers_per_structure=5)
    assert rigid.num_structures(10, False) == 2 and rigid.num_structures(10, True) == 5


@pytest.mark.parametrize(
    "smiles, flexible",
    [
        ("c1ccccc1CCO", False),  # aromatic ring, acyclic chain
        ("C1CC1C(=O)O", False),  # three-membered ring: one conformation
        ("C1=CC=CC=C1", False),
        ("O=C1C=CC(=O)C=C1", False),  # quinone: sp2 ring atoms
        ("C1CCCCC1", True),  # chair / boat
        ("c1ccc2c(c1)CCCC2", True),  # tetralin's saturated ring
        ("C1CCOC1", True),  # envelope
        ("CCCCCC", False),
    ],
)
def test_flexible_rings(smiles: str, flexible: bool) -> None:
    assert has_flexible_rings(Chem.AddHs(Chem.MolFromSmiles(smiles))) is flexible


def test_packing_does_not_change_a_molecules_conformers() -> None:
    """A molecule's conformers depend on its seed, not on the molecules sharing its denoiser batch."""
    from molgen.models.registry import load_model
    from molgen.sampling.conformer_sampler import (
        SampleRequest,
        TorsionSystem,
        sample_requests,
    )

    loaded = load_model(None)  # the shipped model
    opts = SamplingOptions(n=3, steps=3)
    smiles = ["CC(=O)Nc1ccc(O)cc1", "CCN(CC)CCOC(=O)c1ccc(N)cc1", "O=C(O)CCCc1ccccc1"]
    systems = [TorsionSystem.build(Chem.AddHs(Chem.MolFromSmiles(s))) for s in smiles]
    alone = [sample_requests(loaded, [SampleRequest(s, 3, 11 + k)], opts)[0] for k, s in enumerate(systems)]
    together = sample_requests(loaded, [SampleRequest(s, 3, 11 + k) for k, s in enumerate(systems)], opts)
    split = sample_requests(loaded, [SampleRequest(s, 3, 11 + k) for k, s in enumerate(systems)], opts, batch_atoms=1)
    for a, b, c in zip(alone, together, split):
        assert a.shape == b.shape == c.shape
        assert np.abs(a - b).max() < 1e-3 and np.abs(a - c).max() < 1e-3  # Å, float32 rounding only


@pytest.mark.parametrize("sampler", ["ode", "sde"])
def test_large_requests_are_chunked_and_split_within_memory_bounds(sampler: str) -> None:
    """One request larger than ``batch_atoms`` runs in denoiser chunks with the same result; one whose
    torsion index exceeds ``max_torsion_pairs`` is split into pieces: the ODE gives the unsplit result
    (same prior torsions, deterministic), the SDE draws each piece's noise from its own stream, reproducibly."""
    from molgen.models.registry import load_model
    from molgen.sampling.conformer_sampler import (
        SampleRequest,
        TorsionSystem,
        sample_requests,
    )

    loaded = load_model(None)
    opts = SamplingOptions(n=5, steps=3, sampler=sampler)
    system = TorsionSystem.build(Chem.AddHs(Chem.MolFromSmiles("CCN(CC)CCOC(=O)c1ccc(N)cc1")))
    per_copy = int(np.count_nonzero(system.graph.full_torsion_masks))

    def run(**kw):
        return sample_requests(loaded, [SampleRequest(system, 5, 21)], opts, **kw)[0]

    whole = run()
    chunked = run(batch_atoms=system.graph.num_nodes * 2)  # 3 denoiser calls of at most 2 conformers
    assert whole.shape == chunked.shape == (5, system.num_atoms, 3)
    assert np.abs(whole - chunked).max() < 1e-3  # Å, float32 rounding only
    split = run(max_torsion_pairs=2 * per_copy)  # pieces of 2, 2 and 1 conformers
    assert split.shape == whole.shape
    assert np.abs(split - run(max_torsion_pairs=2 * per_copy)).max() == 0.0  # reproducible
    if sampler == "ode":
        assert np.abs(split - whole).max() < 1e-3
    # pieces are not copies of each other
    assert np.abs(split[0] - split[2]).max() > 0.1 and np.abs(split[2] - split[4]).max() > 0.1

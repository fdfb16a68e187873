"""De novo molecule sampling (molgen.sampling.molecule_sampler, molecule_output) with a tiny checkpoint
trained for two steps on the shipped QM9 sample: sizes, centring, determinism, classifier-free guidance,
errors, and the verdicts that collect() attaches to valid and invalid molecules."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from rdkit import Chem
from torch import nn

from molgen.chem.atom_encoding import QM9_ENCODING
from molgen.datasets import qm9
from molgen.errors import InputError
from molgen.models.registry import LoadedModel, load_checkpoint_model
from molgen.sampling.molecule_output import collect
from molgen.sampling.molecule_sampler import GeneratedMolecule, sample_atoms

SAMPLE_CSV = Path(__file__).resolve().parents[1] / "data" / "qm9_sample.csv"
CONDITIONS = ["alpha", "num_heavy_atoms"]
STEPS = 8  # reverse steps: enough to exercise the sampler, cheap on one core


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def loaded(train_tiny_qm9) -> LoadedModel:
    """A conditional (alpha, num_heavy_atoms) molecule model trained for two steps on the sample."""
    model = load_checkpoint_model(train_tiny_qm9("molecules", conditions=CONDITIONS, half="all"))
    assert model.kind == "molecules"
    return model


def _counts(loaded: LoadedModel, heavy: int | None = None) -> dict[int, float]:
    task = loaded.meta["task"]
    dist = task["atom_counts"] if heavy is None else task["atom_counts_by_heavy"][str(heavy)]
    return {int(k): v for k, v in dist.items()}


def _same(a: list[GeneratedMolecule], b: list[GeneratedMolecule]) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(x.atomic_numbers, y.atomic_numbers) and np.array_equal(x.formal_charges, y.formal_charges)
        and np.array_equal(x.positions, y.positions) for x, y in zip(a, b))


def _check_molecule(gen: GeneratedMolecule, n_atoms: int) -> None:
    assert gen.atomic_numbers.shape == (n_atoms,) and gen.formal_charges.shape == (n_atoms,)
    assert gen.positions.shape == (n_atoms, 3) and np.isfinite(gen.positions).all()
    assert set(gen.atomic_numbers.tolist()) <= set(QM9_ENCODING.elements)
    assert set(gen.formal_charges.tolist()) <= set(QM9_ENCODING.charges)
    assert np.abs(gen.positions.mean(0)).max() < 1e-5  # centred, Å


class _MaskRecorder(nn.Module):
    """Wraps a denoiser: records the condition mask of every call, optionally replaces it."""

    def __init__(self, inner: nn.Module, force: torch.Tensor | None = None) -> None:
        super().__init__()
        self.inner, self.force, self.masks = inner, force, []

    def forward(self, batch, rho, cond=None, cond_mask=None):
        if self.force is not None:
            cond_mask = self.force.expand(rho.shape[0], -1)
        self.masks.append(None if cond_mask is None else cond_mask.clone())
        return self.inner(batch, rho, cond, cond_mask)


class _NaNModel(nn.Module):
    def forward(self, batch, rho, cond=None, cond_mask=None):
        return torch.full_like(batch.pos, math.nan), torch.full_like(batch.node_features, math.nan)


# ---------------------------------------------------------------------------------------------- sizes
def test_given_number_of_atoms(loaded):
    gens = sample_atoms(loaded, 3, num_atoms=7, steps=STEPS, seed=2)
    assert len(gens) == 3
    for g in gens:
        _check_molecule(g, 7)
        assert g.seed == 2 and g.conditions == {}
    sizes = [4, 9, 12]
    gens = sample_atoms(loaded, 3, num_atoms=sizes, steps=STEPS, seed=2)
    for g, n in zip(gens, sizes):
        _check_molecule(g, n)


def test_drawn_sizes_follow_the_training_distribution(loaded):
    counts = _counts(loaded)
    assert sum(counts.values()) == pytest.approx(1.0)
    gens = sample_atoms(loaded, 300, steps=1, seed=11)
    sizes = np.array([len(g.atomic_numbers) for g in gens])
    assert set(sizes.tolist()) <= set(counts)
    for n, frac in counts.items():
        assert np.mean(sizes == n) == pytest.approx(frac, abs=0.07), n
    for g in gens[:5]:
        _check_molecule(g, len(g.atomic_numbers))


@pytest.mark.parametrize("heavy", [9, 3])
def test_heavy_atom_condition_draws_that_count_s_sizes(loaded, heavy):
    support = set(_counts(loaded, heavy))
    assert support != set(_counts(loaded))
    gens = sample_atoms(loaded, 40, conditions={"num_heavy_atoms": heavy}, steps=1, seed=4)
    sizes = {len(g.atomic_numbers) for g in gens}
    assert sizes <= support
    if len(support) > 1:
        assert len(sizes) > 1  # drawn, not one fixed size
    assert all(g.conditions == {"num_heavy_atoms": float(heavy)} for g in gens)


# ------------------------------------------------------------------------------------ determinism
@pytest.mark.parametrize("method", ["ddim", "ddpm"])
def test_seeded_sampling_is_reproducible(loaded, method):
    a = sample_atoms(loaded, 3, method=method, steps=STEPS, seed=5)
    b = sample_atoms(loaded, 3, method=method, steps=STEPS, seed=5)
    c = sample_atoms(loaded, 3, method=method, steps=STEPS, seed=6)
    assert _same(a, b)
    assert not _same(a, c)
    for g in a:
        _check_molecule(g, len(g.atomic_numbers))


def test_ddim_with_fixed_sizes_differs_between_seeds(loaded):
    a = sample_atoms(loaded, 2, num_atoms=9, steps=STEPS, seed=1)
    b = sample_atoms(loaded, 2, num_atoms=9, steps=STEPS, seed=2)
    assert all(not np.allclose(x.positions, y.positions) for x, y in zip(a, b))


# --------------------------------------------------------------------------------------- guidance
def test_guidance_zero_is_the_unconditional_model(loaded):
    plain = sample_atoms(loaded, 3, num_atoms=8, steps=STEPS, seed=7)
    w0 = sample_atoms(loaded, 3, num_atoms=8, conditions={"alpha": 60.0, "num_heavy_atoms": 6}, guidance=0.0,
                      steps=STEPS, seed=7)
    assert _same(plain, w0)
    assert all(g.conditions == {"alpha": 60.0, "num_heavy_atoms": 6.0} and g.guidance == 0.0 for g in w0)
    w1 = sample_atoms(loaded, 3, num_atoms=8, conditions={"alpha": 60.0, "num_heavy_atoms": 6}, guidance=1.0,
                      steps=STEPS, seed=7)
    assert not _same(plain, w1)  # the condition reaches the network


def test_guidance_scales_pick_the_conditional_and_null_passes(loaded):
    cond = {"alpha": 60.0}
    given = torch.tensor([True, False])  # alpha given, num_heavy_atoms dropped (marginalised)

    def run(guidance, force=None, conditions=cond):
        rec = _MaskRecorder(loaded.module, force)
        gens = sample_atoms(dataclasses.replace(loaded, module=rec), 2, num_atoms=6, conditions=conditions,
                            guidance=guidance, steps=STEPS, seed=3)
        return gens, rec.masks

    w1, masks = run(1.0)
    assert len(masks) == STEPS + 1 and all((m == given).all() for m in masks)  # + the final denoising
    w0, masks = run(0.0)
    assert len(masks) == STEPS + 1 and all(not m.any() for m in masks)
    _, masks = run(2.0)
    assert len(masks) == 2 * (STEPS + 1)
    assert sum(bool((m == given).all()) for m in masks) == STEPS + 1
    assert sum(not m.any() for m in masks) == STEPS + 1
    # w = 1: exactly the conditional model; w = 0: exactly the model with every condition dropped
    forced_cond, _ = run(0.0, force=given)
    assert _same(w1, forced_cond)
    forced_null, _ = run(1.0, force=torch.tensor([False, False]))
    assert _same(w0, forced_null)
    no_conditions, masks = run(1.0, conditions=None)
    assert _same(w0, no_conditions) and all(not m.any() for m in masks)


def test_per_molecule_conditions(loaded):
    gens = sample_atoms(loaded, 3, num_atoms=[5, 6, 7], conditions={"alpha": [30.0, 40.0, 50.0]}, steps=STEPS)
    assert [g.conditions["alpha"] for g in gens] == [30.0, 40.0, 50.0]
    with pytest.raises(InputError, match="alpha"):
        sample_atoms(loaded, 3, num_atoms=5, conditions={"alpha": [30.0, 40.0]}, steps=STEPS)


# ----------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"conditions": {"gap": 5.0}}, "gap"),
    ({"conditions": {"alpha": 50.0, "homo": -6.0}}, "homo"),
    ({"n": 0}, "number of molecules"),
    ({"n": -3}, "number of molecules"),
    ({"method": "euler"}, "euler"),
    ({"steps": 0}, "steps"),
    ({"num_atoms": 0}, "num_atoms"),
    ({"conditions": {"num_heavy_atoms": 50}}, "num_heavy_atoms"),
])
def test_bad_requests_raise_input_errors(loaded, kwargs, message):
    kwargs = {"n": 2, "steps": 2, **kwargs}
    with pytest.raises(InputError, match=message):
        sample_atoms(loaded, **kwargs)


def test_a_model_of_another_kind_is_refused(loaded):
    other = dataclasses.replace(loaded, kind="torsion", name="torsion-model")
    with pytest.raises(InputError, match="torsion"):
        sample_atoms(other, 2, steps=2)


def test_num_atoms_of_the_wrong_length_is_an_input_error(loaded):
    with pytest.raises(InputError, match="num_atoms"):
        sample_atoms(loaded, 3, num_atoms=[5, 6], steps=2)


# ------------------------------------------------------------------------------ collect (verdicts)
def _real_molecule(cache: Path, qm9_id: int) -> tuple[GeneratedMolecule, str]:
    """A QM9 molecule as if generated (a valid sample), with its canonical SMILES."""
    for s in ("train", "val", "test"):
        data = qm9.load_qm9_split(s, cache)
        hits = np.nonzero(data.index == qm9_id)[0]
        if len(hits):
            m = data.molecule(int(hits[0]))
            pos = m["positions"].astype(np.float64)
            gen = GeneratedMolecule(m["atomic_numbers"].astype(np.int64), m["formal_charges"].astype(np.int64),
                                    pos - pos.mean(0), {"alpha": 12.5}, 1.5, 99)
            return gen, m["canonical_smiles"]
    raise AssertionError(f"QM9 id {qm9_id} not in the sample cache")


def test_collect_sets_the_verdicts(loaded, qm9_sample_cache):
    cache = qm9_sample_cache
    gens = sample_atoms(loaded, 6, conditions={"alpha": 50.0}, guidance=2.0, steps=STEPS, seed=5)
    real, smiles = _real_molecule(cache, 14)  # ethanol
    nan = GeneratedMolecule(np.array([6, 8, 1]), np.zeros(3, dtype=np.int64), np.full((3, 3), np.nan),
                            {"alpha": 50.0}, 2.0, 5)
    gens = [*gens, real, nan]
    result = collect(gens, keep_invalid=True, model_name="tiny")
    assert len(result) == result.num_generated == len(gens)
    for gen, mol in zip(gens, result):
        props = mol.GetPropsAsDict()
        assert mol.GetNumAtoms() == len(gen.atomic_numbers)
        assert [a.GetAtomicNum() for a in mol.GetAtoms()] == gen.atomic_numbers.tolist()
        assert mol.GetNumConformers() == 1
        assert props["valid"] in (0, 1) and props["mol_stable"] in (0, 1)
        assert 0.0 <= props["atom_stable_fraction"] <= 1.0
        assert props["seed"] == gen.seed and props["model"] == "tiny"
        assert props["condition_alpha"] == gen.conditions["alpha"] and props["guidance"] == gen.guidance
        if props["valid"]:
            assert "reason" not in props and props["smiles"]
            np.testing.assert_allclose(mol.GetConformer().GetPositions(), gen.positions, atol=1e-6)
        else:
            assert props["reason"] and mol.GetNumBonds() == 0  # atoms kept, no bonds: never mistaken for good
            if np.isfinite(gen.positions).all():
                np.testing.assert_allclose(mol.GetConformer().GetPositions(), gen.positions, atol=1e-6)

    ethanol = result[len(gens) - 2]
    assert ethanol.GetIntProp("valid") == 1 and ethanol.GetIntProp("mol_stable") == 1
    assert ethanol.GetDoubleProp("atom_stable_fraction") == 1.0
    assert ethanol.GetProp("smiles") == smiles == "CCO"
    assert Chem.MolToSmiles(Chem.RemoveHs(ethanol)) == "CCO"
    bad = result[len(gens) - 1]
    assert bad.GetIntProp("valid") == 0 and "finite" in bad.GetProp("reason")
    assert bad.GetDoubleProp("atom_stable_fraction") == 0.0 and bad.GetIntProp("mol_stable") == 0

    assert result.num_valid + sum(result.reasons.values()) == result.num_generated
    assert result.reasons[bad.GetProp("reason")] >= 1
    assert result.summary["validity"] == pytest.approx(result.num_valid / result.num_generated)
    assert 0.0 <= result.summary["atom_stability"] <= 1.0 and 0.0 <= result.summary["mol_stability"] <= 1.0

    only_valid = collect(gens)
    assert len(only_valid) == only_valid.num_valid == result.num_valid >= 1
    assert all(m.GetIntProp("valid") == 1 for m in only_valid)
    assert only_valid.num_generated == len(gens) and only_valid.reasons == result.reasons


def test_collect_without_conditions_writes_no_condition_tags(loaded):
    gens = sample_atoms(loaded, 2, num_atoms=5, steps=STEPS, seed=8)
    for mol in collect(gens, keep_invalid=True):
        props = mol.GetPropsAsDict()
        assert "guidance" not in props and not any(k.startswith("condition_") for k in props)
        assert props["seed"] == 8


def test_nan_samples_are_reported_not_raised(loaded):
    nan_model = dataclasses.replace(loaded, module=_NaNModel())
    gens = sample_atoms(nan_model, 3, num_atoms=[4, 5, 6], conditions={"alpha": 40.0}, steps=3, seed=1)
    assert [len(g.atomic_numbers) for g in gens] == [4, 5, 6]
    assert all(np.isnan(g.positions).all() for g in gens)
    result = collect(gens, keep_invalid=True)
    assert result.num_valid == 0 and len(result) == 3
    ((reason, count),) = result.reasons.items()
    assert count == 3 and "finite" in reason
    assert all(m.GetProp("reason") == reason and m.GetNumAtoms() == len(g.atomic_numbers) for m, g in zip(result, gens))
    assert {k: result.summary[k] for k in ("atom_stability", "mol_stability", "validity")} == {
        "atom_stability": 0.0, "mol_stability": 0.0, "validity": 0.0}
    assert len(collect(gens)) == 0

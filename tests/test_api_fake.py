"""molgen.generate_conformers with the ETKDG-based fake sampler (no model needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rdkit import Chem

import molgen
from molgen import api
from molgen.errors import InputError, MoleculeError


def test_generate_from_smiles(fake_sampler) -> None:
    mol = molgen.generate_conformers("CCO", n=10)
    assert isinstance(mol, Chem.Mol)
    assert mol.GetNumConformers() == 10 and mol.GetNumAtoms() == 9
    assert mol.GetProp("_Name") == "CCO"
    confs = list(mol.GetConformers())
    assert [c.GetIntProp("conf_id") for c in confs] == list(range(10))
    assert [c.GetId() for c in confs] == list(range(10))
    props = confs[0].GetPropsAsDict()
    assert {"seed", "model", "sampler", "steps", "conf_id"} <= set(props)
    assert mol.GetIntProp("molgen_n_requested") == 10
    assert mol.GetIntProp("molgen_n_dropped") == 0
    assert json.loads(mol.GetProp("molgen_drop_reasons")) == {}
    assert fake_sampler.calls[0]["seed"] == 42 and fake_sampler.calls[0]["n"] == 10


def test_generate_from_mol_adds_hydrogens(fake_sampler) -> None:
    mol = Chem.MolFromSmiles("C[C@H](N)C(=O)O")
    mol.SetProp("_Name", "alanine")
    out = molgen.generate_conformers(mol, n=3, name=None, seed=7)
    assert out.GetNumAtoms() == 13 and out.GetProp("_Name") == "alanine"
    assert out.GetNumConformers() == 3
    assert mol.GetNumAtoms() == 6  # input untouched


def test_invalid_input(fake_sampler) -> None:
    with pytest.raises(InputError, match="invalid SMILES"):
        molgen.generate_conformers("C1CC(")
    with pytest.raises(InputError, match="optimize"):
        molgen.generate_conformers("CCO", optimize="uff")
    with pytest.raises(InputError, match="n must be"):
        molgen.generate_conformers("CCO", n=0)
    with pytest.raises(InputError, match="sampler"):
        molgen.generate_conformers("CCO", sampler="euler")


def test_resampling_replaces_invalid_conformers(fake_sampler) -> None:
    def perturb(mol, seed):  # first round: the first two conformers get a NaN
        if seed == 42:
            for conf in list(mol.GetConformers())[:2]:
                conf.SetAtomPosition(0, (float("nan"), 0.0, 0.0))

    fake_sampler.perturb = perturb
    out = molgen.generate_conformers("CCCO", n=5)
    assert out.GetNumConformers() == 5
    seeds = [c["seed"] for c in fake_sampler.calls]
    assert seeds[0] == 42 and len(seeds) == 2 and seeds[1] not in (0, 42)
    assert fake_sampler.calls[1]["n"] == 2
    # the second round reuses the local structures of conformers that passed (no new embedding)
    assert fake_sampler.calls[0]["structures"] is None
    assert fake_sampler.calls[1]["structures"].shape == (2, 12, 3)
    assert out.GetIntProp("molgen_n_sampled") == 7
    assert out.GetIntProp("molgen_n_dropped") == 2
    assert json.loads(out.GetProp("molgen_drop_reasons")) == {"nonfinite": 2}
    # deterministic: same call, same seeds, same coordinates
    fake_sampler.calls.clear()
    again = molgen.generate_conformers("CCCO", n=5)
    assert [c["seed"] for c in fake_sampler.calls] == seeds
    assert np.allclose(out.GetConformer(4).GetPositions(), again.GetConformer(4).GetPositions())


def test_sampler_options_reach_the_sampler(fake_sampler) -> None:
    def perturb(mol, seed):  # first round: three invalid conformers to resample
        if seed == 42:
            for conf in list(mol.GetConformers())[:3]:
                conf.SetAtomPosition(0, (float("nan"), 0.0, 0.0))

    fake_sampler.perturb = perturb
    molgen.generate_conformers("CCCO", n=10, conformers_per_structure=4, ode_method="heun", sigma_start=0.5)
    first, second = fake_sampler.calls
    # ceil(10 / 4) structures for 10 conformers, then ceil(3 / 4) for the 3 resampled ones
    assert first["local_structures"] == 3 and second["local_structures"] == 1
    assert first["options"].ode_method == "heun" and first["options"].sigma_start == 0.5
    # with sigma_start set, resampling embeds anew instead of reusing passed structures
    assert second["structures"] is None
    fake_sampler.calls.clear()
    molgen.generate_conformers("CCO", n=2)
    assert fake_sampler.calls[0]["options"] == molgen.SamplingOptions(n=2)  # the defaults
    with pytest.raises(InputError, match="conformers_per_structure"):
        molgen.generate_conformers("CCO", conformers_per_structure=0)
    with pytest.raises(InputError, match="ode_method"):
        molgen.generate_conformers("CCO", ode_method="rk4")
    with pytest.raises(InputError, match="sigma_start"):
        molgen.generate_conformers("CCO", sigma_start=-1.0)


def test_all_invalid_raises(fake_sampler) -> None:
    def perturb(mol, seed):
        for conf in mol.GetConformers():
            conf.SetAtomPosition(0, (float("nan"), 0.0, 0.0))

    fake_sampler.perturb = perturb
    with pytest.raises(MoleculeError, match="no conformer passed validation"):
        molgen.generate_conformers("CCO", n=3, max_attempts=2)
    assert len(fake_sampler.calls) == 2


def test_embedding_failure_propagates(fake_sampler) -> None:
    fake_sampler.fail_names.add("bad")
    with pytest.raises(MoleculeError, match="cannot embed"):
        molgen.generate_conformers("CCO", n=2, name="bad")


def test_mmff_window_and_rms(fake_sampler) -> None:
    out = molgen.generate_conformers(
        "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O", n=12, optimize="mmff", energy_window=3.0, rms=0.5
    )
    k = out.GetNumConformers()
    assert 1 <= k <= 12
    energies = [c.GetDoubleProp("energy") for c in out.GetConformers()]
    deltas = [c.GetDoubleProp("delta_energy") for c in out.GetConformers()]
    assert min(deltas) == pytest.approx(0.0) and max(deltas) <= 3.0 + 1e-9
    assert np.allclose(np.array(energies) - min(energies), deltas)
    reasons = json.loads(out.GetProp("molgen_drop_reasons"))
    assert sum(reasons.values()) == out.GetIntProp("molgen_n_dropped") == 12 - k
    assert set(reasons) <= {"energy_window", "rms"}
    assert [c.GetIntProp("conf_id") for c in out.GetConformers()] == list(range(k))


def test_model_is_loaded_once_per_path(fake_sampler) -> None:
    molgen.generate_conformers("CCO", n=1)
    molgen.generate_conformers("CCN", n=1)
    assert len(fake_sampler.loads) == 1
    assert api.load_model(None) is api.load_model()
    with pytest.raises(InputError, match="cannot load model .*file not found"):
        api.load_model("/nonexistent/model.pt")


def test_flat_ring_conformers_are_relaxed_and_checked_again(fake_sampler) -> None:
    """ETKDG builds this partly unsaturated ring exactly flat (PoseBusters' non-flat ring check fails);
    a UFF relaxation puckers it, and the relaxed conformers pass validation."""
    from molgen.chem.validate import ConformerValidator

    smiles = "CC1=C(O)/C(=C\\N=C(/Cc2ccccc2)C(=O)O)C(COP(=O)(O)O)=CN1"
    out = molgen.generate_conformers(smiles, n=4)
    assert out.GetNumConformers() == 4
    coords = np.array([c.GetPositions() for c in out.GetConformers()])
    assert all(r.ok for r in ConformerValidator(out).validate_many(coords))

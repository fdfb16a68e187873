"""Shared pytest fixtures.

``fake_sampler`` replaces ``molgen.sampling.conformer_sampler`` (the torsional-diffusion
sampler) by a small stand-in that embeds conformers with RDKit ETKDGv3, so the API and
the CLI can be tested quickly on CPU without a trained model. Tests that need the real
model must not use it.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Callable, Iterator

import pytest


class FakeModel:
    """What the fake ``load_model`` returns."""

    def __init__(self, path: object) -> None:
        self.path = path
        self.name = "fake-etkdg" if path is None else f"fake:{path}"


def _make_fake_module() -> types.ModuleType:
    from rdkit import Chem
    from rdkit.Chem import rdDistGeom

    from molgen.errors import MoleculeError

    mod = types.ModuleType("molgen.sampling.conformer_sampler")
    mod.__doc__ = "Test stand-in for molgen.sampling.conformer_sampler (ETKDGv3 embedding)."
    mod.calls = []  # one dict per sample_conformers call
    mod.loads = []  # paths passed to load_model
    # Optional hook: perturb(mol, seed) may edit the returned conformers in place, e.g. to
    # make some of them fail validation.
    mod.perturb: Callable | None = None
    mod.fail_names: set[str] = set()  # molecules (by _Name) that "cannot be embedded"

    def load_model(path=None, device="cpu"):
        mod.loads.append(path)
        if path is not None and not str(path).startswith("fake") and not os.path.exists(path):
            raise FileNotFoundError(path)
        return FakeModel(path)

    def sample_conformers(mol, n, *, model, sampler, steps, seed, device, **options):
        name = mol.GetProp("_Name") if mol.HasProp("_Name") else ""
        mod.calls.append(
            {
                "name": name,
                "n": n,
                "sampler": sampler,
                "steps": steps,
                "seed": seed,
                "device": device,
                "options": options,
            }
        )
        if name in mod.fail_names:
            raise MoleculeError(f"{name}: cannot embed molecule (fake)")
        out = Chem.AddHs(Chem.Mol(mol))
        out.RemoveAllConformers()
        params = rdDistGeom.ETKDGv3()
        params.randomSeed = (int(seed) % (2**31 - 2)) + 1  # never 0 (identical conformers)
        ids = list(rdDistGeom.EmbedMultipleConfs(out, int(n), params))
        if not ids:
            raise MoleculeError(f"{name}: ETKDG embedding failed")
        for conf in out.GetConformers():
            conf.SetIntProp("seed", int(seed))
            conf.SetProp("model", model.name)
            conf.SetProp("sampler", sampler)
            conf.SetIntProp("steps", int(steps))
        if mod.perturb is not None:
            mod.perturb(out, seed)
        return out

    mod.load_model = load_model
    mod.sample_conformers = sample_conformers
    return mod


@pytest.fixture
def fake_sampler(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """Install an ETKDGv3-based fake ``molgen.sampling.conformer_sampler`` module."""
    import molgen.sampling
    from molgen import api

    mod = _make_fake_module()
    monkeypatch.setitem(sys.modules, "molgen.sampling.conformer_sampler", mod)
    monkeypatch.setattr(molgen.sampling, "conformer_sampler", mod, raising=False)
    api.clear_model_cache()
    yield mod
    api.clear_model_cache()

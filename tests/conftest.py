"""Shared pytest fixtures.

``fake_sampler`` makes the default model a registered test model type whose sampler embeds
conformers with RDKit ETKDGv3, so the API and the CLI can be tested quickly on CPU without a
trained model. Tests that need the real model must not use it.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator

import pytest

FAKE_FORMAT = "molgen-test-etkdg/1"


def _make_fake_module() -> types.SimpleNamespace:
    """A model type ``fake-etkdg`` registered in :mod:`molgen.models.registry` and its sampler in
    :mod:`molgen.sampling.pipeline`: the model-type registry is the seam, not a module swap."""
    import numpy as np
    from rdkit import Chem
    from rdkit.Chem import rdDistGeom

    from molgen.errors import MoleculeError

    mod = types.SimpleNamespace()
    mod.calls = []  # one dict per molecule and sampling round
    mod.loads = []  # checkpoint paths built by the registry
    # Optional hook: perturb(mol, seed) may edit the sampled conformers in place, e.g. to make some of
    # them fail validation.
    mod.perturb: Callable | None = None
    mod.fail_names: set[str] = set()  # molecules (by _Name) that "cannot be embedded"

    def build(state, device):
        mod.loads.append(state.get("path"))
        return "fake-etkdg", None, None

    def sample(loaded, requests, options, batch_atoms=None):
        out_list = []
        for req in requests:
            mol = req.system
            name = mol.GetProp("_Name") if mol.HasProp("_Name") else ""
            mod.calls.append(
                {
                    "name": name,
                    "n": req.n,
                    "seed": req.seed,
                    "options": options,
                    "structures": req.structures,
                    "local_structures": options.num_structures(req.n, True),
                    "batch_atoms": batch_atoms,
                }
            )
            if name in mod.fail_names:
                out_list.append(MoleculeError(f"{name}: cannot embed molecule (fake)"))
                continue
            out = Chem.Mol(mol)
            out.RemoveAllConformers()
            params = rdDistGeom.ETKDGv3()
            params.randomSeed = (int(req.seed) % (2**31 - 2)) + 1  # never 0 (identical conformers)
            ids = list(rdDistGeom.EmbedMultipleConfs(out, int(req.n), params))
            if not ids:
                out_list.append(MoleculeError(f"{name}: ETKDG embedding failed"))
                continue
            if mod.perturb is not None:
                mod.perturb(out, req.seed)
            out_list.append(np.array([c.GetPositions() for c in out.GetConformers()]))
        return out_list

    mod.build = build
    mod.sample = sample
    return mod


@pytest.fixture
def fake_sampler(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[types.SimpleNamespace]:
    """Make the default model an ETKDGv3-based fake (``$MOLGEN_MODEL`` -> a tiny fake checkpoint)."""
    import torch

    from molgen import api
    from molgen.models import registry
    from molgen.sampling import pipeline

    mod = _make_fake_module()
    path = tmp_path_factory.mktemp("fake_model") / "fake-etkdg.pt"
    torch.save({"format": FAKE_FORMAT, "extra": {"name": "fake-etkdg"}, "path": None}, path)
    mod.path = path
    registry.register_model_type(FAKE_FORMAT, mod.build)
    pipeline.register_sampler("fake-etkdg", mod.sample)
    monkeypatch.setenv("MOLGEN_MODEL", str(path))
    api.clear_model_cache()
    yield mod
    api.clear_model_cache()


QM9_SAMPLE_CSV = __import__("pathlib").Path(__file__).resolve().parent / "data" / "qm9_sample.csv"


@pytest.fixture(scope="session")
def qm9_sample_cache(tmp_path_factory: pytest.TempPathFactory):
    """A QM9 cache built once per session from the shipped 50-row sample (tests must not change it)."""
    from molgen.datasets import qm9

    root = tmp_path_factory.mktemp("qm9cache")
    qm9.build_qm9(root, sources=[QM9_SAMPLE_CSV])
    return root


@pytest.fixture(scope="session")
def train_tiny_qm9(tmp_path_factory: pytest.TempPathFactory, qm9_sample_cache) -> Callable[..., object]:
    """``train_tiny_qm9(task, **task_options) -> best checkpoint``: a tiny network of a QM9 task (``molecules``,
    ``cartesian``) trained for two steps of 4 molecules on the sample cache, one thread."""
    import torch

    from molgen.datasets import qm9
    from molgen.training.trainer import TrainConfig, train

    def run(task: str, **task_options: object):
        torch.set_num_threads(1)
        cfg = TrainConfig(task=task, out=str(tmp_path_factory.mktemp(task)), steps=2, batch_size=4, log_every=1,
                          val_every=2, checkpoint_every=2, warmup=1, threads=1, device="cpu", val_molecules=4,
                          model={"ns": 16, "nv": 4, "num_layers": 2, "num_rbf": 8},
                          task_options={"cache": str(qm9_sample_cache), **task_options})
        with pytest.MonkeyPatch.context() as mp:
            # never fall back to qm9pack's full CSVs (absent in CI): the sample is the only source
            mp.setattr(qm9, "default_sources", lambda: [QM9_SAMPLE_CSV])
            return train(cfg)

    return run

"""The de novo molecule task (molgen.training.train_molecules, task "molecules"): a few training steps on
a QM9 cache built from the shipped sample (tests/data/qm9_sample.csv), and unit tests of its loss and
classifier-free condition dropout on hand-made batches."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from molgen.chem.atom_encoding import QM9_ENCODING
from molgen.datasets import qm9, split
from molgen.diffusion.process import VPSchedule
from molgen.models.registry import load_checkpoint_model
from molgen.training.tasks import get_task
from molgen.training.train_molecules import (
    MoleculeTask,
    collate_molecules,
    condition_values,
)
from molgen.training.trainer import TrainConfig, train

SAMPLE_CSV = Path(__file__).resolve().parents[1] / "data" / "qm9_sample.csv"
CONDITIONS = ["alpha", "num_heavy_atoms"]
TINY_MODEL = {"ns": 16, "nv": 4, "num_layers": 2, "num_rbf": 8}
STEPS = 6


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _sample_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    # never fall back to qm9pack's full CSVs (a 90 s build here, an InputError in CI where qm9pack is
    # absent): the task keeps its cache's own sources (test_task_reuses_a_cache_...), this is a guard
    monkeypatch.setattr(qm9, "default_sources", lambda: [SAMPLE_CSV])


def _config(out: Path, cache: Path, **changes) -> TrainConfig:
    options = {"cache": str(cache), "conditions": CONDITIONS, "half": "all"}
    options.update(changes.pop("task_options", {}))
    kwargs = {"task": "molecules", "out": str(out), "steps": STEPS, "batch_size": 4, "log_every": 2,
              "val_every": 2, "checkpoint_every": 3, "warmup": 1, "threads": 1, "device": "cpu",
              "val_molecules": 4, "model": dict(TINY_MODEL), "task_options": options}
    kwargs.update(changes)
    return TrainConfig(**kwargs)


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "loss_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def cache(qm9_sample_cache) -> Path:
    return qm9_sample_cache


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache) -> Path:
    """Output folder of a 6-step run (conditions alpha and num_heavy_atoms)."""
    out = tmp_path_factory.mktemp("run") / "out"
    with pytest.MonkeyPatch.context() as mp:
        _sample_sources(mp)
        best = train(_config(out, cache))
    assert best == out / "best.pt"
    return out


# ------------------------------------------------------------------------------------------ training
def test_sample_split_sizes_fit_the_batches(cache):
    # EDM split of the 50 sample rows; drop_last=True needs at least one full training batch
    sizes = {s: len(qm9.load_qm9_split(s, cache)) for s in split.SPLITS}
    assert sizes == qm9.edm_split_sizes(50) == {"train": 38, "val": 7, "test": 5}


def test_training_writes_checkpoints_and_a_finite_log(trained):
    assert {"best.pt", "last.pt", "loss_log.jsonl", "summary.json"} <= {p.name for p in trained.iterdir()}
    log = _log(trained)
    assert [e["step"] for e in log] == [2, 4, 6]
    assert all(math.isfinite(e["loss"]) and math.isfinite(e["val_loss"]) for e in log)
    # an untrained network predicting noise of unit variance is near 1; it must not blow up in 6 steps
    assert all(0.2 < e["loss"] < 5 for e in log)
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["step"] == STEPS and summary["train_molecules"] == 38
    assert math.isfinite(summary["best_val_loss"]) and len(summary["data_hash"]) == 64


def test_best_checkpoint_loads_as_a_molecule_model(trained, cache):
    loaded = load_checkpoint_model(trained / "best.pt")
    assert loaded.kind == "molecules"
    assert set(loaded.processes) == {"pos", "atom_type"}
    assert all(isinstance(p, VPSchedule) for p in loaded.processes.values())
    assert not loaded.module.training
    meta = loaded.meta
    assert 1 <= meta["step"] <= STEPS and meta["train_config"]["task"] == "molecules"
    assert math.isfinite(meta["extra"]["val_loss"])
    task = meta["task"]
    assert task["encoding"] == QM9_ENCODING.to_dict() and task["type_scale"] == 0.25
    assert task["conditions"] == CONDITIONS and task["dataset"] == "qm9" and task["half"] == "all"

    train_split = qm9.load_qm9_split("train", cache)
    norms = task["normalisation"]
    assert set(norms) == set(CONDITIONS)
    alpha = condition_values(train_split, "alpha")
    assert norms["alpha"]["mean"] == pytest.approx(alpha.mean())
    assert norms["alpha"]["mad"] == pytest.approx(np.abs(alpha - alpha.mean()).mean())
    heavy = condition_values(train_split, "num_heavy_atoms")
    assert norms["num_heavy_atoms"]["mean"] == pytest.approx(heavy.mean())
    assert norms["num_heavy_atoms"]["mad"] >= 1.0  # the floor of count conditions

    counts = {int(k): v for k, v in task["atom_counts"].items()}
    assert counts == pytest.approx(qm9.atom_count_distribution(train_split))
    by_heavy = task["atom_counts_by_heavy"]
    assert {int(h) for h in by_heavy} == set(train_split.num_heavy_atoms.tolist())
    for h, dist in by_heavy.items():
        assert sum(dist.values()) == pytest.approx(1.0)
        sizes = train_split.num_atoms[train_split.num_heavy_atoms == int(h)]
        assert {int(k) for k in dist} == set(sizes.tolist())
        for k, frac in dist.items():
            assert frac == pytest.approx(float(np.mean(sizes == int(k))))


def test_rerun_resumes_instead_of_restarting(trained, tmp_path, cache, monkeypatch):
    _sample_sources(monkeypatch)
    out = tmp_path / "out"
    shutil.copytree(trained, out)
    before = _log(out)
    # the same command again: nothing left to do, the log is not restarted
    train(_config(out, cache))
    assert _log(out) == before
    # more steps: continues at step 7 with the saved optimizer and log
    train(_config(out, cache, steps=STEPS + 2))
    after = _log(out)
    assert after[: len(before)] == before and [e["step"] for e in after] == [2, 4, 6, 8]
    assert math.isfinite(after[-1]["loss"])
    last = load_checkpoint_model(out / "last.pt").meta
    assert last["step"] == STEPS + 2
    assert last["data_hash"] == load_checkpoint_model(trained / "last.pt").meta["data_hash"]
    # other data (another half of the training split) is refused rather than mixed in
    with pytest.raises(ValueError, match="other data"):
        train(_config(out, cache, steps=STEPS + 4, task_options={"half": "first"}))


def test_heldout_molecules_never_reach_the_task(tmp_path, monkeypatch):
    _sample_sources(monkeypatch)
    cache = tmp_path / "cache"
    qm9.build_qm9(cache, sources=[SAMPLE_CSV])
    val_split, train_split = qm9.load_qm9_split("val", cache), qm9.load_qm9_split("train", cache)
    # one validation molecule (ethane, id 7) and one training molecule become held out
    target = {7: str(val_split.inchikey_block[list(val_split.index).index(7)]),
              22134: str(train_split.inchikey_block[list(train_split.index).index(22134)])}
    blocks = frozenset(target.values())
    monkeypatch.setattr(split, "heldout_blocks", lambda path=None: blocks | {"AAAAAAAAAAAAAA"})

    cfg = _config(tmp_path / "out", cache, steps=2, val_molecules=100)
    task = get_task("molecules")(cfg)
    train(cfg, task)  # the task rebuilds the cache: the old one holds held-out molecules
    train_set, val_set = task.datasets()
    assert len(train_set) == 37 and len(val_set) == 6
    for ds in (train_set, val_set):
        ids = set(ds.split.index[ds.indices].tolist())
        assert not ids & set(target)
        assert not blocks & set(ds.split.inchikey_block[ds.indices].tolist())
    meta = json.loads((qm9.qm9_dir(cache) / "meta.json").read_text())
    assert meta["heldout_removed"] == {"train": 1, "val": 1, "test": 0}


def test_task_reuses_a_cache_built_from_other_sources(tmp_path, cache, monkeypatch):
    def no_rebuild(*args, **kwargs):
        raise AssertionError("the task rebuilt the QM9 cache from the default sources")

    monkeypatch.setattr(qm9, "_read_sources", no_rebuild)  # never read qm9pack's 224 MB here
    task = MoleculeTask(_config(tmp_path / "out", cache))
    train_set, _ = task.datasets()
    assert len(train_set) == 38


# ------------------------------------------------------------------------------------- loss, by hand
def _batch(sizes: list[int], num_conditions: int, pos_rms: float = 1.4, seed: int = 0):
    """Random molecules of QM9 atoms; centred positions whose per-coordinate RMS in the zero-mean
    subspace is ``pos_rms`` Å."""
    rng = np.random.default_rng(seed)
    items = []
    for n in sizes:
        z = rng.choice(QM9_ENCODING.elements, size=n)
        q = rng.choice([-1, 0, 0, 0, 1], size=n)
        pos = rng.normal(scale=pos_rms, size=(n, 3)).astype(np.float32)
        item = {"types": QM9_ENCODING.encode(z, q), "pos": pos - pos.mean(0)}
        if num_conditions:
            item["cond"] = rng.normal(size=num_conditions).astype(np.float32)
        items.append(item)
    return collate_molecules(items)


def _time_of_rho(process: VPSchedule, rho: torch.Tensor) -> torch.Tensor:
    """Inverse of ``rho(t) = sigma(t) / alpha(t)`` of a VP schedule (alpha^2 + sigma^2 = 1)."""
    s = process.precision
    a2 = 1.0 / (1.0 + rho.double() ** 2)
    return (1.0 - ((a2 - s) / (1.0 - 2.0 * s)).clamp(0.0, 1.0).sqrt()).clamp_min(0.0) ** (1.0 / process.power)


class _Recorder(nn.Module):
    """Outputs zeros or, given the clean batch and the task, the exact regression target; records its inputs."""

    def __init__(self, clean=None, task: MoleculeTask | None = None) -> None:
        super().__init__()
        self.clean, self.task, self.calls = clean, task, []

    def forward(self, batch, rho, cond=None, cond_mask=None):
        self.calls.append({"batch": batch, "rho": rho, "cond": cond, "mask": cond_mask})
        if self.clean is None:
            return torch.zeros_like(batch.pos), torch.zeros_like(batch.node_features)
        # rho = sigma / alpha with alpha^2 + sigma^2 = 1: recover the drawn noise from the clean data
        alpha = (1.0 / torch.sqrt(1.0 + rho.double() ** 2))[batch.batch, None]
        sigma = rho.double()[batch.batch, None] * alpha
        clean_types = self.task.type_scale * self.clean.node_features.double()
        eps_pos = (batch.pos.double() - alpha * self.clean.pos.double()) / sigma
        eps_type = (batch.node_features.double() - alpha * clean_types) / sigma
        procs = self.task.processes
        t = _time_of_rho(procs["pos"], rho)[batch.batch, None]
        out_pos = procs["pos"].target(eps_pos, t, batch.pos.double())
        out_type = procs["atom_type"].target(eps_type, t, batch.node_features.double())
        return out_pos.float(), out_type.float()


def _pos_rms(task: MoleculeTask) -> float:
    return getattr(task.processes["pos"], "data_rms", None) or 1.4


def test_loss_of_a_zero_prediction_is_the_noise_variance():
    task = MoleculeTask(TrainConfig(task="molecules", task_options={"conditions": CONDITIONS}))
    sizes = [3, 5, 9, 12, 18, 29] * 40
    batch = _batch(sizes, len(CONDITIONS), pos_rms=_pos_rms(task))
    model = _Recorder()
    gen = torch.Generator().manual_seed(0)
    loss, weight = task.loss(model, batch, gen)
    assert weight == float(len(sizes)) and loss.ndim == 0
    # the regression target has unit variance per number (eps, or eps preconditioned for data of this
    # RMS), except that position noise lives in the 3 (n - 1)-dim zero-mean subspace
    f = QM9_ENCODING.dim
    expected = np.mean([1.0 - 3.0 / (n * (3 + f)) for n in sizes])
    assert loss.item() == pytest.approx(expected, abs=0.03)

    (call,) = model.calls
    g = call["batch"]
    assert g.node_features.shape == (sum(sizes), f) and g.pos.shape == (sum(sizes), 3)
    means = torch.zeros(len(sizes), 3).index_add_(0, g.batch, g.pos) / torch.tensor(sizes)[:, None]
    assert means.abs().max() < 1e-4  # noised positions stay centred
    assert call["rho"].shape == (len(sizes),) and (call["rho"] > 0).all()
    assert call["cond"] is batch.cond and call["mask"].shape == (len(sizes), len(CONDITIONS))
    assert call["mask"].dtype == torch.bool
    # the same generator state gives the same loss
    again = task.loss(_Recorder(), batch, torch.Generator().manual_seed(0))[0]
    assert again.item() == loss.item()


def test_loss_vanishes_for_the_exact_target_and_passes_no_mask_without_conditions():
    task = MoleculeTask(TrainConfig(task="molecules"))
    assert task.conditions == [] and task.half == "all"
    batch = _batch([4, 7, 11, 16, 23], 0, seed=3)
    assert batch.cond is None
    oracle = _Recorder(clean=batch.graph, task=task)
    loss, _ = task.loss(oracle, batch, torch.Generator().manual_seed(5))
    assert loss.item() < 1e-4
    (call,) = oracle.calls
    assert call["cond"] is None and call["mask"] is None
    # the zero prediction of the same draw is far from it
    assert task.loss(_Recorder(), batch, torch.Generator().manual_seed(5))[0].item() > 0.5


@pytest.mark.parametrize(("drop_all", "drop_each"), [(0.1, 0.5), (0.3, 0.2)])
def test_condition_mask_dropout_rates(drop_all, drop_each):
    names = ["alpha", "gap", "num_heavy_atoms"]
    task = MoleculeTask(TrainConfig(task="molecules", task_options={
        "conditions": names, "drop_all": drop_all, "drop_each": drop_each}))
    b = 40_000
    mask = task.condition_mask(b, torch.Generator().manual_seed(7), torch.device("cpu"))
    assert mask.shape == (b, len(names)) and mask.dtype == torch.bool
    keep = 1.0 - drop_each
    m = mask.double()
    tol = 0.012
    # each condition kept unless everything is dropped or it is dropped alone
    for k in range(len(names)):
        assert m[:, k].mean().item() == pytest.approx((1 - drop_all) * keep, abs=tol)
    # all dropped: the unconditional rows, plus rows whose every condition was dropped one by one
    assert (~mask).all(1).double().mean().item() == pytest.approx(drop_all + (1 - drop_all) * drop_each**3, abs=tol)
    assert mask.all(1).double().mean().item() == pytest.approx((1 - drop_all) * keep**3, abs=tol)
    # given one kept condition (so the row is not an unconditional one) the others are independent of it
    kept0 = mask[:, 0]
    assert m[kept0, 1].mean().item() == pytest.approx(keep, abs=2 * tol)
    # seeded: the same generator state gives the same mask, another seed another one
    assert torch.equal(mask, task.condition_mask(b, torch.Generator().manual_seed(7), torch.device("cpu")))
    assert not torch.equal(mask, task.condition_mask(b, torch.Generator().manual_seed(8), torch.device("cpu")))


def test_condition_mask_extremes():
    def mask(drop_all, drop_each):
        task = MoleculeTask(TrainConfig(task="molecules", task_options={
            "conditions": ["alpha", "gap"], "drop_all": drop_all, "drop_each": drop_each}))
        return task.condition_mask(500, torch.Generator().manual_seed(0), torch.device("cpu"))

    assert mask(0.0, 0.0).all()
    assert not mask(1.0, 0.0).any()
    assert not mask(0.0, 1.0).any()


def test_bad_task_options_are_refused():
    with pytest.raises(ValueError, match="half"):
        MoleculeTask(TrainConfig(task="molecules", task_options={"half": "third"}))
    task = MoleculeTask(TrainConfig(task="molecules", task_options={"conditions": ["alpha"]}))
    assert task.half == "second"  # conditional models train on EDM's D_b by default

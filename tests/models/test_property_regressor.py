"""The QM9 property regressor: E(3) and permutation invariance, fast == reference, a few training steps
of the ``property`` task on a tiny QM9 cache, reloading, raw-unit predictions and EDM's MAE baselines."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from e3nn.util.test import assert_equivariant

from molgen.chem.atom_encoding import AtomEncoding
from molgen.models.graph import node_batch
from molgen.models.property_regressor import (
    PROPERTY_FORMAT,
    PropertyRegressor,
    PropertyRegressorConfig,
    load_property_regressor,
)

SIZES = [5, 9, 3]
TYPE_DIM = 5
NUM_PROPS = 2
SAMPLE_CSV = Path(__file__).resolve().parents[1] / "data" / "qm9_sample.csv"
TINY = {"ns": 16, "nv": 4, "num_layers": 2, "num_rbf": 8, "edge_dim": 16}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = PropertyRegressorConfig(type_dim=TYPE_DIM, num_properties=NUM_PROPS, **TINY)
    return PropertyRegressor(cfg).double().eval()


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(3)
    n = sum(SIZES)
    types = torch.nn.functional.one_hot(torch.randint(0, TYPE_DIM, (n,), generator=g), TYPE_DIM).double()
    pos = torch.randn((n, 3), generator=g, dtype=torch.float64) * 1.5
    return types, pos


@pytest.mark.parametrize("reference", [False, True], ids=["fast", "reference"])
def test_predictions_are_e3_invariant(model, inputs, reference):
    """Rotations, reflections and translations of the positions leave every prediction (0e) unchanged."""
    types, pos = inputs

    def fn(p):
        return model(node_batch(types, p, SIZES), reference=reference)

    assert_equivariant(fn, args_in=[pos], irreps_in=["cartesian_points"], irreps_out=[f"{NUM_PROPS}x0e"], tolerance=1e-7)
    out = fn(pos)
    assert out.shape == (len(SIZES), NUM_PROPS)
    assert (out[0] - out[1]).abs().max() > 1e-4  # molecules differ: not a constant


def test_mirror_image_and_shift_explicitly(model, inputs):
    types, pos = inputs
    ref = model(node_batch(types, pos, SIZES))
    mirrored = pos * torch.tensor([-1.0, 1.0, 1.0], dtype=pos.dtype) + torch.tensor([3.0, -2.0, 0.5], dtype=pos.dtype)
    torch.testing.assert_close(model(node_batch(types, mirrored, SIZES)), ref, rtol=1e-9, atol=1e-10)


def test_fast_equals_reference(model, inputs):
    types, pos = inputs
    b = node_batch(types, pos, SIZES)
    torch.testing.assert_close(model(b), model(b, reference=True), rtol=1e-9, atol=1e-10)


def test_permutation_invariance_and_independent_molecules(model, inputs):
    types, pos = inputs
    offsets = np.cumsum([0, *SIZES[:-1]])
    perm = torch.cat([torch.randperm(n, generator=torch.Generator().manual_seed(n)) + int(off)
                      for n, off in zip(SIZES, offsets)])
    ref = model(node_batch(types, pos, SIZES))
    torch.testing.assert_close(model(node_batch(types[perm], pos[perm], SIZES)), ref)
    alone = model(node_batch(types[5:14], pos[5:14], [9]))
    torch.testing.assert_close(alone, ref[1:2])
    # the order of molecules in the batch does not matter either
    swapped = model(node_batch(torch.cat([types[14:], types[:14]]), torch.cat([pos[14:], pos[:14]]), [3, 5, 9]))
    torch.testing.assert_close(swapped, ref[[2, 0, 1]])


def test_mean_readout_and_bad_config(inputs):
    types, pos = inputs
    torch.manual_seed(0)
    m = PropertyRegressor(PropertyRegressorConfig(type_dim=TYPE_DIM, readout="mean", **TINY)).double().eval()
    assert m(node_batch(types, pos, SIZES)).shape == (3, 1)
    with pytest.raises(ValueError, match="readout"):
        PropertyRegressor(PropertyRegressorConfig(readout="max"))


# ------------------------------------------------------------------------------------ training smoke
def _sample_csv(tmp: Path) -> Path:
    """The shipped QM9 sample, else the first 60 rows of the installed qm9pack data (never imported)."""
    if SAMPLE_CSV.is_file():
        return SAMPLE_CSV
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("no QM9 sample: neither tests/data/qm9_sample.csv nor the qm9pack package")
    src = Path(next(iter(spec.submodule_search_locations))) / "data" / "qm9_part1.csv"
    if not src.is_file():
        pytest.skip(f"no QM9 sample: {src} missing")
    out = tmp / "qm9_small.csv"
    with open(src) as fh, open(out, "w") as dst:
        for k, line in enumerate(fh):
            if k > 60:
                break
            dst.write(line)
    return out


@pytest.fixture(scope="module")
def qm9_cache(tmp_path_factory) -> Path:
    from molgen.datasets.qm9 import build_qm9

    tmp = tmp_path_factory.mktemp("qm9")
    build_qm9(tmp / "cache", sources=[_sample_csv(tmp)])
    return tmp / "cache"


@pytest.fixture(scope="module")
def trained(qm9_cache, tmp_path_factory) -> Path:
    from molgen.training.trainer import TrainConfig, train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(task="property", out=str(out), steps=4, batch_size=8, log_every=2, val_every=2,
                      checkpoint_every=2, warmup=1, val_molecules=8, device="cpu", model=dict(TINY),
                      task_options={"cache": str(qm9_cache), "properties": ["alpha"], "half": "all"})
    best = train(cfg)
    assert best.exists() and (out / "last.pt").exists()
    return out


def test_training_runs_and_logs(trained):
    log = [json.loads(line) for line in (trained / "loss_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [2, 4]
    assert all(math.isfinite(e["loss"]) and math.isfinite(e["val_loss"]) for e in log)
    assert torch.load(trained / "last.pt", weights_only=False)["format"] == PROPERTY_FORMAT


def test_training_resumes(trained, qm9_cache, tmp_path):
    import shutil

    from molgen.training.trainer import TrainConfig, train

    out = tmp_path / "run"
    shutil.copytree(trained, out)
    cfg = TrainConfig(task="property", out=str(out), steps=6, batch_size=8, log_every=2, val_every=2,
                      checkpoint_every=2, warmup=1, val_molecules=8, device="cpu", model=dict(TINY),
                      task_options={"cache": str(qm9_cache), "properties": ["alpha"], "half": "all"})
    train(cfg)
    assert load_property_regressor(out / "last.pt").meta["step"] == 6


def test_checkpoint_loads_and_predicts_raw_units(trained, qm9_cache):
    from molgen.bench.property_mae import predict_properties, split_molecules
    from molgen.datasets.qm9 import load_qm9_split
    from molgen.training.train_molecules import mean_mad

    reg = load_property_regressor(trained / "best.pt")
    assert reg.kind == "property" and reg.processes == {}
    task = reg.meta["task"]
    assert task["properties"] == ["alpha"] and task["half"] == "all" and task["units"] == {"alpha": "Bohr^3"}
    split = load_qm9_split("train", qm9_cache)
    assert len(split) < 100  # the task kept the sample cache (no rebuild from qm9pack's full CSVs)
    assert task["normalisation"]["alpha"] == pytest.approx(mean_mad(split.properties["alpha"]))
    zs, xs, _ = split_molecules(split, np.arange(len(split)))
    # a molecule with sulfur (outside the encoding) and one without atoms are skipped as NaN rows
    zs += [np.array([16, 1, 1]), np.zeros(0, dtype=np.int64)]
    xs += [np.array([[0.0, 0, 0], [1.3, 0, 0], [0, 1.3, 0]]), np.zeros((0, 3))]
    pred = predict_properties(reg, zs, xs, batch_size=7)
    assert pred.shape == (len(split) + 2, 1)
    assert np.isfinite(pred[:-2]).all() and np.isnan(pred[-2:]).all()
    # de-normalised: the network output times the MAD plus the mean (Bohr^3), whatever the batching
    n_el = len(task["encoding"]["elements"])
    enc = AtomEncoding.from_dict(task["encoding"])
    with torch.no_grad():
        raw = reg.module(node_batch(torch.from_numpy(enc.encode(zs[0])[:, :n_el]), torch.from_numpy(xs[0]), [len(zs[0])]))
    norm = task["normalisation"]["alpha"]
    assert pred[0, 0] == pytest.approx(float(raw[0, 0]) * norm["mad"] + norm["mean"], rel=1e-5)
    # shifting and rotating a molecule does not change its prediction
    rot = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(1)))[0].numpy()
    moved = predict_properties(reg, [zs[1]], [xs[1] @ rot.T + 5.0])
    assert moved[0, 0] == pytest.approx(pred[1, 0], rel=1e-4, abs=1e-4)


def test_mae_baselines_and_generated_rows(trained, qm9_cache):
    from molgen.bench.property_mae import (
        baseline_maes,
        generated_mae,
        mae_table,
        split_molecules,
    )
    from molgen.datasets.qm9 import load_qm9_split
    from molgen.training.train_property import half_indices

    reg = load_property_regressor(trained / "best.pt")
    split = load_qm9_split("train", qm9_cache)
    db = half_indices(len(split), "second")
    base = baseline_maes(reg, split, db, seed=3)
    assert base["num_molecules"] == len(db) and base["num_skipped"] == 0
    assert base["shuffled"]["alpha"] >= 0 and math.isfinite(base["data"]["alpha"])
    table = mae_table(reg, split, db, "alpha", seed=3)
    assert table["shuffled"] == pytest.approx(base["shuffled"]["alpha"]) and table["data"] == pytest.approx(base["data"]["alpha"])
    # "generated" molecules: D_b molecules requested with their own values reproduce the data row
    zs, xs, _ = split_molecules(split, db)
    truth = split.properties["alpha"][db]
    zs.append(np.array([16, 1, 1]))
    xs.append(np.array([[0.0, 0, 0], [1.3, 0, 0], [0, 1.3, 0]]))
    requested = np.append(truth, 50.0)
    gen = generated_mae(reg, zs, xs, {"alpha": requested})
    assert gen["num_skipped"] == 1 and gen["num_evaluated"] == len(db)
    assert gen["mae"]["alpha"] == pytest.approx(base["data"]["alpha"])
    full = mae_table(reg, split, db, atomic_numbers_list=zs, positions_list=xs, requested=requested)
    assert list(full) == ["shuffled", "generated", "data", "num_data", "skipped_data", "num_generated", "skipped_generated"]
    assert full["generated"] == pytest.approx(base["data"]["alpha"]) and full["skipped_generated"] == 1


def test_cli_prints_baselines(trained, qm9_cache, capsys):
    from molgen.bench.property_mae import main

    result = main(["--regressor", str(trained / "best.pt"), "--cache", str(qm9_cache), "--split-half", "second",
                   "--num", "5", "--format", "json"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["num_evaluated"] == result["num_evaluated"] == 5
    assert printed["shuffled"]["alpha"] >= 0 and math.isfinite(printed["data"]["alpha"])
    main(["--regressor", str(trained / "best.pt"), "--cache", str(qm9_cache), "--num", "0"])
    text = capsys.readouterr().out
    assert "| alpha | Bohr^3 |" in text and "Warning: the regressor was trained on half 'all'" in text


def test_task_options_and_batches(qm9_cache):
    from molgen.training.tasks import get_task
    from molgen.training.trainer import TrainConfig

    def task(**opts):
        cfg = TrainConfig(task="property", task_options={"cache": str(qm9_cache), **opts}, val_molecules=4)
        return get_task("property")(cfg)

    t = task(properties=["alpha", "gap"])
    assert t.half == "first" and t.processes == {}
    train_set, val_set = t.datasets()
    assert len(train_set) == len(t._train) // 2 and len(val_set) <= 4
    batch = t.collate([train_set[i] for i in range(3)])
    assert batch.graph.node_features.shape[1] == 5 and batch.cond.shape == (3, 2)
    model = t.build_model(dict(TINY))
    loss, weight = t.loss(model, batch)
    assert loss.ndim == 0 and weight == 3.0 and torch.isfinite(loss)
    assert task(charges=True).collate([train_set[0]]).graph.node_features.shape[1] == 8
    assert task(half="second").data_hash() != task(half="first").data_hash()
    with pytest.raises(ValueError, match="half"):
        task(half="both")
    with pytest.raises(ValueError, match="unknown properties"):
        task(properties=["bandgap"])

"""A few training steps on a tiny dataset: checkpoint written, reloaded, resumed and exported."""

import json

import numpy as np
import torch
from rdkit import Chem
from rdkit.Chem import rdDistGeom

from molgen.datasets.build_ccd import matched_record
from molgen.datasets.conformer_dataset import (
    TorsionConformerDataset,
    write_training_arrays,
)
from molgen.models.registry import load_checkpoint_model
from molgen.training.pipeline import export_weights
from molgen.training.train_conformers import TrainConfig, train

SMILES = ["CCCCOc1ccccc1C(=O)NCC", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "CN(C)CCOC(c1ccccc1)c1ccccc1",
          "CC(=O)Nc1ccc(OCC)cc1", "OCC(O)COc1ccccc1", "CCN(CC)C(=O)c1cccnc1"]


def experimental(smiles: str, seed: int) -> Chem.Mol:
    """Stand-in for a CCD ligand: a heavy-atom molecule with one 3D conformer."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = seed
    rdDistGeom.EmbedMolecule(mol, params)
    return Chem.RemoveHs(mol)


def tiny_dataset(path):
    records = []
    for i, smi in enumerate(SMILES * 2):
        rec = matched_record(experimental(smi, 100 + i), ccd_id=f"M{i}", block=f"{i:014d}",
                             split="val" if i % 4 == 0 else "train", num_seeds=2, seed=1 + i)
        assert rec["rmsd_match"] < 1.0
        records.append(rec)
    counts = write_training_arrays(records, path)
    assert counts["train"] > 0 and counts["val"] > 0
    return path


def test_dataset_round_trip(tmp_path):
    path = tiny_dataset(tmp_path / "tiny.npz")
    ds = TorsionConformerDataset(path, "train")
    item = ds[0]
    assert item["torsion_masks"].shape == (len(item["torsions"]), len(item["node_features"]))
    assert item["pos"].dtype == np.float32 and np.isfinite(item["pos"]).all()


def test_train_checkpoint_resume_and_export(tmp_path):
    torch.set_num_threads(1)
    data = tiny_dataset(tmp_path / "tiny.npz")
    out = tmp_path / "run"
    cfg = TrainConfig(data=str(data), out=str(out), steps=4, batch_size=4, log_every=2, val_every=2,
                      checkpoint_every=2, warmup=1, model={"ns": 16, "nv": 4, "num_layers": 2}, device="cpu")
    train(cfg)
    assert (out / "last.pt").exists() and (out / "best.pt").exists()
    log = [json.loads(line) for line in (out / "loss_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [2, 4] and all(np.isfinite(e["loss"]) for e in log)
    meta = load_checkpoint_model(out / "last.pt").meta
    assert meta["step"] == 4 and len(meta["data_hash"]) == 64
    # resume: the same command with more steps continues from step 4
    cfg.steps = 6
    train(cfg)
    meta = load_checkpoint_model(out / "last.pt").meta
    assert meta["step"] == 6
    weights = export_weights(out / "best.pt", tmp_path / "w.pt", name="tiny", command="molgen train conformers ...")
    assert weights.with_suffix(".md").read_text().startswith("# Model card: tiny")
    slim_meta = load_checkpoint_model(weights).meta
    assert "optimizer" not in torch.load(weights, weights_only=False)
    assert slim_meta["extra"]["name"] == "tiny"

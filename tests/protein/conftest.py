"""Fixtures of the protein tests: a tiny protein torsion model trained on the 1 ns alanine-dipeptide trajectory."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "protein"


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """Best checkpoint of a 4-step run (tiny network, one thread) on ``native.pdb`` + ``frame0.xtc``."""
    import torch

    from molgen.training.trainer import TrainConfig, train

    torch.set_num_threads(1)
    cfg = TrainConfig(task="protein", out=str(tmp_path_factory.mktemp("protein")), steps=4, batch_size=8,
                      log_every=2, val_every=4, checkpoint_every=4, warmup=1, threads=1, device="cpu",
                      val_molecules=16, model={"ns": 16, "nv": 4, "num_layers": 2},
                      task_options={"top": str(DATA / "native.pdb"), "trajs": [str(DATA / "frame0.xtc")],
                                    "name": "ala2-test", "keep_frames": 50})
    return train(cfg)


@pytest.fixture(scope="session")
def nmr():
    """The 2EQQ NMR ensemble (20 models, 28 residues, hydrogens) as an ``mdtraj.Trajectory``."""
    import mdtraj as md

    return md.load(str(DATA / "2EQQ.pdb"))

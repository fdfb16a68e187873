"""Data-parallel training on CPU: two ``gloo`` ranks, as torchrun would start them.

Checks the distributed path end to end: both ranks finish (a time-limited stop is agreed, so no rank
waits forever in the all-reduce), the replicas hold identical weights at the end (``train`` raises if
not), and rank 0 alone writes the checkpoints and the summary.
"""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from test_train_smoke import tiny_dataset

from molgen.training.distributed import DistributedContext
from molgen.training.train_conformers import TrainConfig, train


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_ranks(args: tuple, limit_s: float = 300.0) -> None:
    """Start two spawned ranks and wait for them; a hang fails the test instead of stalling the suite."""
    import time

    ctx = mp.start_processes(_rank, args=args, nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + limit_s
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"data-parallel ranks still running after {limit_s:.0f} s")


def _rank(rank: int, world: int, port: int, cfg: TrainConfig, skew_lr: bool = False) -> None:
    if skew_lr:  # a broken run: rank 1 steps with another learning rate
        import molgen.training.trainer as tc

        plain = tc.lr_at
        tc.lr_at = lambda step, c, elapsed=0.0: plain(step, c, elapsed) * (1 + rank)
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    train(cfg)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_two_rank_gloo_training(tmp_path):
    data = tiny_dataset(tmp_path / "tiny.npz")
    out = tmp_path / "run"
    # max_minutes is far away: the run ends at `steps`, but every step goes through the agreed clock
    cfg = TrainConfig(data=str(data), out=str(out), steps=6, batch_size=2, log_every=2, val_every=2,
                      checkpoint_every=3, warmup=1, max_minutes=30.0, threads=1,
                      model={"ns": 16, "nv": 4, "num_layers": 2}, device="cpu")
    _run_ranks((2, _free_port(), cfg))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["step"] == 6
    assert (out / "best.pt").exists() and (out / "last.pt").exists()
    log = [json.loads(line) for line in (out / "loss_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [2, 4, 6]  # written once (rank 0), not once per rank


def test_diverged_replicas_are_reported(tmp_path):
    data = tiny_dataset(tmp_path / "tiny.npz")
    cfg = TrainConfig(data=str(data), out=str(tmp_path / "run"), steps=3, batch_size=2, log_every=3, val_every=3,
                      checkpoint_every=3, warmup=1, threads=1, model={"ns": 16, "nv": 4, "num_layers": 2},
                      device="cpu")
    with pytest.raises(mp.ProcessRaisedException, match="replicas diverged"):
        _run_ranks((2, _free_port(), cfg, True))


def test_single_process_context_is_identity():
    ctx = DistributedContext()
    assert ctx.agree(12.5) == 12.5
    assert ctx.replicas_max_difference(torch.nn.Linear(2, 2)) == 0.0

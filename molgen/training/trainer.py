"""The training loop, shared by every kind of diffusion: a task supplies data, network, noise and loss.

For each batch the task draws diffusion times and noise and returns its loss
(:meth:`molgen.training.tasks.TrainingTask.loss`); the loop does the rest: AdamW with linear warm-up and
cosine decay, gradient clipping, an exponential moving average of the weights (validated, checkpointed
and shipped), data-parallel training under ``torchrun`` or SLURM (:mod:`molgen.training.distributed`).

Resumable: ``<out>/last.pt`` is written every ``checkpoint_every`` steps with the optimizer state and the
loss log; rerunning the same command continues from it. ``<out>/best.pt`` keeps the lowest validation
loss; ``<out>/loss_log.jsonl`` has one line per logging interval.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from molgen.training.checkpoint import read_checkpoint, save_checkpoint
from molgen.training.distributed import DistributedContext
from molgen.training.tasks import TrainingTask, get_task


@dataclass
class TrainConfig:
    """Options of a training run (stored in every checkpoint).

    ``task`` names the :class:`~molgen.training.tasks.TrainingTask` (what is noised, which network, which
    data); ``task_options`` are that task's own options; ``model`` overrides the network's config.
    """

    task: str = "torsion"
    data: str = ""
    out: str = ""
    steps: int = 20000
    batch_size: int = 32
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    ema_decay: float = 0.999
    val_every: int = 1000
    val_molecules: int = 512
    checkpoint_every: int = 500
    log_every: int = 50
    max_minutes: float | None = None
    num_workers: int = 0
    threads: int | None = None
    device: str = "auto"
    seed: int = 1
    max_train_molecules: int | None = None
    model: dict = field(default_factory=dict)
    task_options: dict = field(default_factory=dict)


def lr_at(step: int, cfg: TrainConfig, elapsed_s: float = 0.0) -> float:
    """Linear warm-up then cosine decay from ``lr`` to ``min_lr``.

    Progress is the larger of ``step / steps`` and, with ``max_minutes``, the fraction of the time budget
    used, so a time-limited run still anneals fully.
    """
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    if cfg.max_minutes:
        progress = max(progress, min(1.0, elapsed_s / (60.0 * cfg.max_minutes)))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def _infinite(loader: DataLoader, ctx: DistributedContext):
    epoch = 0
    while True:
        if ctx.sampler is not None:
            ctx.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


@torch.no_grad()
def validation_loss(model: torch.nn.Module, batches: list[Any], task: TrainingTask, device: torch.device) -> float:
    """Weighted mean loss over fixed validation batches with a fixed noise seed (comparable across runs)."""
    model.eval()
    gen = torch.Generator(device=device).manual_seed(12345)
    total, count = 0.0, 0.0
    for b in batches:
        loss, weight = task.loss(model, b.to(device), gen)
        total += loss.item() * weight
        count += weight
    model.train()
    return total / max(count, 1)


def train(cfg: TrainConfig, task: TrainingTask | None = None) -> Path:
    """Run (or resume) training of ``task`` (default: the one ``cfg.task`` names); returns the best checkpoint."""
    ctx = DistributedContext.from_env()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = ctx.device(cfg.device)
    torch.manual_seed(cfg.seed + ctx.rank)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    task = task or get_task(cfg.task)(cfg)
    data_hash = task.data_hash()
    model = task.build_model(cfg.model).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # exponential moving average of the weights: validated, checkpointed and shipped
    ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema_decay))

    step, log, best_val, elapsed_before = 0, [], math.inf, 0.0
    last = out / "last.pt"
    if last.exists():
        state = read_checkpoint(last)
        if state["data_hash"] != data_hash:
            raise ValueError(f"{last} was trained on other data (hash {state['data_hash'][:12]}…); use a new --out")
        model.load_state_dict(state["extra"]["raw_state_dict"])
        ema.module.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        ema.n_averaged.fill_(state["extra"].get("ema_n_averaged", step))
        log = state["extra"].get("log", [])
        best_val = state["extra"].get("best_val", math.inf)
        elapsed_before = state["extra"].get("elapsed_s", 0.0)
        ctx.print(f"resumed from {last} at step {step}")

    train_set, val_set = task.datasets()
    ctx.print(f"{len(train_set)} training / {len(val_set)} validation molecules, data {data_hash[:12]}, device {device}")
    sampler = ctx.make_sampler(train_set, cfg.seed)
    loader = DataLoader(
        train_set, batch_size=cfg.batch_size, shuffle=sampler is None, sampler=sampler, collate_fn=task.collate,
        num_workers=cfg.num_workers, drop_last=True, persistent_workers=cfg.num_workers > 0,
        generator=torch.Generator().manual_seed(cfg.seed + step),
    )
    val_batches = [task.collate([val_set[i] for i in range(k, min(k + 64, len(val_set)))]) for k in range(0, len(val_set), 64)]
    ddp_model = ctx.wrap(model)

    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=step, desc="train", disable=not ctx.is_main, mininterval=5, file=sys.stderr)
    t_start = time.time()
    running, running_n = 0.0, 0
    batches = _infinite(loader, ctx)
    while step < cfg.steps:
        # rank 0's clock on every rank: same learning rate, same stopping step
        elapsed = ctx.agree(elapsed_before + time.time() - t_start) if cfg.max_minutes is not None else 0.0
        if cfg.max_minutes is not None and elapsed / 60 > cfg.max_minutes:
            ctx.print(f"stopping at step {step}: --max-minutes {cfg.max_minutes} reached")
            break
        batch = next(batches).to(device)
        lr = lr_at(step, cfg, elapsed)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss, _ = task.loss(ddp_model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        ema.update_parameters(model)
        step += 1
        running += loss.item()
        running_n += 1
        bar.update(1)
        if step % cfg.log_every == 0:
            entry = {"step": step, "loss": running / running_n, "lr": lr,
                     "elapsed_s": round(elapsed_before + time.time() - t_start, 1)}
            running, running_n = 0.0, 0
            if step % cfg.val_every == 0 or step == cfg.steps:
                entry["val_loss"] = validation_loss(ema.module, val_batches, task, device)
                if ctx.is_main and entry["val_loss"] < best_val:
                    best_val = entry["val_loss"]
                    save_checkpoint(out / "best.pt", ema.module, task, data_hash=data_hash, step=step,
                                    train_config=asdict(cfg), extra={"val_loss": best_val})
            log.append(entry)
            bar.set_postfix(loss=f"{entry['loss']:.3f}", **({"val": f"{entry['val_loss']:.3f}"} if "val_loss" in entry else {}))
            if ctx.is_main:
                with open(out / "loss_log.jsonl", "a") as fh:
                    fh.write(json.dumps(entry) + "\n")
        if ctx.is_main and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            save_checkpoint(last, ema.module, task, data_hash=data_hash, step=step, train_config=asdict(cfg),
                            optimizer=optimizer,
                            extra={"log": log, "best_val": best_val, "elapsed_s": elapsed_before + time.time() - t_start,
                                   "raw_state_dict": model.state_dict(), "ema_n_averaged": int(ema.n_averaged)})
    bar.close()
    drift = ctx.replicas_max_difference(model)
    if drift > 1e-6:
        raise RuntimeError(f"data-parallel replicas diverged: parameters differ by up to {drift:.3g} between ranks")
    if ctx.is_main:
        final_val = validation_loss(ema.module, val_batches, task, device)
        if final_val < best_val:
            best_val = final_val
            save_checkpoint(out / "best.pt", ema.module, task, data_hash=data_hash, step=step,
                            train_config=asdict(cfg), extra={"val_loss": best_val})
        save_checkpoint(last, ema.module, task, data_hash=data_hash, step=step, train_config=asdict(cfg),
                        optimizer=optimizer,
                        extra={"log": log, "best_val": best_val, "elapsed_s": elapsed_before + time.time() - t_start,
                               "raw_state_dict": model.state_dict(), "ema_n_averaged": int(ema.n_averaged)})
        summary = {"step": step, "best_val_loss": best_val, "final_val_loss": final_val,
                   "wall_s": round(elapsed_before + time.time() - t_start, 1), "data_hash": data_hash,
                   "device": str(device), "train_molecules": len(train_set), "world_size": ctx.world_size}
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        ctx.print(json.dumps(summary))
    # drop the DDP wrapper (its reducer holds the process group) before the group is destroyed: a gloo group
    # destroyed while a reducer still refers to it can hang in the reducer's destructor at exit
    del ddp_model
    ctx.close()
    return out / "best.pt"


def main(argv: list[str] | None = None) -> None:
    """``python -m molgen.training.trainer --task NAME --data X --out DIR [--steps N ...]``."""
    import argparse

    parser = argparse.ArgumentParser(description="train a molgen denoiser")
    defaults = TrainConfig()
    for name, value in asdict(defaults).items():
        if name == "model":
            parser.add_argument("--model-json", default="{}", help="network config overrides as JSON")
            continue
        if name == "task_options":
            parser.add_argument("--task-json", default="{}", help="options of the task as JSON")
            continue
        typ = type(value) if value is not None else (float if name == "max_minutes" else int)
        parser.add_argument(f"--{name.replace('_', '-')}", type=typ, default=value)
    args = vars(parser.parse_args(argv))
    args["model"] = json.loads(args.pop("model_json"))
    args["task_options"] = json.loads(args.pop("task_json"))
    train(TrainConfig(**args))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

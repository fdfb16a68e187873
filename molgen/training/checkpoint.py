"""Checkpoints that carry their own configuration.

A checkpoint is one ``torch.save`` file holding the model weights, the model and schedule configs, the
hash of the training data, the training config and step, and (for resumable training checkpoints) the
optimizer state and loss log. ``load_denoiser(path)`` needs nothing else. Files are written to a
temporary name and renamed, so an interrupted save never leaves a truncated checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from molgen.diffusion.torus import TorusSchedule
from molgen.models.torsion_denoiser import TorsionDenoiser, build_denoiser, config_dict

CHECKPOINT_FORMAT = "molgen-torsion-denoiser/1"


def save_checkpoint(
    path: Path | str,
    model: TorsionDenoiser,
    schedule: TorusSchedule,
    *,
    data_hash: str,
    step: int,
    train_config: dict | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict | None = None,
) -> Path:
    """Save ``model`` with everything needed to reload and (with ``optimizer``) resume it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": CHECKPOINT_FORMAT,
        "model_config": config_dict(model),
        "schedule": schedule.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "data_hash": data_hash,
        "step": step,
        "train_config": train_config or {},
        "extra": extra or {},
    }
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: Path | str) -> dict[str, Any]:
    """Load a checkpoint dict on the CPU and check its format."""
    state = torch.load(Path(path), map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a molgen torsion-denoiser checkpoint (format {state.get('format') if isinstance(state, dict) else type(state)})")
    return state


def load_denoiser(path: Path | str, device: str | torch.device = "cpu") -> tuple[TorsionDenoiser, TorusSchedule, dict]:
    """Rebuild the model and schedule stored in ``path``; returns ``(model in eval mode, schedule, metadata)``."""
    state = read_checkpoint(path)
    model = build_denoiser(state["model_config"])
    model.load_state_dict(state["state_dict"])
    model.eval().to(device)
    schedule = TorusSchedule.from_dict(state["schedule"])
    meta = {k: state[k] for k in ("data_hash", "step", "train_config", "extra")}
    meta["path"] = str(path)
    return model, schedule, meta

"""Checkpoints that carry their own configuration.

A checkpoint is one ``torch.save`` file holding the model weights, the model and schedule configs, the
hash of the training data, the training config and step, and (for resumable training checkpoints) the
optimizer state and loss log. Reading it back is the models' job
(:func:`molgen.models.registry.load_checkpoint_model`), which needs nothing else. Files are written to a
temporary name and renamed, so an interrupted save never leaves a truncated checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch

from molgen.atomic import atomic_path
from molgen.diffusion.torus import TorusSchedule
from molgen.models.registry import TORSION_FORMAT, read_checkpoint
from molgen.models.torsion_denoiser import TorsionDenoiser, config_dict

__all__ = ["CHECKPOINT_FORMAT", "read_checkpoint", "save_checkpoint"]

CHECKPOINT_FORMAT = TORSION_FORMAT


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
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path

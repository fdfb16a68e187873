"""Checkpoints that carry their own configuration.

A checkpoint is one ``torch.save`` file holding the model weights, the network config, the noise
processes, the hash of the training data, the training config and step, and (for resumable training
checkpoints) the optimizer state and loss log. Its ``format`` names the model type, which
:func:`molgen.models.registry.load_checkpoint_model` turns back into a network without anything else.
Files are written to a temporary name and renamed, so an interrupted save never leaves a truncated
checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from molgen.atomic import atomic_path
from molgen.diffusion.process import processes_to_dict
from molgen.models.registry import read_checkpoint

if TYPE_CHECKING:
    from molgen.training.tasks import TrainingTask

__all__ = ["read_checkpoint", "save_checkpoint"]


def save_checkpoint(
    path: Path | str,
    model: torch.nn.Module,
    task: TrainingTask,
    *,
    data_hash: str,
    step: int,
    train_config: dict | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict | None = None,
) -> Path:
    """Save ``model`` of ``task`` with everything needed to reload and (with ``optimizer``) resume it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    processes = task.processes
    state = {
        "format": task.checkpoint_format,
        "model_config": task.model_config(model),
        "processes": processes_to_dict(processes),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "data_hash": data_hash,
        "step": step,
        "train_config": train_config or {},
        "task": task.checkpoint_extra(),
        "extra": extra or {},
    }
    if "torsion" in processes:  # readable by molgen versions before the noise processes were generic
        state["schedule"] = {k: v for k, v in processes["torsion"].to_dict().items() if k != "type"}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path

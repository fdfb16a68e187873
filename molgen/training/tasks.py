"""Training tasks: what a kind of diffusion trains on, with which network, noise and loss.

The training loop (:mod:`molgen.training.trainer`) is shared; a task supplies the rest:

* its noise processes (``{"torsion": TorusSchedule()}``, ``{"pos": VPSchedule(), "atom_type": ...}``),
* its network (built from a config dict that is stored in every checkpoint, with the checkpoint
  ``format`` that :mod:`molgen.models.registry` reads back),
* its datasets, collate function and data hash,
* its loss: draw diffusion times and noise, noise the batch, run the network, compare with the process's
  target (:meth:`~molgen.diffusion.process.NoiseProcess.output_loss`).

Tasks register by name (:func:`register_task`) so ``TrainConfig(task="...")`` selects one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from molgen.diffusion.process import NoiseProcess
    from molgen.training.trainer import TrainConfig

__all__ = ["TrainingTask", "get_task", "hash_of", "register_task"]


def hash_of(key: dict) -> str:
    """sha256 of a JSON-able description of the training data (a task's :meth:`TrainingTask.data_hash`)."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


class TrainingTask(ABC):
    """One kind of diffusion to train (see the module docstring)."""

    #: the name ``TrainConfig.task`` uses
    name: ClassVar[str]
    #: the checkpoint format its networks are saved under (a model type of :mod:`molgen.models.registry`)
    checkpoint_format: ClassVar[str]

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.options = dict(cfg.task_options)

    @property
    @abstractmethod
    def processes(self) -> dict[str, NoiseProcess]:
        """The noise process of each diffused variable (stored in the checkpoint)."""

    @abstractmethod
    def build_model(self, overrides: dict) -> nn.Module:
        """A fresh network with its default config updated by ``overrides``."""

    @abstractmethod
    def model_config(self, model: nn.Module) -> dict:
        """The network's config as a plain dict (stored in the checkpoint)."""

    @abstractmethod
    def data_hash(self) -> str:
        """A hash of the training data; a resumed run must see the same one."""

    @abstractmethod
    def datasets(self) -> tuple[Sequence, Sequence]:
        """``(train, validation)`` datasets of items for :meth:`collate`."""

    @abstractmethod
    def collate(self, items: list) -> Any:
        """A batch (with a ``.to(device)`` method) from dataset items."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any, generator: torch.Generator | None = None) -> tuple[Tensor, float]:
        """``(mean loss, weight)`` of one batch: the 0-d loss to minimise and the number of terms it
        averages (validation weights batches by it)."""

    def checkpoint_extra(self) -> dict:
        """Task facts to store in checkpoints (e.g. normalisation constants the sampler needs)."""
        return {}


_TASKS: dict[str, type[TrainingTask]] = {}
#: modules that register tasks when imported, by task name (imported on first use)
_TASK_MODULES = {
    "torsion": "molgen.training.train_conformers",
    "molecules": "molgen.training.train_molecules",
    "property": "molgen.training.train_property",
    "cartesian": "molgen.training.train_cartesian",
    "protein": "molgen.training.train_protein",
}


def register_task(cls: type[TrainingTask]) -> type[TrainingTask]:
    """Class decorator: make ``cls`` selectable as ``TrainConfig(task=cls.name)``."""
    _TASKS[cls.name] = cls
    return cls


def get_task(name: str) -> Callable[[TrainConfig], TrainingTask]:
    """The task class registered as ``name``.

    Raises:
        ValueError: no such task.
    """
    if name not in _TASKS and name in _TASK_MODULES:
        import importlib

        importlib.import_module(_TASK_MODULES[name])
    if name not in _TASKS:
        raise ValueError(f"unknown training task {name!r} (known: {', '.join(sorted(set(_TASKS) | set(_TASK_MODULES)))})")
    return _TASKS[name]

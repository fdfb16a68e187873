"""The property task: train the QM9 property regressor that judges property-conditioned generation.

EDM's protocol (Hoogeboom et al. 2022, Sec. 5.2): the QM9 training split is cut in two halves; the
property network trains on the first, ``D_a`` (``half="first"``, the default here), the conditional
generative model on the second, ``D_b`` (:class:`~molgen.training.train_molecules.MoleculeTask` with
``half="second"``). Generated molecules are then scored by the absolute error between the requested
property and this network's prediction (:mod:`molgen.bench.property_mae`).

The network is :class:`~molgen.models.property_regressor.PropertyRegressor` (E(3)-invariant). Targets are
the normalised properties ``(p - mean) / MAD`` with the training split's mean and MAD (the constants
:class:`~molgen.training.train_molecules.MoleculeTask` uses for its conditions); the loss is their L1
error averaged over molecules and properties (EDM trains its property EGNN with L1), so the validation
loss times a property's MAD is its MAE in raw units (alpha: Bohr^3, gap: eV) when one property is trained.

Atom rows are the one-hot elements of :data:`~molgen.chem.atom_encoding.QM9_ENCODING` (H, C, N, O, F);
with ``charges=True`` the formal-charge one-hot follows (EDM's classifier sees elements only, and
generated molecules' charges are the generator's guess, so the default leaves them out).

Nothing is diffused: the task has no noise processes and the trainer's EMA, warm-up, cosine decay,
checkpoints and resumption apply unchanged. Train, e.g.::

    python -m molgen.training.trainer --task property --out runs/property_alpha_Da --steps 200000 \\
        --batch-size 64 --lr 1e-3 --warmup 1000 --val-every 2000 --val-molecules 2000 \\
        --task-json '{"properties": ["alpha"], "half": "first"}'

(about 0.3 s per step of 64 molecules on one CPU thread with the default network; ``--max-minutes``
bounds the wall time and the cosine schedule follows it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from molgen.chem.atom_encoding import QM9_ENCODING
from molgen.models.property_regressor import (
    PROPERTY_FORMAT,
    PropertyRegressor,
    PropertyRegressorConfig,
    property_config_dict,
)
from molgen.training.tasks import TrainingTask, hash_of, register_task
from molgen.training.train_molecules import (
    EXTRA_CONDITIONS,
    HALVES,
    MoleculeBatch,
    QM9Molecules,
    collate_molecules,
    half_indices,
    load_task_splits,
)
from molgen.training.trainer import TrainConfig

__all__ = ["PropertyTask", "half_indices"]


@register_task
class PropertyTask(TrainingTask):
    """QM9 property regression (see the module docstring). Options (``task_options``):

    ``properties`` (list of QM9 property names, default ``["alpha"]``; e.g. ``["gap"]``), ``half``
    (``"first"`` = ``D_a``, default; ``"second"``, ``"all"``), ``charges`` (bool, default False: formal
    charges in the atom rows), ``cache`` (QM9 cache root).
    """

    name = "property"
    checkpoint_format = PROPERTY_FORMAT

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        opts = self.options
        props = opts.get("properties", ["alpha"])
        self.properties: list[str] = [props] if isinstance(props, str) else list(props)
        if not self.properties:
            raise ValueError("task option properties must name at least one property")
        from molgen.datasets.qm9 import PROPERTIES

        unknown = [p for p in self.properties if p not in PROPERTIES and p not in EXTRA_CONDITIONS]
        if unknown:
            raise ValueError(f"unknown properties {unknown}: choose from {list(PROPERTIES) + list(EXTRA_CONDITIONS)}")
        self.half = opts.get("half", "first")
        if self.half not in HALVES:
            raise ValueError(f"task option half must be one of {HALVES}, got {self.half!r}")
        self.charges = bool(opts.get("charges", False))
        self.encoding = QM9_ENCODING
        self._train = self._val = None
        self.norms: dict[str, dict[str, float]] = {}

    @property
    def type_dim(self) -> int:
        """Width of the atom rows the network reads: elements, plus formal charges with ``charges``."""
        return self.encoding.dim if self.charges else len(self.encoding.elements)

    @property
    def processes(self) -> dict:
        return {}

    def build_model(self, overrides: dict) -> nn.Module:
        cfg = {"type_dim": self.type_dim, "num_properties": len(self.properties), **overrides}
        return PropertyRegressor(PropertyRegressorConfig(**cfg))

    def model_config(self, model: nn.Module) -> dict:
        return property_config_dict(model)  # type: ignore[arg-type]

    def _load(self) -> None:
        if self._train is not None:
            return
        self._meta, self._train, self._val, self._indices, self.norms = load_task_splits(
            self.options.get("cache"), self.half, self.properties)

    def data_hash(self) -> str:
        self._load()
        from molgen.datasets.qm9 import qm9_data_key

        return hash_of({**qm9_data_key(self._meta), "task": self.name, "half": self.half,
                        "properties": self.properties, "charges": self.charges})

    def datasets(self) -> tuple:
        self._load()
        train = QM9Molecules(self._train, self.encoding, self.properties, self.norms, self._indices)
        val_idx = np.arange(min(self.cfg.val_molecules, len(self._val)))
        val = QM9Molecules(self._val, self.encoding, self.properties, self.norms, val_idx)
        if self.cfg.max_train_molecules:
            train.indices = train.indices[: self.cfg.max_train_molecules]
        return train, val

    def collate(self, items: list) -> MoleculeBatch:
        """A :class:`~molgen.training.train_molecules.MoleculeBatch` whose ``cond`` ``(B, P)`` holds the
        normalised target properties; without ``charges`` the charge columns are dropped."""
        batch = collate_molecules(items)
        if not self.charges:
            n_el = len(self.encoding.elements)
            batch = MoleculeBatch(batch.graph.replace(node_features=batch.graph.node_features[:, :n_el].contiguous()),
                                  batch.cond)
        return batch

    def loss(self, model: nn.Module, batch: MoleculeBatch, generator: torch.Generator | None = None) -> tuple[Tensor, float]:
        """L1 error of the normalised properties, averaged over molecules and properties; weight = ``B``."""
        if batch.cond is None:
            raise ValueError("a property batch needs its target properties (cond)")
        pred = model(batch.graph)
        return (pred - batch.cond.to(pred.dtype)).abs().mean(), float(batch.graph.num_graphs)

    def checkpoint_extra(self) -> dict[str, Any]:
        self._load()
        from molgen.datasets.qm9 import PROPERTY_UNITS

        return {
            "properties": self.properties,
            "units": {p: PROPERTY_UNITS.get(p, "") for p in self.properties},
            "normalisation": self.norms,
            "encoding": self.encoding.to_dict(),
            "charges": self.charges,
            "dataset": "qm9",
            "half": self.half,
        }

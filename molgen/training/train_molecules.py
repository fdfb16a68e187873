"""The de novo molecule task: diffusion over Cartesian positions and atom types (EDM) with conditions.

Variables and noise (Hoogeboom et al. 2022, "Equivariant Diffusion for Molecule Generation in 3D"):

* ``pos``: positions in Å, centred per molecule, noised by a :class:`~molgen.diffusion.process.VPSchedule`
  in the zero-centre-of-mass subspace (:mod:`molgen.diffusion.subspace`);
* ``atom_type``: one-hot element and formal-charge rows (:mod:`molgen.chem.atom_encoding`) scaled by
  ``type_scale`` (EDM's 0.25), noised by the same kind of schedule.

The network (:class:`~molgen.models.molecule_denoiser.MoleculeDenoiser`) predicts both noises, through
the preconditioned parameterisation of :class:`~molgen.diffusion.process.VPSchedule` (``data_rms``: the
network's output has unit variance at every noise level); the loss is the squared error of that output
summed over a molecule's ``3 n + F n`` numbers and divided by that count, then averaged over molecules
(EDM's ``l2`` objective, in the preconditioned units).

Conditions (classifier-free guidance, Ho & Salimans 2022): each molecule carries its normalised
properties ``(p - mean) / MAD`` (train-split statistics) for ``conditions``, e.g. QM9's polarizability
``alpha``, HOMO-LUMO ``gap`` and the number of heavy atoms ``num_heavy_atoms``. In training, with
probability ``drop_all`` every condition is dropped (the unconditional model), otherwise each is dropped
independently with probability ``drop_each``, so one network serves every subset of conditions.

Data: QM9 (:mod:`molgen.datasets.qm9`, EDM's split, held-out molecules removed). ``half="second"`` trains
on the second half of the training split, EDM's ``D_b``: the property regressors that judge conditional
samples are trained on the first half ``D_a`` only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from molgen.chem.atom_encoding import QM9_ENCODING, AtomEncoding
from molgen.diffusion.process import VPSchedule
from molgen.diffusion.subspace import remove_mean, subspace_noise
from molgen.models.graph import GraphBatch, node_batch
from molgen.models.molecule_denoiser import (
    MoleculeDenoiser,
    MoleculeDenoiserConfig,
    molecule_config_dict,
)
from molgen.models.registry import MOLECULE_FORMAT
from molgen.training.tasks import TrainingTask, hash_of, register_task
from molgen.training.trainer import TrainConfig

__all__ = ["MoleculeBatch", "MoleculeTask", "QM9Molecules", "condition_values"]

#: the halves of QM9's training split a model may train on (EDM: D_a = "first", D_b = "second")
HALVES = ("all", "first", "second")
#: names a condition may take besides the QM9 properties
EXTRA_CONDITIONS = ("num_heavy_atoms",)


@dataclass
class MoleculeBatch:
    """Clean molecules: ``graph`` (one-hot types as ``node_features`` ``(N, F)``, centred ``pos`` ``(N, 3)`` Å)
    and normalised conditions ``cond`` ``(B, C)`` (None without conditions)."""

    graph: GraphBatch
    cond: Tensor | None

    def to(self, device: torch.device | str) -> MoleculeBatch:
        return MoleculeBatch(self.graph.to(device), None if self.cond is None else self.cond.to(device))


def condition_values(split: Any, name: str) -> np.ndarray:
    """``(M,)`` float64 raw values of condition ``name`` for every molecule of a QM9 split."""
    if name == "num_heavy_atoms":
        return np.asarray(split.num_heavy_atoms, dtype=np.float64)
    if name in split.properties:
        return np.asarray(split.properties[name], dtype=np.float64)
    raise ValueError(f"unknown condition {name!r}: choose from {sorted(split.properties) + list(EXTRA_CONDITIONS)}")


def mean_mad(values: np.ndarray, floor: float = 0.0) -> dict[str, float]:
    """Mean and mean absolute deviation of ``values`` (EDM normalises properties by them,
    :func:`molgen.datasets.qm9.mean_mad`), the deviation at least ``floor`` (counts such as QM9's heavy
    atoms, mostly 9, have a MAD of 0.34) and 1 where it would be 0."""
    from molgen.datasets.qm9 import mean_mad as qm9_mean_mad

    mean, mad = qm9_mean_mad(values)
    return {"mean": mean, "mad": max(mad, floor) or 1.0}


def half_indices(num_molecules: int, half: str) -> np.ndarray:
    """Indices of a QM9 training-split half: ``"first"`` = EDM's ``D_a`` (``[0, M // 2)``), ``"second"`` =
    ``D_b`` (``[M // 2, M)``), ``"all"`` = every molecule (the halves of
    :class:`~molgen.training.train_molecules.MoleculeTask`).

    Raises:
        ValueError: an unknown half.
    """
    if half not in HALVES:
        raise ValueError(f"half must be one of {HALVES}, got {half!r}")
    n = int(num_molecules)
    return {"all": np.arange(n), "first": np.arange(n // 2), "second": np.arange(n // 2, n)}[half]


def load_task_splits(cache: str | None, half: str, names: list[str]) -> tuple[dict, Any, Any, np.ndarray, dict]:
    """What a QM9 task reads: ``(cache meta, train split, validation split, indices of the training half,
    normalisation of the conditions or properties names)``; the cache is built or refreshed first."""
    from molgen.datasets.qm9 import ensure_qm9_cache, load_qm9_split

    meta = ensure_qm9_cache(cache)
    train, val = load_qm9_split("train", cache), load_qm9_split("val", cache)
    return meta, train, val, half_indices(len(train), half), condition_norms(train, names)


def condition_norms(train: Any, names: list[str]) -> dict[str, dict[str, float]]:
    """Mean and MAD of each condition over the whole training split (counts: MAD at least 1)."""
    return {c: mean_mad(condition_values(train, c), 1.0 if c in EXTRA_CONDITIONS else 0.0) for c in names}


class QM9Molecules(torch.utils.data.Dataset):
    """Items ``{"types" (n, F), "pos" (n, 3) Å centred, "cond" (C,)}`` of a QM9 split (or a half of it)."""

    def __init__(
        self,
        split: Any,
        encoding: AtomEncoding,
        conditions: list[str],
        norms: dict[str, dict[str, float]],
        indices: np.ndarray | None = None,
    ) -> None:
        self.split = split
        self.encoding = encoding
        self.indices = np.arange(len(split)) if indices is None else np.asarray(indices)
        cond = [(condition_values(split, c) - norms[c]["mean"]) / norms[c]["mad"] for c in conditions]
        self.cond = np.stack(cond, 1).astype(np.float32) if cond else None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> dict[str, np.ndarray]:
        i = int(self.indices[k])
        a, b = int(self.split.ptr[i]), int(self.split.ptr[i + 1])
        pos = self.split.positions[a:b].astype(np.float32)
        item = {
            "types": self.encoding.encode(self.split.atomic_numbers[a:b], self.split.formal_charges[a:b]),
            "pos": pos - pos.mean(0, keepdims=True),
        }
        if self.cond is not None:
            item["cond"] = self.cond[i]
        return item


def collate_molecules(items: list[dict[str, np.ndarray]]) -> MoleculeBatch:
    """A :class:`MoleculeBatch` from :class:`QM9Molecules` items."""
    sizes = [len(it["pos"]) for it in items]
    graph = node_batch(
        torch.from_numpy(np.concatenate([it["types"] for it in items])),
        torch.from_numpy(np.concatenate([it["pos"] for it in items])),
        sizes,
    )
    cond = torch.from_numpy(np.stack([it["cond"] for it in items])) if "cond" in items[0] else None
    return MoleculeBatch(graph, cond)


@register_task
class MoleculeTask(TrainingTask):
    """De novo QM9 molecules (see the module docstring). Options (``task_options``):

    ``conditions`` (list of names, default ``[]``), ``drop_all`` (0.1), ``drop_each`` (0.5),
    ``type_scale`` (0.25), ``half`` (``"all"``, ``"first"`` or ``"second"``; default ``"second"`` with
    conditions, ``"all"`` without), ``cache`` (QM9 cache root), ``schedule`` (VPSchedule parameters).
    """

    name = "molecules"
    checkpoint_format = MOLECULE_FORMAT

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        opts = self.options
        self.conditions: list[str] = list(opts.get("conditions", []))
        self.drop_all = float(opts.get("drop_all", 0.1))
        self.drop_each = float(opts.get("drop_each", 0.5))
        self.type_scale = float(opts.get("type_scale", 0.25))
        self.half = opts.get("half", "second" if self.conditions else "all")
        if self.half not in HALVES:
            raise ValueError(f"task option half must be 'all', 'first' or 'second', got {self.half!r}")
        sched = opts.get("schedule", {})
        # root mean square of the clean data per coordinate on QM9 (D_b, centred positions in Å; one-hot
        # rows x 0.25): 1.40 and 0.125, measured by python -m molgen.training.train_molecules --data-rms
        self.pos_process = VPSchedule(**{"data_rms": float(opts.get("pos_rms", 1.40)), **sched})
        self.type_process = VPSchedule(**{"data_rms": float(opts.get("type_rms", 0.125)), **sched})
        self._check_shared_time()
        self.encoding = QM9_ENCODING
        self._train = self._val = None
        self.norms: dict[str, dict[str, float]] = {}
        self.atom_counts: dict[int, float] = {}
        self.atom_counts_by_heavy: dict[int, dict[int, float]] = {}

    @property
    def processes(self) -> dict:
        return {"pos": self.pos_process, "atom_type": self.type_process}

    def _check_shared_time(self) -> None:
        """The network sees one noise level per molecule, so both processes must share alpha(t), sigma(t)."""
        for t in (0.1, 0.5, 0.9):
            if self.pos_process.alpha_sigma(t) != self.type_process.alpha_sigma(t):
                raise ValueError("position and type processes must share their noise schedule (power, precision)")

    def build_model(self, overrides: dict) -> nn.Module:
        cfg = {"type_dim": self.encoding.dim, "cond_dim": len(self.conditions), **overrides}
        return MoleculeDenoiser(MoleculeDenoiserConfig(**cfg))

    def model_config(self, model: nn.Module) -> dict:
        return molecule_config_dict(model)  # type: ignore[arg-type]

    def _load(self) -> None:
        if self._train is not None:
            return
        self._meta, self._train, self._val, self._indices, self.norms = load_task_splits(
            self.options.get("cache"), self.half, self.conditions)
        sizes = np.diff(self._train.ptr)[self._indices]
        counts = np.bincount(sizes)
        self.atom_counts = {int(k): float(v / counts.sum()) for k, v in enumerate(counts) if v}
        heavy = np.asarray(self._train.num_heavy_atoms, dtype=np.int64)[self._indices]
        self.atom_counts_by_heavy = {
            int(h): {int(k): float(v / (heavy == h).sum()) for k, v in enumerate(np.bincount(sizes[heavy == h])) if v}
            for h in np.unique(heavy)
        }

    def data_hash(self) -> str:
        self._load()
        from molgen.datasets.qm9 import qm9_data_key

        return hash_of({**qm9_data_key(self._meta), "half": self.half, "conditions": self.conditions})

    def datasets(self) -> tuple:
        self._load()
        train = QM9Molecules(self._train, self.encoding, self.conditions, self.norms, self._indices)
        val_idx = np.arange(min(self.cfg.val_molecules, len(self._val)))
        val = QM9Molecules(self._val, self.encoding, self.conditions, self.norms, val_idx)
        if self.cfg.max_train_molecules:
            train.indices = train.indices[: self.cfg.max_train_molecules]
        return train, val

    def collate(self, items: list) -> MoleculeBatch:
        return collate_molecules(items)

    def condition_mask(self, batch_size: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        """``(B, C)`` bool: which conditions each molecule keeps this step (classifier-free dropout)."""
        c = len(self.conditions)
        keep = torch.rand((batch_size, c), generator=generator, device=device) >= self.drop_each
        null = torch.rand((batch_size, 1), generator=generator, device=device) < self.drop_all
        return keep & ~null

    def loss(self, model: nn.Module, batch: MoleculeBatch, generator: torch.Generator | None = None) -> tuple[Tensor, float]:
        g = batch.graph
        dev, dtype = g.pos.device, g.pos.dtype
        b = g.num_graphs
        t = torch.rand(b, generator=generator, device=dev, dtype=dtype)
        alpha, sigma = self.pos_process.alpha(t).to(dtype), self.pos_process.sigma(t).to(dtype)
        a_n, s_n = alpha[g.batch, None], sigma[g.batch, None]
        ta, ts = self.type_process.alpha(t).to(dtype)[g.batch, None], self.type_process.sigma(t).to(dtype)[g.batch, None]
        eps_pos = subspace_noise(g.batch, 3, generator, dtype=dtype, num_graphs=b)
        types0 = g.node_features * self.type_scale
        eps_type = torch.randn(types0.shape, generator=generator, dtype=dtype, device=dev)
        pos0 = remove_mean(g.pos, g.batch, b)
        pos_t, types_t = a_n * pos0 + s_n * eps_pos, ta * types0 + ts * eps_type
        noised = g.replace(pos=pos_t, node_features=types_t)
        mask = self.condition_mask(b, generator, dev) if self.conditions else None
        pred_pos, pred_type = model(noised, sigma / alpha, batch.cond, mask)
        t_node = t[g.batch, None]
        err = self.pos_process.output_loss(pred_pos, eps_pos, t_node, pos_t).sum(1) + self.type_process.output_loss(
            pred_type, eps_type, t_node, types_t
        ).sum(1)
        per_mol = torch.zeros(b, dtype=dtype, device=dev).index_add_(0, g.batch, err)
        counts = torch.bincount(g.batch, minlength=b).to(dtype)
        per_mol = per_mol / (counts * (3 + types0.shape[1]))
        return per_mol.mean(), float(b)

    def checkpoint_extra(self) -> dict:
        self._load()
        return {
            "encoding": self.encoding.to_dict(),
            "type_scale": self.type_scale,
            "conditions": self.conditions,
            "normalisation": self.norms,
            "atom_counts": {str(k): v for k, v in self.atom_counts.items()},
            "atom_counts_by_heavy": {str(h): {str(k): v for k, v in d.items()} for h, d in self.atom_counts_by_heavy.items()},
            "dataset": "qm9",
            "half": self.half,
        }


def data_rms(cache: str | None = None, half: str = "second", limit: int = 5000) -> dict[str, float]:
    """Root mean square per coordinate of the clean centred positions (Å) and of the scaled one-hot type
    rows over the first ``limit`` molecules of a QM9 training half (the ``data_rms`` of the processes)."""
    from molgen.datasets.qm9 import load_qm9_split

    train = load_qm9_split("train", cache)
    n = len(train)
    idx = half_indices(n, half)[:limit]
    pos, types = [], []
    for i in idx:
        a, b = int(train.ptr[i]), int(train.ptr[i + 1])
        p = train.positions[a:b].astype(np.float64)
        pos.append(p - p.mean(0))
        types.append(QM9_ENCODING.encode(train.atomic_numbers[a:b], train.formal_charges[a:b]) * 0.25)
    return {"pos_rms": float(np.sqrt(np.mean(np.concatenate(pos) ** 2))),
            "type_rms": float(np.sqrt(np.mean(np.concatenate(types) ** 2)))}


if __name__ == "__main__":
    import sys

    if "--data-rms" in sys.argv:
        print(json.dumps(data_rms()))

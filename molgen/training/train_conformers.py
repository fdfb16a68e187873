"""The torsional-diffusion training task: the torsion denoiser by score matching on the torus.

For each molecule of a batch: draw ``t ~ U(0, 1)``, ``sigma = sigma_min^(1-t) sigma_max^t``; draw a
torsion increment ``delta ~ WN(0, sigma^2)`` per rotatable bond and rotate the conformer-matched
coordinates by it; the network predicts the score ``score(delta, sigma)`` in units of its
root-mean-square, trained with the normalised loss of torsional diffusion (Jing et al., 2022, Eq. 4),
which is :meth:`~molgen.diffusion.process.NoiseProcess.output_loss` of the
:class:`~molgen.diffusion.torus.TorusSchedule`.

``python -m molgen.training.train_conformers --data X.npz --out DIR [--steps N ...]`` trains it with the
shared loop (:mod:`molgen.training.trainer`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from molgen.datasets.conformer_dataset import TorsionConformerDataset, file_sha256
from molgen.diffusion.torsion_ops import apply_torsion_deltas
from molgen.diffusion.torus import TorusSchedule
from molgen.models.graph import GraphBatch, collate_graphs
from molgen.models.registry import TORSION_FORMAT
from molgen.models.torsion_denoiser import DenoiserConfig, TorsionDenoiser, config_dict
from molgen.training.tasks import TrainingTask, register_task
from molgen.training.trainer import TrainConfig, lr_at, train

__all__ = ["TorsionTask", "TrainConfig", "lr_at", "noised_batch", "train"]


def noised_batch(
    batch: GraphBatch, schedule: TorusSchedule, generator: torch.Generator | None = None
) -> tuple[GraphBatch, Tensor, Tensor, Tensor]:
    """Perturb the torsions of ``batch``.

    Returns ``(noised batch, sigma (B,), delta (T,), t per torsion (T,))``: noise levels in radians, the
    wrapped increments applied to the rotatable bonds, and each torsion's diffusion time.
    """
    device = batch.pos.device
    t = torch.rand(batch.num_graphs, generator=generator, device=device)
    t_tor = t[batch.torsion_graph].to(batch.pos.dtype)
    delta = schedule.draw_noise(t_tor, t_tor.shape, generator)
    pos = apply_torsion_deltas(batch.pos, batch.torsion_index, delta)
    return batch.with_pos(pos), schedule.sigma(t).to(batch.pos.dtype), delta, t_tor


@register_task
class TorsionTask(TrainingTask):
    """Torsional diffusion of conformer-matched CCD ligands (``cfg.data``: the ``.npz`` training arrays)."""

    name = "torsion"
    checkpoint_format = TORSION_FORMAT

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        self.schedule = TorusSchedule(**self.options.get("schedule", {}))

    @property
    def processes(self) -> dict:
        return {"torsion": self.schedule}

    def build_model(self, overrides: dict) -> nn.Module:
        return TorsionDenoiser(DenoiserConfig(**overrides))

    def model_config(self, model: nn.Module) -> dict:
        return config_dict(model)  # type: ignore[arg-type]

    def data_hash(self) -> str:
        return file_sha256(Path(self.cfg.data))

    def datasets(self) -> tuple:
        cfg = self.cfg
        return (TorsionConformerDataset(cfg.data, "train", cfg.max_train_molecules),
                TorsionConformerDataset(cfg.data, "val", cfg.val_molecules))

    def collate(self, items: list) -> GraphBatch:
        return collate_graphs(items)

    def loss(self, model: nn.Module, batch: GraphBatch, generator: torch.Generator | None = None) -> tuple[Tensor, float]:
        noised, sigma, delta, t_tor = noised_batch(batch, self.schedule, generator)
        out = model(noised, sigma)
        return self.schedule.output_loss(out, delta, t_tor).mean(), float(len(delta))


def main(argv: list[str] | None = None) -> None:
    """``python -m molgen.training.train_conformers --data X.npz --out DIR [--steps N ...]``."""
    from molgen.training.trainer import main as trainer_main

    trainer_main(["--task", "torsion", *(argv if argv is not None else __import__("sys").argv[1:])])


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

"""The protein task: torsional diffusion of one protein system, learnt from its MD frames.

The same task as small-molecule conformers (:class:`~molgen.training.train_conformers.TorsionTask`: torus
noise process, :class:`~molgen.models.torsion_denoiser.TorsionDenoiser`, its loss), with other data: the
frames of one or more trajectories of one system (``task_options``: ``top``, ``trajs``, ``stride``,
``val_fraction``, ``name``, ``keep_frames``: training frames stored as starting points of partial diffusion), read with mdtraj (:func:`molgen.protein.io.load_trajectory`). The system
(:class:`~molgen.protein.system.ProteinSystem`: structure, torsions, validation ranges over the training
frames) is stored in the checkpoint, so the model samples its system with nothing else
(:mod:`molgen.protein.sample`). Backbone φ, ψ, side-chain χ and every other rotatable bond are diffused;
bond lengths and angles stay those of the first frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from molgen.datasets.conformer_dataset import file_sha256
from molgen.datasets.trajectory import TrajectoryFrames, time_split
from molgen.errors import InputError
from molgen.models.registry import PROTEIN_FORMAT
from molgen.training.tasks import hash_of, register_task
from molgen.training.train_conformers import TorsionTask
from molgen.training.trainer import TrainConfig

__all__ = ["ProteinTask"]


@register_task
class ProteinTask(TorsionTask):
    """Torsional diffusion over the MD frames of one protein system (see the module docstring)."""

    name = "protein"
    checkpoint_format = PROTEIN_FORMAT

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        opts = self.options
        if not opts.get("top") or not opts.get("trajs"):
            raise ValueError("the protein task needs task options top (a topology) and trajs (trajectory files)")
        self.top = str(opts["top"])
        self.trajs = [str(t) for t in opts["trajs"]]
        from molgen.protein.io import parse_trajectory_spec

        for label, path in [("topology", self.top)] + [("trajectory", str(parse_trajectory_spec(t)[0])) for t in self.trajs]:
            if not Path(path).is_file():
                raise InputError(f"{label} {path}: file not found")
        self.stride = int(opts.get("stride", 1))
        self.val_fraction = float(opts.get("val_fraction", 0.1))
        self.system_name = str(opts.get("name") or Path(self.top).stem)
        self.keep_frames = int(opts.get("keep_frames", 0))
        self._loaded: tuple[Any, np.ndarray, list[int]] | None = None

    def _load(self) -> tuple[Any, np.ndarray, list[int]]:
        if self._loaded is None:
            from molgen.protein.io import load_trajectory
            from molgen.protein.system import ProteinSystem

            parts = [load_trajectory(self.top, [t], stride=self.stride) for t in self.trajs]
            lengths = [p.n_frames for p in parts]
            train_idx, _ = time_split(lengths, self.val_fraction)
            import mdtraj as md

            frames = parts[0] if len(parts) == 1 else md.join(parts, check_topology=True, discard_overlapping_frames=False)
            system = ProteinSystem.from_frames(frames[train_idx], self.system_name, keep_frames=self.keep_frames)
            self._loaded = (system, system.heavy_positions(frames), lengths)
        return self._loaded

    @property
    def system(self) -> Any:
        """The :class:`~molgen.protein.system.ProteinSystem` of the training frames."""
        return self._load()[0]

    def data_hash(self) -> str:
        from molgen.protein.io import parse_trajectory_spec

        specs = [parse_trajectory_spec(t) for t in self.trajs]
        return hash_of({"top": file_sha256(Path(self.top)),
                        "trajs": [[file_sha256(p), s.start, s.stop] for p, s in specs],
                        "stride": self.stride, "val_fraction": self.val_fraction})

    def datasets(self) -> tuple:
        system, positions, lengths = self._load()
        train_idx, val_idx = time_split(lengths, self.val_fraction)
        if self.cfg.max_train_molecules:
            train_idx = train_idx[: self.cfg.max_train_molecules]
        return (TrajectoryFrames(system.graph, positions, train_idx),
                TrajectoryFrames(system.graph, positions, val_idx[: self.cfg.val_molecules]))

    def checkpoint_extra(self) -> dict[str, Any]:
        system, _, lengths = self._load()
        return {"system": system.to_dict(), "torsion_names": system.torsion_names, "frames": lengths,
                "trajs": [Path(t).name for t in self.trajs], "top": Path(self.top).name, "stride": self.stride,
                "val_fraction": self.val_fraction}

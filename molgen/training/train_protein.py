"""The protein task: torsional diffusion of one protein system, learnt from its MD frames.

The same task as small-molecule conformers (:class:`~molgen.training.train_conformers.TorsionTask`: torus
noise process, :class:`~molgen.models.torsion_denoiser.TorsionDenoiser`, its loss), with other data: the
frames of one or more trajectories of one system (``task_options``: ``top``, ``trajs``, ``stride``,
``val_fraction``: the last fraction of each trajectory validates, or ``val_trajs``: trajectories that
validate instead, e.g. ``adk_dims.dcd@3::4`` beside ``adk_dims.dcd@0::2``; ``name``; ``keep_frames``,
default 1000: training frames stored as the local structures of samples and the starting points of partial
diffusion), read with mdtraj
(:func:`molgen.protein.io.load_trajectory`). The system
(:class:`~molgen.protein.system.ProteinSystem`: structure, torsions, validation ranges over the training
frames) is stored in the checkpoint, so the model samples its system with nothing else
(:mod:`molgen.protein.sample`). Backbone φ, ψ, side-chain χ and every other rotatable bond are diffused;
bond lengths and angles stay those of each training frame (and, when sampling, of the stored frame a sample
is drawn on).
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

        self.val_trajs = [str(t) for t in opts.get("val_trajs") or []]
        for label, path in ([("topology", self.top)]
                            + [("trajectory", str(parse_trajectory_spec(t)[0])) for t in self.trajs]
                            + [("validation trajectory", str(parse_trajectory_spec(t)[0])) for t in self.val_trajs]):
            if not Path(path).is_file():
                raise InputError(f"{label} {path}: file not found")
        self.stride = int(opts.get("stride", 1))
        # explicit validation trajectories replace the held-out tail of each training trajectory
        self.val_fraction = 0.0 if self.val_trajs else float(opts.get("val_fraction", 0.1))
        self.system_name = str(opts.get("name") or Path(self.top).stem)
        self.keep_frames = int(opts.get("keep_frames", 1000))
        self._loaded: tuple[Any, np.ndarray, np.ndarray, np.ndarray, list[int]] | None = None

    def _load(self) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, list[int]]:
        """``(system, heavy-atom positions (F, N_heavy, 3) Å of all frames, train indices, val indices,
        frames per training trajectory)``; validation frames come after the training ones."""
        if self._loaded is None:
            import mdtraj as md

            from molgen.protein.io import load_trajectory
            from molgen.protein.system import ProteinSystem

            parts = [load_trajectory(self.top, [t], stride=self.stride) for t in self.trajs]
            lengths = [p.n_frames for p in parts]
            train_idx, val_idx = time_split(lengths, self.val_fraction)
            val_parts = [load_trajectory(self.top, [t], stride=self.stride) for t in self.val_trajs]
            if val_parts:
                val_idx = np.arange(sum(lengths), sum(lengths) + sum(p.n_frames for p in val_parts))
            everything = parts + val_parts
            frames = (everything[0] if len(everything) == 1
                      else md.join(everything, check_topology=True, discard_overlapping_frames=False))
            system = ProteinSystem.from_frames(frames[train_idx], self.system_name, keep_frames=self.keep_frames)
            self._loaded = (system, system.heavy_positions(frames), train_idx, val_idx, lengths)
        return self._loaded

    @property
    def system(self) -> Any:
        """The :class:`~molgen.protein.system.ProteinSystem` of the training frames."""
        return self._load()[0]

    def data_hash(self) -> str:
        from molgen.protein.io import parse_trajectory_spec

        def described(trajs: list[str]) -> list[list[Any]]:
            specs = [parse_trajectory_spec(t) for t in trajs]
            # the step enters only when given, so hashes of FILE@start:stop runs stay what they were
            return [[file_sha256(p), s.start, s.stop] + ([s.step] if s.step else []) for p, s in specs]

        description = {"top": file_sha256(Path(self.top)), "trajs": described(self.trajs),
                       "stride": self.stride, "val_fraction": self.val_fraction}
        if self.val_trajs:
            description["val_trajs"] = described(self.val_trajs)
        return hash_of(description)

    def datasets(self) -> tuple:
        system, positions, train_idx, val_idx, _ = self._load()
        if self.cfg.max_train_molecules:
            train_idx = train_idx[: self.cfg.max_train_molecules]
        return (TrajectoryFrames(system.graph, positions, train_idx),
                TrajectoryFrames(system.graph, positions, val_idx[: self.cfg.val_molecules]))

    def checkpoint_extra(self) -> dict[str, Any]:
        system, _, _, _, lengths = self._load()
        return {"system": system.to_dict(), "torsion_names": system.torsion_names, "frames": lengths,
                "trajs": [Path(t).name for t in self.trajs], "top": Path(self.top).name, "stride": self.stride,
                "val_fraction": self.val_fraction, "val_trajs": [Path(t).name for t in self.val_trajs]}

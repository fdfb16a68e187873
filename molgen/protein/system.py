"""One protein system as the torsion model sees it: topology, molecule, torsions, reference geometry.

A :class:`ProteinSystem` is built once from a topology and reference frames (the training trajectory, or
one structure) and travels inside checkpoints (:meth:`ProteinSystem.to_dict`), so a trained model samples
its system offline with nothing but the checkpoint:

* ``structure``: the first reference frame (``mdtraj.Trajectory``, nm): the topology, and the local structure
  (bond lengths and angles) of samples when no frames are stored;
* ``mol``: its RDKit molecule (:func:`molgen.protein.featurize.protein_mol`), atom ``i`` = topology atom ``i``;
* ``graph``: the heavy-atom graph and rotatable torsions of the torsion model (:func:`molgen.chem.featurize.featurize`);
* ``geometry``: the validation reference (:class:`molgen.protein.validate.ProteinGeometry`): bonds and the
  ranges of bond lengths and angles over the reference frames;
* ``frames``: optionally, (F, n_atoms, 3) Å reference frames, evenly spaced over the training frames: the
  local structures samples are drawn on, and the starting points of partial diffusion
  (:func:`molgen.protein.sample.sample_ensemble`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from molgen.chem.featurize import MolGraph, featurize
from molgen.protein.featurize import protein_mol, torsion_names
from molgen.protein.validate import ProteinGeometry

__all__ = ["ProteinSystem"]


@dataclass
class ProteinSystem:
    """See the module docstring. ``name``: a label for reports and model cards."""

    name: str
    structure: Any
    mol: Any
    graph: MolGraph
    geometry: ProteinGeometry
    frames: np.ndarray | None = None

    @classmethod
    def from_frames(cls, frames: Any, name: str = "protein", keep_frames: int = 0) -> ProteinSystem:
        """The system of an ``mdtraj.Trajectory`` of reference frames (the first one is the structure); up to
        ``keep_frames`` of them, evenly spaced, are kept as :attr:`frames`."""
        structure = frames[0]
        mol = protein_mol(structure)
        kept = None
        if keep_frames > 0:
            idx = np.unique(np.linspace(0, frames.n_frames - 1, min(keep_frames, frames.n_frames)).round().astype(int))
            kept = np.asarray(frames.xyz[idx], dtype=np.float32) * 10.0
        return cls(name=name, structure=structure, mol=mol, graph=featurize(mol), geometry=ProteinGeometry.of(frames),
                   frames=kept)

    @property
    def topology(self) -> Any:
        return self.structure.topology

    @property
    def num_atoms(self) -> int:
        return int(self.structure.n_atoms)

    @property
    def torsion_names(self) -> list[str]:
        """Names of the rotatable torsions (``"ALA2 phi"``, ...), in the model's order."""
        return torsion_names(self.topology, self.graph.full_torsions)

    def heavy_positions(self, frames: Any) -> np.ndarray:
        """(F, N_heavy, 3) float32 Å heavy-atom positions of ``frames`` (same topology), the model's input."""
        return (np.asarray(frames.xyz, dtype=np.float32) * 10.0)[:, self.graph.heavy_atoms]

    def to_dict(self) -> dict[str, Any]:
        """Checkpoint form: the structure as PDB text plus the validation ranges (NumPy arrays)."""
        from molgen.protein.io import pdb_text

        geo = self.geometry
        out = {"name": self.name, "pdb": pdb_text(self.structure), "bond_range": geo.bond_range.astype(np.float32),
               "angle_range": geo.angle_range.astype(np.float32), "bonds": geo.bonds}
        if self.frames is not None:
            out["frames"] = self.frames.astype(np.float32)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProteinSystem:
        """Rebuild a system saved by :meth:`to_dict` (nothing but the dict is read)."""
        import os
        import tempfile

        import mdtraj as md

        with tempfile.NamedTemporaryFile("w", suffix=".pdb", delete=False) as fh:
            fh.write(data["pdb"])
        try:
            structure = md.load(fh.name, standard_names=False)
        finally:
            os.unlink(fh.name)
        system = cls.from_frames(structure, str(data.get("name", "protein")))
        geo = system.geometry
        if np.array_equal(np.asarray(data["bonds"]), geo.bonds):
            geo.bond_range = np.asarray(data["bond_range"], dtype=np.float64)
            geo.angle_range = np.asarray(data["angle_range"], dtype=np.float64)
        if data.get("frames") is not None:
            system.frames = np.asarray(data["frames"], dtype=np.float32)
        return system

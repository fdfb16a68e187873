"""Training items of the protein torsion model: the frames of MD trajectories of one system.

Every item is one frame: the system's heavy-atom graph and rotatable torsions (shared by all frames, built
once by :class:`molgen.protein.system.ProteinSystem`) with that frame's heavy-atom positions (Å): the input
of :func:`molgen.models.graph.collate_graphs`, like the conformers of :mod:`molgen.datasets.conformer_dataset`.

Split: the frames of each trajectory file are cut in time, the last ``val_fraction`` of each file is
validation (consecutive MD frames are correlated, so a random split would validate on near-copies of
training frames).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from molgen.models.graph import topological_distances

__all__ = ["TrajectoryFrames", "time_split"]


def time_split(lengths: Sequence[int], val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)`` frame indices into the concatenated files: the last ``val_fraction`` of each file is val.

    ``val_fraction`` 0 gives no validation frames; a file of one frame goes to training.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction}: must be in [0, 1)")
    train, val, offset = [], [], 0
    for n in lengths:
        n_val = int(round(n * val_fraction)) if n > 1 else 0
        train.append(np.arange(offset, offset + n - n_val))
        val.append(np.arange(offset + n - n_val, offset + n))
        offset += n
    return np.concatenate(train or [np.zeros(0, np.int64)]), np.concatenate(val or [np.zeros(0, np.int64)])


class TrajectoryFrames:
    """Per-frame items (dicts of NumPy arrays) of one system.

    Args:
        graph: the system's :class:`~molgen.chem.featurize.MolGraph`.
        positions: ``(F, N_heavy, 3)`` float32 heavy-atom positions (Å) of all frames.
        indices: the frames of this split.
    """

    def __init__(self, graph, positions: np.ndarray, indices: np.ndarray) -> None:
        self.graph = graph
        self.positions = positions
        self.indices = np.asarray(indices, dtype=np.int64)
        self.topo = topological_distances(graph.num_nodes, graph.bond_index)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> dict[str, np.ndarray]:
        return self.graph.item(self.positions[int(self.indices[k])], self.topo)

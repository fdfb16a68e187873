"""Compact, torch-free training arrays for torsion models, and the dataset that reads them.

``export_training_arrays`` turns the consolidated CCD build (``ccd_conformers.pkl``) into one compressed
``.npz`` of flat, concatenated arrays (a few tens of MB for ~35k molecules) holding, per molecule, the
heavy-atom graph, its rotatable torsions with their moving atoms and the conformer-matched coordinates
(Å). Only the training and validation splits are exported; held-out molecules never reached the build.
The file's sha256 is the *data hash* recorded in checkpoints.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np

from molgen.atomic import atomic_path
from molgen.chem.feature_spec import BOND_FEATURE_DIM, NODE_FEATURE_DIM
from molgen.datasets.split import is_heldout

SPLIT_CODES = {"train": 0, "val": 1}


def export_training_arrays(pkl_path: Path, out_path: Path, *, max_rmsd: float | None = None) -> dict:
    """Write the compact ``.npz`` for the train and val splits of a CCD build; returns counts."""
    with open(pkl_path, "rb") as fh:
        payload = pickle.load(fh)
    return write_training_arrays(payload["records"], out_path, max_rmsd=max_rmsd)


def write_training_arrays(records: list[dict], out_path: Path, *, max_rmsd: float | None = None) -> dict:
    """Write matched-conformer ``records`` (as made by :mod:`molgen.datasets.build_ccd`) to a compact ``.npz``.

    Molecules without rotatable torsions carry no torsion-score signal and are skipped; with
    ``max_rmsd`` (Å), so are those whose conformer matching stayed further from experiment.

    Raises:
        RuntimeError: a record belongs to the held-out list (it must never reach training data).
    """
    recs = [
        r for r in records
        if len(r["torsions"]) > 0 and (max_rmsd is None or r["rmsd_match"] <= max_rmsd)
    ]
    if any(is_heldout(r["block"]) for r in recs):
        raise RuntimeError("held-out molecule found in the build: refusing to export")
    arrays = {
        "num_nodes": np.array([len(r["node_features"]) for r in recs], dtype=np.int32),
        "num_edges": np.array([r["bond_index"].shape[1] for r in recs], dtype=np.int32),
        "num_torsions": np.array([len(r["torsions"]) for r in recs], dtype=np.int32),
        "node_features": np.packbits(np.concatenate([r["node_features"] for r in recs]).astype(bool), axis=1),
        "bond_index": np.concatenate([r["bond_index"] for r in recs], axis=1).astype(np.int16),
        "bond_features": np.packbits(np.concatenate([r["bond_features"] for r in recs]).astype(bool), axis=1),
        "torsions": np.concatenate([r["torsions"] for r in recs]).astype(np.int16),
        "torsion_masks": np.packbits(np.concatenate([r["torsion_masks"].ravel() for r in recs])),
        "coords": np.concatenate([r["coords"] for r in recs]).astype(np.float32),
        "split": np.array([SPLIT_CODES[r["split"]] for r in recs], dtype=np.uint8),
        "rmsd_match": np.array([r["rmsd_match"] for r in recs], dtype=np.float32),
        "ccd_id": np.array([r["ccd_id"] for r in recs]),
        "block": np.array([r["block"] for r in recs]),
    }
    with atomic_path(out_path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    return {"train": int((arrays["split"] == 0).sum()), "val": int((arrays["split"] == 1).sum())}


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file (the data hash of a training set)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class TorsionConformerDataset:
    """Per-molecule items (dicts of NumPy arrays) of one split of a compact ``.npz``.

    Items hold ``node_features (N, F)`` uint8, ``bond_index (2, E)``, ``bond_features (E, Fb)``,
    ``torsions (T, 4)``, ``torsion_masks (T, N)`` bool and ``pos (N, 3)`` float32 Å: the input of
    :func:`molgen.models.graph.collate_graphs`.
    """

    def __init__(self, path: Path | str, split: str = "train", max_molecules: int | None = None) -> None:
        data = np.load(path)
        self.path = Path(path)
        n_nodes, n_edges, n_tors = data["num_nodes"], data["num_edges"], data["num_torsions"]
        self._node_ptr = np.concatenate([[0], np.cumsum(n_nodes)])
        self._edge_ptr = np.concatenate([[0], np.cumsum(n_edges)])
        self._tor_ptr = np.concatenate([[0], np.cumsum(n_tors)])
        self._mask_ptr = np.concatenate([[0], np.cumsum(n_tors.astype(np.int64) * n_nodes)])
        self.node_features = np.unpackbits(data["node_features"], axis=1, count=NODE_FEATURE_DIM)
        self.bond_index = data["bond_index"].astype(np.int64)
        self.bond_features = np.unpackbits(data["bond_features"], axis=1, count=BOND_FEATURE_DIM)
        self.torsions = data["torsions"].astype(np.int64)
        self.torsion_masks = np.unpackbits(data["torsion_masks"], count=int(self._mask_ptr[-1])).astype(bool)
        self.coords = data["coords"]
        self.ccd_id = data["ccd_id"]
        self.block = data["block"]
        self.indices = np.flatnonzero(data["split"] == SPLIT_CODES[split])
        if max_molecules is not None:
            self.indices = self.indices[:max_molecules]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> dict[str, np.ndarray]:
        i = int(self.indices[k])
        n0, n1 = self._node_ptr[i], self._node_ptr[i + 1]
        e0, e1 = self._edge_ptr[i], self._edge_ptr[i + 1]
        t0, t1 = self._tor_ptr[i], self._tor_ptr[i + 1]
        m0, m1 = self._mask_ptr[i], self._mask_ptr[i + 1]
        n = n1 - n0
        return {
            "node_features": self.node_features[n0:n1],
            "bond_index": self.bond_index[:, e0:e1],
            "bond_features": self.bond_features[e0:e1],
            "torsions": self.torsions[t0:t1],
            "torsion_masks": self.torsion_masks[m0:m1].reshape(t1 - t0, n),
            "pos": self.coords[n0:n1],
        }

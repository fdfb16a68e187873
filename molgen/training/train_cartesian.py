"""The Cartesian conformer task: diffusion over all atom positions of a given molecular graph.

Unlike torsional diffusion, nothing comes from RDKit's local structure: bond lengths, angles, ring
puckers and torsions are all generated. The variable is ``pos`` (Å, every atom, hydrogens included),
noised by a preconditioned :class:`~molgen.diffusion.process.VPSchedule` in the zero-centre-of-mass
subspace; the network is the same :class:`~molgen.models.molecule_denoiser.MoleculeDenoiser` as for de
novo molecules, here reading the molecule's graph (all-atom node features of
:func:`molgen.chem.featurize.all_atom_graph`, bond features and topological distances on its edges)
instead of noised atom types, whose output head it does not use.

Data: QM9's DFT geometries (:mod:`molgen.datasets.qm9`, EDM's split, held-out molecules removed). The
graph of each molecule is perceived from its geometry with its formal charges
(:func:`molgen.chem.perception.mol_from_atoms`) and kept only when it is the molecule of the CSV's SMILES
(canonical SMILES equal); the graphs are cached beside the QM9 cache (``cartesian_graphs_<split>.npz``).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from molgen.atomic import atomic_path
from molgen.chem.feature_spec import BOND_FEATURE_DIM
from molgen.diffusion.process import VPSchedule
from molgen.diffusion.subspace import remove_mean, subspace_noise
from molgen.models.graph import GraphBatch, collate_bonded_graphs
from molgen.models.molecule_denoiser import (
    MoleculeDenoiser,
    MoleculeDenoiserConfig,
    molecule_config_dict,
)
from molgen.models.registry import CARTESIAN_FORMAT
from molgen.training.tasks import TrainingTask, hash_of, register_task
from molgen.training.trainer import TrainConfig

__all__ = ["CartesianConformerTask", "QM9Graphs", "build_graph_cache"]

GRAPH_CACHE_FORMAT = "molgen-qm9-cartesian-graphs/1"


def _graph_of(mol_data: dict[str, Any]) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """All-atom graph of one QM9 molecule in its XYZ atom order, or a failure reason."""
    from rdkit import Chem

    from molgen.chem.featurize import all_atom_graph
    from molgen.chem.perception import mol_from_atoms

    res = mol_from_atoms(mol_data["atomic_numbers"], mol_data["positions"], mol_data["formal_charges"])
    if not res.valid or res.mol is None:
        return None, f"perception: {res.reason}"
    ref = Chem.MolFromSmiles(mol_data["smiles"])
    if ref is None or res.smiles != Chem.MolToSmiles(Chem.RemoveHs(ref), isomericSmiles=False):
        return None, "graph differs from the SMILES"
    return all_atom_graph(res.mol), None


def build_graph_cache(split: str, cache: str | Path | None = None) -> Path:
    """Perceive and cache the all-atom graphs of a QM9 split (``cartesian_graphs_<split>.npz``).

    Stored: ``molecule`` (M',) indices into the split, ``node_ptr`` / ``bond_ptr`` offsets, concatenated
    ``node_features`` (uint8), ``bond_index`` (local, int16) and ``bond_features`` (uint8), and the
    failure counts in ``meta`` (JSON).
    """
    from molgen.datasets.qm9 import load_qm9_meta, load_qm9_split, qm9_dir

    path = qm9_dir(cache) / f"cartesian_graphs_{split}.npz"
    meta_qm9 = load_qm9_meta(cache) or {}
    key = json.dumps({"format": GRAPH_CACHE_FORMAT, "qm9": meta_qm9.get("key"), "split": split}, sort_keys=True)
    if path.exists():
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) == key:
                return path
    qsplit = load_qm9_split(split, cache)
    mols, nodes, bonds, feats, node_ptr, bond_ptr = [], [], [], [], [0], [0]
    failures: Counter[str] = Counter()
    for i in range(len(qsplit)):
        graph, reason = _graph_of(qsplit.molecule(i))
        if graph is None:
            failures[reason or "unknown"] += 1
            continue
        mols.append(i)
        nodes.append(graph["node_features"].astype(np.uint8))
        bonds.append(graph["bond_index"].T.astype(np.int16))
        feats.append(graph["bond_features"].astype(np.uint8))
        node_ptr.append(node_ptr[-1] + len(graph["node_features"]))
        bond_ptr.append(bond_ptr[-1] + graph["bond_index"].shape[1])
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(
            tmp, key=np.array(key), molecule=np.array(mols, dtype=np.int64),
            node_ptr=np.array(node_ptr, dtype=np.int64), bond_ptr=np.array(bond_ptr, dtype=np.int64),
            node_features=np.concatenate(nodes) if nodes else np.zeros((0, 1), np.uint8),
            bond_index=np.concatenate(bonds) if bonds else np.zeros((0, 2), np.int16),
            bond_features=np.concatenate(feats) if feats else np.zeros((0, BOND_FEATURE_DIM), np.uint8),
            meta=np.array(json.dumps({"kept": len(mols), "failures": dict(failures)})),
        )
    return path


class QM9Graphs(torch.utils.data.Dataset):
    """Items ``{"node_features", "bond_index", "bond_features", "pos" (n, 3) Å centred}`` of QM9 molecules
    whose graph was perceived (:func:`build_graph_cache`)."""

    def __init__(self, split: Any, graph_file: Path, limit: int | None = None) -> None:
        self.split = split
        with np.load(graph_file, allow_pickle=False) as data:
            self.arrays = {k: data[k] for k in ("molecule", "node_ptr", "bond_ptr", "node_features", "bond_index",
                                                "bond_features")}
            self.meta = json.loads(str(data["meta"]))
        self.count = len(self.arrays["molecule"]) if limit is None else min(limit, len(self.arrays["molecule"]))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, k: int) -> dict[str, np.ndarray]:
        a = self.arrays
        i = int(a["molecule"][k])
        p0, p1 = int(self.split.ptr[i]), int(self.split.ptr[i + 1])
        n0, n1 = int(a["node_ptr"][k]), int(a["node_ptr"][k + 1])
        b0, b1 = int(a["bond_ptr"][k]), int(a["bond_ptr"][k + 1])
        pos = self.split.positions[p0:p1].astype(np.float32)
        return {
            "node_features": a["node_features"][n0:n1].astype(np.float32),
            "bond_index": a["bond_index"][b0:b1].T.astype(np.int64),
            "bond_features": a["bond_features"][b0:b1].astype(np.float32),
            "pos": pos - pos.mean(0, keepdims=True),
        }


@register_task
class CartesianConformerTask(TrainingTask):
    """Cartesian conformers of given graphs (module docstring). Options: ``cache`` (QM9 cache root),
    ``pos_rms`` (1.40 Å), ``schedule`` (VPSchedule parameters)."""

    name = "cartesian"
    checkpoint_format = CARTESIAN_FORMAT

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        sched = self.options.get("schedule", {})
        self.process = VPSchedule(**{"data_rms": float(self.options.get("pos_rms", 1.40)), **sched})
        self._files: dict[str, Path] = {}

    @property
    def processes(self) -> dict:
        return {"pos": self.process}

    def build_model(self, overrides: dict) -> nn.Module:
        from molgen.chem.featurize import ALL_ATOM_FEATURE_DIM

        cfg = {"type_dim": ALL_ATOM_FEATURE_DIM, "bond_dim": BOND_FEATURE_DIM, "cond_dim": 0, **overrides}
        return MoleculeDenoiser(MoleculeDenoiserConfig(**cfg))

    def model_config(self, model: nn.Module) -> dict:
        return molecule_config_dict(model)  # type: ignore[arg-type]

    def _load(self) -> None:
        if self._files:
            return
        from molgen.datasets.qm9 import ensure_qm9_cache

        cache = self.options.get("cache")
        self._meta = ensure_qm9_cache(cache)
        self._files = {s: build_graph_cache(s, cache) for s in ("train", "val")}

    def data_hash(self) -> str:
        self._load()
        from molgen.datasets.qm9 import qm9_data_key

        return hash_of({**qm9_data_key(self._meta), "task": self.name, "graphs": GRAPH_CACHE_FORMAT})

    def datasets(self) -> tuple:
        from molgen.datasets.qm9 import load_qm9_split

        self._load()
        cache = self.options.get("cache")
        train = QM9Graphs(load_qm9_split("train", cache), self._files["train"], self.cfg.max_train_molecules)
        val = QM9Graphs(load_qm9_split("val", cache), self._files["val"], self.cfg.val_molecules)
        return train, val

    def collate(self, items: list) -> GraphBatch:
        return collate_bonded_graphs(items)

    def loss(self, model: nn.Module, batch: GraphBatch, generator: torch.Generator | None = None) -> tuple[Tensor, float]:
        dev, dtype, b = batch.pos.device, batch.pos.dtype, batch.num_graphs
        t = torch.rand(b, generator=generator, device=dev, dtype=dtype)
        alpha, sigma = self.process.alpha(t).to(dtype), self.process.sigma(t).to(dtype)
        eps = subspace_noise(batch.batch, 3, generator, dtype=dtype, num_graphs=b)
        x0 = remove_mean(batch.pos, batch.batch, b)
        x_t = alpha[batch.batch, None] * x0 + sigma[batch.batch, None] * eps
        pred, _ = model(batch.with_pos(x_t), sigma / alpha)
        err = self.process.output_loss(pred, eps, t[batch.batch, None], x_t).sum(1)
        per_mol = torch.zeros(b, dtype=dtype, device=dev).index_add_(0, batch.batch, err)
        counts = torch.bincount(batch.batch, minlength=b).to(dtype)
        return (per_mol / (3 * counts)).mean(), float(b)

    def checkpoint_extra(self) -> dict:
        return {"dataset": "qm9", "graph_features": "all_atom_graph/1"}

"""Batches of molecular graphs as torch tensors, and the radius / complete graph in plain torch.

PyG's ``radius_graph`` needs torch-cluster, which has no wheels on many machines; molecules are small,
so the radius graph is computed densely per molecule on padded ``(B, N_max, N_max)`` distance blocks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from scipy.sparse import csgraph, csr_matrix
from torch import Tensor

from molgen.diffusion.torsion_ops import TorsionIndex

#: topological distances are one-hot encoded as 1, 2, 3, 4+ bonds apart or disconnected
MAX_TOPO = 4


def topological_distances(num_nodes: int, bond_index: np.ndarray) -> np.ndarray:
    """``(N, N)`` uint8 shortest-path lengths in bonds, capped at :data:`MAX_TOPO` (5 = disconnected)."""
    if num_nodes == 0:
        return np.zeros((0, 0), dtype=np.uint8)
    adj = csr_matrix((np.ones(bond_index.shape[1]), (bond_index[0], bond_index[1])), shape=(num_nodes, num_nodes))
    d = csgraph.shortest_path(adj, unweighted=True, directed=False)
    d[np.isinf(d)] = MAX_TOPO + 1
    return np.minimum(d, MAX_TOPO + 1).astype(np.uint8)


@dataclass
class GraphBatch:
    """A batch of ``B`` molecular graphs (``N`` nodes, ``T`` torsions in all).

    Only the node fields are required; the bond and torsion fields are present when the model reads them
    (the torsion denoiser needs all of them; a de novo position/type model none).

    Attributes:
        node_features: ``(N, F)`` float node features (one-hot atom features, or noised atom types).
        pos: ``(N, 3)`` positions in Å.
        batch: ``(N,)`` graph index of each node.
        ptr: ``(B + 1,)`` first node of each graph.
        node_mask: ``(B, N_max)`` bool, padded layout validity.
        topo: ``(B, N_max, N_max)`` uint8 topological distances (0 on the diagonal / padding), or None.
        bond_dense: ``(B, N_max, N_max, Fb)`` float bond features (zero where no bond), or None.
        torsions: ``(T, 4)`` global node indices ``(a, u, v, b)``, or None.
        torsion_graph: ``(T,)`` graph index of each torsion, or None.
        torsion_side: ``(T, N_max)`` bool, padded-local nodes that move with each torsion, or None.
        dihedral_quads: ``(Q, 3)`` ``(torsion, k, j)``: every heavy neighbour ``k`` of ``u`` (not ``v``)
            paired with every heavy neighbour ``j`` of ``v`` (not ``u``), global node indices, or None.
        torsion_index: :class:`TorsionIndex` used to rotate ``pos``, or None.
    """

    node_features: Tensor
    pos: Tensor
    batch: Tensor
    ptr: Tensor
    node_mask: Tensor
    topo: Tensor | None = None
    bond_dense: Tensor | None = None
    torsions: Tensor | None = None
    torsion_graph: Tensor | None = None
    torsion_side: Tensor | None = None
    dihedral_quads: Tensor | None = None
    torsion_index: TorsionIndex | None = None

    @property
    def num_graphs(self) -> int:
        return self.ptr.numel() - 1

    def to(self, device: torch.device | str) -> GraphBatch:
        kwargs = {}
        for f in fields(self):
            value = getattr(self, f.name)
            kwargs[f.name] = value.to(device) if value is not None else None
        return GraphBatch(**kwargs)

    def with_pos(self, pos: Tensor) -> GraphBatch:
        """The same batch with new positions ``(N, 3)``."""
        return self.replace(pos=pos)

    def replace(self, **changes: Tensor) -> GraphBatch:
        """The same batch with some fields replaced (no copies of the others)."""
        kwargs = {f.name: getattr(self, f.name) for f in fields(self)}
        kwargs.update(changes)
        return GraphBatch(**kwargs)


def node_batch(node_features: Tensor, pos: Tensor, sizes: Sequence[int] | Tensor) -> GraphBatch:
    """A :class:`GraphBatch` of graphs without bonds: ``node_features`` ``(N, F)``, ``pos`` ``(N, 3)`` Å,
    ``sizes`` the number of nodes of each graph (summing to ``N``)."""
    sizes_t = torch.as_tensor(sizes, dtype=torch.long, device=pos.device)
    ptr = torch.cat([sizes_t.new_zeros(1), torch.cumsum(sizes_t, 0)])
    bsz = sizes_t.numel()
    n_max = int(sizes_t.max()) if bsz else 0
    node_mask = torch.arange(n_max, device=pos.device)[None, :] < sizes_t[:, None]
    batch = torch.repeat_interleave(torch.arange(bsz, device=pos.device), sizes_t)
    return GraphBatch(node_features=node_features, pos=pos, batch=batch, ptr=ptr, node_mask=node_mask)


def _dense_graph_parts(items: Sequence[Mapping[str, np.ndarray]]) -> dict[str, Tensor]:
    """Node rows, positions and the padded graph tables shared by every collate function.

    Each item holds ``node_features (N, F)``, ``pos (N, 3)`` (Å), ``bond_index (2, E)`` (local) and
    ``bond_features (E, Fb)``; optionally ``topo`` ``(N, N)`` (computed when absent).
    """
    sizes = [len(it["node_features"]) for it in items]
    n_max = max(sizes)
    bsz = len(items)
    fb = items[0]["bond_features"].shape[1]
    ptr = np.concatenate([[0], np.cumsum(sizes)])
    node_mask = np.zeros((bsz, n_max), dtype=bool)
    topo = np.zeros((bsz, n_max, n_max), dtype=np.uint8)
    bond_dense = np.zeros((bsz, n_max, n_max, fb), dtype=np.float32)
    for g, (it, n) in enumerate(zip(items, sizes)):
        node_mask[g, :n] = True
        bi = np.asarray(it["bond_index"], dtype=np.int64)
        t = it.get("topo")
        topo[g, :n, :n] = t if t is not None else topological_distances(n, bi)
        if bi.size:
            bond_dense[g, bi[0], bi[1]] = it["bond_features"]
    return {
        "node_features": torch.from_numpy(np.concatenate([it["node_features"] for it in items]).astype(np.float32)),
        "pos": torch.from_numpy(np.concatenate([it["pos"] for it in items]).astype(np.float32)),
        "batch": torch.from_numpy(np.repeat(np.arange(bsz), sizes)),
        "ptr": torch.from_numpy(ptr.astype(np.int64)),
        "node_mask": torch.from_numpy(node_mask),
        "topo": torch.from_numpy(topo),
        "bond_dense": torch.from_numpy(bond_dense),
    }


def collate_bonded_graphs(items: Sequence[Mapping[str, np.ndarray]]) -> GraphBatch:
    """Collate graphs with bonds but no torsions (e.g. all-atom graphs of
    :func:`molgen.chem.featurize.all_atom_graph` with ``pos``) into a :class:`GraphBatch`."""
    return GraphBatch(**_dense_graph_parts(items))


def collate_graphs(items: Sequence[Mapping[str, np.ndarray]]) -> GraphBatch:
    """Collate per-molecule arrays into a :class:`GraphBatch` with torsions.

    Each item holds ``node_features (N, F)``, ``bond_index (2, E)`` (local), ``bond_features (E, Fb)``,
    ``torsions (T, 4)`` (local), ``torsion_masks (T, N)`` and ``pos (N, 3)`` (Å); optionally ``topo``
    ``(N, N)`` (computed when absent).
    """
    sizes = [len(it["node_features"]) for it in items]
    n_max = max(sizes)
    ptr = np.concatenate([[0], np.cumsum(sizes)])
    torsions, tor_graph, sides, ranks, pair_t, pair_a, quads = [], [], [], [], [], [], []
    t_offset = 0
    for g, (it, n) in enumerate(zip(items, sizes)):
        bi = np.asarray(it["bond_index"], dtype=np.int64)
        tors = np.asarray(it["torsions"], dtype=np.int64).reshape(-1, 4)
        masks = np.asarray(it["torsion_masks"], dtype=bool).reshape(len(tors), n)
        if len(tors):
            torsions.append(tors + ptr[g])
            tor_graph.append(np.full(len(tors), g))
            side = np.zeros((len(tors), n_max), dtype=bool)
            side[:, :n] = masks
            sides.append(side)
            ranks.append(np.arange(len(tors)))
            tt, aa = np.nonzero(masks)
            pair_t.append(tt + t_offset)
            pair_a.append(aa + ptr[g])
            neighbours: list[list[int]] = [[] for _ in range(n)]
            for i, j in bi.T:
                neighbours[i].append(int(j))
            for k, (_, u, v, _) in enumerate(tors):
                for a in neighbours[u]:
                    if a == v:
                        continue
                    for b in neighbours[v]:
                        if b != u:
                            quads.append((k + t_offset, a + ptr[g], b + ptr[g]))
            t_offset += len(tors)

    def cat(parts, shape, dtype):
        return np.concatenate(parts) if parts else np.zeros(shape, dtype=dtype)

    torsions_np = cat(torsions, (0, 4), np.int64)
    torsions_t = torch.from_numpy(torsions_np)
    index = TorsionIndex.build(
        torsions_t[:, 1:3].contiguous(),
        torch.from_numpy(cat(ranks, (0,), np.int64)),
        torch.from_numpy(cat(pair_t, (0,), np.int64)),
        torch.from_numpy(cat(pair_a, (0,), np.int64)),
    )
    return GraphBatch(
        **_dense_graph_parts(items),
        torsions=torsions_t,
        torsion_graph=torch.from_numpy(cat(tor_graph, (0,), np.int64)),
        torsion_side=torch.from_numpy(cat(sides, (0, n_max), bool)),
        dihedral_quads=torch.as_tensor(np.array(quads, dtype=np.int64).reshape(-1, 3)),
        torsion_index=index,
    )


def to_dense(values: Tensor, batch: GraphBatch) -> Tensor:
    """Scatter per-node ``values`` ``(N, ...)`` into padded ``(B, N_max, ...)`` (zeros as padding)."""
    out = values.new_zeros((batch.num_graphs, batch.node_mask.shape[1], *values.shape[1:]))
    out[batch.node_mask] = values
    return out


def radius_edges(batch: GraphBatch, cutoff: float | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Edges between nodes of the same graph closer than ``cutoff`` Å, plus all bonded pairs; with
    ``cutoff=None`` every ordered pair of distinct nodes of a graph (the complete graph).

    Returns:
        ``src (E,)``, ``dst (E,)`` global node indices (messages flow ``src -> dst``), the graph index
        ``(E,)`` and padded local indices ``(E, 2)`` ``(i_dst, j_src)`` used to read dense edge tables.
    """
    mask = batch.node_mask
    valid = mask[:, :, None] & mask[:, None, :]
    if cutoff is not None:
        dense = to_dense(batch.pos, batch)
        near = torch.cdist(dense, dense) < cutoff
        valid &= near | (batch.topo == 1) if batch.topo is not None else near
    eye = torch.eye(mask.shape[1], dtype=torch.bool, device=mask.device)
    valid &= ~eye
    g, i, j = valid.nonzero(as_tuple=True)
    dst = batch.ptr[g] + i
    src = batch.ptr[g] + j
    return src, dst, g, torch.stack([i, j], dim=1)

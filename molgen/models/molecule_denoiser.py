"""E(3)-equivariant denoiser over Cartesian positions and atom types (EDM-style, e3nn layers).

Input: a :class:`~molgen.models.graph.GraphBatch` whose ``node_features`` ``(N, F)`` are the noised atom
type (and charge) encodings and whose ``pos`` ``(N, 3)`` are the noised positions (Å, zero mean per
molecule), the noise-to-signal ratio ``rho = sigma / alpha`` ``(B,)`` of each molecule, and optionally
per-molecule conditions ``cond`` ``(B, C)`` with a mask ``cond_mask`` ``(B, C)`` (False = dropped, as in
classifier-free guidance training). When ``bond_dim > 0`` the edges also read ``batch.bond_dense`` and
``batch.topo`` (a given molecular graph, for Cartesian conformers of that graph).

Output: ``(eps_pos (N, 3), eps_type (N, F))``, the noise estimates of the two variables; ``eps_pos`` is a
``1o`` vector field with zero mean per molecule, ``eps_type`` invariant.

Architecture (the cheap forms of :mod:`molgen.models.layers`):

1. Node embedding: an MLP of the noised types, a sinusoidal embedding of ``log rho`` and the condition
   embedding.
2. Edges: the complete graph of each molecule (QM9 molecules have at most 29 atoms; noisy positions
   have no meaningful cutoff); invariant edge features are a Gaussian RBF of the distance (up to
   ``rbf_cutoff`` Å), the node embeddings' noise term and, with a graph, bond features and topological
   distance; directions enter through spherical harmonics up to ``lmax``.
3. ``num_layers`` :class:`~molgen.models.layers.Interaction` layers (depthwise ``uvu`` tensor products)
   with hidden irreps ``ns x 0e + nv x 1o + nv x 1e``.
4. Heads: ``eps_type`` from an MLP of the scalars; ``eps_pos`` = an ``o3.Linear`` of the ``1o`` channels
   plus an EGNN-style pair term ``mean_j (x_i - x_j) phi(s_i, s_j, |x_i - x_j|) / (1 + |x_i - x_j|)``,
   projected onto the zero-mean subspace.

The network knows nothing of the noise process: the training task and the sampler convert.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from e3nn import o3
from torch import Tensor, nn

from molgen.models.graph import MAX_TOPO, GraphBatch, radius_edges
from molgen.models.layers import (
    GaussianRBF,
    SigmaEmbedding,
    interaction_stack,
    mlp,
    run_interactions,
    scatter_mean,
)

__all__ = ["MoleculeDenoiser", "MoleculeDenoiserConfig", "build_molecule_denoiser"]


@dataclass
class MoleculeDenoiserConfig:
    """Hyper-parameters of :class:`MoleculeDenoiser` (stored inside every checkpoint)."""

    type_dim: int = 8
    cond_dim: int = 0
    bond_dim: int = 0
    ns: int = 64
    nv: int = 16
    num_layers: int = 4
    lmax: int = 2
    num_rbf: int = 24
    rbf_cutoff: float = 10.0
    time_dim: int = 16
    edge_dim: int = 32


class MoleculeDenoiser(nn.Module):
    """Predicts position and type noise from noised atoms (see the module docstring)."""

    def __init__(self, config: MoleculeDenoiserConfig | None = None) -> None:
        super().__init__()
        cfg = self.config = config or MoleculeDenoiserConfig()
        self.time_embed = SigmaEmbedding(cfg.time_dim)
        cond_out = cfg.ns if cfg.cond_dim else 0
        self.cond_embed = mlp([2 * cfg.cond_dim, cfg.ns, cfg.ns]) if cfg.cond_dim else None
        self.node_embed = mlp([cfg.type_dim + cfg.time_dim + cond_out, cfg.ns, cfg.ns])
        self.rbf = GaussianRBF(cfg.num_rbf, cfg.rbf_cutoff)
        graph_dim = (cfg.bond_dim + MAX_TOPO + 1) if cfg.bond_dim else 0
        self.edge_embed = mlp([cfg.num_rbf + 1 + cfg.time_dim + graph_dim, cfg.edge_dim, cfg.edge_dim])
        self.irreps_sh = o3.Irreps.spherical_harmonics(cfg.lmax)
        self.layers = interaction_stack(cfg.ns, cfg.nv, cfg.num_layers, self.irreps_sh, cfg.edge_dim)
        self.vector_head = o3.Linear(self.layers[-1].irreps_out, o3.Irreps("1x1o"))
        self.pair_head = mlp([2 * cfg.ns + cfg.num_rbf + 1, cfg.ns, 1])
        self.type_head = mlp([cfg.ns, cfg.ns, cfg.type_dim])

    def _edges(self, batch: GraphBatch, t_emb: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Complete-graph edges: ``src, dst, vec (E, 3) = x_src - x_dst``, distances ``(E,)``, RBF+distance."""
        cfg = self.config
        src, dst, g, local = radius_edges(batch, None)
        vec = batch.pos.index_select(0, src) - batch.pos.index_select(0, dst)
        dist = vec.norm(dim=-1)
        radial = torch.cat([self.rbf(dist), (dist / cfg.rbf_cutoff)[:, None]], dim=-1)
        parts = [radial, t_emb[g]]
        if cfg.bond_dim:
            if batch.bond_dense is None or batch.topo is None:
                raise ValueError("this model reads a molecular graph: the batch needs bond_dense and topo")
            topo = batch.topo[g, local[:, 0], local[:, 1]].long().clamp(1, MAX_TOPO + 1) - 1
            parts += [batch.bond_dense[g, local[:, 0], local[:, 1]], nn.functional.one_hot(topo, MAX_TOPO + 1).to(vec.dtype)]
        emb = self.edge_embed(torch.cat(parts, dim=-1))
        return src, dst, vec, radial, emb

    def forward(
        self,
        batch: GraphBatch,
        rho: Tensor,
        cond: Tensor | None = None,
        cond_mask: Tensor | None = None,
        reference: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """Noise estimates ``(eps_pos (N, 3), eps_type (N, F))``.

        Args:
            batch: noised atoms; ``node_features`` ``(N, type_dim)``, ``pos`` ``(N, 3)`` Å.
            rho: ``(B,)`` noise-to-signal ratio ``sigma / alpha`` of each molecule (dimensionless, > 0).
            cond: ``(B, cond_dim)`` normalised conditions, or None (every condition dropped).
            cond_mask: ``(B, cond_dim)`` bool, True where the condition is given (default: all given
                when ``cond`` is not None).
            reference: run the e3nn reference implementation of the interaction layers.
        """
        cfg = self.config
        n_graphs = batch.num_graphs
        t_emb = self.time_embed(rho.to(batch.pos.dtype))
        parts = [batch.node_features, t_emb[batch.batch]]
        if self.cond_embed is not None:
            if cond is None:
                cond = batch.pos.new_zeros((n_graphs, cfg.cond_dim))
                cond_mask = torch.zeros_like(cond, dtype=torch.bool)
            elif cond_mask is None:
                cond_mask = torch.ones_like(cond, dtype=torch.bool)
            m = cond_mask.to(cond.dtype)
            parts.append(self.cond_embed(torch.cat([cond * m, m], dim=-1))[batch.batch])
        h = self.node_embed(torch.cat(parts, dim=-1))
        src, dst, vec, radial, emb = self._edges(batch, t_emb)
        sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        h = run_interactions(self.layers, h, src, dst, sh, emb, reference)
        s = h[:, : cfg.ns]
        eps_type = self.type_head(s)
        # vec = x_src - x_dst, so x_dst - x_src = -vec points from the neighbour to the atom
        phi = self.pair_head(torch.cat([s.index_select(0, src), s.index_select(0, dst), radial], dim=-1))
        pair = scatter_mean(-vec * phi / (1.0 + radial[:, -1:] * cfg.rbf_cutoff), dst, h.shape[0])
        eps_pos = self.vector_head(h) + pair
        eps_pos = eps_pos - scatter_mean(eps_pos, batch.batch, n_graphs)[batch.batch]
        return eps_pos, eps_type


def build_molecule_denoiser(config: dict) -> MoleculeDenoiser:
    """A :class:`MoleculeDenoiser` from a stored config dict."""
    return MoleculeDenoiser(MoleculeDenoiserConfig(**config))


def molecule_config_dict(model: MoleculeDenoiser) -> dict:
    """The config of ``model`` as a plain dict (for checkpoints)."""
    return asdict(model.config)

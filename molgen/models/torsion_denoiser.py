"""E(3)-equivariant torsion-score network (the denoiser of torsional diffusion).

Input: a :class:`~molgen.models.graph.GraphBatch` of heavy-atom graphs with positions (Å) and the noise
level ``sigma`` (radians) of each molecule. Output: one number per rotatable torsion, an estimate of
``d/d theta log p_sigma(theta)`` in units of its root-mean-square at ``sigma`` (dimensionless; see 4.).

Architecture:

1. Node embedding: an MLP of the one-hot atom features and a sinusoidal embedding of ``log sigma``.
2. Edges: all pairs closer than ``radius`` Å plus all bonds (radius graph in plain torch); invariant edge
   features are a Gaussian RBF of the distance, the topological distance (1, 2, 3, 4+ bonds), the bond
   type and the noise embedding; edge directions enter through spherical harmonics up to ``lmax``.
3. ``num_layers`` :class:`~molgen.models.layers.Interaction` layers (depthwise ``uvu`` tensor products,
   ``o3.Linear``, gates) with hidden irreps ``ns x 0e + nv x 1o + nv x 1e``.
4. Torsion head: for rotatable bond ``u -> v`` with centre ``c`` and unit axis ``n``, every heavy atom
   ``j`` of the molecule within ``head_radius`` of ``c`` contributes the pseudoscalars
   ``((x_j - c) x V_j) . n`` (``V_j``: its ``1o`` vectors, a torque about the axis) and ``P_j . n``
   (``P_j``: its ``1e`` pseudovectors), weighted by an MLP of invariants (distance, axial offset, atom
   scalars, bond scalars, whether ``j`` moves with the torsion). The sum is invariant to rotations and
   translations and changes sign under reflection, as the torsion score of the mirror image must.
   The output is the score in units of its root-mean-square at ``sigma``: a unit-variance quantity at
   every noise level. The noise process turns it into a score
   (:meth:`molgen.diffusion.torus.TorusSchedule.score_from_sigma`); the network knows nothing of it.

``forward(batch, sigma)`` runs the fast implementation (:meth:`TorsionDenoiser.forward_fast`, built on
:meth:`~molgen.models.layers.Interaction.forward_fast`); ``forward(batch, sigma, reference=True)`` runs the
original one (e3nn ``TensorProduct``, concatenated edge features, padded head), kept as the reference
that the tests compare against. Both compute the same function with the same weights; they differ by
float rounding only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from e3nn import o3
from torch import Tensor, nn

from molgen.chem.feature_spec import BOND_FEATURE_DIM, NODE_FEATURE_DIM
from molgen.models.graph import MAX_TOPO, GraphBatch, radius_edges, to_dense
from molgen.models.layers import (
    EdgeSet,
    GaussianRBF,
    SigmaEmbedding,
    interaction_stack,
    mlp,
)

#: edges (and head pairs) per block in :meth:`TorsionDenoiser.forward_fast` on a CPU: intermediates of
#: 1-2 MB stay in cache and are reused by the allocator (on a 4,000-atom batch 2048-4096 time the same,
#: 1024 and 8192 are 10-40 % slower)
CPU_CHUNK = 2048
#: on an accelerator, where blocks only add kernel launches
DEVICE_CHUNK = 1 << 18


def _chunk(chunk: int | None, device: torch.device) -> int:
    return chunk if chunk is not None else (CPU_CHUNK if device.type == "cpu" else DEVICE_CHUNK)


@dataclass
class DenoiserConfig:
    """Hyper-parameters of :class:`TorsionDenoiser` (stored inside every checkpoint)."""

    node_dim: int = NODE_FEATURE_DIM
    bond_dim: int = BOND_FEATURE_DIM
    ns: int = 48
    nv: int = 8
    num_layers: int = 3
    lmax: int = 2
    radius: float = 5.0
    head_radius: float = 6.0
    num_rbf: int = 16
    sigma_dim: int = 16
    edge_dim: int = 32


class TorsionDenoiser(nn.Module):
    """Predicts torsion scores ``(T,)`` from a :class:`GraphBatch` and per-molecule ``sigma`` ``(B,)``."""

    def __init__(self, config: DenoiserConfig | None = None) -> None:
        super().__init__()
        cfg = self.config = config or DenoiserConfig()
        self.sigma_embed = SigmaEmbedding(cfg.sigma_dim)
        self.node_embed = mlp([cfg.node_dim + cfg.sigma_dim, cfg.ns, cfg.ns])
        self.rbf = GaussianRBF(cfg.num_rbf, cfg.radius)
        self.edge_embed = mlp([cfg.num_rbf + (MAX_TOPO + 1) + cfg.bond_dim + cfg.sigma_dim, cfg.edge_dim, cfg.edge_dim])
        self.irreps_sh = o3.Irreps.spherical_harmonics(cfg.lmax)
        self.layers = interaction_stack(cfg.ns, cfg.nv, cfg.num_layers, self.irreps_sh, cfg.edge_dim)
        self.head_rbf = GaussianRBF(cfg.num_rbf, cfg.head_radius)
        self.head_atom = nn.Linear(cfg.ns, cfg.ns)
        self.head_bond = mlp([2 * cfg.ns + cfg.sigma_dim, cfg.ns, cfg.ns])
        self.head_weights = mlp([cfg.num_rbf + 2 + cfg.ns, cfg.ns, 2 * cfg.nv])
        self.dihedral_weights = mlp([3 * cfg.ns + 1, cfg.ns, 3])

    def node_features(self, batch: GraphBatch, sigma: Tensor) -> Tensor:
        """Equivariant node features ``(N, ns + 6 nv)`` (layout ``ns x 0e, nv x 1o, nv x 1e``); reference."""
        cfg = self.config
        sig = self.sigma_embed(sigma)  # (B, sigma_dim)
        h = self.node_embed(torch.cat([batch.node_features, sig[batch.batch]], dim=-1))
        src, dst, g, local = radius_edges(batch, cfg.radius)
        vec = batch.pos[src] - batch.pos[dst]
        dist = vec.norm(dim=-1)
        topo = batch.topo[g, local[:, 0], local[:, 1]].long().clamp(1, MAX_TOPO + 1) - 1
        bond = batch.bond_dense[g, local[:, 0], local[:, 1]]
        edge_attr = torch.cat(
            [self.rbf(dist), nn.functional.one_hot(topo, MAX_TOPO + 1).to(h.dtype), bond, sig[g]], dim=-1
        )
        edge_emb = self.edge_embed(edge_attr)
        edge_sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        for layer in self.layers:
            h = layer(h, src, dst, edge_sh, edge_emb)
        return h

    def forward(self, batch: GraphBatch, sigma: Tensor, reference: bool = False) -> Tensor:
        """Normalised torsion scores ``(T,)`` (score / its RMS at ``sigma``) for noise levels ``sigma`` ``(B,)`` (radians).

        ``reference=True`` runs the original (slower) implementation instead of :meth:`forward_fast`.
        """
        if not reference:
            return self.forward_fast(batch, sigma)
        cfg = self.config
        if batch.torsions.shape[0] == 0:
            return batch.pos.new_zeros(0)
        h = self.node_features(batch, sigma)
        ns, nv = cfg.ns, cfg.nv
        scalars = h[:, :ns]
        vec_1o = h[:, ns : ns + 3 * nv].reshape(-1, nv, 3)
        vec_1e = h[:, ns + 3 * nv :].reshape(-1, nv, 3)

        tg = batch.torsion_graph
        center, axis, bond_scalars = self.bond_frames(batch, scalars, sigma)

        # padded (T, N_max) neighbourhoods of each torsion's bond centre
        pos_d = to_dense(batch.pos, batch)[tg]  # (T, N_max, 3)
        atom_d = to_dense(self.head_atom(scalars), batch)[tg]  # (T, N_max, ns)
        v1o_d = to_dense(vec_1o, batch)[tg]  # (T, N_max, nv, 3)
        v1e_d = to_dense(vec_1e, batch)[tg]
        r = pos_d - center[:, None, :]
        dist = r.norm(dim=-1)
        near = batch.node_mask[tg] & (dist < cfg.head_radius)
        t_idx, j_idx = near.nonzero(as_tuple=True)
        r_p, n_p = r[t_idx, j_idx], axis[t_idx]  # (P, 3)
        torque = (torch.cross(r_p[:, None, :].expand_as(v1o_d[t_idx, j_idx]), v1o_d[t_idx, j_idx], dim=-1) * n_p[:, None, :]).sum(-1)
        axial = (v1e_d[t_idx, j_idx] * n_p[:, None, :]).sum(-1)  # (P, nv) pseudoscalars
        invariants = torch.cat(
            [
                self.head_rbf(dist[t_idx, j_idx]),
                (r_p * n_p).sum(-1, keepdim=True),
                batch.torsion_side[t_idx, j_idx].to(r_p.dtype)[:, None],
                atom_d[t_idx, j_idx] * bond_scalars[t_idx],
            ],
            dim=-1,
        )
        w = self.head_weights(invariants)
        contrib = (w[:, :nv] * torque + w[:, nv:] * axial).sum(-1)  # (P,)
        raw = torch.zeros(len(tg), dtype=contrib.dtype, device=contrib.device).index_add_(0, t_idx, contrib)
        raw = raw / 10.0 + self.dihedral_term(batch, scalars, bond_scalars, axis)
        return raw


    def bond_frames(self, batch: GraphBatch, scalars: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per rotatable bond ``u -> v``: its centre, unit axis ``(T, 3)`` and scalars ``(T, ns)`` (MLP of the
        two atoms' scalars and the noise embedding)."""
        tg = batch.torsion_graph
        u, v = batch.torsions[:, 1], batch.torsions[:, 2]
        center = 0.5 * (batch.pos[u] + batch.pos[v])
        axis = batch.pos[v] - batch.pos[u]
        axis = axis / axis.norm(dim=-1, keepdim=True)
        sig = self.sigma_embed(sigma)[tg]
        bond_scalars = self.head_bond(torch.cat([scalars[u] + scalars[v], scalars[u] * scalars[v], sig], dim=-1))
        return center, axis, bond_scalars

    def dihedral_term(self, batch: GraphBatch, scalars: Tensor, bond_scalars: Tensor, axis: Tensor) -> Tensor:
        """Learned torsion potential: ``sum_{k,j} sum_m a_m(k, j, bond, cos phi) sin(m phi)`` per torsion.

        ``phi`` is the dihedral ``k-u-v-j`` of every pair of heavy neighbours ``k`` of ``u`` and ``j`` of
        ``v``; ``sin(m phi)`` are pseudoscalars and the coefficients ``a_m`` invariants, so the term has
        the symmetry of a torsion score (the derivative of a Fourier torsion potential). Returns ``(T,)``.
        """
        t, k, j = batch.dihedral_quads.unbind(-1)
        if t.numel() == 0:
            return bond_scalars.new_zeros(bond_scalars.shape[0])
        u, v = batch.torsions[t, 1], batch.torsions[t, 2]
        n = axis[t]
        q = batch.pos[k] - batch.pos[u]
        p = batch.pos[j] - batch.pos[v]
        q = q - (q * n).sum(-1, keepdim=True) * n
        p = p - (p * n).sum(-1, keepdim=True) * n
        q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        p = p / p.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        cos = (q * p).sum(-1)
        sin = (torch.cross(q, p, dim=-1) * n).sum(-1)
        coef = self.dihedral_weights(torch.cat([scalars[k], scalars[j], bond_scalars[t], cos[:, None]], dim=-1))
        sin2 = 2 * sin * cos
        sin3 = sin * (3 - 4 * sin**2)
        term = coef[:, 0] * sin + coef[:, 1] * sin2 + coef[:, 2] * sin3
        return torch.zeros(bond_scalars.shape[0], dtype=term.dtype, device=term.device).index_add_(0, t, term)

    # ---- fast implementation -------------------------------------------------------------------------

    def edge_set(self, batch: GraphBatch, sig: Tensor, chunk: int | None = None, emb_chunk: int | None = None) -> EdgeSet:
        """Radius-graph edges with their spherical harmonics and embeddings (``sig``: ``(B, sigma_dim)``).

        The same edges, in the same order, as :func:`~molgen.models.graph.radius_edges`; edge tables are
        read through flat indices into the padded ``(B, N_max, N_max)`` blocks. The embedding is computed
        per block of edges, and the first layer of ``edge_embed`` is applied to its input parts
        separately instead of to their concatenation: RBF and bond features through matmuls, the
        topological distance and the graph's noise embedding through one ``(B (MAX_TOPO + 1), edge_dim)``
        table. ``chunk``: block of edges of the interaction layers; ``emb_chunk``: of the embedding.
        """
        cfg = self.config
        pos, mask = batch.pos, batch.node_mask
        chunk = _chunk(chunk, pos.device)
        emb_chunk = emb_chunk or 2 * chunk
        n_max = mask.shape[1]
        dense = to_dense(pos, batch)
        valid = mask[:, :, None] & mask[:, None, :]
        valid &= (torch.cdist(dense, dense) < cfg.radius) | (batch.topo == 1)
        valid &= ~torch.eye(n_max, dtype=torch.bool, device=mask.device)
        flat = valid.view(-1).nonzero().squeeze(1)  # ((g n_max) + i) n_max + j
        node_of_slot = torch.full((mask.numel(),), -1, dtype=torch.long, device=pos.device)
        node_of_slot[mask.view(-1)] = torch.arange(pos.shape[0], device=pos.device)
        row = flat // n_max  # g n_max + i
        g = row // n_max
        dst = node_of_slot[row]
        src = node_of_slot[g * n_max + flat % n_max]

        lin1, lin2 = self.edge_embed[0], self.edge_embed[2]
        r1 = cfg.num_rbf
        t1 = r1 + MAX_TOPO + 1
        b1 = t1 + cfg.bond_dim
        weight = lin1.weight
        table = torch.addmm(lin1.bias, sig, weight[:, b1:].t())[:, None, :] + weight[:, r1:t1].t()[None]
        table = table.reshape(-1, weight.shape[0])  # row g * (MAX_TOPO + 1) + topo
        w_rbf, w_bond = weight[:, :r1].t(), weight[:, t1:b1].t()
        topo = batch.topo.view(-1)[flat].long().clamp_(1, MAX_TOPO + 1) - 1
        table_row = g * (MAX_TOPO + 1) + topo
        bond_flat = batch.bond_dense.view(-1, batch.bond_dense.shape[-1])
        vec = pos.index_select(0, src) - pos.index_select(0, dst)
        dist = vec.norm(dim=-1)
        sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        # each layer reads the embedding only through the edge columns W_e of its weight MLP's first layer:
        # emb @ W_e^T = silu(z) @ (W_e W_2)^T + W_e b_2, for all layers in one matmul
        w_edge = [layer.weights[0].weight[:, : cfg.edge_dim] for layer in self.layers]
        w_terms = torch.cat([lin2.weight.t() @ w.t() for w in w_edge], dim=1)
        b_terms = torch.cat([w @ lin2.bias for w in w_edge])
        e, d = flat.numel(), cfg.edge_dim
        terms = pos.new_empty((e, d * len(self.layers)))
        for a in range(0, e, emb_chunk):
            b = min(a + emb_chunk, e)
            z = table.index_select(0, table_row[a:b])
            z = torch.addmm(z, self.rbf.forward_fast(dist[a:b]), w_rbf)
            z = torch.addmm(z, bond_flat.index_select(0, flat[a:b]).to(z.dtype), w_bond)
            if torch.is_grad_enabled():
                terms[a:b] = torch.addmm(b_terms, nn.functional.silu(z), w_terms)
            else:
                torch.addmm(b_terms, nn.functional.silu(z), w_terms, out=terms[a:b])
        edges = EdgeSet.build(src, dst, sh, None, pos.shape[0], chunk)
        edges.layer_terms = [terms[:, k * d : (k + 1) * d] for k in range(len(self.layers))]
        return edges

    def node_features_fast(self, batch: GraphBatch, sigma: Tensor, chunk: int | None = None) -> Tensor:
        """:meth:`node_features` through :meth:`Interaction.forward_fast` (``chunk``: edges per block)."""
        sig = self.sigma_embed(sigma)
        h = self.node_embed(torch.cat([batch.node_features, sig[batch.batch]], dim=-1))
        edges = self.edge_set(batch, sig, chunk)
        for layer, term in zip(self.layers, edges.layer_terms):
            h = layer.forward_fast(h, edges, term)
        return h

    def forward_fast(self, batch: GraphBatch, sigma: Tensor, chunk: int | None = None) -> Tensor:
        """:meth:`forward` through :meth:`node_features_fast`, with a head that makes no padded copies.

        The (torsion, atom) pairs within ``head_radius`` of the bond centre are found on padded positions
        only; their features are gathered from the node arrays per block of ``chunk`` pairs (``chunk`` is
        also the block of edges of the interaction layers), and the first layer of ``head_weights`` is
        applied to the parts of its input separately. The torques are summed as
        ``(sum_u w_u V_u) . (n x r)`` instead of ``sum_u w_u ((r x V_u) . n)``.
        """
        cfg = self.config
        if batch.torsions.shape[0] == 0:
            return batch.pos.new_zeros(0)
        chunk = _chunk(chunk, batch.pos.device)
        h = self.node_features_fast(batch, sigma, chunk)
        ns, nv = cfg.ns, cfg.nv
        scalars = h[:, :ns]
        tg = batch.torsion_graph
        center, axis, bond_scalars = self.bond_frames(batch, scalars, sigma)

        n_max = batch.node_mask.shape[1]
        r = (to_dense(batch.pos, batch)[tg] - center[:, None, :]).view(-1, 3)  # (T N_max, 3)
        dist = r.norm(dim=-1)
        near = batch.node_mask[tg].view(-1) & (dist < cfg.head_radius)
        pair = near.nonzero().squeeze(1)  # t N_max + j_local
        t_all = pair // n_max
        j_all = batch.ptr[tg].index_select(0, t_all) + pair % n_max  # global node of each pair
        side = batch.torsion_side.view(-1)
        lin1 = self.head_weights[0]
        weight, r1 = lin1.weight, cfg.num_rbf
        w_atom, w_inv = weight[:, r1 + 2 :].t(), weight[:, : r1 + 2].t()
        atom = self.head_atom(scalars)
        vec = h[:, ns:].view(-1, 2 * nv, 3).transpose(1, 2).contiguous()  # (N, 3, 2 nv)
        raw = torch.zeros(len(tg), dtype=h.dtype, device=h.device)
        for a in range(0, pair.numel(), chunk):
            pc, t_idx, j = pair[a : a + chunk], t_all[a : a + chunk], j_all[a : a + chunk]
            r_p, n_p = r.index_select(0, pc), axis.index_select(0, t_idx)  # (P, 3)
            z = torch.addmm(lin1.bias, atom.index_select(0, j) * bond_scalars.index_select(0, t_idx), w_atom)
            parts = [
                self.head_rbf.forward_fast(dist.index_select(0, pc)),
                (r_p * n_p).sum(-1, keepdim=True),
                side.index_select(0, pc).to(z.dtype)[:, None],
            ]
            z = torch.addmm(z, torch.cat(parts, dim=-1), w_inv)
            w = self.head_weights[1:](z)  # (P, 2 nv): weights of the torques and of the axial terms
            # sum_u w_u ((r x V_u) . n) + w'_u (P_u . n) = (sum_u w_u V_u) . (n x r) + (sum_u w'_u P_u) . n
            wv = (vec.index_select(0, j) * w[:, None, :]).view(-1, 3, 2, nv).sum(-1)  # (P, 3, 2)
            contrib = (wv[:, :, 0] * torch.cross(n_p, r_p, dim=-1)).sum(-1) + (wv[:, :, 1] * n_p).sum(-1)
            raw.index_add_(0, t_idx, contrib)
        raw = raw / 10.0 + self.dihedral_term(batch, scalars, bond_scalars, axis)
        return raw


def build_denoiser(config: dict | DenoiserConfig | None = None) -> TorsionDenoiser:
    """Construct a :class:`TorsionDenoiser` from a config dict (as stored in checkpoints)."""
    if isinstance(config, dict):
        config = DenoiserConfig(**config)
    return TorsionDenoiser(config)


def config_dict(model: TorsionDenoiser) -> dict:
    """The model's hyper-parameters as a plain dict."""
    return asdict(model.config)

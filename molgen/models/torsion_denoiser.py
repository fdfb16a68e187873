"""E(3)-equivariant torsion-score network (the denoiser of torsional diffusion).

Input: a :class:`~molgen.models.graph.GraphBatch` of heavy-atom graphs with positions (Å) and the noise
level ``sigma`` (radians) of each molecule. Output: one score per rotatable torsion, an estimate of
``d/d theta log p_sigma(theta)`` (radians^-1).

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
   The result is scaled by ``sqrt(E[score^2])`` of the wrapped normal at ``sigma`` so that the network
   predicts a unit-variance quantity at every noise level.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from e3nn import o3
from torch import Tensor, nn

from molgen.chem.feature_spec import BOND_FEATURE_DIM, NODE_FEATURE_DIM
from molgen.diffusion.torus import wrapped_normal_score_norm
from molgen.models.graph import MAX_TOPO, GraphBatch, radius_edges, to_dense
from molgen.models.layers import GaussianRBF, Interaction, SigmaEmbedding, mlp


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
        hidden = o3.Irreps(f"{cfg.ns}x0e + {cfg.nv}x1o + {cfg.nv}x1e")
        layers, irreps_in = [], o3.Irreps(f"{cfg.ns}x0e")
        for _ in range(cfg.num_layers):
            layers.append(Interaction(irreps_in, hidden, self.irreps_sh, cfg.edge_dim, cfg.ns))
            irreps_in = hidden
        self.layers = nn.ModuleList(layers)
        self.head_rbf = GaussianRBF(cfg.num_rbf, cfg.head_radius)
        self.head_atom = nn.Linear(cfg.ns, cfg.ns)
        self.head_bond = mlp([2 * cfg.ns + cfg.sigma_dim, cfg.ns, cfg.ns])
        self.head_weights = mlp([cfg.num_rbf + 2 + cfg.ns, cfg.ns, 2 * cfg.nv])
        self.dihedral_weights = mlp([3 * cfg.ns + 1, cfg.ns, 3])

    def node_features(self, batch: GraphBatch, sigma: Tensor) -> Tensor:
        """Equivariant node features ``(N, ns + 6 nv)`` (layout ``ns x 0e, nv x 1o, nv x 1e``)."""
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

    def forward(self, batch: GraphBatch, sigma: Tensor) -> Tensor:
        """Torsion scores ``(T,)`` in radians^-1 for noise levels ``sigma`` ``(B,)`` (radians)."""
        cfg = self.config
        if batch.torsions.shape[0] == 0:
            return batch.pos.new_zeros(0)
        h = self.node_features(batch, sigma)
        ns, nv = cfg.ns, cfg.nv
        scalars = h[:, :ns]
        vec_1o = h[:, ns : ns + 3 * nv].reshape(-1, nv, 3)
        vec_1e = h[:, ns + 3 * nv :].reshape(-1, nv, 3)

        tg = batch.torsion_graph
        u, v = batch.torsions[:, 1], batch.torsions[:, 2]
        center = 0.5 * (batch.pos[u] + batch.pos[v])  # (T, 3)
        axis = batch.pos[v] - batch.pos[u]
        axis = axis / axis.norm(dim=-1, keepdim=True)
        sig = self.sigma_embed(sigma)[tg]
        bond_scalars = self.head_bond(torch.cat([scalars[u] + scalars[v], scalars[u] * scalars[v], sig], dim=-1))

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
        norm = wrapped_normal_score_norm(sigma[tg]).to(raw.dtype).sqrt()
        return raw * norm


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


def build_denoiser(config: dict | DenoiserConfig | None = None) -> TorsionDenoiser:
    """Construct a :class:`TorsionDenoiser` from a config dict (as stored in checkpoints)."""
    if isinstance(config, dict):
        config = DenoiserConfig(**config)
    return TorsionDenoiser(config)


def config_dict(model: TorsionDenoiser) -> dict:
    """The model's hyper-parameters as a plain dict."""
    return asdict(model.config)

"""Equivariant building blocks (e3nn) in forms that are cheap on a CPU.

The interaction uses a *depthwise* (``uvu``) tensor product between node features and the edge's
spherical harmonics, with per-edge path weights from a small MLP on invariant edge features, followed by
an ``o3.Linear`` that mixes channels and a gate nonlinearity. On 2 CPU cores this is several times
faster than a fully connected tensor product with per-edge weights (``FullyConnectedTensorProduct``),
whose per-edge weight tensor grows with the product of input and output multiplicities.
"""

from __future__ import annotations

import math

import torch
from e3nn import o3
from e3nn.nn import Gate
from torch import Tensor, nn
from torch_geometric.utils import scatter


def mlp(sizes: list[int], act: type[nn.Module] = nn.SiLU) -> nn.Sequential:
    """Plain MLP with ``act`` between layers (none after the last)."""
    layers: list[nn.Module] = []
    for k in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class GaussianRBF(nn.Module):
    """Gaussian radial basis ``(E,) -> (E, num)`` on ``[0, cutoff]`` Å with a smooth cosine envelope."""

    def __init__(self, num: int, cutoff: float) -> None:
        super().__init__()
        self.register_buffer("centers", torch.linspace(0.0, cutoff, num))
        self.width = cutoff / num
        self.cutoff = cutoff

    def forward(self, d: Tensor) -> Tensor:
        rbf = torch.exp(-(((d[:, None] - self.centers) / self.width) ** 2))
        envelope = 0.5 * (torch.cos(math.pi * (d / self.cutoff).clamp(max=1.0)) + 1.0)
        return rbf * envelope[:, None]


class SigmaEmbedding(nn.Module):
    """Sinusoidal embedding ``(B,) -> (B, dim)`` of the noise level through ``log(sigma)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(math.log(0.25), math.log(8.0), dim // 2)))

    def forward(self, sigma: Tensor) -> Tensor:
        x = torch.log(sigma)[:, None] * self.freqs
        return torch.cat([torch.sin(x), torch.cos(x)], dim=-1)


class Interaction(nn.Module):
    """One equivariant message-passing layer with a residual connection.

    ``h_i <- h_i + Gate(Linear(mean_j TP_uvu(h_j, Y(r_ij); w(e_ij, s_i, s_j))))``, where ``Y`` are
    spherical harmonics of the edge direction and ``w`` the per-edge, per-path weights.
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps, irreps_sh: o3.Irreps, edge_dim: int, num_scalars: int) -> None:
        super().__init__()
        self.irreps_in, self.irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        self.num_scalars = num_scalars
        out_types = {ir for _, ir in self.irreps_out}
        mid, instructions = [], []
        for i, (mul, ir_in) in enumerate(self.irreps_in):
            for j, (_, ir_sh) in enumerate(o3.Irreps(irreps_sh)):
                for ir_out in ir_in * ir_sh:
                    if ir_out in out_types:
                        instructions.append((i, j, len(mid), "uvu", True))
                        mid.append((mul, ir_out))
        irreps_mid = o3.Irreps(mid)
        self.tp = o3.TensorProduct(
            self.irreps_in, irreps_sh, irreps_mid, instructions, shared_weights=False, internal_weights=False
        )
        self.weights = mlp([edge_dim + 2 * num_scalars, edge_dim, self.tp.weight_numel])
        scalars = o3.Irreps([(m, ir) for m, ir in self.irreps_out if ir.l == 0])
        gated = o3.Irreps([(m, ir) for m, ir in self.irreps_out if ir.l > 0])
        self.gate = Gate(
            scalars, [torch.nn.functional.silu] * len(scalars),
            f"{gated.num_irreps}x0e", [torch.sigmoid],
            gated,
        )
        self.linear = o3.Linear(irreps_mid, self.gate.irreps_in)
        self.skip = o3.Linear(self.irreps_in, self.irreps_out) if self.irreps_in != self.irreps_out else None

    def forward(self, h: Tensor, src: Tensor, dst: Tensor, edge_sh: Tensor, edge_emb: Tensor) -> Tensor:
        s = h[:, : self.num_scalars]
        w = self.weights(torch.cat([edge_emb, s[src], s[dst]], dim=-1))
        msg = self.tp(h[src], edge_sh, w)
        agg = scatter(msg, dst, dim=0, dim_size=h.shape[0], reduce="mean")
        out = self.gate(self.linear(agg))
        residual = h if self.skip is None else self.skip(h)
        return residual + out

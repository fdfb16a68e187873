"""The zero-centre-of-mass subspace of Cartesian coordinates (EDM's translation-invariant diffusion).

A molecule's positions ``x`` ``(n, 3)`` are diffused in the ``3 (n - 1)``-dimensional subspace where the
mean position is zero (Hoogeboom et al. 2022, Sec. 3.2): noise is drawn there, the network's noise
prediction is projected there, so the sampled distribution is invariant to translations. The mean is the
unweighted mean of the atoms (the "centre of geometry"), as in EDM.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["graph_means", "remove_mean", "subspace_dimension", "subspace_noise"]


def graph_means(x: Tensor, batch: Tensor, num_graphs: int | None = None) -> Tensor:
    """Per-graph mean of ``x`` ``(N, D)`` over the nodes of each graph; ``batch`` ``(N,)`` graph index.

    Returns ``(B, D)``; an empty graph has mean 0.
    """
    b = int(num_graphs) if num_graphs is not None else (int(batch.max()) + 1 if batch.numel() else 0)
    sums = x.new_zeros((b, x.shape[-1])).index_add_(0, batch, x)
    counts = torch.bincount(batch, minlength=b).clamp_min(1).to(x.dtype)
    return sums / counts[:, None]


def remove_mean(x: Tensor, batch: Tensor, num_graphs: int | None = None) -> Tensor:
    """``x`` ``(N, D)`` minus the mean of its graph: the projection onto the zero-mean subspace."""
    return x - graph_means(x, batch, num_graphs)[batch]


def subspace_noise(
    batch: Tensor, dim: int = 3, generator: torch.Generator | None = None, *, dtype: torch.dtype | None = None,
    num_graphs: int | None = None,
) -> Tensor:
    """Standard normal noise ``(N, dim)`` in the zero-mean subspace of each graph (isotropic there)."""
    z = torch.randn((batch.numel(), dim), generator=generator, dtype=dtype, device=batch.device)
    return remove_mean(z, batch, num_graphs)


def subspace_dimension(num_nodes: Tensor, dim: int = 3) -> Tensor:
    """Degrees of freedom ``dim (n - 1)`` of graphs with ``num_nodes`` ``(B,)`` nodes."""
    return dim * (num_nodes - 1).clamp_min(0)

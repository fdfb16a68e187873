"""Steric clash relief in torsion space: move apart heavy atoms that overlap, keeping bonds and angles.

Torsional samples of long chains clash easily: a turn of a few degrees at every backbone torsion swings the
chain's ends by ångströms (NTL9, 52 residues: 1° of noise on every torsion already makes 5 % of stored MD
frames clash). :func:`relieve_clashes` removes such overlaps the way a torsion-space minimiser would, with
no force field: it descends the overlap energy

    E = sum over heavy-atom pairs at least ``min_separation`` bonds apart of max(0, d0 - d)^2   (Å^2)

along its torsion-space gradient (:func:`molgen.diffusion.torsion_ops.torsion_gradient`), each step scaled
so that no atom moves more than ``max_shift`` Å, and stops a structure as soon as no pair overlaps by more
than ``tolerance`` Å. The default d0, 2.5 Å, is the closest such contact in NTL9's MD frames (2.51 Å). Every
move is an exact rotation about a rotatable bond (:func:`~molgen.diffusion.torsion_ops.apply_torsion_deltas`),
so bond lengths, bond angles and stereochemistry never change, and fixed torsions (amide bonds) stay fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from molgen.diffusion.torsion_ops import (
    TorsionIndex,
    apply_torsion_deltas,
    torsion_displacement,
    torsion_gradient,
)

__all__ = ["ClashRelief", "relieve_clashes"]


@dataclass(frozen=True)
class ClashRelief:
    """Settings of :func:`relieve_clashes`.

    Attributes:
        min_distance: d0, the distance (Å) below which two heavy atoms overlap.
        tolerance: a structure is done when no pair overlaps by more than this (Å).
        min_separation: pairs closer in the bond graph are exempt (bonded, angle and 1-4 partners at 3).
        max_steps: bound on the descent steps.
        max_shift: largest displacement (Å) of any atom in one step.
        neighbour_cutoff: pairs farther apart (Å) are ignored until the pair list is rebuilt (every
            ``rebuild_every`` steps).
    """

    min_distance: float = 2.5
    tolerance: float = 0.1
    min_separation: int = 4
    max_steps: int = 100
    max_shift: float = 0.2
    neighbour_cutoff: float = 5.0
    rebuild_every: int = 10


def _pairs(xyz: np.ndarray, candidates: np.ndarray, cutoff: float) -> np.ndarray:
    """``(P, 2)`` global atom indices of candidate pairs closer than ``cutoff`` Å in each frame of ``xyz``
    ``(F, N, 3)`` (frame ``f``'s atoms offset by ``f * N``)."""
    n_atoms = xyz.shape[1]
    out = []
    block = max(1, 4_000_000 // max(1, len(candidates)))
    for s in range(0, len(xyz), block):
        x = xyz[s : s + block]
        d = np.linalg.norm(x[:, candidates[:, 0]] - x[:, candidates[:, 1]], axis=-1)  # (f, C)
        f, c = np.nonzero(d < cutoff)
        out.append(candidates[c] + ((f + s) * n_atoms)[:, None])
    return np.concatenate(out) if out else np.zeros((0, 2), dtype=np.int64)


def _overlap(pos: torch.Tensor, pairs: torch.Tensor, d0: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pair overlap ``max(0, d0 - d)`` ``(P,)`` and the energy's Cartesian gradient ``(N, 3)``."""
    diff = pos[pairs[:, 0]] - pos[pairs[:, 1]]
    d = diff.norm(dim=-1).clamp_min(1e-6)
    over = (d0 - d).clamp_min(0.0)
    g = (-2.0 * over / d)[:, None] * diff  # dE/dx_i; dE/dx_j = -g
    grad = torch.zeros_like(pos)
    grad.index_add_(0, pairs[:, 0], g)
    grad.index_add_(0, pairs[:, 1], -g)
    return over, grad


@torch.no_grad()
def relieve_clashes(
    xyz: np.ndarray,
    bonds: np.ndarray,
    moved: np.ndarray,
    heavy: np.ndarray,
    topo: np.ndarray,
    free: np.ndarray | None = None,
    settings: ClashRelief | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Relieve steric overlaps of ``F`` structures of one molecule by turning its rotatable bonds.

    Args:
        xyz: ``(F, N, 3)`` Å coordinates.
        bonds: ``(T, 2)`` rotatable bonds ``(u, v)``; moved: ``(T, N)`` bool, the atoms each torsion moves.
        heavy: ``(H,)`` heavy-atom indices; topo: ``(H, H)`` bond-graph distances between them.
        free: ``(T,)`` bool, the torsions that may turn (default all).
        settings: :class:`ClashRelief`.

    Returns:
        The relieved ``(F, N, 3)`` Å coordinates and each structure's largest remaining overlap ``(F,)`` (Å,
        at most ``tolerance`` for a relieved structure).
    """
    cfg = settings or ClashRelief()
    xyz = np.asarray(xyz, dtype=np.float64)
    n_frames, n_atoms = xyz.shape[:2]
    hi, hj = np.nonzero(np.triu(np.asarray(topo) >= cfg.min_separation, k=1))
    candidates = np.stack([heavy[hi], heavy[hj]], axis=1).astype(np.int64)
    if n_frames == 0 or len(bonds) == 0 or len(candidates) == 0:
        return xyz.copy(), np.zeros(n_frames)
    index = TorsionIndex.replicated([(torch.as_tensor(bonds, dtype=torch.long),
                                      torch.as_tensor(moved, dtype=torch.bool), n_frames, n_atoms)])
    n_t = len(bonds)
    free_t = torch.ones(n_t, dtype=torch.float64) if free is None else torch.as_tensor(free, dtype=torch.float64)
    free_t = free_t.repeat(n_frames)
    pos = torch.as_tensor(xyz.reshape(-1, 3))
    frame_of_atom = torch.arange(n_frames).repeat_interleave(n_atoms)
    pairs = torch.zeros((0, 2), dtype=torch.long)
    worst = torch.zeros(n_frames, dtype=torch.float64)
    for step in range(cfg.max_steps + 1):
        if step % cfg.rebuild_every == 0:
            pairs = torch.as_tensor(_pairs(pos.numpy().reshape(n_frames, n_atoms, 3), candidates,
                                           cfg.neighbour_cutoff))
        over, grad = _overlap(pos, pairs, cfg.min_distance)
        worst = torch.zeros(n_frames, dtype=over.dtype).scatter_reduce_(
            0, frame_of_atom[pairs[:, 0]], over, reduce="amax")
        active = worst > cfg.tolerance
        if step == cfg.max_steps or not bool(active.any()):
            break
        g_t = torsion_gradient(pos, index, grad) * free_t * active.repeat_interleave(n_t)
        shift = torsion_displacement(pos, index, -g_t).norm(dim=-1)
        largest = torch.zeros(n_frames, dtype=shift.dtype).scatter_reduce_(0, frame_of_atom, shift, reduce="amax")
        scale = torch.where(largest > 0, cfg.max_shift / largest.clamp_min(1e-12), torch.zeros_like(largest))
        pos = apply_torsion_deltas(pos, index, -g_t * scale.repeat_interleave(n_t))
    return pos.numpy().reshape(n_frames, n_atoms, 3), worst.numpy()

"""Batched torsion rotations in torch.

Torsions of all molecules in a batch are applied rank by rank: the k-th torsion of every molecule is
rotated at once (their moving atoms never overlap, because they belong to different molecules), then the
(k+1)-th, recomputing each rotation axis from the current positions. Rotating the moving side of bond
``u -> v`` by ``delta`` (radians, right-handed about ``u -> v``) changes the dihedral ``a-u-v-b`` by
exactly ``delta`` and leaves bond lengths and angles unchanged (same convention as
:func:`molgen.chem.torsions.apply_torsion_deltas`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class TorsionIndex:
    """Where the torsions of a batch act.

    Attributes:
        axis: ``(T, 2)`` global atom indices ``(u, v)`` of each rotatable bond.
        pairs_by_rank: for each rank ``k``, a pair ``(torsion_ids (P_k,), atom_ids (P_k,))`` listing the
            atoms moved by the rank-``k`` torsions.
    """

    axis: Tensor
    pairs_by_rank: list[tuple[Tensor, Tensor]]

    @staticmethod
    def build(axis: Tensor, rank: Tensor, pair_torsion: Tensor, pair_atom: Tensor) -> TorsionIndex:
        """Group moving-atom pairs ``(pair_torsion, pair_atom)`` by the rank of their torsion."""
        groups = []
        if len(rank):
            pair_rank = rank[pair_torsion]
            for k in range(int(rank.max()) + 1):
                sel = pair_rank == k
                groups.append((pair_torsion[sel], pair_atom[sel]))
        return TorsionIndex(axis, groups)

    @staticmethod
    def replicated(
        blocks: Sequence[tuple[Tensor, Tensor, int, int]],
    ) -> TorsionIndex:
        """The index of copies laid out one after another: ``blocks`` of ``(bonds (T, 2), moved (T, N) bool,
        copies, N)``, each a molecule's rotatable bonds ``(u, v)``, the atoms each torsion moves, how many
        copies of it follow and its atom count. Torsion ``k`` of copy ``c`` of a block is global torsion
        ``offset + c * T + k``, its atom ``i`` global atom ``offset + c * N + i``."""
        axis, rank, pair_t, pair_a = [], [], [], []
        atom_off = tor_off = 0
        for bonds, moved, n, n_at in blocks:
            n_t = len(bonds)
            copies = torch.arange(n)
            axis.append(bonds.repeat(n, 1) + (copies.repeat_interleave(n_t) * n_at)[:, None] + atom_off)
            rank.append(torch.arange(n_t).repeat(n))
            tt, aa = torch.nonzero(moved, as_tuple=True)
            pair_t.append((tt[None, :] + copies[:, None] * n_t).reshape(-1) + tor_off)
            pair_a.append((aa[None, :] + copies[:, None] * n_at).reshape(-1) + atom_off)
            atom_off += n * n_at
            tor_off += n * n_t
        if not axis:
            return TorsionIndex(torch.zeros((0, 2), dtype=torch.long), [])
        return TorsionIndex.build(torch.cat(axis), torch.cat(rank), torch.cat(pair_t), torch.cat(pair_a))

    def to(self, device: torch.device | str) -> TorsionIndex:
        return TorsionIndex(self.axis.to(device), [(t.to(device), a.to(device)) for t, a in self.pairs_by_rank])


def rotate_about_axes(points: Tensor, origin: Tensor, axis: Tensor, angle: Tensor) -> Tensor:
    """Rodrigues rotation of ``points`` ``(P, 3)`` about lines through ``origin`` ``(P, 3)`` along unit
    ``axis`` ``(P, 3)`` by ``angle`` ``(P,)`` radians."""
    p = points - origin
    cos, sin = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
    k_dot_p = (axis * p).sum(-1, keepdim=True)
    rotated = p * cos + torch.cross(axis, p, dim=-1) * sin + axis * k_dot_p * (1.0 - cos)
    return rotated + origin


def apply_torsion_deltas(pos: Tensor, index: TorsionIndex, deltas: Tensor) -> Tensor:
    """Rotate every torsion of a batch by ``deltas``.

    Args:
        pos: ``(N, 3)`` positions in Å.
        index: :class:`TorsionIndex` of the batch.
        deltas: ``(T,)`` increments in radians.

    Returns:
        New ``(N, 3)`` positions (``pos`` is not modified).
    """
    out = pos.clone()
    u, v = index.axis[:, 0], index.axis[:, 1]
    for tor, atom in index.pairs_by_rank:
        if tor.numel() == 0:
            continue
        origin = out[v[tor]]
        axis = out[v[tor]] - out[u[tor]]
        axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-9)
        out[atom] = rotate_about_axes(out[atom], origin, axis, deltas[tor].to(out.dtype))
    return out


def _moved_pairs(pos: Tensor, index: TorsionIndex) -> tuple[Tensor, Tensor, Tensor]:
    """All ``(torsion, atom)`` pairs of ``index`` with the rate ``(P, 3)`` (Å per radian) at which a turn of
    the torsion moves the atom: ``axis x (x_atom - x_v)``, the axis the unit vector ``u -> v``."""
    u, v = index.axis[:, 0], index.axis[:, 1]
    axis = pos[v] - pos[u]
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    tor = torch.cat([t for t, _ in index.pairs_by_rank]) if index.pairs_by_rank else u.new_zeros(0)
    atom = torch.cat([a for _, a in index.pairs_by_rank]) if index.pairs_by_rank else u.new_zeros(0)
    return tor, atom, torch.cross(axis[tor], pos[atom] - pos[v[tor]], dim=-1)


def torsion_gradient(pos: Tensor, index: TorsionIndex, grad: Tensor) -> Tensor:
    """Gradient ``(T,)`` in torsion space of a function of the positions, from its Cartesian gradient.

    A turn ``d`` (radians) of torsion ``t`` moves each atom it moves by ``d * axis_t x (x - x_v)`` to first
    order, so ``dE/d(theta_t) = sum over those atoms of (axis_t x (x - x_v)) . dE/dx``.

    Args:
        pos: ``(N, 3)`` positions (Å). index: the torsions. grad: ``(N, 3)`` Cartesian gradient.
    """
    tor, atom, rate = _moved_pairs(pos, index)
    out = pos.new_zeros(len(index.axis))
    return out.index_add_(0, tor, (rate * grad[atom]).sum(-1))


def torsion_displacement(pos: Tensor, index: TorsionIndex, deltas: Tensor) -> Tensor:
    """First-order displacement ``(N, 3)`` (Å) of every atom under torsion increments ``deltas`` ``(T,)``
    (radians): the transpose of :func:`torsion_gradient`."""
    tor, atom, rate = _moved_pairs(pos, index)
    return torch.zeros_like(pos).index_add_(0, atom, rate * deltas[tor, None].to(pos.dtype))


def dihedrals(pos: Tensor, quads: Tensor) -> Tensor:
    """Dihedral angles ``(T,)`` in radians of atom quadruples ``quads`` ``(T, 4)`` in ``pos`` ``(N, 3)``."""
    p0, p1, p2, p3 = (pos[quads[:, k]] for k in range(4))
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1n = b1 / b1.norm(dim=-1, keepdim=True)
    v = b0 - (b0 * b1n).sum(-1, keepdim=True) * b1n
    w = b2 - (b2 * b1n).sum(-1, keepdim=True) * b1n
    x = (v * w).sum(-1)
    y = (torch.cross(b1n, v, dim=-1) * w).sum(-1)
    return torch.atan2(y, x)

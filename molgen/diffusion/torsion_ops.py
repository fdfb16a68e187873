"""Batched torsion rotations in torch.

Torsions of all molecules in a batch are applied rank by rank: the k-th torsion of every molecule is
rotated at once (their moving atoms never overlap, because they belong to different molecules), then the
(k+1)-th, recomputing each rotation axis from the current positions. Rotating the moving side of bond
``u -> v`` by ``delta`` (radians, right-handed about ``u -> v``) changes the dihedral ``a-u-v-b`` by
exactly ``delta`` and leaves bond lengths and angles unchanged (same convention as
:func:`molgen.chem.torsions.apply_torsion_deltas`).
"""

from __future__ import annotations

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

"""Rotatable torsions of a molecule and exact torsion setting on coordinates.

A torsion is described by four atom indices ``(a, u, v, b)``: the rotatable bond is ``u-v``;
``a`` (a heavy neighbour of ``u``) and ``b`` (a heavy neighbour of ``v``) define the measured dihedral
angle. Rotating torsion ``k`` by ``delta`` radians rotates every atom on the ``v`` side of the bond
(``mask[k]``) about the axis ``u -> v`` by ``delta``; this changes the dihedral ``a-u-v-b`` by exactly
``delta`` and leaves every bond length and bond angle untouched. The ``v`` side is chosen to be the
smaller side, so fewer atoms move.

Everything here is NumPy + RDKit; the batched torch version lives in
:mod:`molgen.diffusion.torsion_ops`.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from rdkit import Chem


def _is_linear(atom: Chem.Atom) -> bool:
    """True for sp atoms (triple bonds, cumulenes): a torsion through them is undefined."""
    return atom.GetHybridization() == Chem.HybridizationType.SP


def _side(adjacency: list[list[int]], start: int, blocked: int) -> list[int]:
    """Atoms reachable from ``start`` without crossing the atom ``blocked`` (breadth first)."""
    seen = {start, blocked}
    order = [start]
    queue = deque([start])
    while queue:
        i = queue.popleft()
        for j in adjacency[i]:
            if j not in seen:
                seen.add(j)
                order.append(j)
                queue.append(j)
    return order


def rotatable_torsions(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray]:
    """Find the rotatable torsions of ``mol`` and the atoms each one moves.

    A bond is rotatable when it is a single, acyclic bond, each of its atoms carries at least one heavy
    neighbour besides the other (so the rotation moves heavy atoms) and neither atom is linear (sp).
    Double bonds and ring bonds, whose rotation would change stereochemistry or break rings, are never
    rotatable.

    Args:
        mol: RDKit molecule, with or without explicit hydrogens.

    Returns:
        ``torsions``: int64 array ``(T, 4)`` of atom indices ``(a, u, v, b)``, oriented so that the
        ``v`` side holds the fewer atoms; ``masks``: bool array ``(T, n_atoms)``, True for the atoms that
        rotate with torsion ``t`` (the ``v`` side, ``v`` included).
    """
    n = mol.GetNumAtoms()
    adjacency: list[list[int]] = [[] for _ in range(n)]
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        adjacency[i].append(j)
        adjacency[j].append(i)

    torsions: list[list[int]] = []
    masks: list[np.ndarray] = []
    for bond in mol.GetBonds():
        if bond.GetBondType() != Chem.BondType.SINGLE or bond.IsInRing():
            continue
        u_atom, v_atom = bond.GetBeginAtom(), bond.GetEndAtom()
        if _is_linear(u_atom) or _is_linear(v_atom):
            continue
        u, v = u_atom.GetIdx(), v_atom.GetIdx()
        heavy_u = sorted(a.GetIdx() for a in u_atom.GetNeighbors() if a.GetAtomicNum() > 1 and a.GetIdx() != v)
        heavy_v = sorted(a.GetIdx() for a in v_atom.GetNeighbors() if a.GetAtomicNum() > 1 and a.GetIdx() != u)
        if not heavy_u or not heavy_v:
            continue
        side_v = _side(adjacency, v, u)
        side_u = _side(adjacency, u, v)
        if len(side_v) > len(side_u):
            u, v, heavy_u, heavy_v, side_v = v, u, heavy_v, heavy_u, side_u
        mask = np.zeros(n, dtype=bool)
        mask[side_v] = True
        torsions.append([heavy_u[0], u, v, heavy_v[0]])
        masks.append(mask)
    if not torsions:
        return np.zeros((0, 4), dtype=np.int64), np.zeros((0, n), dtype=bool)
    return np.asarray(torsions, dtype=np.int64), np.stack(masks)


def dihedral_angles(coords: np.ndarray, torsions: np.ndarray) -> np.ndarray:
    """Dihedral angles ``a-u-v-b`` in radians, in ``[-pi, pi)``.

    Args:
        coords: ``(n_atoms, 3)`` or ``(batch, n_atoms, 3)`` positions in Å.
        torsions: ``(T, 4)`` atom indices.

    Returns:
        ``(T,)`` or ``(batch, T)`` angles in radians.
    """
    p0, p1, p2, p3 = (coords[..., torsions[:, k], :] for k in range(4))
    b0 = p0 - p1
    b1 = p2 - p1
    b2 = p3 - p2
    b1n = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - np.sum(b0 * b1n, axis=-1, keepdims=True) * b1n
    w = b2 - np.sum(b2 * b1n, axis=-1, keepdims=True) * b1n
    x = np.sum(v * w, axis=-1)
    y = np.sum(np.cross(b1n, v) * w, axis=-1)
    return np.arctan2(y, x)


def rotation_matrix(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation matrix ``(3, 3)`` for a rotation by ``angle`` radians about unit ``axis``."""
    x, y, z = axis
    c, s = np.cos(angle), np.sin(angle)
    C = 1.0 - c
    return np.array(
        [
            [c + x * x * C, x * y * C - z * s, x * z * C + y * s],
            [y * x * C + z * s, c + y * y * C, y * z * C - x * s],
            [z * x * C - y * s, z * y * C + x * s, c + z * z * C],
        ]
    )


def apply_torsion_deltas(
    coords: np.ndarray, torsions: np.ndarray, masks: np.ndarray, deltas: np.ndarray
) -> np.ndarray:
    """Rotate each torsion by ``deltas`` radians, one after the other.

    Args:
        coords: ``(n_atoms, 3)`` positions in Å (not modified).
        torsions: ``(T, 4)`` from :func:`rotatable_torsions`.
        masks: ``(T, n_atoms)`` moving atoms of each torsion.
        deltas: ``(T,)`` increments in radians.

    Returns:
        New ``(n_atoms, 3)`` positions; dihedral ``t`` changes by ``deltas[t]`` and all bond lengths and
        angles are unchanged.
    """
    out = np.array(coords, dtype=np.float64, copy=True)
    for (_, u, v, _), mask, delta in zip(torsions, masks, deltas):
        if delta == 0.0:
            continue
        axis = out[v] - out[u]
        axis = axis / np.linalg.norm(axis)
        rot = rotation_matrix(axis, float(delta))
        moving = out[mask] - out[v]
        out[mask] = moving @ rot.T + out[v]
    return out


def set_torsion_angles(
    coords: np.ndarray, torsions: np.ndarray, masks: np.ndarray, angles: np.ndarray
) -> np.ndarray:
    """Set every torsion's dihedral to ``angles`` (radians) exactly; returns new ``(n_atoms, 3)`` Å.

    Torsions are set one at a time and each is measured right before it is set, so the result holds
    even when an earlier rotation moved a later torsion's reference atoms.
    """
    out = np.array(coords, dtype=np.float64, copy=True)
    for k in range(len(torsions)):
        current = dihedral_angles(out, torsions[k : k + 1])[0]
        out = apply_torsion_deltas(out, torsions[k : k + 1], masks[k : k + 1], np.array([angles[k] - current]))
    return out


#: carbonyl / thiocarbonyl carbon singly bonded (acyclic) to N or O: amides, esters, thioamides,
#: carbamates, ureas. Resonance gives these bonds partial double-bond character (rotation barriers of
#: roughly 10-20 kcal/mol), so their dihedrals sit near cis (0) or trans (pi).
PLANAR_BOND_SMARTS = "[#6X3](=[#8X1,#16X1])-!@[#7X3,#8X2]"
#: how the sampler may treat them: diffused freely, snapped to cis/trans afterwards, or kept as embedded
PLANAR_BOND_MODES = ("free", "snap", "fixed")


def planar_bond_references(mol: Chem.Mol, torsions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which rotatable torsions are amide-like (:data:`PLANAR_BOND_SMARTS`) and how to measure them.

    Args:
        mol: the molecule the torsions were found in (same atom indices).
        torsions: ``(T, 4)`` rotatable torsions ``(a, u, v, b)`` from :func:`rotatable_torsions`.

    Returns:
        ``is_planar``: bool ``(T,)``; ``references``: int64 ``(T, 4)`` quads ``(O/S, C, X, Y)`` (``Y`` a
        heavy neighbour of ``X`` other than ``C``) whose dihedral is 0 for the cis and pi for the trans
        arrangement of the carbonyl and ``Y``; rows of non-planar torsions repeat the torsion itself.
        Rotating a torsion by ``delta`` changes its reference dihedral by exactly ``delta``.
    """
    torsions = np.asarray(torsions, dtype=np.int64).reshape(-1, 4)
    references = torsions.copy()
    is_planar = np.zeros(len(torsions), dtype=bool)
    if len(torsions) == 0:
        return is_planar, references
    pattern = Chem.MolFromSmarts(PLANAR_BOND_SMARTS)
    bond_of = {frozenset((int(t[1]), int(t[2]))): k for k, t in enumerate(torsions)}
    for c, o, x in mol.GetSubstructMatches(pattern):
        k = bond_of.get(frozenset((c, x)))
        if k is None or is_planar[k]:
            continue
        ys = sorted(a.GetIdx() for a in mol.GetAtomWithIdx(x).GetNeighbors() if a.GetAtomicNum() > 1 and a.GetIdx() != c)
        if not ys:
            continue
        is_planar[k] = True
        references[k] = (o, c, x, ys[0])
    return is_planar, references


def has_flexible_rings(mol: Chem.Mol, min_ring_size: int = 5) -> bool:
    """Whether a ring of ``mol`` can take more than one conformation.

    A ring is counted as flexible when it has ``min_ring_size`` or more atoms and at least one of them is
    a non-aromatic sp3 atom (cyclohexane chairs and boats, envelope and twist forms of five-membered
    rings, macrocycles). Aromatic rings, rings of sp2 atoms and three- or four-membered rings have
    essentially one conformation, so one ETKDG local structure serves all conformers of a molecule
    without flexible rings.
    """
    ring_info = mol.GetRingInfo()
    sp3 = Chem.HybridizationType.SP3
    for ring in ring_info.AtomRings():
        if len(ring) < min_ring_size:
            continue
        for idx in ring:
            atom = mol.GetAtomWithIdx(idx)
            if not atom.GetIsAromatic() and atom.GetHybridization() == sp3:
                return True
    return False

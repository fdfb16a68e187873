"""Validation of protein structures: what every sampled structure must pass before it is delivered.

Checks per frame (distances reported in Å, angles in degrees; mdtraj's nm are converted here):

* ``ca_ca``: every pair of consecutive, peptide-bonded residues has its Cα-Cα distance under
  ``max_ca_ca`` (4.5 Å; 3.8 Å for a trans peptide, 2.9 Å for cis);
* ``peptide_bond``: every peptide C-N bond is under ``max_peptide_bond`` (2.0 Å; 1.33 Å ideal);
* ``clash``: no two heavy atoms that are not bonded to each other are closer than ``min_heavy_distance``
  (1.0 Å);
* ``chirality``: every Cα with a Cβ is L: the dihedral N-Cα-C-Cβ is negative (about -122° for L,
  +122° for D; glycine has no Cβ and no check);
* ``bond_length``: every bond within ``bond_tolerance`` (0.15 Å) of the range of its length in the reference;
* ``bond_angle``: every bond angle within ``angle_tolerance`` (20°) of the range of its value in the reference.

The reference is what the model learnt from (the training frames, or one input structure); bonds are
perceived from its first frame (:func:`bonds_from_geometry`). A frame passes when every
check passes; :func:`validate_frames` returns each frame's verdict and the first failing check, and the
counts by reason, so samplers can drop failures and report why.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from molgen.chem.torsions import dihedral_angles

__all__ = ["CHECKS", "ProteinChecks", "ProteinGeometry", "ValidationResult", "bonds_from_geometry", "validate_frames"]

#: the checks, in the order a frame's first failure is reported
CHECKS = ("ca_ca", "peptide_bond", "clash", "chirality", "bond_length", "bond_angle")

NM = 10.0  # Å per nm


@dataclass(frozen=True)
class ProteinChecks:
    """Thresholds of :func:`validate_frames` (Å and degrees)."""

    max_ca_ca: float = 4.5
    max_peptide_bond: float = 2.0
    min_heavy_distance: float = 1.0
    bond_tolerance: float = 0.15
    angle_tolerance: float = 20.0


@dataclass
class ProteinGeometry:
    """What the checks need of one system: index lists and the reference ranges of bonds and angles.

    Bonds are perceived from the reference's first frame (covalent radii, :func:`bonds_from_geometry`), not
    taken from the topology: mdtraj's template bonds are wrong for non-standard atom names (CHARMM's merged
    terminal caps, for instance), and the geometry of a sane reference structure is unambiguous.

    Attributes:
        ca_pairs: (P, 2) Cα indices of consecutive peptide-bonded residues.
        peptide_bonds: (P, 2) C(i), N(i+1) indices.
        chiral: (K, 4) N, Cα, C, Cβ indices of residues with a Cβ.
        bonds: (B, 2); bond_range: (B, 2) smallest and largest length in the reference frames (Å).
        angles: (G, 3) bonded triples (i, j, k), j the vertex; angle_range: (G, 2) degrees.
        heavy: (H,) heavy-atom indices; heavy_bonded: (H, H) bool, True for bonded pairs and the diagonal.
    """

    ca_pairs: np.ndarray
    peptide_bonds: np.ndarray
    chiral: np.ndarray
    bonds: np.ndarray
    bond_range: np.ndarray
    angles: np.ndarray
    angle_range: np.ndarray
    heavy: np.ndarray
    heavy_bonded: np.ndarray

    @classmethod
    def of(cls, reference: Any) -> ProteinGeometry:
        """Geometry of a reference ``mdtraj.Trajectory`` (its frames give the bond and angle ranges)."""
        top = reference.topology
        ref = np.asarray(reference.xyz, dtype=np.float64) * NM
        elements = [a.element.symbol if a.element is not None else "C" for a in top.atoms]
        bonds = bonds_from_geometry(elements, ref[0])
        bonded = {(int(i), int(j)) for i, j in bonds}
        ca_pairs, peptide, chiral = [], [], []
        for chain in top.chains:
            residues = list(chain.residues)
            for res, nxt in zip(residues[:-1], residues[1:]):
                c, n = _atom(res, "C"), _atom(nxt, "N")
                if c is None or n is None or (min(c, n), max(c, n)) not in bonded:
                    continue
                peptide.append((c, n))
                ca, ca_next = _atom(res, "CA"), _atom(nxt, "CA")
                if ca is not None and ca_next is not None:
                    ca_pairs.append((ca, ca_next))
            for res in residues:
                idx = [_atom(res, name) for name in ("N", "CA", "C", "CB")]
                if None not in idx:
                    chiral.append(idx)
        neighbours: dict[int, list[int]] = {}
        for i, j in bonds:
            neighbours.setdefault(int(i), []).append(int(j))
            neighbours.setdefault(int(j), []).append(int(i))
        angles = np.array([(a, j, b) for j, nb in neighbours.items() for x, a in enumerate(nb) for b in nb[x + 1:]],
                          dtype=np.int64).reshape(-1, 3)
        heavy = np.array([k for k, e in enumerate(elements) if e != "H"], dtype=np.int64)
        pos = {int(a): k for k, a in enumerate(heavy)}
        hb = np.eye(len(heavy), dtype=bool)
        for i, j in bonds:
            if int(i) in pos and int(j) in pos:
                hb[pos[int(i)], pos[int(j)]] = hb[pos[int(j)], pos[int(i)]] = True
        lengths, degrees = _dist(ref, bonds), _angles_deg(ref, angles)
        return cls(
            ca_pairs=np.array(ca_pairs, dtype=np.int64).reshape(-1, 2),
            peptide_bonds=np.array(peptide, dtype=np.int64).reshape(-1, 2),
            chiral=np.array(chiral, dtype=np.int64).reshape(-1, 4),
            bonds=bonds,
            bond_range=np.stack([lengths.min(0), lengths.max(0)], axis=1) if len(bonds) else np.zeros((0, 2)),
            angles=angles,
            angle_range=np.stack([degrees.min(0), degrees.max(0)], axis=1) if len(angles) else np.zeros((0, 2)),
            heavy=heavy,
            heavy_bonded=hb,
        )


def bonds_from_geometry(elements: list[str], xyz: np.ndarray, factor: float = 1.25) -> np.ndarray:
    """(B, 2) sorted atom pairs closer than ``factor`` times the sum of their covalent radii (RDKit's), no H-H.

    ``xyz``: (N, 3) Å of a sane structure.
    """
    from rdkit import Chem

    table = Chem.GetPeriodicTable()
    radii = np.array([table.GetRcovalent(table.GetAtomicNumber(e.capitalize())) for e in elements])
    is_h = np.array([e == "H" for e in elements])
    out = []
    for i in range(len(xyz) - 1):  # row by row: O(N) memory for large proteins
        d = np.linalg.norm(xyz[i + 1:] - xyz[i], axis=1)
        hit = np.flatnonzero((d < factor * (radii[i] + radii[i + 1:])) & ~(is_h[i] & is_h[i + 1:]))
        out.extend((i, i + 1 + int(j)) for j in hit)
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def _atom(res: Any, name: str) -> int | None:
    for atom in res.atoms:
        if atom.name == name:
            return int(atom.index)
    return None


@dataclass
class ValidationResult:
    """Verdict of :func:`validate_frames` on F frames.

    Attributes:
        valid: (F,) bool.
        reason: per frame the first failing check of :data:`CHECKS`, or None.
        failures: (F, len(CHECKS)) bool, every check's failure per frame.
        counts: first-failure reason -> number of frames.
        worst: check -> worst value over all frames (Å or degrees; the largest Cα-Cα, C-N and deviations,
            the smallest heavy-atom distance, the largest N-Cα-C-Cβ dihedral).
    """

    valid: np.ndarray
    reason: list[str | None]
    failures: np.ndarray
    counts: Counter = field(default_factory=Counter)
    worst: dict[str, float] = field(default_factory=dict)

    @property
    def n_valid(self) -> int:
        """Frames that pass every check."""
        return int(self.valid.sum())


def _dist(xyz: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    return np.linalg.norm(xyz[:, pairs[:, 0]] - xyz[:, pairs[:, 1]], axis=-1)


def _angles_deg(xyz: np.ndarray, triples: np.ndarray) -> np.ndarray:
    u = xyz[:, triples[:, 0]] - xyz[:, triples[:, 1]]
    v = xyz[:, triples[:, 2]] - xyz[:, triples[:, 1]]
    cos = (u * v).sum(-1) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1), 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _min_nonbonded_heavy(xyz: np.ndarray, geo: ProteinGeometry) -> np.ndarray:
    """(F,) smallest distance (Å) between heavy atoms that are not bonded."""
    h = xyz[:, geo.heavy]
    chunk = max(1, 2_000_000 // max(1, len(geo.heavy) ** 2))  # frames per block: about 50 MB of distances
    out = np.empty(len(xyz))
    for s in range(0, len(xyz), chunk):
        block = h[s : s + chunk]
        d = np.linalg.norm(block[:, :, None] - block[:, None, :], axis=-1)
        d[:, geo.heavy_bonded] = np.inf
        out[s : s + chunk] = d.reshape(len(block), -1).min(-1) if d.shape[1] > 1 else np.inf
    return out


def _outside(values: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """How far (F, K) values lie outside their (K, 2) [low, high] ranges (0 inside)."""
    return np.maximum(ranges[:, 0] - values, 0.0) + np.maximum(values - ranges[:, 1], 0.0)


def validate_frames(
    traj: Any,
    reference: Any | None = None,
    checks: ProteinChecks | None = None,
    geometry: ProteinGeometry | None = None,
) -> ValidationResult:
    """Check every frame of ``traj`` (an ``mdtraj.Trajectory``) against :data:`CHECKS`.

    Args:
        traj: F frames (nm, mdtraj's unit).
        reference: the structures whose bonds (perceived on its first frame) and whose ranges of bond lengths
            and angles over all its frames are the targets, e.g. the training frames; default the first frame
            of ``traj``.
        checks: thresholds.
        geometry: :meth:`ProteinGeometry.of` the reference, when the caller has it already.
    """
    c = checks or ProteinChecks()
    geo = geometry or ProteinGeometry.of(reference if reference is not None else traj[0])
    xyz = np.asarray(traj.xyz, dtype=np.float64) * NM
    f = len(xyz)
    fail = np.zeros((f, len(CHECKS)), dtype=bool)
    worst: dict[str, float] = {}

    def record(k: int, bad: np.ndarray, values: np.ndarray, largest: bool = True) -> None:
        fail[:, k] = bad
        if values.size:
            worst[CHECKS[k]] = float(values.max() if largest else values.min())

    if len(geo.ca_pairs):
        d = _dist(xyz, geo.ca_pairs)
        record(0, (d > c.max_ca_ca).any(1), d)
    if len(geo.peptide_bonds):
        d = _dist(xyz, geo.peptide_bonds)
        record(1, (d > c.max_peptide_bond).any(1), d)
    if len(geo.heavy) > 1:
        d = _min_nonbonded_heavy(xyz, geo)
        record(2, d < c.min_heavy_distance, d, largest=False)
    if len(geo.chiral):
        dih = np.degrees(dihedral_angles(xyz, geo.chiral))
        record(3, (dih > 0).any(1), dih)
    if len(geo.bonds):
        dev = _outside(_dist(xyz, geo.bonds), geo.bond_range)
        record(4, (dev > c.bond_tolerance).any(1), dev)
    if len(geo.angles):
        dev = _outside(_angles_deg(xyz, geo.angles), geo.angle_range)
        record(5, (dev > c.angle_tolerance).any(1), dev)
    nonfinite = ~np.isfinite(xyz).all(axis=(1, 2))
    fail[nonfinite, :] = True
    valid = ~fail.any(1)
    reason = [None if ok else CHECKS[int(np.argmax(row))] for ok, row in zip(valid, fail)]
    counts = Counter(r for r in reason if r is not None)
    return ValidationResult(valid=valid, reason=reason, failures=fail, counts=counts, worst=worst)

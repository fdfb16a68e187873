"""Rigid-body geometry in NumPy: Kabsch superposition and RMSD (Å).

:func:`kabsch_rotation`, :func:`kabsch_align` and :func:`kabsch_rmsd` work on one pair of point sets
(conformer matching uses them); :func:`kabsch_rmsd_many` gives the RMSDs of many conformers under many
atom mappings at once from the singular values of the covariance matrices (the symmetry-aware
benchmark metric in :mod:`molgen.chem.metrics` uses it).
"""

from __future__ import annotations

import numpy as np

#: bound on (conformers × mappings × atoms) gathered at once by :func:`kabsch_rmsd_many` (≈ 24 bytes each)
_CHUNK_ELEMENTS = 2_000_000


def kabsch_rotation(mobile: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Proper rotation ``(3, 3)`` that best superposes centred ``mobile`` ``(n,3)`` on centred ``target``."""
    h = mobile.T @ target
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    corr = np.diag([1.0, 1.0, d])
    return vt.T @ corr @ u.T


def kabsch_rmsd(mobile: np.ndarray, target: np.ndarray) -> float:
    """RMSD in Å between ``(n, 3)`` point sets after optimal rotation and translation (fixed atom order)."""
    a = mobile - mobile.mean(axis=0)
    b = target - target.mean(axis=0)
    r = kabsch_rotation(a, b)
    return float(np.sqrt(np.mean(np.sum((a @ r.T - b) ** 2, axis=1))))


def kabsch_align(mobile: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``mobile`` ``(n, 3)`` rigidly moved onto ``target`` (rotation + translation, no reflection)."""
    mc, tc = mobile.mean(axis=0), target.mean(axis=0)
    r = kabsch_rotation(mobile - mc, target - tc)
    return (mobile - mc) @ r.T + tc


def kabsch_rmsd_many(probe: np.ndarray, ref: np.ndarray, mappings: np.ndarray) -> np.ndarray:
    """RMSD after optimal superposition (rotation + translation, no reflection).

    Args:
        probe: (C, n, 3) probe coordinates.
        ref: (n, 3) reference coordinates.
        mappings: (K, n) probe atom index for each reference atom.

    Returns:
        (C, K) RMSDs.
    """
    probe = np.asarray(probe, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    n = ref.shape[0]
    # a mapping is a permutation of all probe atoms, so centring commutes with it
    p = probe - probe.mean(axis=1, keepdims=True)
    y = ref - ref.mean(axis=0)
    e0 = (p**2).sum(axis=(1, 2))[:, None] + (y**2).sum()  # (C, 1)
    n_conf, n_map = p.shape[0], mappings.shape[0]
    out = np.empty((n_conf, n_map))
    step = max(1, _CHUNK_ELEMENTS // max(1, n_conf * n))
    for start in range(0, n_map, step):
        m = mappings[start : start + step]
        x = p[:, m]  # (C, k, n, 3)
        h = np.einsum("ckia,ib->ckab", x, y)  # covariance, (C, k, 3, 3)
        s = np.linalg.svd(h, compute_uv=False)  # (C, k, 3), descending
        d = np.sign(np.linalg.det(h))
        d[d == 0] = 1.0
        trace = s[..., 0] + s[..., 1] + d * s[..., 2]
        msd = (e0 - 2.0 * trace) / n
        out[:, start : start + step] = np.sqrt(np.clip(msd, 0.0, None))
    return out

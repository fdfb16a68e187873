"""Rigid-body geometry in NumPy: Kabsch superposition and RMSD (Å)."""

from __future__ import annotations

import numpy as np


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

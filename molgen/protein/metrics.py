"""Ensemble metrics: how close sampled structures are to molecular dynamics of the same system.

Dihedral metrics (alanine dipeptide; angles in degrees, in [-180, 180)):

* :func:`ramachandran_histogram` / :func:`js_divergence`: the 2-D φ/ψ histogram (10° bins, 36 x 36) and the
  Jensen-Shannon divergence between two of them (natural log, so between 0 and ln 2 ≈ 0.693);
* :func:`basin_populations`: the fractions in three basins that partition the plane: ``alpha_R`` (φ < 0,
  -120° <= ψ < 50°), ``beta_C7eq`` (φ < 0, the rest of ψ) and ``alpha_L_C7ax`` (φ >= 0);
* :func:`free_energy_difference`: ΔF = -kT ln(P(φ > 0) / P(φ < 0)) in kJ/mol at temperature T.

Structural metrics (NTL9 and other proteins; mdtraj trajectories in nm, results in Å):

* :func:`ca_rmsf`: per-residue Cα root-mean-square fluctuation after superposition on the mean structure;
* :func:`pairwise_ca_rmsd`: Cα RMSD between every pair of frames (optimal superposition);
* :func:`contact_map`: per Cα pair the fraction of frames in contact (distance under 8 Å), and
  :func:`contact_map_js`: the Jensen-Shannon divergence of two contact maps, pair by pair as Bernoulli
  distributions, averaged over pairs;
* :func:`coverage`: recall and precision of an ensemble against reference frames at Cα-RMSD thresholds;
* :func:`rmsd_to_structure`: Cα RMSD of each frame to a reference state (for example adenylate kinase's
  open and closed crystal structures);
* :func:`integrated_autocorrelation_time`: of a scalar time series (for the rate of decorrelated MD frames).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "BASINS",
    "KB_KJ_PER_MOL_K",
    "basin_populations",
    "ca_rmsf",
    "contact_map",
    "contact_map_js",
    "coverage",
    "free_energy_difference",
    "integrated_autocorrelation_time",
    "js_divergence",
    "pairwise_ca_rmsd",
    "phi_psi_degrees",
    "ramachandran_histogram",
    "rmsd_to_structure",
]

KB_KJ_PER_MOL_K = 0.0083144626  # Boltzmann constant, kJ/(mol K)
BASINS = ("beta_C7eq", "alpha_R", "alpha_L_C7ax")


def phi_psi_degrees(traj: Any) -> tuple[np.ndarray, np.ndarray]:
    """(F, R) φ and (F, R) ψ in degrees of every residue that has both (mdtraj's definitions)."""
    import mdtraj as md

    _, phi = md.compute_phi(traj)
    _, psi = md.compute_psi(traj)
    return np.degrees(phi), np.degrees(psi)


def _wrap(deg: np.ndarray) -> np.ndarray:
    return (np.asarray(deg, dtype=np.float64) + 180.0) % 360.0 - 180.0


def ramachandran_histogram(phi: np.ndarray, psi: np.ndarray, bin_degrees: float = 10.0) -> np.ndarray:
    """Normalised 2-D histogram (φ rows, ψ columns) of paired angles (degrees), ``360 / bin_degrees`` bins a side."""
    n_bins = round(360.0 / bin_degrees)
    edges = np.linspace(-180.0, 180.0, n_bins + 1)
    h, _, _ = np.histogram2d(_wrap(phi).ravel(), _wrap(psi).ravel(), bins=[edges, edges])
    total = h.sum()
    return h / total if total > 0 else h


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (natural log; 0 for equal, ln 2 for disjoint) of two histograms (normalised here)."""
    p = np.asarray(p, dtype=np.float64).ravel()
    q = np.asarray(q, dtype=np.float64).ravel()
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log(a[nz] / m[nz])))

    return 0.5 * kl(p) + 0.5 * kl(q)


def basin_populations(phi: np.ndarray, psi: np.ndarray) -> dict[str, float]:
    """Fractions of paired angles (degrees) in :data:`BASINS` (see the module docstring); they sum to 1."""
    phi, psi = _wrap(phi).ravel(), _wrap(psi).ravel()
    if phi.size == 0:
        return {b: float("nan") for b in BASINS}
    left = phi < 0
    alpha_r = left & (psi >= -120.0) & (psi < 50.0)
    return {"beta_C7eq": float(np.mean(left & ~alpha_r)), "alpha_R": float(np.mean(alpha_r)),
            "alpha_L_C7ax": float(np.mean(~left))}


def free_energy_difference(phi: np.ndarray, temperature_k: float = 300.0) -> float:
    """ΔF(φ > 0 relative to φ < 0) = -kT ln(P(φ > 0) / P(φ < 0)) in kJ/mol (inf when no φ > 0 is seen)."""
    phi = _wrap(phi).ravel()
    pos, neg = float(np.sum(phi >= 0)), float(np.sum(phi < 0))
    if pos == 0:
        return float("inf")
    if neg == 0:
        return float("-inf")
    return float(-KB_KJ_PER_MOL_K * temperature_k * np.log(pos / neg))


def _ca(traj: Any) -> Any:
    idx = traj.topology.select("name CA")
    if len(idx) == 0:
        raise ValueError("the structure has no Cα atoms")
    return traj.atom_slice(idx)


def ca_rmsf(traj: Any, reference: Any | None = None) -> np.ndarray:
    """(R,) per-residue Cα RMSF in Å: frames superposed (Cα) on ``reference`` (default: iteratively on their mean)."""
    import mdtraj as md

    ca = _ca(traj)
    if reference is not None:
        ca.superpose(_ca(reference), 0)
    else:
        ca.superpose(ca, 0)
        for _ in range(3):
            mean = md.Trajectory(ca.xyz.mean(0, keepdims=True), ca.topology)
            ca.superpose(mean, 0)
    mean = ca.xyz.mean(0)
    return np.sqrt(((ca.xyz - mean) ** 2).sum(-1).mean(0)) * 10.0


def pairwise_ca_rmsd(traj: Any, other: Any | None = None) -> np.ndarray:
    """Cα RMSD (Å) between frames: the upper triangle of ``traj`` x ``traj`` (flat), or all of ``traj`` x ``other``."""
    import mdtraj as md

    a = _ca(traj)
    b = _ca(other) if other is not None else a
    out = np.stack([md.rmsd(a, b, i) for i in range(b.n_frames)], axis=1) * 10.0  # (Fa, Fb)
    if other is None:
        return out[np.triu_indices(a.n_frames, k=1)]
    return out


def coverage(rmsd: np.ndarray, thresholds_angstrom: Sequence[float]) -> dict[str, dict[str, float]]:
    """Recall and precision of an ensemble against reference frames at Cα-RMSD thresholds.

    Args:
        rmsd: (F_ref, F_gen) Cα RMSD in Å between reference frames (rows) and generated ones (columns), as
            :func:`pairwise_ca_rmsd` of ``(reference, generated)`` returns it.
        thresholds_angstrom: thresholds in Å.

    Returns:
        ``{"recall": {t: ...}, "precision": {t: ...}}`` keyed by ``f"{t:g}"``: recall is the fraction of
        reference frames with a generated frame within ``t``; precision the fraction of generated frames
        within ``t`` of a reference frame (the COV-R / COV-P of conformer generation, for structures).
    """
    rmsd = np.asarray(rmsd, dtype=np.float64)
    if rmsd.ndim != 2 or 0 in rmsd.shape:
        raise ValueError(f"rmsd must be a non-empty (F_ref, F_gen) matrix, got shape {rmsd.shape}")
    near_ref, near_gen = rmsd.min(1), rmsd.min(0)
    return {"recall": {f"{t:g}": float((near_ref <= t).mean()) for t in thresholds_angstrom},
            "precision": {f"{t:g}": float((near_gen <= t).mean()) for t in thresholds_angstrom}}


def rmsd_to_structure(traj: Any, reference: Any) -> np.ndarray:
    """(F,) Cα RMSD in Å of each frame to the first frame of ``reference`` after optimal superposition.

    The two need the same number of Cα atoms in the same order (the same protein, any hydrogens or
    atom naming); raises ValueError otherwise.
    """
    import mdtraj as md

    a, b = _ca(traj), _ca(reference)
    if a.n_atoms != b.n_atoms:
        raise ValueError(f"the reference has {b.n_atoms} Cα atoms, the frames {a.n_atoms}")
    return md.rmsd(a, b, 0) * 10.0


def contact_map(traj: Any, cutoff_angstrom: float = 8.0, min_separation: int = 3) -> np.ndarray:
    """(P,) fraction of frames in which each Cα pair (``i < j - min_separation + 1``) is closer than the cutoff."""
    ca = _ca(traj)
    n = ca.n_atoms
    i, j = np.triu_indices(n, k=min_separation)
    d = np.linalg.norm(ca.xyz[:, i] - ca.xyz[:, j], axis=-1) * 10.0
    return (d < cutoff_angstrom).mean(0)


def contact_map_js(p: np.ndarray, q: np.ndarray) -> float:
    """Mean over pairs of the Jensen-Shannon divergence of the Bernoulli contact distributions (natural log)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    q = np.clip(np.asarray(q, dtype=np.float64), 0.0, 1.0)
    m = 0.5 * (p + q)

    def h(x: np.ndarray) -> np.ndarray:  # Bernoulli entropy
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.nan_to_num(x * np.log(x)) - np.nan_to_num((1 - x) * np.log(1 - x))

    return float(np.mean(h(m) - 0.5 * (h(p) + h(q))))


def integrated_autocorrelation_time(x: np.ndarray, max_lag: int | None = None) -> float:
    """Integrated autocorrelation time (in frames) of a series: 1 + 2 Σ ρ(k), summed until ρ first drops below 0
    (Geyer's initial positive sequence, simplified)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    n = len(x)
    if n < 3 or np.var(x) == 0:
        return 1.0
    x = x - x.mean()
    f = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(f * np.conj(f))[:n]
    acf /= acf[0]
    tau = 1.0
    for k in range(1, max_lag or n // 2):
        if acf[k] <= 0:
            break
        tau += 2.0 * acf[k]
    return float(tau)

"""Conformer matching: give an experimental conformation RDKit's local structure.

Torsional diffusion only moves torsions, so a training target must have exactly the local structure
(bond lengths, angles, ring conformations) that sampling starts from. For each experimental ligand we
embed a few ETKDGv3 structures, copy the experimental torsion angles onto each, keep the one closest to
experiment (heavy-atom RMSD after superposition) and refine its torsions with a Powell search on that
RMSD. This is the cheap stand-in for torsional diffusion's per-molecule differential evolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rdkit import Chem
from scipy.optimize import minimize

from molgen.chem.embedding import embed_local_structures
from molgen.chem.featurize import MolGraph, featurize
from molgen.chem.geometry import kabsch_align, kabsch_rmsd
from molgen.chem.torsions import (
    apply_torsion_deltas,
    dihedral_angles,
    set_torsion_angles,
)


@dataclass
class MatchedConformer:
    """Result of matching one molecule.

    Attributes:
        mol: the molecule with explicit hydrogens (atom order: heavy atoms of the input first).
        graph: its heavy-atom :class:`MolGraph`.
        coords: ``(N_heavy, 3)`` Å, ETKDG local structure with torsions matched to experiment, superposed
            on the experimental conformation.
        rmsd_copied: heavy-atom RMSD (Å) after copying experimental torsions onto the best seed.
        rmsd: heavy-atom RMSD (Å) after the Powell refinement.
    """

    mol: Chem.Mol
    graph: MolGraph
    coords: np.ndarray
    rmsd_copied: float
    rmsd: float


def match_conformer(
    mol_exp: Chem.Mol, *, num_seeds: int = 4, seed: int = 1, powell_maxfev: int = 400
) -> MatchedConformer:
    """Match the experimental heavy-atom conformation of ``mol_exp`` with ETKDG local structure.

    Args:
        mol_exp: heavy-atom molecule whose conformer 0 is the experimental structure (Å), stereo assigned.
        num_seeds: ETKDG embeddings tried (the best after torsion copying is refined).
        seed: nonzero RDKit seed.
        powell_maxfev: budget of RMSD evaluations for the Powell refinement.
    """
    mol_h = Chem.AddHs(mol_exp)  # heavy atoms keep their indices 0..N-1
    mol_h.RemoveAllConformers()
    graph = featurize(mol_h)
    heavy = graph.heavy_atoms
    exp = mol_exp.GetConformer().GetPositions()[heavy]
    structures = embed_local_structures(mol_h, num_seeds, seed)[:, heavy]
    tors, masks = graph.torsions, graph.torsion_masks
    target_angles = dihedral_angles(exp, tors) if len(tors) else np.zeros(0)
    best, best_rmsd = None, np.inf
    for xyz in structures:
        cand = set_torsion_angles(xyz, tors, masks, target_angles) if len(tors) else xyz
        r = kabsch_rmsd(cand, exp)
        if r < best_rmsd:
            best, best_rmsd = cand, r
    copied = best_rmsd
    if len(tors) and best_rmsd > 0.05:
        result = minimize(
            lambda d: kabsch_rmsd(apply_torsion_deltas(best, tors, masks, d), exp),
            np.zeros(len(tors)),
            method="Powell",
            options={"maxfev": powell_maxfev, "xtol": 1e-2, "ftol": 1e-3},
        )
        if result.fun < best_rmsd:
            best, best_rmsd = apply_torsion_deltas(best, tors, masks, result.x), float(result.fun)
    return MatchedConformer(mol_h, graph, kabsch_align(best, exp), float(copied), float(best_rmsd))

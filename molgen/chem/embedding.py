"""RDKit ETKDGv3 local structure: the bond lengths, angles and ring conformations that torsional
diffusion keeps fixed, for sampling and for conformer matching alike."""

from __future__ import annotations

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdDistGeom


def embed_local_structures(
    mol_h: Chem.Mol, num: int, seed: int, timeout_s: int = 20, torsion_preferences: bool = True
) -> np.ndarray:
    """ETKDGv3 embeddings of ``mol_h`` (with Hs): ``(k, n_atoms, 3)`` Å, ``k <= num``.

    ``torsion_preferences=False`` drops ETKDG's experimental torsion-angle terms (KDG with ETKDGv3's
    basic knowledge: planar aromatic rings, sp2 centres; about 25 % faster): torsional diffusion redraws
    every rotatable torsion anyway, so those terms only shape ring torsions and non-rotatable bonds.

    Raises:
        ValueError: if ``seed`` is 0 (RDKit then returns identical conformers) or nothing embeds.
    """
    if seed == 0:
        raise ValueError("seed 0 makes RDKit return identical conformers; use a nonzero seed")
    mol_h = Chem.Mol(mol_h)  # embed into a copy: the caller's molecule keeps its conformers
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = int(seed)
    params.numThreads = 1
    params.useExpTorsionAnglePrefs = bool(torsion_preferences)
    params.timeout = timeout_s
    ids = _embedded_ids(mol_h, rdDistGeom.EmbedMultipleConfs(mol_h, numConfs=num, params=params))
    if not ids:  # nothing embedded, or RDKit's timeout struck (it then returns [-1])
        params.useRandomCoords = True
        ids = _embedded_ids(mol_h, rdDistGeom.EmbedMultipleConfs(mol_h, numConfs=num, params=params))
    if not ids:
        raise ValueError(f"ETKDG could not embed the molecule (within {timeout_s} s per attempt)")
    return np.stack([mol_h.GetConformer(i).GetPositions() for i in ids])


def _embedded_ids(mol_h: Chem.Mol, ids) -> list[int]:
    """The ids returned by ``EmbedMultipleConfs`` that name conformers present on ``mol_h`` (drops -1)."""
    present = {c.GetId() for c in mol_h.GetConformers()}
    return [int(i) for i in ids if int(i) in present]

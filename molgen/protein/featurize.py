"""Proteins as molecules for torsional diffusion: an RDKit molecule of a structure, and its named torsions.

The protein model is molgen's torsion model (:mod:`molgen.models.torsion_denoiser`): it reads the
heavy-atom graph of an RDKit molecule and moves atoms only by rotations about rotatable bonds, so bond
lengths and angles stay those of the input structure. Here a protein becomes that molecule:

* :func:`protein_mol` writes one frame as PDB text (:func:`molgen.protein.io.pdb_text`, Biopython) and reads it with RDKit's PDB reader, whose residue
  templates give the bond orders of the standard amino acids and caps; hydrogens are those of the input
  (all explicit): an atom RDKit would give an implicit hydrogen is charged instead (a carboxylate oxygen
  without its hydrogen is O-, a lysine N with four neighbours N+), so the molecule's protonation state is
  the structure's. Atom ``i`` of the molecule is atom ``i`` of the topology.
* :func:`torsion_names` names each rotatable torsion of :func:`molgen.chem.torsions.rotatable_torsions`
  (``phi``, ``psi``, ``omega``, ``chi1`` ... with its residue) for reports; the torsions themselves and the
  atoms each one moves are the small-molecule definitions, unchanged (the smaller side of the chain moves).

Positions: mdtraj's nm in, RDKit's Å in the molecule's conformer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rdkit import Chem

from molgen.errors import InputError

__all__ = ["protein_mol", "torsion_names"]


def protein_mol(frame: Any) -> Chem.Mol:
    """The RDKit molecule (explicit hydrogens, one conformer in Å) of the first frame of an ``mdtraj.Trajectory``.

    Raises:
        InputError: RDKit cannot build a sane molecule of it (the message says why).
    """
    from molgen.protein.io import pdb_text

    block = pdb_text(frame[0])
    mol = Chem.MolFromPDBBlock(block, removeHs=False, sanitize=False, proximityBonding=True)
    if mol is None or mol.GetNumAtoms() != frame.n_atoms:
        raise InputError(f"RDKit cannot read the structure ({frame.n_atoms} atoms, "
                         f"{0 if mol is None else mol.GetNumAtoms()} read)")
    mol = _charge_missing_hydrogens(mol)
    try:
        Chem.SanitizeMol(mol)
    except Exception as exc:  # noqa: BLE001 - RDKit raises several sanitisation errors
        raise InputError(f"the structure is not a sane molecule for RDKit: {exc}") from None
    if len(Chem.GetMolFrags(mol)) != frame.topology.n_chains:
        frags = len(Chem.GetMolFrags(mol))
        raise InputError(f"the structure falls into {frags} fragments for {frame.topology.n_chains} chain(s): "
                         "a broken chain or a missing atom")
    return mol


_DEFAULT_VALENCE = {6: 4, 7: 3, 8: 2, 16: 2}


def _valence(atom: Chem.Atom) -> int:
    return int(round(sum(b.GetBondTypeAsDouble() for b in atom.GetBonds())))


def _complete_carbonyls(rw: Chem.RWMol) -> None:
    """Carbonyls outside RDKit's residue templates (e.g. CHARMM's acetyl cap CY/OY, read by proximity as single
    bonds): a three-coordinate carbon one bond short with a one-coordinate, singly bonded oxygen gets C=O."""
    for atom in rw.GetAtoms():
        if atom.GetAtomicNum() != 6 or atom.GetDegree() != 3 or _valence(atom) != 3:
            continue
        for bond in atom.GetBonds():
            other = bond.GetOtherAtom(atom)
            if other.GetAtomicNum() == 8 and other.GetDegree() == 1 and bond.GetBondType() == Chem.BondType.SINGLE:
                bond.SetBondType(Chem.BondType.DOUBLE)
                break


def _charge_missing_hydrogens(mol: Chem.Mol) -> Chem.Mol:
    """Explicit hydrogens only: an atom short of its default valence gets the matching negative charge, one
    over it (ammonium, guanidinium) a positive one."""
    rw = Chem.RWMol(mol)
    _complete_carbonyls(rw)
    rw.UpdatePropertyCache(strict=False)
    for atom in rw.GetAtoms():
        atom.SetNoImplicit(True)
        atom.SetNumExplicitHs(0)
        z = atom.GetAtomicNum()
        if z not in _DEFAULT_VALENCE or atom.GetFormalCharge() != 0:
            continue
        diff = _valence(atom) - _DEFAULT_VALENCE[z]
        if diff != 0 and z in (7, 8, 16):
            atom.SetFormalCharge(int(np.sign(diff)))
    return rw.GetMol()


_CHI_ATOMS = ("CB", "CG", "CG1", "OG", "OG1", "SG", "CD", "CD1", "SD", "OD1", "ND1", "CE", "NE", "OE1", "NE1",
              "CZ", "NZ")


def torsion_names(topology: Any, torsions: np.ndarray) -> list[str]:
    """A name for each torsion ``(a, u, v, b)`` (atom indices of the topology): ``"ALA2 phi"`` for N-Cα,
    ``psi`` for Cα-C, ``omega`` for C-N(i+1), ``chi<k>`` for the k-th side-chain bond from Cα, else the two
    atom names."""
    atoms = list(topology.atoms)
    out = []
    for _, u, v, _ in np.asarray(torsions, dtype=np.int64):
        a, b = atoms[int(u)], atoms[int(v)]
        names = {a.name, b.name}
        res = a.residue if a.residue.index <= b.residue.index else b.residue
        label = f"{res.name}{res.resSeq}"
        if a.residue.index != b.residue.index and names == {"C", "N"}:
            out.append(f"{label} omega")
        elif names == {"N", "CA"}:
            out.append(f"{label} phi")
        elif names == {"CA", "C"}:
            out.append(f"{label} psi")
        elif names <= {"CA", *_CHI_ATOMS} and a.residue.index == b.residue.index:
            depth = max(_chi_depth(a.name), _chi_depth(b.name))
            out.append(f"{label} chi{depth}")
        else:
            out.append(f"{label} {a.name}-{b.name}")
    return out


def _chi_depth(name: str) -> int:
    """Position along the side chain: CA 0, B 1, G 2, D 3, E 4, Z 5 (the bond to it is chi<depth>)."""
    return {"A": 0, "B": 1, "G": 2, "D": 3, "E": 4, "Z": 5}.get(name[1:2], 0) if len(name) > 1 else 0

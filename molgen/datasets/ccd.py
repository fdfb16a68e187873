"""Ligands of the PDB Chemical Component Dictionary (CCD) with their experimental conformations.

The CCD shipped in biotite (``biotite.structure.info.ccd.get_ccd()``) lists, for each chemical
component, its atoms, bonds and the "model" coordinates (``model_Cartn_*``) taken from one experimental
PDB entry (``pdbx_model_coordinates_db_code``). We keep non-polymer components whose heavy atoms all have
model coordinates and which RDKit sanitizes, build an RDKit molecule with the experimental heavy-atom
conformation, assign stereochemistry from those coordinates, and tag each with its InChIKey, split and
held-out status (:mod:`molgen.datasets.split`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from rdkit import Chem, RDLogger
from rdkit.Geometry import Point3D

from molgen.datasets.split import inchikey_block, is_heldout, split_of

_BOND_ORDERS = {
    "SING": Chem.BondType.SINGLE,
    "DOUB": Chem.BondType.DOUBLE,
    "TRIP": Chem.BondType.TRIPLE,
    "QUAD": Chem.BondType.QUADRUPLE,
}


@dataclass
class CCDLigand:
    """One CCD component: ``mol`` holds heavy atoms only, with the experimental conformer (Å)."""

    ccd_id: str
    pdb_entry: str
    mol: Chem.Mol
    inchikey: str
    block: str
    split: str


def _column(category, name: str) -> np.ndarray:
    return category[name].as_array()


def _masked(category, name: str) -> np.ndarray:
    """Boolean mask of entries that are present (not '?' or '.') in a BinaryCIF column."""
    col = category[name]
    mask = col.mask
    if mask is None:
        return np.ones(len(col.as_array()), dtype=bool)
    return mask.array == 0


def iter_ccd_components(ccd=None) -> Iterator[tuple[str, str, dict, dict]]:
    """Yield ``(ccd_id, pdb_entry, atoms, bonds)`` for every non-polymer component with model coordinates.

    ``atoms`` holds arrays ``atom_id, element, charge, xyz (n,3), has_xyz``; ``bonds`` holds
    ``atom_id_1, atom_id_2, order``.
    """
    if ccd is None:
        from biotite.structure.info.ccd import get_ccd

        ccd = get_ccd()
    comp = ccd["chem_comp"]
    comp_ids = _column(comp, "id")
    comp_type = np.char.lower(_column(comp, "type").astype(str))
    missing_flag = _column(comp, "pdbx_model_coordinates_missing_flag").astype(str)
    db_code = _column(comp, "pdbx_model_coordinates_db_code").astype(str)
    keep = {
        cid: code
        for cid, typ, miss, code in zip(comp_ids, comp_type, missing_flag, db_code)
        if typ == "non-polymer" and miss != "Y"
    }

    atoms = ccd["chem_comp_atom"]
    a_comp = _column(atoms, "comp_id")
    a_id = _column(atoms, "atom_id")
    a_el = _column(atoms, "type_symbol")
    a_charge_raw = _column(atoms, "charge")
    a_xyz = np.stack([_column(atoms, f"model_Cartn_{k}") for k in "xyz"], axis=1).astype(np.float64)
    a_has = _masked(atoms, "model_Cartn_x") & _masked(atoms, "model_Cartn_y") & _masked(atoms, "model_Cartn_z")
    a_charge = np.array([int(c) if str(c).lstrip("-+").isdigit() else 0 for c in a_charge_raw])

    bonds = ccd["chem_comp_bond"]
    b_comp = _column(bonds, "comp_id")
    b_1 = _column(bonds, "atom_id_1")
    b_2 = _column(bonds, "atom_id_2")
    b_order = _column(bonds, "value_order").astype(str)

    def runs(comp_col: np.ndarray) -> dict[str, tuple[int, int]]:
        change = np.flatnonzero(comp_col[1:] != comp_col[:-1]) + 1
        starts = np.concatenate([[0], change])
        ends = np.concatenate([change, [len(comp_col)]])
        return {comp_col[s]: (s, e) for s, e in zip(starts, ends)}

    atom_runs = runs(a_comp)
    bond_runs = runs(b_comp)
    for cid, code in keep.items():
        if cid not in atom_runs:
            continue
        s, e = atom_runs[cid]
        atom_data = {
            "atom_id": a_id[s:e],
            "element": a_el[s:e],
            "charge": a_charge[s:e],
            "xyz": a_xyz[s:e],
            "has_xyz": a_has[s:e],
        }
        if cid in bond_runs:
            bs, be = bond_runs[cid]
            bond_data = {"atom_id_1": b_1[bs:be], "atom_id_2": b_2[bs:be], "order": b_order[bs:be]}
        else:
            bond_data = {"atom_id_1": [], "atom_id_2": [], "order": []}
        yield cid, code, atom_data, bond_data


def _element_symbol(raw: str) -> str:
    raw = raw.strip()
    return raw[0].upper() + raw[1:].lower() if raw else raw


def build_ligand_mol(atoms: dict, bonds: dict) -> Chem.Mol:
    """Build a sanitized heavy-atom RDKit molecule with the experimental conformer.

    Raises:
        ValueError: a heavy atom lacks coordinates, an element or bond order is unknown, or RDKit
            cannot sanitize the molecule.
    """
    rw = Chem.RWMol()
    index = {}
    for atom_id, el, charge in zip(atoms["atom_id"], atoms["element"], atoms["charge"]):
        atom = Chem.Atom(_element_symbol(str(el)))
        atom.SetFormalCharge(int(charge))
        atom.SetNoImplicit(True)
        index[atom_id] = rw.AddAtom(atom)
    for a1, a2, order in zip(bonds["atom_id_1"], bonds["atom_id_2"], bonds["order"]):
        if order.upper() not in _BOND_ORDERS:
            raise ValueError(f"unknown bond order {order}")
        rw.AddBond(index[a1], index[a2], _BOND_ORDERS[order.upper()])
    mol = rw.GetMol()
    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    if not np.all(atoms["has_xyz"][heavy]):
        raise ValueError("heavy atoms without experimental coordinates")
    conf = Chem.Conformer(mol.GetNumAtoms())
    for i, (x, y, z) in enumerate(atoms["xyz"]):
        conf.SetAtomPosition(i, Point3D(float(x), float(y), float(z)))
    mol.AddConformer(conf, assignId=True)
    Chem.SanitizeMol(mol)
    # hydrogens carry no reliable experimental coordinates: drop them, keeping their count implicit
    heavy_mol = Chem.RemoveHs(mol, sanitize=False)
    for atom in heavy_mol.GetAtoms():
        atom.SetNoImplicit(False)
    Chem.SanitizeMol(heavy_mol)
    Chem.AssignStereochemistryFrom3D(heavy_mol)
    return heavy_mol


def load_ccd_ligands(
    *, min_heavy_atoms: int = 2, max_heavy_atoms: int = 100, include_heldout: bool = False
) -> Iterator[CCDLigand | tuple[str, str]]:
    """Yield a :class:`CCDLigand` per usable CCD component, or ``(ccd_id, reason)`` for a rejected one.

    Held-out molecules (:func:`molgen.datasets.split.is_heldout`) are rejected with reason ``heldout``
    unless ``include_heldout`` is set (never set it when building anything used for training,
    validation, tuning or selection).
    """
    RDLogger.DisableLog("rdApp.*")
    for cid, code, atoms, bonds in iter_ccd_components():
        try:
            mol = build_ligand_mol(atoms, bonds)
        except Exception as exc:  # noqa: BLE001 - one bad component must not stop the build
            yield cid, f"rdkit: {str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__}"
            continue
        n_heavy = mol.GetNumAtoms()
        if not min_heavy_atoms <= n_heavy <= max_heavy_atoms:
            yield cid, "size"
            continue
        if len(Chem.GetMolFrags(mol)) != 1:
            yield cid, "fragments"
            continue
        inchikey = Chem.MolToInchiKey(mol)
        if not inchikey:
            yield cid, "inchikey"
            continue
        block = inchikey_block(inchikey)
        if is_heldout(block) and not include_heldout:
            yield cid, "heldout"
            continue
        mol.SetProp("_Name", cid)
        yield CCDLigand(cid, code, mol, inchikey, block, split_of(block))

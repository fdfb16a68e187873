"""Hand-made benchmark references shared by the bench tests (no CCD parsing)."""

from __future__ import annotations

from rdkit import Chem
from rdkit.Chem import rdDistGeom

from molgen.bench.references import Reference

SMILES = {
    "IBP": "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O",  # ibuprofen
    "BEZ": "OC(=O)c1ccccc1",  # benzoic acid
    "TYL": "CC(=O)Nc1ccc(O)cc1",  # paracetamol
}


def references() -> list[Reference]:
    """One ETKDG conformer per molecule of :data:`SMILES` as the "experimental" one, atoms in
    reverse order (a different order than the SMILES the methods get)."""
    refs = []
    for i, (cid, smi) in enumerate(SMILES.items()):
        mol = Chem.AddHs(Chem.MolFromSmiles(smi))
        assert rdDistGeom.EmbedMolecule(mol, randomSeed=100 + i) == 0
        heavy = Chem.RemoveHs(mol)
        heavy = Chem.RenumberAtoms(heavy, list(range(heavy.GetNumAtoms()))[::-1])
        Chem.AssignStereochemistryFrom3D(heavy)
        refs.append(Reference.from_mol(cid, heavy, pdb_entry="1ABC"))
    return refs

"""Molecule input and conformer output in one import: :mod:`molgen.chem.readers` (SMILES, CSV, SDF
records, streamed) and :mod:`molgen.chem.writers` (SDF, SDF.gz, XYZ, PDB, written atomically)."""

from molgen.atomic import open_atomic
from molgen.chem.readers import (
    CSV_SUFFIXES,
    SDF_SUFFIXES,
    SMILES_SUFFIXES,
    MoleculeRecord,
    RawRecord,
    iter_raw_records,
    parse_raw_record,
    parse_smiles,
    prepare_molecule,
    read_conformers_sdf,
    read_molecules,
)
from molgen.chem.writers import (
    CONF_PROP_ORDER,
    OUTPUT_FORMATS,
    ConformerWriter,
    format_conformers,
    output_format,
)

__all__ = [
    "CONF_PROP_ORDER",
    "CSV_SUFFIXES",
    "OUTPUT_FORMATS",
    "SDF_SUFFIXES",
    "SMILES_SUFFIXES",
    "ConformerWriter",
    "MoleculeRecord",
    "RawRecord",
    "format_conformers",
    "iter_raw_records",
    "open_atomic",
    "output_format",
    "parse_raw_record",
    "parse_smiles",
    "prepare_molecule",
    "read_conformers_sdf",
    "read_molecules",
]

"""Reading molecules and writing conformers.

Readers turn a SMILES string or a file (``.smi``/``.smiles``/``.txt``, ``.csv``/``.tsv``,
``.sdf``/``.sd``, each optionally ``.gz``-compressed) into a stream of
:class:`MoleculeRecord`. A record that cannot be parsed is *not* an exception: it comes
back with ``mol=None`` and an ``error`` naming the line and the reason, so batch jobs can
log it and go on. Problems with the input as a whole (missing file, missing CSV column,
empty file) raise :class:`~molgen.errors.InputError` when :func:`read_molecules` is called.

Batch jobs read :func:`iter_raw_records` instead: the same records, unparsed (name, source and
text only), so that a shard or a resumed run parses only the molecules it will generate, in its
worker processes (:func:`parse_raw_record`). Writing is :mod:`molgen.chem.writers`.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rdkit import Chem, rdBase

from molgen.errors import InputError

__all__ = [
    "CSV_SUFFIXES",
    "SDF_SUFFIXES",
    "SMILES_SUFFIXES",
    "MoleculeRecord",
    "RawRecord",
    "iter_raw_records",
    "parse_raw_record",
    "parse_smiles",
    "prepare_molecule",
    "read_conformers_sdf",
    "read_molecules",
]

SMILES_SUFFIXES = (".smi", ".smiles", ".txt")
CSV_SUFFIXES = (".csv", ".tsv")
SDF_SUFFIXES = (".sdf", ".sd")


_SMILES_HEADER_TOKENS = {"smiles", "smi", "canonical_smiles", "isomeric_smiles"}
_LOG_TIMESTAMP = re.compile(r"^\[\d\d:\d\d:\d\d\]\s?")


@dataclass
class MoleculeRecord:
    """One input molecule.

    Attributes:
        name: molecule name (the SMILES for a single SMILES input, the name column / SDF
            title when present, ``mol_<index>`` otherwise; ``index`` is 1-based).
        source: where it came from: ``<smiles>``, ``ligands.smi:12`` (file:line; for SDF the
            line where the record starts).
        mol: the prepared molecule (sanitized, stereo perceived, explicit hydrogens,
            ``_Name`` set), or ``None`` when it could not be parsed.
        error: why ``mol`` is ``None`` (names the line/ID and the reason), else ``None``.
        raw: the input text of the record (the SMILES as given; for SDF the SMILES of the
            parsed molecule, or ``record <k>`` when it did not parse).
    """

    name: str
    source: str
    mol: Chem.Mol | None
    error: str | None
    raw: str | None = None

    @property
    def ok(self) -> bool:
        """True when the record holds a molecule."""
        return self.mol is not None


@dataclass(frozen=True)
class RawRecord:
    """One input record before parsing: what a batch job needs to shard, skip or report it.

    Attributes:
        name: molecule ID (name column / SDF title / ``mol_<index>``; the SMILES for a single SMILES).
        source: ``file:line`` (``<smiles>`` for a SMILES given on the command line).
        kind: ``"smiles"``, ``"sdf"`` (``text`` is the mol block), ``"single"`` (a command-line SMILES)
            or ``"error"`` (``text`` is the reason, e.g. an empty SMILES cell).
        text: the SMILES, the SDF record, or the error.
        index: 1-based index of the record in its input.
    """

    name: str
    source: str
    kind: str
    text: str
    index: int = 1


# --------------------------------------------------------------------------- parsing


class _RDKitFailure(Exception):
    """Internal: an RDKit parse/sanitize failure with a cleaned-up reason."""


@contextmanager
def _captured_rdkit_log() -> Iterator[list[str]]:
    """Capture RDKit's error log inside the block; yields a list filled on exit."""
    out: list[str] = []
    with rdBase.CaptureErrorLog() as capture:
        yield out
    out.extend(_clean_log(capture.messages))


def _clean_log(messages: str) -> list[str]:
    """Strip timestamps, ASCII-art pointers and duplicates from RDKit log text."""
    lines: list[str] = []
    for line in messages.splitlines():
        line = _LOG_TIMESTAMP.sub("", line).strip()
        line = line.removeprefix("ERROR: ").removeprefix("SMILES Parse Error: ")
        line = " ".join(line.split()).rstrip(":")
        if not line or set(line) <= {"~", "^", " "} or line in lines:
            continue
        if line.startswith(("moving to the beginning", "Failed parsing SMILES")):
            continue
        lines.append(line)
    return lines


def _reason(lines: list[str], fallback: str) -> str:
    """Join cleaned log lines into a one-line reason."""
    # Drop a bare echo of the input (RDKit prints the SMILES above the ``^`` pointer).
    kept = [ln for ln in lines if ":" in ln or " " in ln] or lines
    return "; ".join(kept) if kept else fallback


def _sanitize_or_raise(mol: Chem.Mol) -> None:
    """Sanitize ``mol`` in place; raise _RDKitFailure with RDKit's reason on failure."""
    with _captured_rdkit_log():  # the exception text is the reason; keep stderr quiet
        try:
            Chem.SanitizeMol(mol)
        except Exception as exc:  # noqa: BLE001 - RDKit raises several sanitization errors
            raise _RDKitFailure(" ".join(str(exc).split()) or type(exc).__name__) from None


def _parse_smiles_raw(smiles: str) -> Chem.Mol:
    """SMILES -> sanitized Mol without hydrogens; raises _RDKitFailure."""
    with _captured_rdkit_log() as log:
        mol = Chem.MolFromSmiles(smiles, sanitize=False)
    if mol is None:
        raise _RDKitFailure(_reason(log, "invalid SMILES"))
    if mol.GetNumAtoms() == 0:
        raise _RDKitFailure("empty molecule")
    _sanitize_or_raise(mol)
    return mol


def _finish(mol: Chem.Mol, name: str, *, from_3d: bool = False) -> Chem.Mol:
    """Perceive stereo, add explicit hydrogens and set ``_Name`` (returns a new Mol)."""
    if from_3d:
        Chem.AssignStereochemistryFrom3D(mol)
    else:
        Chem.AssignStereochemistry(mol, cleanIt=True, force=True)
    mol = Chem.AddHs(mol, addCoords=mol.GetNumConformers() > 0)
    mol.SetProp("_Name", name)
    return mol


def parse_smiles(smiles: str, name: str | None = None) -> Chem.Mol:
    """Parse one SMILES into a prepared Mol (sanitized, stereo perceived, explicit Hs).

    Args:
        smiles: the SMILES string.
        name: stored as ``_Name``; defaults to the SMILES itself.

    Raises:
        InputError: the SMILES cannot be parsed or sanitized (message gives RDKit's reason).
    """
    try:
        mol = _parse_smiles_raw(smiles)
    except _RDKitFailure as exc:
        raise InputError(f"invalid SMILES {smiles!r}: {exc}") from None
    return _finish(mol, smiles if name is None else name)


def prepare_molecule(mol: Chem.Mol, name: str | None = None) -> Chem.Mol:
    """Return a prepared copy of an RDKit Mol: sanitized, stereo perceived, explicit Hs.

    Existing stereo tags are kept (stereo is *not* re-derived from coordinates; the SDF
    reader does that for 3D input). Hydrogens that are missing are added (with
    coordinates when the Mol has conformers).

    Args:
        mol: any RDKit Mol.
        name: stored as ``_Name``; defaults to the Mol's ``_Name`` or its SMILES.

    Raises:
        InputError: ``mol`` is None/empty or cannot be sanitized.
    """
    if mol is None or not isinstance(mol, Chem.Mol):
        raise InputError(f"expected an RDKit Mol or a SMILES string, got {type(mol).__name__}")
    if mol.GetNumAtoms() == 0:
        raise InputError("the molecule has no atoms")
    mol = Chem.Mol(mol)
    label = name or (mol.GetProp("_Name") if mol.HasProp("_Name") else "") or "molecule"
    try:
        _sanitize_or_raise(mol)
    except _RDKitFailure as exc:
        raise InputError(f"cannot sanitize {label!r}: {exc}") from None
    if name is None:
        name = mol.GetProp("_Name") if mol.HasProp("_Name") else ""
        name = name or Chem.MolToSmiles(Chem.RemoveHs(mol, sanitize=False))
    return _finish(mol, name)


# --------------------------------------------------------------------------- readers


def _base_suffix(path: Path) -> tuple[str, bool]:
    """Lower-case format suffix with a trailing ``.gz`` removed, and whether gzipped."""
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    if gz:
        suffixes = suffixes[:-1]
    return (suffixes[-1] if suffixes else ""), gz


def _open_text(path: Path, gz: bool, newline: str | None = None) -> IO[str]:
    if gz:
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline=newline)
    return open(path, encoding="utf-8", errors="replace", newline=newline)


def _smiles_record(smiles: str, name: str, source: str) -> MoleculeRecord:
    try:
        mol = _finish(_parse_smiles_raw(smiles), name)
    except _RDKitFailure as exc:
        return MoleculeRecord(name, source, None, f"{source} ({name}): {exc}", smiles)
    return MoleculeRecord(name, source, mol, None, smiles)


def _iter_smiles_file(path: Path, gz: bool) -> Iterator[RawRecord]:
    index = 0
    with _open_text(path, gz) as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 1)
            smiles = parts[0]
            if index == 0 and smiles.lower() in _SMILES_HEADER_TOKENS:
                continue  # a header line such as "smiles name"
            index += 1
            name = parts[1].strip() if len(parts) > 1 else f"mol_{index}"
            yield RawRecord(name, f"{path.name}:{lineno}", "smiles", smiles, index)


def _resolve_column(wanted: str, fieldnames: list[str], path: Path, option: str) -> str:
    if wanted in fieldnames:
        return wanted
    folded = [f for f in fieldnames if f.strip().lower() == wanted.strip().lower()]
    if len(folded) == 1:
        return folded[0]
    present = ", ".join(repr(f) for f in fieldnames) or "none"
    raise InputError(f"{path}: no column {wanted!r} ({option}); columns present: {present}")


def _iter_csv_file(
    path: Path, gz: bool, smiles_col: str, id_col: str | None, delimiter: str
) -> Iterator[RawRecord]:
    with _open_text(path, gz, newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        fieldnames = list(reader.fieldnames or [])
        if not fieldnames:
            raise InputError(f"{path} contains no molecules (empty file, no header line)")
        smi_key = _resolve_column(smiles_col, fieldnames, path, "--smiles-col")
        id_key = _resolve_column(id_col, fieldnames, path, "--id-col") if id_col else None
        index = 0
        for row in reader:
            values = [v for v in row.values() if isinstance(v, str)]
            if not any(v.strip() for v in values):
                continue  # blank line
            index += 1
            source = f"{path.name}:{reader.line_num}"
            name = (row.get(id_key) or "").strip() if id_key else ""
            name = name or f"mol_{index}"
            smiles = (row.get(smi_key) or "").strip()
            if not smiles:
                yield RawRecord(name, source, "error", "empty SMILES", index)
                continue
            yield RawRecord(name, source, "smiles", smiles, index)


def _iter_sdf_blocks(fh: IO[str]) -> Iterator[tuple[int, str]]:
    """Yield (first line number, text) of each ``$$$$``-terminated SDF record."""
    lines: list[str] = []
    start = 1
    for lineno, line in enumerate(fh, start=1):
        if not lines:
            start = lineno
        lines.append(line)
        if line.startswith("$$$$"):
            yield start, "".join(lines)
            lines = []
    if any(ln.strip() for ln in lines):  # last record without terminator
        yield start, "".join(lines) + "\n$$$$\n"


def _iter_sdf_file(path: Path, gz: bool) -> Iterator[RawRecord]:
    with _open_text(path, gz) as fh:
        for index, (lineno, block) in enumerate(_iter_sdf_blocks(fh), start=1):
            title = block.split("\n", 1)[0].strip()
            yield RawRecord(title or f"mol_{index}", f"{path.name}:{lineno}", "sdf", block, index)


def _sdf_record(raw: RawRecord) -> MoleculeRecord:
    try:
        mol = _parse_sdf_block(Chem.SDMolSupplier(), raw.text)
    except _RDKitFailure as exc:
        return MoleculeRecord(raw.name, raw.source, None, f"{raw.source} ({raw.name}): {exc}", f"record {raw.index}")
    return MoleculeRecord(raw.name, raw.source, _finish_sdf(mol, raw.name), None, _smiles_of(mol))


def parse_raw_record(raw: RawRecord) -> MoleculeRecord:
    """Parse a :class:`RawRecord` into a :class:`MoleculeRecord` (``mol=None`` with the reason when it
    cannot be parsed; never raises for bad chemistry)."""
    if raw.kind == "smiles":
        return _smiles_record(raw.text, raw.name, raw.source)
    if raw.kind == "sdf":
        return _sdf_record(raw)
    if raw.kind == "single":
        return _single_smiles_record(raw.text)
    text = raw.text if raw.kind == "error" else f"unknown record kind {raw.kind!r}"
    return MoleculeRecord(raw.name, raw.source, None, f"{raw.source} ({raw.name}): {text}", "")


def _parse_sdf_block(supplier: Chem.SDMolSupplier, block: str) -> Chem.Mol:
    """Parse one SDF record (keeping H atoms and data fields); raises _RDKitFailure."""
    with _captured_rdkit_log() as log:
        supplier.SetData(block, sanitize=False, removeHs=False)
        mol = next(iter(supplier), None) if len(supplier) else None
    if mol is None or mol.GetNumAtoms() == 0:
        raise _RDKitFailure(_reason(log, "not a valid mol block" if mol is None else "no atoms"))
    _sanitize_or_raise(Chem.Mol(mol))
    # Parse again with RDKit's own sanitization: it perceives stereo from wedges (2D)
    # or from coordinates (3D) exactly as the mol-file parser does.
    with _captured_rdkit_log():
        supplier.SetData(block, sanitize=True, removeHs=False)
        sane = next(iter(supplier), None)
    return sane if sane is not None else mol


def _finish_sdf(mol: Chem.Mol, name: str) -> Chem.Mol:
    is_3d = mol.GetNumConformers() > 0 and mol.GetConformer().Is3D()
    return _finish(mol, name, from_3d=is_3d)


def _smiles_of(mol: Chem.Mol) -> str:
    try:
        return Chem.MolToSmiles(Chem.RemoveHs(mol, sanitize=False))
    except Exception:  # noqa: BLE001  # pragma: no cover - the SMILES is only informative
        return ""


def _looks_like_file(text: str) -> bool:
    base, _ = _base_suffix(Path(text))
    return base in SMILES_SUFFIXES + CSV_SUFFIXES + SDF_SUFFIXES


def read_molecules(
    source: str | Path, *, smiles_col: str = "smiles", id_col: str | None = None
) -> Iterator[MoleculeRecord]:
    """Read molecules from a SMILES string or a file, one :class:`MoleculeRecord` each.

    ``source`` is a file when it is a :class:`~pathlib.Path` or names an existing path; a
    string with a known file suffix that does not exist is a missing file; anything else
    is parsed as one SMILES (named by the SMILES itself, source ``<smiles>``).

    File formats (by suffix, optionally followed by ``.gz``):

    * ``.smi``/``.smiles``/``.txt``: SMILES then an optional name (rest of the line),
      whitespace separated; ``#`` comments, blank lines and a ``smiles ...`` header skipped.
    * ``.csv``/``.tsv``: SMILES from column ``smiles_col``, names from ``id_col``
      (exact match, else a unique case-insensitive match).
    * ``.sdf``/``.sd``: names from the title line; stereo is taken from the coordinates of
      3D records (``AssignStereochemistryFrom3D``) and from wedges of 2D ones.

    Unnamed molecules are called ``mol_<index>`` (1-based index of the record). Every
    molecule is sanitized, has stereo perceived and explicit hydrogens added. Records that
    fail come back with ``mol=None`` and an ``error`` naming the line and reason.

    Checks on the input as a whole run eagerly, when this function is called, and the
    first record is read then; the rest are read lazily as the iterator is consumed.

    Raises:
        InputError: missing file, unsupported suffix, a missing CSV column, or an input
            that contains no molecules.
    """
    return map(parse_raw_record, iter_raw_records(source, smiles_col=smiles_col, id_col=id_col))


def iter_raw_records(
    source: str | Path, *, smiles_col: str = "smiles", id_col: str | None = None
) -> Iterator[RawRecord]:
    """The records of :func:`read_molecules`, unparsed, read lazily (a stream: the file is never held
    in memory). Input-wide checks run, and the first record is read, when this is called.

    Raises:
        InputError: as :func:`read_molecules`.
    """
    records = _raw_records(source, smiles_col=smiles_col, id_col=id_col)
    try:
        first = next(records)
    except StopIteration:
        raise InputError(f"{source} contains no molecules") from None
    return itertools.chain([first], records)


def _raw_records(
    source: str | Path, *, smiles_col: str, id_col: str | None
) -> Iterator[RawRecord]:
    if isinstance(source, str):
        text = source.strip()
        if not text:
            raise InputError("empty input: give a SMILES string or a file")
        if not os.path.exists(text):
            if _looks_like_file(text):
                raise InputError(f"file not found: {text}")
            return iter([RawRecord(text, "<smiles>", "single", text)])
        source = Path(text)
    path = Path(source)
    if not path.exists():
        raise InputError(f"file not found: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not a molecule file")
    base, gz = _base_suffix(path)
    if base in SMILES_SUFFIXES:
        return _iter_smiles_file(path, gz)
    if base in CSV_SUFFIXES:
        delimiter = "\t" if base == ".tsv" else ","
        return _iter_csv_file(path, gz, smiles_col, id_col, delimiter)
    if base in SDF_SUFFIXES:
        return _iter_sdf_file(path, gz)
    known = ", ".join(SMILES_SUFFIXES + CSV_SUFFIXES + SDF_SUFFIXES)
    raise InputError(
        f"{path}: unsupported input format {base or '(no suffix)'!r}; use one of {known}"
    )


def _single_smiles_record(smiles: str) -> MoleculeRecord:
    try:
        mol = _finish(_parse_smiles_raw(smiles), smiles)
    except _RDKitFailure as exc:
        error = f"invalid SMILES {smiles!r} (and no file of that name exists): {exc}"
        return MoleculeRecord(smiles, "<smiles>", None, error, smiles)
    return MoleculeRecord(smiles, "<smiles>", mol, None, smiles)


# --------------------------------------------------------------------------- reading back


def read_conformers_sdf(path: str | Path) -> list[Chem.Mol]:
    """Read an SDF written by :class:`ConformerWriter` back into multi-conformer Mols.

    Contiguous records with the same title and the same atoms become one Mol (hydrogens
    kept) whose conformers carry the records' SD tags as conformer properties (numbers
    converted to int/float). Mainly for round-trip tests and notebooks.

    Raises:
        InputError: the file does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"file not found: {path}")
    out: list[Chem.Mol] = []
    key: tuple[str, str] | None = None
    supplier = Chem.SDMolSupplier(str(path), sanitize=True, removeHs=False)
    for rec in supplier:
        if rec is None:
            continue
        title = rec.GetProp("_Name") if rec.HasProp("_Name") else ""
        rec_key = (title, Chem.MolToSmiles(rec))
        props = rec.GetPropsAsDict(includePrivate=False, includeComputed=False)
        conf = Chem.Conformer(rec.GetConformer())
        for k, v in props.items():
            _set_conf_prop(conf, k, v)
        if rec_key != key:
            base = Chem.Mol(rec)
            base.RemoveAllConformers()
            for k in props:
                base.ClearProp(k)
            out.append(base)
            key = rec_key
        out[-1].AddConformer(conf, assignId=True)
    return out


def _set_conf_prop(conf: Chem.Conformer, key: str, value: Any) -> None:
    if isinstance(value, bool):
        conf.SetBoolProp(key, value)
    elif isinstance(value, int):
        conf.SetIntProp(key, value)
    elif isinstance(value, float):
        conf.SetDoubleProp(key, value)
    else:
        conf.SetProp(key, str(value))

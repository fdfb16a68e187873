"""Writing conformers: :class:`ConformerWriter` (SDF, optionally gzip-compressed, XYZ, PDB) and
:func:`format_conformers`, the text of one molecule's conformers in a format (batch workers format,
the main process writes).

Output goes through :class:`molgen.atomic.AtomicFile`: a temporary file in the destination folder,
renamed onto the final path only when the writer is closed without error. Coordinates are in Å;
energies stored on conformers are in kcal/mol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rdkit import Chem

from molgen.atomic import AtomicFile
from molgen.errors import InputError

__all__ = ["CONF_PROP_ORDER", "OUTPUT_FORMATS", "ConformerWriter", "format_conformers", "output_format"]

OUTPUT_FORMATS = ("sdf", "xyz", "pdb")

#: Conformer properties written first (in this order) as SD tags; others follow sorted.
CONF_PROP_ORDER = ("conf_id", "seed", "model", "sampler", "steps", "energy", "delta_energy")


def output_format(path: str | Path, fmt: str | None = None) -> tuple[str, bool]:
    """``(format, gzip)`` of an output path: ``out.sdf`` -> ``("sdf", False)``, ``out.sdf.gz`` ->
    ``("sdf", True)``; ``fmt`` overrides the suffix.

    Raises:
        InputError: an unsupported format (only SDF may be gzip-compressed).
    """
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    suffix = (suffixes[-2] if gz and len(suffixes) > 1 else "") if gz else path.suffix.lower()
    chosen = (fmt or suffix).lower().lstrip(".")
    if chosen not in OUTPUT_FORMATS or (gz and chosen != "sdf"):
        what = f"format {fmt!r}" if fmt else f"output suffix {''.join(path.suffixes[-2:]) or '(none)'!r}"
        raise InputError(f"cannot write {path}: unsupported {what}; use .sdf, .sdf.gz, .xyz or .pdb")
    return chosen, gz


def _title(mol: Chem.Mol) -> str:
    name = mol.GetProp("_Name") if mol.HasProp("_Name") else ""
    return " ".join(name.split())  # one line, no tabs


def _ordered_props(conf: Chem.Conformer) -> list[tuple[str, Any]]:
    props = conf.GetPropsAsDict(includePrivate=False, includeComputed=False)
    keys = [k for k in CONF_PROP_ORDER if k in props]
    keys += sorted(k for k in props if k not in CONF_PROP_ORDER)
    return [(k, props[k]) for k in keys]


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.4f}"
    text = str(value)
    return "\n".join(ln for ln in text.splitlines() if ln.strip()) or "."


def _conf_label(conf: Chem.Conformer) -> int:
    return conf.GetIntProp("conf_id") if conf.HasProp("conf_id") else conf.GetId()


class ConformerWriter:
    """Write all conformers of molecules to an ``.sdf``, ``.xyz`` or ``.pdb`` file.

    Use as a context manager::

        with ConformerWriter("out.sdf") as w:
            w.write(mol)          # every conformer of mol

    * SDF: one record per conformer, contiguous per molecule, title = molecule name, SD
      tags = the conformer's properties (``conf_id``, ``seed``, ``model``, ``sampler``,
      ``steps``, ``energy``, ``delta_energy`` first in that order, then the rest sorted;
      floats with 4 decimals; energies in kcal/mol).
    * XYZ: one frame per conformer; comment line ``<name> conf_id=<k>`` (plus ``energy=``
      and ``delta_energy=`` in kcal/mol when set); coordinates in Å.
    * PDB: ``COMPND <name>`` then one ``MODEL`` per conformer (numbered through the file),
      atoms written by RDKit's PDB writer; ``END`` at the end of the file.

    Output goes to a temporary file in the same directory, renamed onto ``path`` by
    :meth:`close` (or a clean ``with`` exit); :meth:`abort` (or an exception in the
    ``with`` block) deletes it, leaving ``path`` untouched.

    Args:
        path: output file.
        fmt: ``"sdf"``, ``"xyz"`` or ``"pdb"``; default from the suffix of ``path``.

    Raises:
        InputError: unknown format or a path that cannot be written (raised on creation).
    """

    def __init__(self, path: str | Path, fmt: str | None = None) -> None:
        self.path = Path(path)
        self.fmt, self.compress = output_format(self.path, fmt)
        self.n_molecules = 0
        self.n_conformers = 0
        self._model_no = 0
        self._file = AtomicFile(self.path, compress=self.compress)

    def __enter__(self) -> ConformerWriter:  # noqa: PYI034
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def write(self, mol: Chem.Mol) -> int:
        """Write every conformer of ``mol``; returns the number of conformers written."""
        confs = mol.GetNumConformers()
        if confs:
            self.write_text(format_conformers(mol, self.fmt, first_model=self._model_no + 1), confs)
        return confs

    def write_text(self, text: str, n_conformers: int) -> None:
        """Append the text of one molecule's ``n_conformers`` conformers, made by
        :func:`format_conformers` in this writer's format (e.g. in a worker process)."""
        if self._file.closed:
            raise ValueError(f"write to closed ConformerWriter({self.path})")
        if not n_conformers:
            return
        self._file.fh.write(text)
        self.n_molecules += 1
        self.n_conformers += n_conformers
        self._model_no += n_conformers

    def close(self) -> None:
        """Finish the file: write any trailer and rename it onto the final path."""
        if self._file.closed:
            return
        if self.fmt == "pdb":
            self._file.fh.write("END\n")
        self._file.commit()

    def abort(self) -> None:
        """Discard everything written; the final path is not created or changed."""
        self._file.abort()


def format_conformers(mol: Chem.Mol, fmt: str = "sdf", *, first_model: int = 1) -> str:
    """The text of every conformer of ``mol`` in ``fmt`` (``sdf``, ``xyz`` or ``pdb``; see
    :class:`ConformerWriter`); PDB models are numbered from ``first_model``."""
    confs = list(mol.GetConformers())
    if fmt == "sdf":
        return _sdf(mol, confs)
    if fmt == "xyz":
        return _xyz(mol, confs)
    if fmt == "pdb":
        return _pdb(mol, confs, first_model)
    raise InputError(f"unsupported output format {fmt!r}; use one of {', '.join(OUTPUT_FORMATS)}")


def _sdf(mol: Chem.Mol, confs: list[Chem.Conformer]) -> str:
    parts: list[str] = []
    title = _title(mol)
    tmp = Chem.Mol(mol)
    tmp.SetProp("_Name", title)
    for conf in confs:
        parts.append(Chem.MolToMolBlock(tmp, confId=conf.GetId()))
        for key, value in _ordered_props(conf):
            parts.append(f">  <{key}>\n{_format_value(value)}\n\n")
        parts.append("$$$$\n")
    return "".join(parts)


def _xyz(mol: Chem.Mol, confs: list[Chem.Conformer]) -> str:
    symbols = [a.GetSymbol() for a in mol.GetAtoms()]
    title = _title(mol)
    parts: list[str] = []
    for conf in confs:
        comment = f"{title} conf_id={_conf_label(conf)}"
        for key in ("energy", "delta_energy"):
            if conf.HasProp(key):
                comment += f" {key}={conf.GetDoubleProp(key):.4f}"
        parts.append(f"{len(symbols)}\n{comment}\n")
        for sym, (x, y, z) in zip(symbols, conf.GetPositions()):
            parts.append(f"{sym:<2} {x:12.6f} {y:12.6f} {z:12.6f}\n")
    return "".join(parts)


def _pdb(mol: Chem.Mol, confs: list[Chem.Conformer], first_model: int) -> str:
    parts = [f"COMPND    {_title(mol)}\n"]
    for k, conf in enumerate(confs):
        parts.append(f"MODEL     {first_model + k:>4}\n")
        block = Chem.MolToPDBBlock(mol, confId=conf.GetId())
        for line in block.splitlines():
            if line.startswith(("COMPND", "MODEL", "ENDMDL")) or line.strip() == "END":
                continue
            parts.append(line + "\n")
        parts.append("ENDMDL\n")
    return "".join(parts)


def write_molecules_sdf(mols: list[Chem.Mol], path: str | Path, *, name_prefix: str = "molgen") -> Path:
    """Write molecules (one conformer each, Å) with their properties as SD tags to ``path`` (``.sdf`` or
    ``.sdf.gz``), atomically: a temporary file renamed onto ``path`` when complete.

    Molecules without a ``_Name`` are titled ``<name_prefix>_<i>`` (1-based).

    Raises:
        InputError: ``path`` is not an SDF path or cannot be written.
    """
    from molgen.atomic import open_atomic

    fmt, compress = output_format(path)
    if fmt != "sdf":
        raise InputError(f"{path}: molecules are written as SDF (.sdf or .sdf.gz)")
    path = Path(path)
    with open_atomic(path, compress=compress) as fh:
        for i, mol in enumerate(mols, 1):
            block = Chem.MolToMolBlock(mol, kekulize=True)
            title = mol.GetProp("_Name") if mol.HasProp("_Name") and mol.GetProp("_Name") else f"{name_prefix}_{i}"
            fh.write(title + block[block.index("\n"):])
            for key, value in mol.GetPropsAsDict(includePrivate=False, includeComputed=False).items():
                fh.write(f">  <{key}>\n{_format_value(value)}\n\n")
            fh.write("$$$$\n")
    return path

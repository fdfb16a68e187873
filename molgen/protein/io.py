"""Protein structure I/O: topology and frames in with mdtraj, ensembles out through Biopython and mdtraj.

Coordinates inside molgen's protein side are ``mdtraj.Trajectory`` objects (nm, mdtraj's unit); the writers
convert to Å where the format wants it (PDB, mmCIF). Writers:

* ``.pdb``: multi-model PDB through Biopython's ``PDBIO`` (one ``MODEL`` per frame);
* ``.cif`` / ``.mmcif``: multi-model mmCIF through Biopython's ``MMCIFIO`` (no 99,999-atom or 9,999-residue
  limit: the format for large systems);
* ``.xtc`` / ``.dcd``: trajectories through mdtraj, with the topology written beside them as
  ``<name>.top.pdb`` (one model), since neither format stores atoms or residues.

Every file is written under a temporary name in the same folder and renamed when complete, so an existing
file is never left half-written. Hydrogens are written exactly as the trajectory holds them; an atom name
that repeats within a residue (which Biopython refuses) gets a suffix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from molgen.atomic import atomic_path
from molgen.errors import InputError

__all__ = [
    "ENSEMBLE_FORMATS",
    "ensemble_format",
    "load_structure",
    "load_trajectory",
    "parse_trajectory_spec",
    "pdb_text",
    "to_biopython",
    "topology_path_for",
    "write_ensemble",
]

#: suffix -> format name of :func:`write_ensemble`
ENSEMBLE_FORMATS = {".pdb": "pdb", ".cif": "mmcif", ".mmcif": "mmcif", ".xtc": "xtc", ".dcd": "dcd"}


def load_structure(path: str | Path) -> Any:
    """A PDB / mmCIF file (every model) as an ``mdtraj.Trajectory``; a clear error for a missing or bad file."""
    import mdtraj as md

    path = Path(path)
    if not path.is_file():
        raise InputError(f"structure {path}: file not found")
    try:
        return md.load(str(path))
    except Exception as exc:  # noqa: BLE001 - mdtraj raises many types for bad files
        raise InputError(f"structure {path}: mdtraj cannot read it ({type(exc).__name__}: {exc})") from None


def parse_trajectory_spec(spec: str | Path) -> tuple[Path, slice]:
    """``FILE`` or ``FILE@start:stop[:step]`` (a frame slice, e.g. ``md.xtc@0:400``, or ``path.dcd@1::2`` for
    every other frame from the second) -> (path, slice)."""
    text = str(spec)
    path, sep, rng = text.rpartition("@") if "@" in text else (text, "", "")
    if not sep:
        return Path(text), slice(None)
    parts = rng.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        start, stop, step = (int(v) if v else None for v in parts + [""] * (3 - len(parts)))
        if step is not None and step < 1:
            raise ValueError
    except ValueError:
        raise InputError(f"trajectory {text!r}: bad frame range; use FILE@start:stop or FILE@start:stop:step "
                         "(step >= 1)") from None
    return Path(path), slice(start, stop, step)


def load_trajectory(top: str | Path, trajs: Sequence[str | Path], *, stride: int = 1) -> Any:
    """Frames of one or more trajectory files (XTC, DCD, ...) on a topology (PDB, prmtop, ...), concatenated.

    A file may be given as ``FILE@start:stop[:step]`` to take those frames only (:func:`parse_trajectory_spec`);
    ``stride`` applies after the slice.

    Raises:
        InputError: a missing file, a file mdtraj cannot read, or a trajectory whose atom count differs
            from the topology's (the message names the file).
    """
    import mdtraj as md

    if stride < 1:
        raise InputError(f"stride={stride}: must be >= 1")
    top_path = Path(top)
    if not top_path.is_file():
        raise InputError(f"topology {top_path}: file not found")
    if not trajs:
        raise InputError("no trajectory file given")
    try:
        topology = md.load_topology(str(top_path))
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"topology {top_path}: mdtraj cannot read it ({type(exc).__name__}: {exc})") from None
    parts = []
    for t in trajs:
        path, frames = parse_trajectory_spec(t)
        if not path.is_file():
            raise InputError(f"trajectory {path}: file not found")
        try:
            traj = md.load(str(path), top=topology)
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"trajectory {path}: cannot read it with topology {top_path} "
                             f"({type(exc).__name__}: {exc})") from None
        parts.append(traj[frames][::stride])
    return parts[0] if len(parts) == 1 else md.join(parts, check_topology=True, discard_overlapping_frames=False)


def to_biopython(traj: Any, structure_id: str = "molgen") -> Any:
    """A Biopython ``Structure`` with one model per frame (coordinates in Å), atoms and residues as in ``traj``."""
    from Bio.PDB.StructureBuilder import StructureBuilder

    top = traj.topology
    builder = StructureBuilder()
    builder.init_structure(structure_id)
    xyz = np.asarray(traj.xyz, dtype=np.float64) * 10.0  # nm -> Å
    chain_ids = _chain_ids(top)
    for f in range(traj.n_frames):
        builder.init_model(f, f + 1)
        for chain, cid in zip(top.chains, chain_ids):
            builder.init_chain(cid)
            builder.init_seg("    ")
            for res in chain.residues:
                builder.init_residue(res.name, _hetero_flag(res), int(res.resSeq), " ")
                atoms = list(res.atoms)
                for atom, name in zip(atoms, _unique_names([a.name for a in atoms])):
                    element = atom.element.symbol.upper() if atom.element is not None else ""
                    builder.init_atom(name, xyz[f, atom.index], 0.0, 1.0, " ", _fullname(name, element),
                                      serial_number=atom.serial or atom.index + 1, element=element)
    return builder.get_structure()


#: terminal caps written as ATOM records, like the amino acids they cap
_CAPS = {"ACE", "NME", "NH2"}


def _hetero_flag(res: Any) -> str:
    """Biopython's hetero field: ``" "`` for amino acids and caps, ``"W"`` for water, ``"H_<name>"`` otherwise."""
    if res.is_protein or res.name in _CAPS:
        return " "
    return "W" if res.is_water else f"H_{res.name}"


def _unique_names(names: list[str]) -> list[str]:
    """Atom names of one residue made unique (a repeated name gets the first free digit or letter suffix that
    fits 4 characters; e.g. mdtraj names both CHARMM's HN and HT1 "H"); unique names are kept."""
    seen: set[str] = set()
    out = []
    for name in names:
        new = name
        if new in seen:
            for suffix in "123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ":
                new = (name[: 4 - len(suffix)] + suffix) if len(name) >= 4 else name + suffix
                if new not in seen and new not in names:
                    break
        seen.add(new)
        out.append(new)
    return out


def _chain_ids(top: Any) -> list[str]:
    ids = []
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    for k, chain in enumerate(top.chains):
        cid = getattr(chain, "chain_id", None)
        ids.append(cid if cid and len(cid) == 1 else letters[k % len(letters)])
    return ids


def _fullname(name: str, element: str) -> str:
    """PDB's 4-character atom name column (one-letter elements start in column 14)."""
    if len(name) >= 4:
        return name[:4]
    return f" {name:<3}" if len(element) == 1 else f"{name:<4}"


def pdb_text(traj: Any) -> str:
    """Every frame of ``traj`` as PDB text (Biopython's ``PDBIO`` of :func:`to_biopython`; Å)."""
    import io as _io

    from Bio.PDB import PDBIO

    writer = PDBIO()
    writer.set_structure(to_biopython(traj))
    buf = _io.StringIO()
    writer.save(buf)
    return buf.getvalue()


def topology_path_for(path: str | Path) -> Path:
    """The topology PDB written beside an XTC / DCD ensemble: ``<name>.top.pdb``."""
    path = Path(path)
    return path.with_name(path.stem + ".top.pdb")


def ensemble_format(path: str | Path) -> str:
    """The format :func:`write_ensemble` writes for ``path`` (by suffix); raises InputError for an unknown one."""
    path = Path(path)
    fmt = ENSEMBLE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"output {path}: unknown format {path.suffix!r}; use one of {sorted(ENSEMBLE_FORMATS)}")
    return fmt


def write_ensemble(traj: Any, path: str | Path) -> list[Path]:
    """Write every frame of ``traj`` to ``path`` in the format of its suffix (:data:`ENSEMBLE_FORMATS`).

    Returns the paths written (XTC / DCD: the trajectory and its topology PDB). Each file appears only when
    complete (temporary name, then rename).
    """
    path = Path(path)
    fmt = ensemble_format(path)
    if traj.n_frames == 0:
        raise InputError(f"output {path}: no structure to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt in ("pdb", "mmcif"):
        from Bio.PDB import MMCIFIO, PDBIO

        if fmt == "pdb" and traj.n_atoms > 99_999:
            raise InputError(f"output {path}: {traj.n_atoms} atoms do not fit the PDB format; write .cif instead")
        io = PDBIO() if fmt == "pdb" else MMCIFIO()
        io.set_structure(to_biopython(traj, path.stem))
        with atomic_path(path, suffix=path.suffix) as tmp:
            io.save(str(tmp))
        return [path]
    top_path = topology_path_for(path)
    with atomic_path(top_path, suffix=".pdb") as tmp_top, atomic_path(path, suffix=path.suffix) as tmp:
        traj[0].save_pdb(str(tmp_top))
        (traj.save_xtc if fmt == "xtc" else traj.save_dcd)(str(tmp))
    return [path, top_path]

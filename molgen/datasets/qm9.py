"""QM9 for de novo 3D molecule diffusion (EDM-style): build, cache and load the three splits.

    python -m molgen.datasets.qm9 [--cache DIR] [--workers N] [--source CSV ...] [--max-molecules N] [--force]

Source
    The ``qm9pack`` package (``pip install molgen[qm9]``) ships QM9 as ``qm9pack/data/qm9_part{1,2,3}.csv``:
    130,831 molecules with ids between 1 and 133,885, i.e. 3,054 ids absent: the size of EDM's set
    (133,885 less QM9's 3,054 "uncharacterized"; qm9pack calls the absent ones unconverged, and we have no
    list to check that they are the same ids). The package is located with :func:`importlib.util.find_spec` and never
    imported (its ``__init__`` needs ``pandas`` and ``pkg_resources``). Columns (one row per molecule):

    * ``XYZ_file``: original QM9 file name, ``dsgdb9nsd_000001.xyz``;
    * ``Index``: QM9/GDB-9 id, 1..133885 (1-based; the 3,054 excluded ids are absent);
    * ``SMILES``: SMILES without stereo, used for the InChIKey and the formal charges;
    * ``InChi``: InChI string, used only as a second held-out check (see below);
    * ``N_atoms``: number of atoms including hydrogens; ``Stoichiometry``: counts of ``[H, C, N, O, F]``;
    * ``Elements``: element symbols in XYZ atom order, ``['C','H','H','H','H']``;
    * ``XYZ_Ang``: B3LYP/6-31G(2df,p) geometry ``[[x, y, z], ...]`` in Å, XYZ atom order;
    * ``Dipole_debye`` -> ``mu`` (Debye, stored as is);
    * ``Polarizability_bohr3`` -> ``alpha`` (Bohr^3, stored as is);
    * ``HOMO_au``, ``LUMO_au``, ``HOMO_LUMO_gap_au`` -> ``homo``, ``lumo``, ``gap`` (Hartree in the CSV,
      stored in eV);
    * ``Heatcapacity_Cv_cal_mol_K`` -> ``Cv`` (cal/(mol K), stored as is);
    * not used: ``Mulliken_pop`` (e), ``Harmonic_Freq_cmi`` (cm^-1), ``RotA_GHz`` ``RotB_GHz`` ``RotC_GHz``
      (GHz), ``R2_bohr2`` (Bohr^2), ``ZPVE_au``, ``InternalEnergy_0K_au``, ``InternalEnergy_298K_au``,
      ``Enthalphy_298K_au``, ``GibbsFreeEnergy_298K_au`` (Hartree).

    ``qm9_polarizability.csv`` (the polarizability tensor) is not read. Hartree -> eV uses the CODATA 2018
    factor :data:`HARTREE_TO_EV` (EDM/Cormorant use 27.2114; the difference is 5e-7 relative).

Split rule (EDM, Hoogeboom et al. 2022, inherited from Cormorant's ``gen_splits_gdb9``)
    1. All rows of the source CSVs are sorted by ``Index`` (ascending); ``n`` = number of rows
       (130,831). No molecule is dropped before this step, so the split does not depend on RDKit or
       on the held-out list.
    2. ``perm = numpy.random.RandomState(0).permutation(n)`` (identical to EDM's
       ``np.random.seed(0); np.random.permutation(n)``).
    3. ``n_test = int(0.1 * n)``, ``n_train = min(100000, n * 100000 // 130831)``,
       ``n_val = n - n_train - n_test``: 100,000 / 17,748 / 13,083 for the full set, exactly EDM's
       sizes (the scaled ``n_train`` only matters for subsets: tests, ``max_molecules``).
    4. ``train = perm[:n_train]``, ``val = perm[n_train:n_train + n_val]``, ``test = perm[n_train + n_val:]``
       (positions in the sorted row list). Molecules are stored in this permutation order, so the
       ``i``-th stored training molecule is EDM's ``i``-th (up to the removals below).

Removals, applied after the split is assigned and counted per split in ``meta.json``:
    * failures: the SMILES does not parse with RDKit (``smiles_unparsable``) or yields no standard
      InChIKey (``inchikey_failed``);
    * held-out: the InChIKey first block computed by RDKit from the SMILES is in the project's held-out
      list (:func:`molgen.datasets.split.is_heldout`); as a second, conservative check a molecule is also
      removed when the block of the CSV's own ``InChi`` column is held out.

Formal charges (aligned with the XYZ atom order; QM9's SMILES atom order differs):
    1. ``rdDetermineBonds.DetermineBonds`` on the geometry (total charge from the SMILES); accepted when
       its canonical non-stereo SMILES equals the CSV SMILES' (``route determine_bonds``);
    2. otherwise the bond graph from distances ``d <= f (r_cov,i + r_cov,j)`` for ``f`` in 1.3, 1.2,
       1.15, 1.1, accepted when it is isomorphic (hydrogens included) to the CSV SMILES' graph; the
       charges are copied through that atom mapping (``graph_match``; needed for strained cages where
       connect-the-dots bonds 1,3 atoms, and for zwitterions that xyz2mol writes as another resonance form);
    3. otherwise all charges 0 and ``charges_from_geometry = False``, with the reason counted
       (``formula_differs``: the SMILES' atoms are not the geometry's; ``graph_differs``: no bond graph
       derived from the geometry is the SMILES' graph).

Cache: ``<cache>/qm9/`` with ``<cache>`` = ``cache_dir`` argument, else ``$MOLGEN_CACHE``, else
``~/.cache/molgen`` (the convention of :mod:`molgen.datasets.build_ccd`, read at call time):

    ``train.npz`` ``val.npz`` ``test.npz`` (compressed NumPy, no pickles), ``M`` molecules, ``A`` atoms:
        ``positions`` (A, 3) float32 Å, hydrogens included; ``atomic_numbers`` (A,) int8;
        ``formal_charges`` (A,) int8; ``ptr`` (M + 1,) int64, atoms of molecule ``i`` are
        ``ptr[i]:ptr[i + 1]``; ``index`` (M,) int32 QM9 id; ``num_heavy_atoms`` (M,) int8;
        ``charges_from_geometry`` (M,) bool; ``smiles`` ``canonical_smiles`` ``inchikey_block`` (M,) str;
        ``alpha`` ``gap`` ``homo`` ``lumo`` ``mu`` ``Cv`` (M,) float64 (units above).
    ``meta.json`` written last (the cache is valid only with it): format, sources (name, size, sha256),
        seed, split rule and assigned sizes, stored counts, held-out removals and failures per split,
        charge routes, property units and train mean/MAD, held-out list sha256, RDKit version, build date
        and wall time.

Measured (full set, 1 worker, a shared 2-core machine): build 82 s (~2,000 molecules/s for the RDKit work,
the rest reading, hashing and writing), 33 MB of cache; a cache hit 0.02 s; loading ``train`` 0.6 s.
Result: 99,995 / 17,744 / 13,081 molecules (train/val/test); held-out removed 5 / 4 / 2; no SMILES or
InChIKey failures; charges by ``determine_bonds`` 123,788, ``graph_match`` 7,030, none 2 (two
cages, ids 133857 and 133859, neutral anyway); 580 molecules carry formal charges.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import hashlib
import itertools
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from molgen.atomic import atomic_path, open_atomic
from molgen.datasets import split as _split
from molgen.datasets.conformer_dataset import file_sha256
from molgen.errors import InputError

__all__ = [
    "EDM_SEED",
    "HARTREE_TO_EV",
    "PROPERTIES",
    "PROPERTY_UNITS",
    "QM9Split",
    "atom_count_distribution",
    "build_qm9",
    "default_sources",
    "edm_split_indices",
    "edm_split_sizes",
    "load_qm9_meta",
    "load_qm9_split",
    "main",
    "perceive_formal_charges",
    "property_mean_mad",
    "property_normalisation",
    "qm9_dir",
]

FORMAT = "molgen-qm9/1"
HARTREE_TO_EV = 27.211386245988  # CODATA 2018
EDM_SEED = 0
EDM_TOTAL = 130_831  # 133,885 GDB-9 molecules less 3,054 uncharacterized
EDM_TRAIN = 100_000
SPLITS = ("train", "val", "test")
PROPERTIES = ("alpha", "gap", "homo", "lumo", "mu", "Cv")
PROPERTY_UNITS = {"alpha": "Bohr^3", "gap": "eV", "homo": "eV", "lumo": "eV", "mu": "D", "Cv": "cal/(mol K)"}
# property -> (CSV column, factor applied to the CSV value)
_PROPERTY_COLUMNS = {
    "alpha": ("Polarizability_bohr3", 1.0),
    "gap": ("HOMO_LUMO_gap_au", HARTREE_TO_EV),
    "homo": ("HOMO_au", HARTREE_TO_EV),
    "lumo": ("LUMO_au", HARTREE_TO_EV),
    "mu": ("Dipole_debye", 1.0),
    "Cv": ("Heatcapacity_Cv_cal_mol_K", 1.0),
}
REQUIRED_COLUMNS = ("Index", "SMILES", "InChi", "N_atoms", "Elements", "XYZ_Ang") + tuple(
    c for c, _ in _PROPERTY_COLUMNS.values()
)
SOURCE_FILES = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
_ELEMENTS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
# covalent radii (Å) of RDKit's periodic table, for the fallback bond graph
_RCOV = {1: 0.31, 6: 0.76, 7: 0.71, 8: 0.66, 9: 0.57}
_GRAPH_FACTORS = (1.3, 1.2, 1.15, 1.1)


# --------------------------------------------------------------------------------------------- paths
def qm9_dir(cache_dir: str | Path | None = None) -> Path:
    """Folder of the QM9 cache: ``<cache_dir>/qm9``, ``cache_dir`` defaulting to ``$MOLGEN_CACHE`` or
    ``~/.cache/molgen`` (read at call time)."""
    root = cache_dir or os.environ.get("MOLGEN_CACHE") or Path.home() / ".cache" / "molgen"
    return Path(root).expanduser() / "qm9"


def default_sources() -> list[Path]:
    """The three QM9 CSVs shipped by ``qm9pack`` (located without importing the package).

    Raises:
        InputError: ``qm9pack`` is not installed or lacks a file.
    """
    spec = find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("QM9 source data not found: install it with `pip install qm9pack` (or molgen[qm9])")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    paths = [data / name for name in SOURCE_FILES]
    for p in paths:
        if not p.is_file():
            raise InputError(f"QM9 source CSV {p} does not exist (reinstall qm9pack)")
    return paths


# ----------------------------------------------------------------------------------------- split rule
def edm_split_sizes(n: int) -> dict[str, int]:
    """EDM split sizes for ``n`` molecules: 100,000 / 17,748 / 13,083 for ``n`` = 130,831.

    ``n_test = int(0.1 n)``, ``n_train = min(100000, n * 100000 // 130831)``, ``n_val`` the rest.
    """
    if n < 0:
        raise ValueError(f"negative number of molecules: {n}")
    n_test = int(0.1 * n)
    n_train = min(EDM_TRAIN, n * EDM_TRAIN // EDM_TOTAL)
    return {"train": n_train, "val": n - n_train - n_test, "test": n_test}


def edm_split_indices(n: int, seed: int = EDM_SEED) -> dict[str, np.ndarray]:
    """Positions (into the ``Index``-sorted rows) of each split, in EDM's permutation order.

    Returns:
        ``{"train": (n_train,), "val": (n_val,), "test": (n_test,)}`` int64 arrays, disjoint, covering
        ``range(n)``.
    """
    perm = np.random.RandomState(seed).permutation(n)
    sizes = edm_split_sizes(n)
    a, b = sizes["train"], sizes["train"] + sizes["val"]
    return {"train": perm[:a], "val": perm[a:b], "test": perm[b:]}


# ---------------------------------------------------------------------------------------- CSV reading
@dataclass(frozen=True)
class _Row:
    """One CSV row, parsed: ``atomic_numbers`` (N,) int8, ``positions`` (N, 3) float64 Å."""

    index: int
    smiles: str
    inchi: str
    atomic_numbers: np.ndarray
    positions: np.ndarray
    properties: tuple[float, ...]  # in PROPERTIES order and units


def _parse_elements(text: str) -> np.ndarray:
    symbols = [s.strip().strip("'\"") for s in text.strip().strip("[]").split(",")]
    try:
        return np.array([_ELEMENTS[s] for s in symbols], dtype=np.int8)
    except KeyError as exc:
        raise ValueError(f"unknown element {exc.args[0]!r} in Elements") from None


def _parse_positions(text: str, num_atoms: int) -> np.ndarray:
    values = np.array([float(v) for v in text.replace("[", "").replace("]", "").split(",")], dtype=np.float64)
    if values.size != 3 * num_atoms:
        raise ValueError(f"XYZ_Ang has {values.size} numbers, expected {3 * num_atoms}")
    return values.reshape(num_atoms, 3)


def _parse_row(rec: dict[str | None, Any]) -> _Row:
    if None in rec or any(v is None for v in rec.values()):
        raise ValueError("wrong number of fields")
    z = _parse_elements(rec["Elements"])
    if len(z) != int(rec["N_atoms"]):
        raise ValueError(f"Elements lists {len(z)} atoms, N_atoms says {rec['N_atoms']}")
    props = tuple(float(rec[col]) * factor for col, factor in _PROPERTY_COLUMNS.values())
    return _Row(int(rec["Index"]), rec["SMILES"].strip(), rec["InChi"].strip(), z, _parse_positions(rec["XYZ_Ang"], len(z)), props)


def _read_csv(path: Path) -> Iterator[_Row]:
    """Rows of one QM9 CSV.

    Raises:
        InputError: the file is missing, unreadable, lacks a required column or has a malformed row
            (the message names the file and the line).
    """
    if not path.is_file():
        raise InputError(f"QM9 source CSV {path} does not exist")
    line = 1
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(f"QM9 source CSV {path} is corrupt or not a QM9 table: missing columns {missing}")
            for rec in reader:
                line = reader.line_num
                yield _parse_row(rec)
    except (ValueError, TypeError, csv.Error, UnicodeDecodeError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"QM9 source CSV {path} is corrupt at line {line}: {exc}") from None


def _read_sources(paths: Sequence[Path]) -> list[_Row]:
    """All rows of ``paths``, sorted by ``Index``; duplicate ids are an error."""
    rows: list[_Row] = []
    for p in paths:
        rows.extend(_read_csv(p))
    rows.sort(key=lambda r: r.index)
    dup = [a.index for a, b in itertools.pairwise(rows) if a.index == b.index]
    if dup:
        raise InputError(f"QM9 sources {[str(p) for p in paths]} repeat molecule Index {dup[:5]}")
    return rows


# ------------------------------------------------------------------------------------- formal charges
def _graph_key(mol: Any) -> str:
    """Canonical non-stereo SMILES without hydrogens (bond orders and charges included)."""
    from rdkit import Chem

    return Chem.MolToSmiles(Chem.RemoveAllHs(mol), isomericSmiles=False)


def _geometry_mol(atomic_numbers: np.ndarray, positions: np.ndarray) -> Any:
    """RDKit molecule of bare atoms (no bonds, no implicit H) with one conformer in Å."""
    from rdkit import Chem
    from rdkit.Geometry import Point3D

    rw = Chem.RWMol()
    conf = Chem.Conformer(len(atomic_numbers))
    for i, (z, p) in enumerate(zip(atomic_numbers, positions)):
        atom = Chem.Atom(int(z))
        atom.SetNoImplicit(True)
        rw.AddAtom(atom)
        conf.SetAtomPosition(i, Point3D(float(p[0]), float(p[1]), float(p[2])))
    rw.AddConformer(conf, assignId=True)
    return rw


def _distance_graph(geom: Any, atomic_numbers: np.ndarray, positions: np.ndarray, factor: float) -> Any:
    """``geom`` with single bonds where ``d <= factor (r_cov,i + r_cov,j)``."""
    from rdkit import Chem

    r = np.array([_RCOV[int(z)] for z in atomic_numbers])
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    mol = Chem.RWMol(geom)
    for i, j in zip(*np.nonzero(np.triu(d <= factor * (r[:, None] + r[None]), 1))):
        mol.AddBond(int(i), int(j), Chem.BondType.SINGLE)
    return mol


def _match_charges(graph: Any, ref_h: Any) -> np.ndarray | None:
    """Charges of ``ref_h`` (SMILES with explicit H) on ``graph``'s atoms if the two graphs are isomorphic."""
    from rdkit import Chem

    if ref_h.GetNumAtoms() != graph.GetNumAtoms() or ref_h.GetNumBonds() != graph.GetNumBonds():
        return None
    skeleton = Chem.RWMol(ref_h)
    for b in skeleton.GetBonds():
        b.SetBondType(Chem.BondType.SINGLE)
        b.SetIsAromatic(False)
    for a in skeleton.GetAtoms():
        a.SetFormalCharge(0)
        a.SetIsAromatic(False)
        a.SetNoImplicit(True)
    match = graph.GetSubstructMatch(skeleton.GetMol())
    if not match:
        return None
    charges = np.zeros(graph.GetNumAtoms(), dtype=np.int8)
    for i, j in enumerate(match):
        charges[j] = ref_h.GetAtomWithIdx(i).GetFormalCharge()
    return charges


def _determine_bonds_charges(geom: Any, ref: Any) -> np.ndarray | None:
    """Charges from RDKit's xyz2mol (``DetermineBonds``) if its molecule is the SMILES' molecule."""
    from rdkit import Chem
    from rdkit.Chem import rdDetermineBonds

    mol = Chem.Mol(geom)
    try:
        rdDetermineBonds.DetermineBonds(mol, charge=Chem.GetFormalCharge(ref))
        same = _graph_key(mol) == _graph_key(ref)
    except Exception:  # noqa: BLE001 - RDKit raises ValueError/RuntimeError for unassignable valences
        return None
    return np.array([a.GetFormalCharge() for a in mol.GetAtoms()], dtype=np.int8) if same else None


def perceive_formal_charges(atomic_numbers: np.ndarray, positions: np.ndarray, ref: Any) -> tuple[np.ndarray | None, str]:
    """Formal charges of the SMILES molecule ``ref`` in the atom order of a geometry.

    Args:
        atomic_numbers: (N,) atomic numbers, hydrogens included, in XYZ order.
        positions: (N, 3) coordinates in Å.
        ref: RDKit molecule from the SMILES (implicit hydrogens).

    Returns:
        ``(charges (N,) int8, route)`` with route ``"determine_bonds"`` or ``"graph_match"``, or
        ``(None, reason)`` with reason ``"formula_differs"`` or ``"graph_differs"`` (see module doc).
    """
    from rdkit import Chem

    geom = _geometry_mol(atomic_numbers, positions)
    charges = _determine_bonds_charges(geom, ref)
    if charges is not None:
        return charges, "determine_bonds"
    ref_h = Chem.AddHs(ref)
    if sorted(a.GetAtomicNum() for a in ref_h.GetAtoms()) != sorted(int(z) for z in atomic_numbers):
        return None, "formula_differs"
    for factor in _GRAPH_FACTORS:
        charges = _match_charges(_distance_graph(geom, atomic_numbers, positions, factor), ref_h)
        if charges is not None:
            return charges, "graph_match"
    return None, "graph_differs"


# ---------------------------------------------------------------------------------- one molecule
@dataclass(frozen=True)
class _Processed:
    """Result for one row; ``failure`` set when the molecule is dropped."""

    failure: str | None = None
    block: str = ""
    inchi_column_block: str | None = None
    canonical_smiles: str = ""
    formal_charges: np.ndarray | None = None
    charge_route: str = ""


def _inchi_block(inchi: str) -> str | None:
    from rdkit import Chem

    try:
        return _split.inchikey_block(Chem.InchiToInchiKey(inchi) or "")
    except Exception:  # noqa: BLE001 - only a second, conservative held-out check
        return None


def _process_row(row: _Row) -> _Processed:
    """Parse the SMILES, compute the InChIKey block and the formal charges (no held-out filter here)."""
    from rdkit import Chem

    ref = Chem.MolFromSmiles(row.smiles)
    if ref is None:
        return _Processed(failure="smiles_unparsable")
    try:
        block = _split.inchikey_block(Chem.MolToInchiKey(ref) or "")
    except Exception:  # noqa: BLE001 - counted
        return _Processed(failure="inchikey_failed")
    charges, route = perceive_formal_charges(row.atomic_numbers, row.positions, ref)
    if charges is None:
        charges = np.zeros(len(row.atomic_numbers), dtype=np.int8)
        route = f"none:{route}"
    return _Processed(None, block, _inchi_block(row.inchi), Chem.MolToSmiles(ref), charges, route)


def _process_chunk(rows: list[_Row]) -> list[_Processed]:
    from rdkit.rdBase import BlockLogs

    with BlockLogs():
        return [_process_row(r) for r in rows]


def _process_all(rows: list[_Row], workers: int, progress: bool) -> list[_Processed]:
    """Process all rows, in order, in this process (``workers <= 1``) or a spawn pool."""
    from tqdm import tqdm

    chunk = 500
    chunks = [rows[i : i + chunk] for i in range(0, len(rows), chunk)]
    out: list[_Processed] = []
    with tqdm(total=len(rows), desc="QM9", unit="mol", mininterval=10, disable=not progress, file=sys.stderr) as bar:
        if workers <= 1:
            results: Iterable[list[_Processed]] = map(_process_chunk, chunks)
            for res in results:
                out += res
                bar.update(len(res))
        else:
            from multiprocessing import get_context

            with get_context("spawn").Pool(workers) as pool:
                for res in pool.imap(_process_chunk, chunks):
                    out += res
                    bar.update(len(res))
    return out


# ------------------------------------------------------------------------------------------ arrays
def _str_array(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=f"<U{max([1, *map(len, values)])}")


def _split_arrays(rows: list[_Row], results: list[_Processed]) -> dict[str, np.ndarray]:
    """Concatenated arrays of one split (see the module doc for names, shapes and units)."""
    counts = [len(r.atomic_numbers) for r in rows]
    ptr = np.zeros(len(rows) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum(counts)

    def cat(parts: list[np.ndarray], shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(shape, dtype=dtype)

    arrays = {
        "positions": cat([r.positions for r in rows], (0, 3), np.float32),
        "atomic_numbers": cat([r.atomic_numbers for r in rows], (0,), np.int8),
        "formal_charges": cat([p.formal_charges for p in results], (0,), np.int8),  # type: ignore[misc]
        "ptr": ptr,
        "index": np.array([r.index for r in rows], dtype=np.int32),
        "num_heavy_atoms": np.array([int((r.atomic_numbers > 1).sum()) for r in rows], dtype=np.int8),
        "charges_from_geometry": np.array([not p.charge_route.startswith("none") for p in results], dtype=bool),
        "smiles": _str_array([r.smiles for r in rows]),
        "canonical_smiles": _str_array([p.canonical_smiles for p in results]),
        "inchikey_block": _str_array([p.block for p in results]),
    }
    for k, name in enumerate(PROPERTIES):
        arrays[name] = np.array([r.properties[k] for r in rows], dtype=np.float64)
    return arrays


def mean_mad(values: np.ndarray) -> tuple[float, float]:
    """EDM's normalisation statistics of ``(M,)`` values: the mean and the mean absolute deviation from it
    (NaN for an empty array), in the values' unit."""
    v = np.asarray(values, dtype=np.float64)
    if not v.size:
        return float("nan"), float("nan")
    mean = float(v.mean())
    return mean, float(np.abs(v - mean).mean())


def property_mean_mad(properties: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """:func:`mean_mad` (``mean``, ``mad``) of each ``(M,)`` array of ``properties``, in the property's unit
    (:data:`PROPERTY_UNITS`)."""
    out = {}
    for name, values in properties.items():
        mean, mad = mean_mad(values)
        out[name] = {"mean": mean, "mad": mad}
    return out


# --------------------------------------------------------------------------------------------- cache
def _heldout_digest() -> str:
    return hashlib.sha256("\n".join(sorted(_split.heldout_blocks())).encode()).hexdigest()


def _cache_key(paths: Sequence[Path], max_molecules: int | None) -> dict[str, Any]:
    """What a cache must have been built from to be reused (cheap: no file hashing)."""
    return {
        "format": FORMAT,
        "sources": [[p.name, p.stat().st_size] for p in paths],
        "max_molecules": max_molecules,
        "seed": EDM_SEED,
        "heldout_sha256": _heldout_digest(),
    }


def load_qm9_meta(cache_dir: str | Path | None = None) -> dict[str, Any] | None:
    """The ``meta.json`` of the QM9 cache, or ``None`` when there is no complete cache."""
    folder = qm9_dir(cache_dir)
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if not all((folder / f"{s}.npz").is_file() for s in SPLITS):
        return None
    return meta


def _write_cache(folder: Path, arrays: dict[str, dict[str, np.ndarray]], meta: dict[str, Any]) -> None:
    """Write the three splits, then ``meta.json`` (the marker of a complete cache), each atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").unlink(missing_ok=True)
    for name in SPLITS:
        with atomic_path(folder / f"{name}.npz", suffix=".npz") as tmp:
            np.savez_compressed(tmp, **arrays[name])
    with open_atomic(folder / "meta.json") as fh:
        json.dump(meta, fh, indent=2)
        fh.write("\n")


def build_qm9(
    cache_dir: str | Path | None = None,
    *,
    sources: Sequence[str | Path] | None = None,
    max_molecules: int | None = None,
    workers: int = 1,
    force: bool = False,
    progress: bool = False,
) -> Path:
    """Build the QM9 splits into :func:`qm9_dir` (``<cache_dir>/qm9``), or reuse a matching cache.

    Args:
        cache_dir: molgen cache root (default ``$MOLGEN_CACHE`` or ``~/.cache/molgen``).
        sources: QM9 CSVs (default: :func:`default_sources`, the ``qm9pack`` files).
        max_molecules: keep only the first rows by ``Index`` (tests, quick builds); the split rule is
            then applied to those rows.
        workers: processes for the RDKit work (1: in this process).
        force: rebuild even if a matching cache exists.
        progress: show a progress bar on stderr.

    Returns:
        The cache folder (``train.npz``, ``val.npz``, ``test.npz``, ``meta.json``). A cache is reused when
        its ``meta.json`` records the same format, source names and sizes, ``max_molecules``, seed and
        held-out list.

    Raises:
        InputError: a source CSV is missing or corrupt (the message names it).
    """
    t0 = time.perf_counter()
    folder = qm9_dir(cache_dir)
    paths = [Path(p).expanduser() for p in sources] if sources is not None else default_sources()
    for p in paths:
        if not p.is_file():
            raise InputError(f"QM9 source CSV {p} does not exist")
    key = _cache_key(paths, max_molecules)
    meta = load_qm9_meta(cache_dir)
    if not force and meta is not None and meta.get("key") == key:
        return folder

    rows = _read_sources(paths)
    if max_molecules is not None:
        rows = rows[: max(0, max_molecules)]
    assignment = edm_split_indices(len(rows))
    results = _process_all(rows, workers, progress)

    arrays, report = {}, _Report()
    for name in SPLITS:
        keep = [i for i in assignment[name] if report.keep(name, results[i])]
        arrays[name] = _split_arrays([rows[i] for i in keep], [results[i] for i in keep])
    meta = _meta(key, paths, len(rows), arrays, report, workers, time.perf_counter() - t0)
    _write_cache(folder, arrays, meta)
    return folder


@dataclass
class _Report:
    """Per-split bookkeeping of removals and charge routes."""

    failures: dict[str, Counter] = field(default_factory=lambda: {s: Counter() for s in SPLITS})
    heldout: dict[str, Counter] = field(default_factory=lambda: {s: Counter() for s in SPLITS})
    routes: dict[str, Counter] = field(default_factory=lambda: {s: Counter() for s in SPLITS})
    inchi_column_differs: int = 0

    def keep(self, split: str, res: _Processed) -> bool:
        """Count ``res`` and say whether it stays in ``split`` (held-out filter applied here)."""
        if res.failure:
            self.failures[split][res.failure] += 1
            return False
        if _split.is_heldout(res.block):
            self.heldout[split]["smiles_block"] += 1
            return False
        if res.inchi_column_block and _split.is_heldout(res.inchi_column_block):
            self.heldout[split]["inchi_column_block"] += 1
            return False
        self.inchi_column_differs += bool(res.inchi_column_block and res.inchi_column_block != res.block)
        self.routes[split][res.charge_route] += 1
        return True


def _count_charged(arrays: dict[str, np.ndarray]) -> int:
    """Number of molecules with at least one nonzero formal charge."""
    ptr = arrays["ptr"]
    if len(ptr) < 2:
        return 0
    per_molecule = np.add.reduceat(np.abs(arrays["formal_charges"].astype(np.int64)), ptr[:-1])
    return int((per_molecule > 0).sum())


def _meta(key: dict, paths: Sequence[Path], n_rows: int, arrays: dict, report: _Report, workers: int, seconds: float) -> dict:
    from rdkit import __version__ as rdkit_version

    totals = Counter()
    for c in report.routes.values():
        totals.update(c)
    return {
        "format": FORMAT,
        "key": key,
        "sources": [{"name": p.name, "path": str(p), "size": p.stat().st_size, "sha256": file_sha256(p)} for p in paths],
        "rows": n_rows,
        "seed": EDM_SEED,
        "split_rule": "sort rows by Index; perm = numpy.random.RandomState(0).permutation(n); "
        "train = perm[:n_train], val = perm[n_train:n_train+n_val], test = perm[n_train+n_val:]; "
        "n_test = int(0.1 n), n_train = min(100000, n*100000//130831); then drop failures and held-out",
        "assigned": edm_split_sizes(n_rows),
        "counts": {s: int(len(arrays[s]["ptr"]) - 1) for s in SPLITS},
        "atoms": {s: int(arrays[s]["ptr"][-1]) for s in SPLITS},
        "heldout_removed": {s: int(sum(report.heldout[s].values())) for s in SPLITS},
        "heldout_removed_by_check": {s: dict(report.heldout[s]) for s in SPLITS},
        "failures": {s: dict(report.failures[s]) for s in SPLITS},
        "charge_routes": {s: dict(report.routes[s]) for s in SPLITS},
        "charge_routes_total": dict(totals),
        "charges_from_geometry_false": {s: int((~arrays[s]["charges_from_geometry"]).sum()) for s in SPLITS},
        "molecules_with_formal_charges": {s: _count_charged(arrays[s]) for s in SPLITS},
        "inchi_column_block_differs": report.inchi_column_differs,
        "max_atoms": max((int(np.diff(arrays[s]["ptr"]).max(initial=0)) for s in SPLITS), default=0),
        "property_units": PROPERTY_UNITS,
        "hartree_to_ev": HARTREE_TO_EV,
        "property_stats_train": property_mean_mad({p: arrays["train"][p] for p in PROPERTIES}),
        "heldout_list_sha256": key["heldout_sha256"],
        "rdkit_version": rdkit_version,
        "numpy_version": np.__version__,
        "build_date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 1),
        "workers": workers,
    }


# --------------------------------------------------------------------------------------------- load
@dataclass(frozen=True)
class QM9Split:
    """One stored split: ``M`` molecules, ``A`` atoms in all.

    Attributes:
        name: ``"train"``, ``"val"`` or ``"test"``.
        positions: (A, 3) float32, Å, hydrogens included.
        atomic_numbers: (A,) int8.
        formal_charges: (A,) int8 (all 0 where ``charges_from_geometry`` is False).
        ptr: (M + 1,) int64; molecule ``i`` owns atoms ``ptr[i]:ptr[i + 1]``.
        index: (M,) int32 QM9 id.
        num_heavy_atoms: (M,) int8.
        charges_from_geometry: (M,) bool.
        smiles: (M,) str, the CSV's; canonical_smiles: (M,) str, RDKit's canonical form of it.
        inchikey_block: (M,) str, first InChIKey block (from the SMILES).
        properties: name -> (M,) float64 in :data:`PROPERTY_UNITS`.
    """

    name: str
    positions: np.ndarray
    atomic_numbers: np.ndarray
    formal_charges: np.ndarray
    ptr: np.ndarray
    index: np.ndarray
    num_heavy_atoms: np.ndarray
    charges_from_geometry: np.ndarray
    smiles: np.ndarray
    canonical_smiles: np.ndarray
    inchikey_block: np.ndarray
    properties: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.ptr) - 1

    @property
    def num_atoms(self) -> np.ndarray:
        """(M,) int64 number of atoms per molecule, hydrogens included."""
        return np.diff(self.ptr)

    def molecule(self, i: int) -> dict[str, Any]:
        """Molecule ``i``: ``positions`` (N, 3) Å, ``atomic_numbers`` (N,), ``formal_charges`` (N,),
        ``properties`` (name -> float, :data:`PROPERTY_UNITS`), ``smiles``, ``canonical_smiles``,
        ``inchikey_block``, ``index``, ``num_heavy_atoms``, ``charges_from_geometry``."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"molecule {i} out of range for the {len(self)}-molecule {self.name} split")
        i %= len(self)
        a, b = int(self.ptr[i]), int(self.ptr[i + 1])
        return {
            "positions": self.positions[a:b],
            "atomic_numbers": self.atomic_numbers[a:b],
            "formal_charges": self.formal_charges[a:b],
            "properties": {k: float(v[i]) for k, v in self.properties.items()},
            "smiles": str(self.smiles[i]),
            "canonical_smiles": str(self.canonical_smiles[i]),
            "inchikey_block": str(self.inchikey_block[i]),
            "index": int(self.index[i]),
            "num_heavy_atoms": int(self.num_heavy_atoms[i]),
            "charges_from_geometry": bool(self.charges_from_geometry[i]),
        }


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise InputError(f"unknown QM9 split {split!r}; expected one of {SPLITS}")


def _split_file(split: str, cache_dir: str | Path | None) -> Path:
    _check_split(split)
    if load_qm9_meta(cache_dir) is None:
        build_qm9(cache_dir)
    return qm9_dir(cache_dir) / f"{split}.npz"


def load_qm9_split(split: str, cache_dir: str | Path | None = None) -> QM9Split:
    """Load one split from the cache (building the default cache first when there is none; an existing
    cache is loaded whatever it was built from: call :func:`build_qm9` first to choose).

    Raises:
        InputError: unknown split name, or an unreadable cache file (the message names it).
        RuntimeError: the cache holds a molecule of the current held-out list (rebuild with ``force``).
    """
    path = _split_file(split, cache_dir)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        result = QM9Split(
            name=split,
            properties={p: arrays.pop(p) for p in PROPERTIES},
            **{k: arrays[k] for k in QM9Split.__dataclass_fields__ if k not in ("name", "properties")},
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"QM9 cache file {path} is unreadable ({exc}); rebuild it with build_qm9(force=True)") from None
    leaked = [b for b in result.inchikey_block.tolist() if _split.is_heldout(b)]
    if leaked:
        raise RuntimeError(
            f"QM9 cache {path} holds {len(leaked)} held-out molecules (the held-out list changed since the build); "
            "rebuild it with build_qm9(force=True)"
        )
    return result


def atom_count_distribution(split: str | QM9Split = "train", cache_dir: str | Path | None = None) -> dict[int, float]:
    """Histogram of the number of atoms (hydrogens included) per molecule: ``{N: fraction}``, sorted by
    ``N``, fractions summing to 1. Samplers draw molecule sizes from the training split's."""
    if isinstance(split, QM9Split):
        sizes = split.num_atoms
    else:
        path = _split_file(split, cache_dir)
        with np.load(path, allow_pickle=False) as data:
            sizes = np.diff(data["ptr"])
    values, counts = np.unique(sizes, return_counts=True)
    total = counts.sum()
    return {int(v): float(c / total) for v, c in zip(values, counts)}


def property_normalisation(cache_dir: str | Path | None = None) -> dict[str, dict[str, float]]:
    """Training-split ``{"mean", "mad"}`` of each property (:data:`PROPERTY_UNITS`), from ``meta.json``."""
    meta = load_qm9_meta(cache_dir)
    if meta is None:
        build_qm9(cache_dir)
        meta = load_qm9_meta(cache_dir)
    if meta is None:
        raise RuntimeError(f"no QM9 cache in {qm9_dir(cache_dir)} after building it")
    return meta["property_stats_train"]


# ---------------------------------------------------------------------------------------------- CLI
def _summary(meta: dict[str, Any]) -> dict[str, Any]:
    keys = ("rows", "assigned", "counts", "heldout_removed", "heldout_removed_by_check", "failures",
            "charge_routes_total", "charges_from_geometry_false", "molecules_with_formal_charges",
            "inchi_column_block_differs", "max_atoms", "property_stats_train", "build_seconds", "workers",
            "build_date")
    return {k: meta.get(k) for k in keys}


def main(argv: list[str] | None = None) -> None:
    """``python -m molgen.datasets.qm9``: build (or reuse) the cache and print its summary as JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="molgen cache root (default $MOLGEN_CACHE or ~/.cache/molgen)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--source", type=Path, action="append", default=None, help="QM9 CSV (repeatable; default: qm9pack's)")
    parser.add_argument("--max-molecules", type=int, default=None)
    parser.add_argument("--force", action="store_true", help="rebuild even if the cache matches")
    args = parser.parse_args(argv)
    try:
        folder = build_qm9(args.cache, sources=args.source, max_molecules=args.max_molecules, workers=args.workers,
                           force=args.force, progress=True)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    meta = load_qm9_meta(args.cache) or {}
    print(json.dumps({"cache": str(folder), **_summary(meta)}, indent=2))


if __name__ == "__main__":
    main()


def ensure_qm9_cache(cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Make sure a QM9 cache exists and is current; returns its meta.

    Without a cache the default sources (qm9pack) are built; an existing cache keeps its own sources and
    is rebuilt from them only when stale (e.g. the held-out list changed since the build).
    """
    meta = load_qm9_meta(cache_dir)
    if meta is None:
        build_qm9(cache_dir)
    else:
        build_qm9(cache_dir, sources=[src["path"] for src in meta["sources"]],
                  max_molecules=(meta.get("key") or {}).get("max_molecules"))
    return load_qm9_meta(cache_dir) or {}


def qm9_data_key(meta: dict[str, Any]) -> dict[str, Any]:
    """What identifies the molecules of a cache, for training data hashes: source hashes, split rule,
    split sizes, the build's molecule cap and the held-out removals."""
    return {"sources": [src.get("sha256") for src in meta.get("sources", [])], "split": meta.get("split_rule"),
            "counts": meta.get("counts"), "max_molecules": (meta.get("key") or {}).get("max_molecules"),
            "removed": meta.get("heldout_removed")}

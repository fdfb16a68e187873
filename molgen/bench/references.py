"""Benchmark molecule sets: CCD test-split references (with experimental conformations) and SMILES files.

CCD test split
    Ligands of the PDB Chemical Component Dictionary (:func:`molgen.datasets.ccd.load_ccd_ligands`:
    heavy atoms with the experimental "model" conformation of one PDB entry, stereo assigned from
    3D, held-out molecules removed), **test split only**. A candidate must pass
    (:func:`reject_reason`):

    * ``heavy_atoms``: ``min_heavy_atoms <= heavy atoms <= max_heavy_atoms`` (default 4..60);
    * ``element``: every element is in molgen's element vocabulary
      (:data:`molgen.chem.feature_spec.ELEMENTS`, so nothing falls in the "other" slot: no
      metals, no hydrogen-only species);
    * ``radical``: no radical electrons;
    * ``geometry``: a sane experimental conformer (every bond 0.8-2.8 Å, no two non-bonded heavy
      atoms closer than 0.7 Å);
    * ``smiles``: the isomeric SMILES round-trips through RDKit to the same heavy-atom graph
      (so both methods get a valid input and the RMSD can map atoms);
    * ``duplicate``: first occurrence of each InChIKey only (CCD has synonyms).

    Rigid molecules are kept (no filter on rotatable bonds). From the candidates sorted by id a
    seeded random sample of ``num_molecules`` is drawn (``--sample-seed``). Parsing biotite's CCD
    and filtering takes about a minute on one core; :func:`load_references` caches the candidates
    under ``$MOLGEN_CACHE/bench_refs_v1/`` (default ``~/.cache/molgen/``), keyed by the filters,
    the split, the held-out list and the biotite and RDKit versions.

QM9 test split
    Molecules of QM9's test split (EDM's split, held-out molecules removed; :mod:`molgen.datasets.qm9`)
    with their DFT geometries (:func:`load_qm9_references`): the graph is perceived from the geometry
    with the stored formal charges, stereo assigned from 3D, and a molecule is kept only when the
    perceived graph is the CSV's SMILES. Seeded sample over the split.

SMILES files
    ``SMILES ID`` per line (:func:`read_smiles_file`), e.g. ``data/moses_test_1000.smi``: molecules
    without a reference conformation (speed and PoseBusters only).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CACHE_VERSION",
    "Filters",
    "Reference",
    "filter_candidates",
    "load_qm9_references",
    "load_references",
    "moses_path",
    "read_smiles_file",
    "reject_reason",
    "sample_references",
    "select_references",
]

#: bump when the cached candidate format or the candidate rule changes
CACHE_VERSION = 1


@dataclass
class Reference:
    """One benchmark molecule: heavy-atom ``mol`` with the experimental conformer (id 0, Å).

    ``mol`` is None for molecules without a reference conformation (SMILES-file sets).
    """

    id: str
    smiles: str
    mol: Any  # rdkit.Chem.Mol or None
    pdb_entry: str = ""
    inchikey: str = ""
    n_heavy_atoms: int = 0
    n_rotatable_bonds: int = 0

    @classmethod
    def from_mol(cls, id: str, mol: Any, *, pdb_entry: str = "", inchikey: str = "") -> Reference:
        """Reference from a molecule with one conformer; the SMILES is RDKit's isomeric SMILES."""
        from rdkit import Chem
        from rdkit.Chem import rdMolDescriptors

        mol = Chem.RemoveHs(mol)
        return cls(
            id=id,
            smiles=Chem.MolToSmiles(mol),
            mol=mol,
            pdb_entry=pdb_entry,
            inchikey=inchikey,
            n_heavy_atoms=mol.GetNumAtoms(),
            n_rotatable_bonds=int(rdMolDescriptors.CalcNumRotatableBonds(mol)),
        )

    @classmethod
    def from_smiles(cls, id: str, smiles: str) -> Reference:
        """Molecule without a reference conformation (``mol`` None); counts from the SMILES graph."""
        from rdkit import Chem
        from rdkit.Chem import rdMolDescriptors

        mol = Chem.MolFromSmiles(smiles)
        return cls(
            id=id,
            smiles=smiles,
            mol=None,
            n_heavy_atoms=mol.GetNumAtoms() if mol is not None else 0,
            n_rotatable_bonds=int(rdMolDescriptors.CalcNumRotatableBonds(mol)) if mol is not None else 0,
        )

    def record(self) -> dict[str, Any]:
        """JSON-able description (no coordinates)."""
        return {
            "id": self.id,
            "pdb_entry": self.pdb_entry,
            "inchikey": self.inchikey,
            "smiles": self.smiles,
            "n_heavy_atoms": self.n_heavy_atoms,
            "n_rotatable_bonds": self.n_rotatable_bonds,
        }


@dataclass
class Filters:
    """Candidate filters applied before sampling (see the module docstring); lengths in Å."""

    min_heavy_atoms: int = 4
    max_heavy_atoms: int = 60
    elements: tuple[str, ...] = field(default_factory=lambda: _default_elements())
    min_bond_length: float = 0.8
    max_bond_length: float = 2.8
    min_nonbonded_distance: float = 0.7


def _default_elements() -> tuple[str, ...]:
    from molgen.chem.feature_spec import ELEMENTS

    return tuple(ELEMENTS)


def _bad_geometry(mol: Any, f: Filters) -> bool:
    xyz = mol.GetConformer().GetPositions()
    if not np.all(np.isfinite(xyz)):
        return True
    d = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    bonded = np.zeros_like(d, dtype=bool)
    for b in mol.GetBonds():
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        bonded[i, j] = bonded[j, i] = True
        if not f.min_bond_length <= d[i, j] <= f.max_bond_length:
            return True
    np.fill_diagonal(bonded, True)
    return bool(np.any(d[~bonded] < f.min_nonbonded_distance))


def reject_reason(mol: Any, filters: Filters | None = None) -> str | None:
    """Why a heavy-atom reference molecule is not a benchmark candidate (None: it is)."""
    from rdkit import Chem

    f = filters or Filters()
    n = mol.GetNumAtoms()
    if not f.min_heavy_atoms <= n <= f.max_heavy_atoms:
        return "heavy_atoms"
    allowed = set(f.elements)
    if any(a.GetSymbol() not in allowed for a in mol.GetAtoms()):
        return "element"
    if any(a.GetNumRadicalElectrons() for a in mol.GetAtoms()):
        return "radical"
    if mol.GetNumConformers() == 0 or _bad_geometry(mol, f):
        return "geometry"
    smiles = Chem.MolToSmiles(mol)
    again = Chem.MolFromSmiles(smiles)
    if again is None or again.GetNumAtoms() != n or not again.HasSubstructMatch(mol):
        return "smiles"
    return None


def filter_candidates(
    ligands: Iterable[Any], *, filters: Filters | None = None, split: str = "test"
) -> tuple[list[Reference], dict[str, Any]]:
    """All candidates of one split, sorted by id, and the selection statistics (no sampling).

    Args:
        ligands: what :func:`molgen.datasets.ccd.load_ccd_ligands` yields (CCDLigand objects and
            ``(ccd_id, reason)`` tuples for components the loader rejected).
        filters: candidate filters.
        split: the dataset split to use (the benchmark uses ``"test"`` only).
    """
    f = filters or Filters()
    loader_rejects: Counter[str] = Counter()
    split_counts: Counter[str] = Counter()
    rejects: Counter[str] = Counter()
    seen: set[str] = set()
    candidates: list[Reference] = []
    for item in ligands:
        if isinstance(item, tuple):
            loader_rejects[str(item[1]).split(":")[0]] += 1
            continue
        split_counts[item.split] += 1
        if item.split != split:
            continue
        reason = reject_reason(item.mol, f)
        if reason is None and item.inchikey in seen:
            reason = "duplicate"
        if reason is not None:
            rejects[reason] += 1
            continue
        seen.add(item.inchikey)
        candidates.append(
            Reference.from_mol(item.ccd_id, item.mol, pdb_entry=item.pdb_entry, inchikey=item.inchikey)
        )
    candidates.sort(key=lambda r: r.id)
    stats = {
        "source": "PDB Chemical Component Dictionary (biotite), experimental model coordinates",
        "split": split,
        "filters": {**asdict(f), "elements": list(f.elements)},
        "loader_rejected": dict(sorted(loader_rejects.items())),
        "split_counts": dict(sorted(split_counts.items())),
        "filter_rejected": dict(sorted(rejects.items())),
        "n_candidates": len(candidates),
    }
    return candidates, stats


def sample_references(
    candidates: Sequence[Reference], num_molecules: int, *, sample_seed: int = 0
) -> list[Reference]:
    """``random.Random(sample_seed).sample`` of the candidates (sorted by id), returned sorted by id."""
    k = min(num_molecules, len(candidates))
    return sorted(random.Random(sample_seed).sample(list(candidates), k), key=lambda r: r.id)


def select_references(
    ligands: Iterable[Any],
    num_molecules: int,
    *,
    sample_seed: int = 0,
    filters: Filters | None = None,
    split: str = "test",
) -> tuple[list[Reference], dict[str, Any]]:
    """Filter CCD ligands to candidates and draw a seeded sample.

    Args:
        ligands: see :func:`filter_candidates`.
        num_molecules: sample size (all candidates if there are fewer).
        sample_seed: seed of the sample (``random.Random(seed).sample`` over candidates sorted
            by id).
        filters: candidate filters.
        split: the dataset split to use (the benchmark uses ``"test"`` only).

    Returns:
        ``(references sorted by id, selection statistics)``.
    """
    candidates, stats = filter_candidates(ligands, filters=filters, split=split)
    chosen = sample_references(candidates, num_molecules, sample_seed=sample_seed)
    return chosen, {**stats, "n_selected": len(chosen), "sample_seed": sample_seed}


def _cache_key(f: Filters, split: str) -> str:
    import biotite
    import rdkit

    from molgen.datasets.split import heldout_blocks

    spec = {
        "version": CACHE_VERSION,
        "filters": {**asdict(f), "elements": list(f.elements)},
        "split": split,
        "heldout": hashlib.sha256("\n".join(sorted(heldout_blocks())).encode()).hexdigest(),
        "biotite": biotite.__version__,
        "rdkit": rdkit.__version__,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _save_candidates(path: Path, candidates: Sequence[Reference], stats: dict[str, Any]) -> None:
    from rdkit import Chem

    # double-precision coordinates: the default pickle stores float32
    rows = [{**r.record(), "mol": r.mol.ToBinary(Chem.PropertyPickleOptions.CoordsAsDouble)} for r in candidates]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        pickle.dump({"stats": stats, "candidates": rows}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)


def _load_candidates(path: Path) -> tuple[list[Reference], dict[str, Any]]:
    from rdkit import Chem

    with open(path, "rb") as fh:
        data = pickle.load(fh)
    refs = [Reference(**{**row, "mol": Chem.Mol(row["mol"])}) for row in data["candidates"]]
    return refs, data["stats"]


def load_references(
    num_molecules: int,
    *,
    sample_seed: int = 0,
    filters: Filters | None = None,
    split: str = "test",
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
) -> tuple[list[Reference], dict[str, Any]]:
    """Select the benchmark molecules from the CCD's ``split`` (cached candidates, else ~1 min parse).

    Args:
        num_molecules: sample size.
        sample_seed: seed of the sample.
        filters: candidate filters.
        split: dataset split (``"test"`` for the benchmark).
        cache_dir: molgen cache folder (default ``$MOLGEN_CACHE`` or ``~/.cache/molgen``); the
            candidates go to ``<cache_dir>/bench_refs_v1/<split>_<key>.pkl``.
        use_cache: read and write that cache.

    Returns:
        ``(references sorted by id, selection statistics)``; ``stats["cache"]`` says whether the
        cache was hit and where it lives.
    """
    from molgen.datasets.build_ccd import DEFAULT_CACHE

    f = filters or Filters()
    path = Path(cache_dir or DEFAULT_CACHE).expanduser() / f"bench_refs_v{CACHE_VERSION}"
    path = path / f"{split}_{_cache_key(f, split)}.pkl"
    hit = False
    candidates: list[Reference] = []
    stats: dict[str, Any] = {}
    if use_cache and path.is_file():
        try:
            candidates, stats = _load_candidates(path)
            hit = True
        except Exception:  # noqa: BLE001 - a broken cache is rebuilt
            hit = False
    if not hit:
        from molgen.datasets.ccd import load_ccd_ligands

        # the loader's own size bounds are wider than ours; rejected sizes are reported by us
        ligands = load_ccd_ligands(min_heavy_atoms=1, max_heavy_atoms=10**6)
        candidates, stats = filter_candidates(ligands, filters=f, split=split)
        if use_cache:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                _save_candidates(path, candidates, stats)
            except OSError:
                pass
    chosen = sample_references(candidates, num_molecules, sample_seed=sample_seed)
    cache = {"path": str(path), "hit": hit} if use_cache else None
    return chosen, {**stats, "n_selected": len(chosen), "sample_seed": sample_seed, "cache": cache}


def load_qm9_references(
    num_molecules: int, *, sample_seed: int = 0, split: str = "test", cache_dir: str | Path | None = None
) -> tuple[list[Reference], dict[str, Any]]:
    """A seeded sample of QM9 molecules of ``split`` with their DFT conformations (hydrogens removed).

    Molecules are visited in ``random.Random(sample_seed)`` order over the split; each one's graph is
    perceived from its geometry and stored formal charges
    (:func:`molgen.chem.perception.mol_from_atoms`), stereo is assigned from 3D, and it is kept when the
    perceived graph's canonical SMILES equals the CSV's; the first ``num_molecules`` kept are returned
    sorted by id (``qm9_<QM9 index>``). ``cache_dir``: the QM9 cache root (:mod:`molgen.datasets.qm9`).

    Returns:
        ``(references, selection statistics)`` with the rejection counts by reason.
    """
    from rdkit import Chem

    from molgen.chem.perception import mol_from_atoms
    from molgen.datasets.qm9 import load_qm9_split

    data = load_qm9_split(split, cache_dir)
    order = random.Random(sample_seed).sample(range(len(data)), len(data))
    chosen: list[Reference] = []
    rejected: Counter[str] = Counter()
    for i in order:
        if len(chosen) >= num_molecules:
            break
        m = data.molecule(i)
        res = mol_from_atoms(m["atomic_numbers"], m["positions"], m["formal_charges"])
        ref = Chem.MolFromSmiles(m["smiles"])
        if not res.valid or res.mol is None:
            rejected["perception"] += 1
            continue
        if ref is None or res.smiles != Chem.MolToSmiles(Chem.RemoveHs(ref), isomericSmiles=False):
            rejected["graph differs from the SMILES"] += 1
            continue
        mol = Chem.Mol(res.mol)
        Chem.AssignStereochemistryFrom3D(mol)
        chosen.append(Reference.from_mol(f"qm9_{m['index']:06d}", mol, inchikey=m["inchikey_block"]))
    stats = {"set": "qm9", "split": split, "n_candidates": len(data), "n_selected": len(chosen),
             "n_visited": len(chosen) + sum(rejected.values()), "rejected": dict(rejected),
             "sample_seed": sample_seed}  # fmt: skip
    return sorted(chosen, key=lambda r: r.id), stats


def read_smiles_file(path: str | Path) -> list[tuple[str, str]]:
    """``(id, smiles)`` per line of a ``SMILES ID`` file (blank and ``#`` lines skipped).

    A line without an ID gets ``line<N>`` (1-based line number).
    """
    out: list[tuple[str, str]] = []
    for k, line in enumerate(Path(path).read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        out.append((parts[1].strip() if len(parts) > 1 else f"line{k}", parts[0]))
    return out


def moses_path() -> Path:
    """``data/moses_test_1000.smi`` of the source checkout (not part of the installed package)."""
    return Path(__file__).resolve().parents[2] / "data" / "moses_test_1000.smi"

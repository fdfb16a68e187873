"""Metrics for de novo generated 3D molecules: stability, validity, uniqueness, novelty and
geometry distributions.

Stability (EDM)
    :func:`edm_bond_order` and :func:`atom_stability` reproduce EDM's ``check_stability``
    (Hoogeboom et al. 2022, "Equivariant Diffusion for Molecule Generation in 3D"; public
    repository ``ehoogeboom/e3_diffusion_for_molecules``, files ``qm9/bond_analyze.py``
    (bond-length tables ``bonds1``/``bonds2``/``bonds3`` in pm, margins, ``allowed_bonds``,
    ``get_bond_order``) and ``qm9/analyze.py`` (``check_stability``), commit
    ``d28fd52e108c0ffc2a37e1af1371df90ad173590``). Every pair of atoms gets a bond order
    from its distance alone (single if ``100 * d[Å] < bonds1 + 10`` pm, double if also
    ``< bonds2 + 5``, triple if also ``< bonds3 + 3``); an atom is stable when the sum of its
    bond orders is an allowed valence of its element, regardless of formal charge; a
    molecule is stable when all its atoms are. Element pairs missing from ``bonds1`` get
    order 0 (EDM's ``check_exists=True`` path, used for GEOM; its QM9 path raises
    ``KeyError`` instead, which never happens for H, C, N, O, F).

Charge-aware stability (MiDi and successors)
    :func:`atom_stability_charged` checks the sum of bond orders of each atom against a
    valence table indexed by element *and* formal charge, as MiDi (Vignac et al. 2023;
    ``cvignac/MiDi``, ``midi/analysis/rdkit_functions.py``, ``allowed_bonds`` and
    ``check_stability``), EQGAT-diff and FlowMol (``Dunni3/FlowMol``,
    ``flowmol/analysis/metrics.py``, which copies MiDi's table) do. Two tables:

    ``"midi"``
        MiDi's ``allowed_bonds`` verbatim. It accepts neutral carbon with valence 3 and
        neutral nitrogen with valence 2, which compensates a bug in MiDi's own valence
        count (aromatic bond order 1.5 written into an integer tensor becomes 1; see
        ``Dunni3/FlowMol`` issue 12, ``cvignac/MiDi`` issue 12, ``rssrwn/semla-flow``
        issue 4). MiDi's lookup is kept too: a charge missing from an element's charge
        dict falls back to the neutral entry.
    ``"strict"`` (default)
        The same table without that compensation (C⁰ 4, N⁰ 3, N⁺ 4), as in the corrected
        table discussed in FlowMol issue 12; a charge missing from an element's charge
        dict makes the atom unstable. Use it with correctly counted bond orders.

    Bond orders come from a perceived or generated molecule, never from distances:
    :func:`bond_order_matrix` returns them from an RDKit molecule, kekulised by default so
    every valence is an integer (aromatic bonds count 1.5 only on request or when the
    molecule cannot be kekulised; 1.5-counting makes fused aromatic carbons 4.5 and
    pyrrole-type NH nitrogens 4, i.e. unstable).

Sample-level metrics
    :func:`molecule_metrics` evaluates a list of generated samples: EDM atom and molecule
    stability, charge-aware stability (bond orders of the molecule perceived by
    :func:`molgen.chem.perception.mol_from_atoms`, formal charges of the sample),
    validity (EDM's: the perceived molecule sanitises; fragments allowed), connected
    fraction, uniqueness and novelty (on the canonical SMILES of the largest fragment, as
    EDM) and counts of failure reasons.

Geometry
    :func:`geometry_distributions` collects bond lengths (Å), bond angles (degrees) and
    proper torsions of heavy atoms (degrees, signed, in (-180, 180]) keyed by element and
    bond type; :func:`wasserstein_distances` compares two such collections with the 1-D
    Wasserstein-1 distance per key (``scipy.stats.wasserstein_distance``) for bonds and
    angles, and with the exact Wasserstein-1 distance on the circle for torsions
    (:func:`circular_wasserstein_distance`, so 179° and -179° are 2° apart).

No function here reads or writes files.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations, pairwise
from typing import Any

import numpy as np
from rdkit import Chem
from scipy.stats import wasserstein_distance

from molgen.chem.perception import PerceptionResult, canonical_smiles, mol_from_atoms

__all__ = [
    "EDM_ALLOWED_BONDS",
    "EDM_BONDS1",
    "EDM_BONDS2",
    "EDM_BONDS3",
    "EDM_MARGINS",
    "MIDI_ALLOWED_BONDS",
    "STRICT_ALLOWED_BONDS",
    "atom_stability",
    "atom_stability_charged",
    "bond_order_matrix",
    "canonicalize_smiles",
    "circular_wasserstein_distance",
    "edm_bond_order",
    "edm_bond_order_matrix",
    "geometry_distributions",
    "mol_atom_stability_charged",
    "molecule_metrics",
    "wasserstein_distances",
]

# ---------------------------------------------------------------------------------------
# EDM tables. Source: github.com/ehoogeboom/e3_diffusion_for_molecules, qm9/bond_analyze.py
# (commit d28fd52e108c0ffc2a37e1af1371df90ad173590), which takes them from
# wiredchemist.com/chemistry/data/bond_energies_lengths.html and
# chemistry-reference.com/tables/Bond Lengths and Enthalpies.pdf. Lengths in pm.
# ---------------------------------------------------------------------------------------

# fmt: off
#: typical single-bond lengths (pm)
EDM_BONDS1: dict[str, dict[str, int]] = {
    "H": {"H": 74, "C": 109, "N": 101, "O": 96, "F": 92, "B": 119, "Si": 148, "P": 144,
          "As": 152, "S": 134, "Cl": 127, "Br": 141, "I": 161},
    "C": {"H": 109, "C": 154, "N": 147, "O": 143, "F": 135, "Si": 185, "P": 184, "S": 182,
          "Cl": 177, "Br": 194, "I": 214},
    "N": {"H": 101, "C": 147, "N": 145, "O": 140, "F": 136, "Cl": 175, "Br": 214, "S": 168,
          "I": 222, "P": 177},
    "O": {"H": 96, "C": 143, "N": 140, "O": 148, "F": 142, "Br": 172, "S": 151, "P": 163,
          "Si": 163, "Cl": 164, "I": 194},
    "F": {"H": 92, "C": 135, "N": 136, "O": 142, "F": 142, "S": 158, "Si": 160, "Cl": 166,
          "Br": 178, "P": 156, "I": 187},
    "B": {"H": 119, "Cl": 175},
    "Si": {"Si": 233, "H": 148, "C": 185, "O": 163, "S": 200, "F": 160, "Cl": 202, "Br": 215,
           "I": 243},
    "Cl": {"Cl": 199, "H": 127, "C": 177, "N": 175, "O": 164, "P": 203, "S": 207, "B": 175,
           "Si": 202, "F": 166, "Br": 214},
    "S": {"H": 134, "C": 182, "N": 168, "O": 151, "S": 204, "F": 158, "Cl": 207, "Br": 225,
          "Si": 200, "P": 210, "I": 234},
    "Br": {"Br": 228, "H": 141, "C": 194, "O": 172, "N": 214, "Si": 215, "S": 225, "F": 178,
           "Cl": 214, "P": 222},
    "P": {"P": 221, "H": 144, "C": 184, "O": 163, "Cl": 203, "S": 210, "F": 156, "N": 177,
          "Br": 222},
    "I": {"H": 161, "C": 214, "Si": 243, "N": 222, "O": 194, "S": 234, "F": 187, "I": 266},
    "As": {"H": 152},
}

#: typical double-bond lengths (pm)
EDM_BONDS2: dict[str, dict[str, int]] = {
    "C": {"C": 134, "N": 129, "O": 120, "S": 160},
    "N": {"C": 129, "N": 125, "O": 121},
    "O": {"C": 120, "N": 121, "O": 121, "P": 150},
    "P": {"O": 150, "S": 186},
    "S": {"P": 186},
}

#: typical triple-bond lengths (pm)
EDM_BONDS3: dict[str, dict[str, int]] = {
    "C": {"C": 120, "N": 116, "O": 113},
    "N": {"C": 116, "N": 110},
    "O": {"C": 113},
}

#: EDM's margins (pm) added to the single, double and triple bond lengths; "tuned to
#: maximize the stability of the QM9 true samples" (EDM)
EDM_MARGINS: tuple[int, int, int] = (10, 5, 3)

#: EDM's allowed valences (sum of bond orders), charge-blind
EDM_ALLOWED_BONDS: dict[str, int | list[int]] = {
    "H": 1, "C": 4, "N": 3, "O": 2, "F": 1, "B": 3, "Al": 3, "Si": 4, "P": [3, 5], "S": 4,
    "Cl": 1, "As": 3, "Br": 1, "I": 1, "Hg": [1, 2], "Bi": [3, 5],
}

# ---------------------------------------------------------------------------------------
# Charge-aware tables. Source: github.com/cvignac/MiDi, midi/analysis/rdkit_functions.py
# (``allowed_bonds``), read from the fork baitutanglj/MiDi_control at commit
# 7530706929b03e3aa26fd2b9335a9f6a48dfd686 (same path and table); FlowMol's
# flowmol/analysis/metrics.py copies it as ``midi_valence_table``. Entries are
# element -> valence(s), or element -> {formal charge: valence(s)}.
# ---------------------------------------------------------------------------------------

ValenceEntry = int | list[int] | dict[int, int | list[int]]

#: MiDi's table, verbatim (lenient: C⁰ 3 and N⁰ 2 accepted, see the module docstring)
MIDI_ALLOWED_BONDS: dict[str, ValenceEntry] = {
    "H": {0: 1, 1: 0, -1: 0},
    "C": {0: [3, 4], 1: 3, -1: 3},
    # MiDi: "In QM9, N+ seems to be present in the form NH+ and NH2+"
    "N": {0: [2, 3], 1: [2, 3, 4], -1: 2},
    "O": {0: 2, 1: 3, -1: 1},
    "F": {0: 1, -1: 0},
    "B": 3, "Al": 3, "Si": 4,
    "P": {0: [3, 5], 1: 4},
    "S": {0: [2, 6], 1: [2, 3], 2: 4, 3: 5, -1: 3},
    "Cl": 1, "As": 3,
    "Br": {0: 1, 1: 2}, "I": 1, "Hg": [1, 2], "Bi": [3, 5], "Se": [2, 4, 6],
}

# fmt: on

#: MiDi's table with the compensation for its aromatic-count bug removed (C⁰ 4, N⁰ 3, N⁺ 4)
STRICT_ALLOWED_BONDS: dict[str, ValenceEntry] = {
    **MIDI_ALLOWED_BONDS,
    "C": {0: 4, 1: 3, -1: 3},
    "N": {0: 3, 1: 4, -1: 2},
}

#: table name -> (table, fall back to the neutral entry for an unlisted charge)
_VALENCE_TABLES: dict[str, tuple[dict[str, ValenceEntry], bool]] = {
    "midi": (MIDI_ALLOWED_BONDS, True),
    "strict": (STRICT_ALLOWED_BONDS, False),
}

_PT = Chem.GetPeriodicTable()

# ---------------------------------------------------------------------------------------
# EDM stability
# ---------------------------------------------------------------------------------------


def _symbol(z: int) -> str | None:
    """Element symbol of atomic number ``z`` (1..118), else ``None``."""
    return _PT.GetElementSymbol(int(z)) if 1 <= int(z) <= 118 else None


def edm_bond_order(el1: str, el2: str, distance_angstrom: float) -> int:
    """EDM's distance-based bond order (``get_bond_order`` of ``qm9/bond_analyze.py``).

    Args:
        el1, el2: element symbols (``"C"``, ``"Cl"``, ...).
        distance_angstrom: interatomic distance in Å (EDM compares ``100 * d`` with the pm
            tables).

    Returns:
        0 (no bond), 1, 2 or 3. Pairs without a single-bond length in ``EDM_BONDS1``, and
        NaN distances, give 0.
    """
    d_pm = 100.0 * float(distance_angstrom)
    m1, m2, m3 = EDM_MARGINS
    b1 = EDM_BONDS1.get(el1, {}).get(el2)
    if b1 is None or not d_pm < b1 + m1:
        return 0
    b2 = EDM_BONDS2.get(el1, {}).get(el2)
    if b2 is None or not d_pm < b2 + m2:
        return 1
    b3 = EDM_BONDS3.get(el1, {}).get(el2)
    if b3 is None or not d_pm < b3 + m3:
        return 2
    return 3


def _check_atoms(
    atomic_numbers: np.ndarray, positions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(atomic_numbers).astype(np.int64).reshape(-1)
    pos = np.asarray(positions, dtype=np.float64)
    if pos.shape != (z.shape[0], 3):
        raise ValueError(
            f"positions must have shape ({z.shape[0]}, 3), got {pos.shape}"
        )
    return z, pos


def _pair_thresholds(
    symbols: list[str | None], table: Mapping[str, Mapping[str, int]], margin: int
) -> np.ndarray:
    """(N, N) thresholds ``table[si][sj] + margin`` in pm, NaN where the pair is absent."""
    n = len(symbols)
    out = np.full((n, n), np.nan)
    uniq = sorted({s for s in symbols if s is not None})
    idx = {s: np.array([i for i, t in enumerate(symbols) if t == s]) for s in uniq}
    for a in uniq:
        for b in uniq:
            length = table.get(a, {}).get(b)
            if length is not None:
                out[np.ix_(idx[a], idx[b])] = length + margin
    return out


def edm_bond_order_matrix(
    atomic_numbers: np.ndarray, positions: np.ndarray
) -> np.ndarray:
    """EDM bond orders of all atom pairs, vectorised :func:`edm_bond_order`.

    Args:
        atomic_numbers: (N,) atomic numbers.
        positions: (N, 3) coordinates in Å.

    Returns:
        (N, N) int64 symmetric matrix of bond orders (0-3), zero diagonal. Unknown elements
        and non-finite positions give 0.
    """
    z, pos = _check_atoms(atomic_numbers, positions)
    symbols = [_symbol(int(zi)) for zi in z]
    d_pm = 100.0 * np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1))
    m1, m2, m3 = EDM_MARGINS
    with np.errstate(invalid="ignore"):
        single = d_pm < _pair_thresholds(symbols, EDM_BONDS1, m1)
        double = single & (d_pm < _pair_thresholds(symbols, EDM_BONDS2, m2))
        triple = double & (d_pm < _pair_thresholds(symbols, EDM_BONDS3, m3))
    order = single.astype(np.int64) + double + triple
    np.fill_diagonal(order, 0)
    return order


def _is_allowed(valence: float, allowed: int | Sequence[int] | None) -> bool:
    if allowed is None:
        return False
    values = [allowed] if isinstance(allowed, int) else list(allowed)
    return any(abs(valence - v) < 1e-6 for v in values)


def atom_stability(atomic_numbers: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """EDM atom stability (``check_stability`` of EDM's ``qm9/analyze.py``).

    Args:
        atomic_numbers: (N,) atomic numbers, hydrogens included.
        positions: (N, 3) coordinates in Å.

    Returns:
        (N,) bool: the sum of the atom's EDM bond orders to all other atoms is one of
        ``EDM_ALLOWED_BONDS[element]`` (elements not in that table are unstable). The
        molecule is stable when all are ``True``.

    Raises:
        ValueError: when ``positions`` is not (N, 3).
    """
    z, pos = _check_atoms(atomic_numbers, positions)
    valences = edm_bond_order_matrix(z, pos).sum(axis=1)
    stable = np.zeros(z.shape[0], dtype=bool)
    for i, zi in enumerate(z):
        sym = _symbol(int(zi))
        stable[i] = _is_allowed(
            float(valences[i]), EDM_ALLOWED_BONDS.get(sym) if sym else None
        )
    return stable


# ---------------------------------------------------------------------------------------
# Charge-aware stability
# ---------------------------------------------------------------------------------------


def _allowed_charged(
    symbol: str | None, charge: int, table: str
) -> int | list[int] | None:
    """Allowed valence(s) of ``symbol`` with formal ``charge`` in the named table."""
    try:
        entries, fallback = _VALENCE_TABLES[table]
    except KeyError:
        raise ValueError(
            f"unknown valence table {table!r}; use one of {sorted(_VALENCE_TABLES)}"
        ) from None
    entry = entries.get(symbol) if symbol is not None else None
    if entry is None or not isinstance(entry, dict):
        return entry
    if charge in entry:
        return entry[charge]
    return entry.get(0) if fallback else None


def atom_stability_charged(
    atomic_numbers: np.ndarray,
    formal_charges: np.ndarray | None,
    bond_orders_matrix: np.ndarray,
    *,
    table: str = "strict",
    implicit_hydrogens: np.ndarray | None = None,
) -> np.ndarray:
    """Charge-aware atom stability from bond orders (MiDi / EQGAT-diff / FlowMol style).

    Args:
        atomic_numbers: (N,) atomic numbers.
        formal_charges: (N,) integer formal charges, or ``None`` for all neutral.
        bond_orders_matrix: (N, N) symmetric bond orders (0 none, 1, 2, 3; aromatic 1.5);
            the diagonal is ignored.
        table: ``"strict"`` (default) or ``"midi"``, see the module docstring.
        implicit_hydrogens: optional (N,) hydrogens not present as atoms, added to the
            valence (for molecules with implicit hydrogens).

    Returns:
        (N,) bool: the valence (row sum of bond orders, plus implicit hydrogens) equals an
        allowed valence of the atom's element and formal charge. Fractional valences
        (aromatic 1.5 counting) are compared exactly, not truncated as in MiDi.

    Raises:
        ValueError: on inconsistent shapes or an unknown table.
    """
    z = np.asarray(atomic_numbers).astype(np.int64).reshape(-1)
    n = z.shape[0]
    bo = np.asarray(bond_orders_matrix, dtype=np.float64)
    if bo.shape != (n, n):
        raise ValueError(f"bond_orders_matrix must be ({n}, {n}), got {bo.shape}")
    q = (
        np.zeros(n, np.int64)
        if formal_charges is None
        else np.asarray(formal_charges).astype(np.int64)
    )
    if q.shape != (n,):
        raise ValueError(f"formal_charges must have shape ({n},), got {q.shape}")
    valence = bo.sum(axis=1) - np.diag(bo)
    if implicit_hydrogens is not None:
        valence = valence + np.asarray(implicit_hydrogens, dtype=np.float64).reshape(n)
    return np.array(
        [
            _is_allowed(
                float(valence[i]),
                _allowed_charged(_symbol(int(z[i])), int(q[i]), table),
            )
            for i in range(n)
        ],
        dtype=bool,
    )


def bond_order_matrix(mol: Chem.Mol, *, kekulize: bool = True) -> np.ndarray:
    """(N, N) float bond orders of an RDKit molecule.

    With ``kekulize=True`` (default) a kekulised copy is used, so aromatic bonds become 1 or
    2; if kekulisation fails, or with ``kekulize=False``, aromatic bonds count 1.5. Other
    bond types use ``Bond.GetBondTypeAsDouble`` (dative 1, zero 0, ...).
    """
    work = Chem.Mol(mol)
    if kekulize:
        try:
            Chem.Kekulize(work, clearAromaticFlags=True)
        except Exception:  # noqa: BLE001 - KekulizeException and friends
            work = Chem.Mol(mol)
    n = work.GetNumAtoms()
    out = np.zeros((n, n))
    for bond in work.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        order = bond.GetBondTypeAsDouble()
        out[i, j] += order
        out[j, i] += order
    return out


def mol_atom_stability_charged(mol: Chem.Mol, *, table: str = "strict") -> np.ndarray:
    """:func:`atom_stability_charged` of an RDKit molecule (kekulised bond orders, the
    atoms' formal charges, implicit and explicit-count hydrogens added). Returns (N,) bool."""
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    q = np.array([a.GetFormalCharge() for a in mol.GetAtoms()], dtype=np.int64)
    try:
        h = np.array(
            [a.GetTotalNumHs(includeNeighbors=False) for a in mol.GetAtoms()],
            dtype=np.float64,
        )
    except Exception:  # noqa: BLE001 - unsanitised molecules may not know their H count
        h = np.array([a.GetNumExplicitHs() for a in mol.GetAtoms()], dtype=np.float64)
    return atom_stability_charged(
        z, q, bond_order_matrix(mol), table=table, implicit_hydrogens=h
    )


# ---------------------------------------------------------------------------------------
# Sample-level metrics
# ---------------------------------------------------------------------------------------


def canonicalize_smiles(smiles: Iterable[str]) -> set[str]:
    """Training SMILES in the form :func:`molecule_metrics` compares against: parsed,
    largest fragment, canonical without hydrogens or stereo. Unparsable ones are skipped."""
    out: set[str] = set()
    for smi in smiles:
        mol = Chem.MolFromSmiles(smi)
        if mol is None:
            continue
        frags = Chem.GetMolFrags(mol, asMols=True)
        can = canonical_smiles(max(frags, key=lambda m: m.GetNumAtoms()))
        if can is not None:
            out.add(can)
    return out


def _fraction(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def perceive_sample(sample: Mapping[str, Any]) -> PerceptionResult:
    """Bonds of one sample (dict of :func:`molecule_metrics`) perceived from its geometry and charges."""
    return mol_from_atoms(
        sample["atomic_numbers"],
        sample["positions"],
        sample.get("formal_charges"),
        total_charge=sample.get("total_charge"),
    )


def molecule_metrics(
    samples: Sequence[Mapping[str, Any]],
    training_smiles: set[str] | None = None,
    *,
    table: str = "strict",
    perceived: Sequence[PerceptionResult] | None = None,
) -> dict[str, Any]:
    """Stability, validity, connectedness, uniqueness and novelty of generated samples.

    Args:
        samples: dicts with ``"atomic_numbers"`` ((N,) ints, hydrogens included),
            ``"positions"`` ((N, 3) Å) and optionally ``"formal_charges"`` ((N,) ints) and
            ``"total_charge"`` (int).
        training_smiles: canonical SMILES of the training set for novelty, in the form of
            :func:`canonicalize_smiles`; ``None`` skips novelty.
        table: valence table of the charge-aware stability (``"strict"`` or ``"midi"``).
        perceived: the samples' :func:`perceive_sample` results when the caller has them already
            (one per sample, same order); perceived here otherwise.

    Returns:
        ``n_samples``, ``n_atoms``;
        ``atom_stability`` / ``mol_stability``: EDM's (distance bond orders, charge-blind),
        fraction of all atoms / all samples;
        ``atom_stability_charged`` / ``mol_stability_charged``: charge-aware stability on
        kekulised bond orders of the perceived molecule and the sample's own formal
        charges (all 0 when the sample has none), as MiDi checks generated charges against
        generated bonds; atoms of samples that could not be perceived count as unstable.
        The perceived charges are not used: RDKit's bond-order assignment places charges
        where valences require them (``[CH2-]CO.[H+]`` for an ethanol with one hydrogen
        pulled away), which would make the check nearly always pass;
        ``validity``: fraction of samples whose perceived molecule sanitises (fragments
        allowed, as EDM); ``connected``: fraction of samples whose perceived connectivity
        is one fragment; ``valid_and_connected``;
        ``uniqueness``: unique largest-fragment SMILES / valid samples (EDM);
        ``novelty``: fraction of those unique SMILES not in ``training_smiles`` (EDM;
        ``None`` without training SMILES);
        ``n_valid``, ``n_unique``, ``reasons``: counts of
        :attr:`~molgen.chem.perception.PerceptionResult.reason` (failures and
        ``"disconnected (k fragments)"``).
        Fractions are NaN when their denominator is 0.

    Raises:
        KeyError / ValueError: for a sample without atoms or positions, or with positions
        that are not (N, 3).
    """
    n_atoms = n_stable_atoms = n_stable_mols = 0
    n_charged_atoms = n_charged_mols = 0
    n_valid = n_connected = n_valid_connected = 0
    valid_smiles: list[str] = []
    reasons: Counter[str] = Counter()

    if perceived is not None and len(perceived) != len(samples):
        raise ValueError(f"{len(perceived)} perception results for {len(samples)} samples")
    for k, sample in enumerate(samples):
        stable = atom_stability(sample["atomic_numbers"], sample["positions"])
        n_atoms += stable.size
        n_stable_atoms += int(stable.sum())
        n_stable_mols += int(stable.size > 0 and stable.all())

        result = perceived[k] if perceived is not None else perceive_sample(sample)
        if result.reason is not None:
            reasons[result.reason] += 1
        n_connected += int(result.num_fragments == 1)
        if result.valid and result.mol is not None:
            n_valid += 1
            n_valid_connected += int(result.num_fragments == 1)
            valid_smiles.append(result.largest_fragment_smiles or "")
            charged = atom_stability_charged(
                sample["atomic_numbers"],
                sample.get("formal_charges"),
                bond_order_matrix(result.mol),
                table=table,
            )
            n_charged_atoms += int(charged.sum())
            n_charged_mols += int(charged.all())

    n = len(samples)
    unique = set(valid_smiles)
    novelty = None
    if training_smiles is not None:
        novelty = _fraction(sum(s not in training_smiles for s in unique), len(unique))
    return {
        "n_samples": n,
        "n_atoms": n_atoms,
        "atom_stability": _fraction(n_stable_atoms, n_atoms),
        "mol_stability": _fraction(n_stable_mols, n),
        "atom_stability_charged": _fraction(n_charged_atoms, n_atoms),
        "mol_stability_charged": _fraction(n_charged_mols, n),
        "validity": _fraction(n_valid, n),
        "connected": _fraction(n_connected, n),
        "valid_and_connected": _fraction(n_valid_connected, n),
        "uniqueness": _fraction(len(unique), n_valid),
        "novelty": novelty,
        "n_valid": n_valid,
        "n_unique": len(unique),
        "reasons": dict(reasons),
    }


# ---------------------------------------------------------------------------------------
# Geometry distributions
# ---------------------------------------------------------------------------------------

_BOND_CHAR = {
    Chem.BondType.SINGLE: "-",
    Chem.BondType.DOUBLE: "=",
    Chem.BondType.TRIPLE: "#",
    Chem.BondType.AROMATIC: ":",
}


def _bond_char(bond: Chem.Bond) -> str:
    return _BOND_CHAR.get(bond.GetBondType(), "~")


def _path_key(mol: Chem.Mol, path: Sequence[int]) -> str:
    """Key of an atom path: symbols joined by bond characters (``-``, ``=``, ``#``, ``:``,
    ``~`` other), read in the direction that gives the smaller string (``"C-H"``, ``"C:C-H"``,
    ``"C-C=C-C"``)."""

    def spell(p: Sequence[int]) -> str:
        parts = [mol.GetAtomWithIdx(p[0]).GetSymbol()]
        for a, b in pairwise(p):
            parts.append(_bond_char(mol.GetBondBetweenAtoms(a, b)))
            parts.append(mol.GetAtomWithIdx(b).GetSymbol())
        return "".join(parts)

    return min(spell(path), spell(path[::-1]))


def _angle_paths(mol: Chem.Mol, include_h: bool) -> list[tuple[int, int, int]]:
    paths = []
    for atom in mol.GetAtoms():
        nbrs = [
            n.GetIdx()
            for n in atom.GetNeighbors()
            if include_h or n.GetAtomicNum() != 1
        ]
        if not include_h and atom.GetAtomicNum() == 1:
            continue
        for a, c in combinations(sorted(nbrs), 2):
            paths.append((a, atom.GetIdx(), c))
    return paths


def _torsion_paths(mol: Chem.Mol) -> list[tuple[int, int, int, int]]:
    """Proper torsions a-b-c-d over heavy atoms, one per path (a != d, no 3-ring closure)."""
    heavy = [a.GetAtomicNum() != 1 for a in mol.GetAtoms()]
    paths = []
    for bond in mol.GetBonds():
        b, c = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        if not (heavy[b] and heavy[c]):
            continue
        nb = [
            n.GetIdx()
            for n in mol.GetAtomWithIdx(b).GetNeighbors()
            if heavy[n.GetIdx()] and n.GetIdx() != c
        ]
        nc = [
            n.GetIdx()
            for n in mol.GetAtomWithIdx(c).GetNeighbors()
            if heavy[n.GetIdx()] and n.GetIdx() != b
        ]
        paths.extend((a, b, c, d) for a in nb for d in nc if a != d)
    return paths


def _angles_deg(pos: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Angles a-b-c in degrees for rows (a, b, c) of ``idx``; ``pos`` (N, 3) Å."""
    u = pos[idx[:, 0]] - pos[idx[:, 1]]
    v = pos[idx[:, 2]] - pos[idx[:, 1]]
    cos = (u * v).sum(1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _dihedrals_deg(pos: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Signed dihedrals a-b-c-d in degrees, in (-180, 180] (IUPAC sign convention)."""
    b0 = pos[idx[:, 0]] - pos[idx[:, 1]]
    b1 = pos[idx[:, 2]] - pos[idx[:, 1]]
    b2 = pos[idx[:, 3]] - pos[idx[:, 2]]
    b1n = b1 / np.linalg.norm(b1, axis=1, keepdims=True)
    v = b0 - (b0 * b1n).sum(1, keepdims=True) * b1n
    w = b2 - (b2 * b1n).sum(1, keepdims=True) * b1n
    x = (v * w).sum(1)
    y = (np.cross(b1n, v) * w).sum(1)
    return np.degrees(np.arctan2(y, x))


def _collect(
    out: dict[str, list[float]],
    mol: Chem.Mol,
    paths: Sequence[Sequence[int]],
    values: np.ndarray,
) -> None:
    for path, value in zip(paths, values):
        if np.isfinite(value):
            out[_path_key(mol, path)].append(float(value))


def geometry_distributions(
    mols: Iterable[Chem.Mol], *, include_hydrogens: bool = True
) -> dict[str, dict[str, np.ndarray]]:
    """Bond lengths, bond angles and heavy-atom torsions of molecules with a 3D conformer.

    Args:
        mols: RDKit molecules (sanitised, so aromatic bonds are perceived the same way in
            generated and reference sets) with at least one conformer; the first conformer
            is used. ``None`` entries and molecules without conformers are skipped.
        include_hydrogens: include bonds and angles involving hydrogen atoms (torsions are
            always heavy-atom only).

    Returns:
        ``{"bonds": {key: lengths Å}, "angles": {key: angles degrees in [0, 180]},
        "torsions": {key: signed dihedrals degrees in (-180, 180]}}``; keys spell the atom
        path with bond characters, read in the direction giving the smaller string:
        ``"C-C"``, ``"C:C"`` (aromatic), ``"C=O"``, ``"C#N"``; angles ``"C-C-O"`` (vertex
        in the middle); torsions ``"C-C=C-C"``. Values are 1-D float arrays.
    """
    acc: dict[str, dict[str, list[float]]] = {
        k: defaultdict(list) for k in ("bonds", "angles", "torsions")
    }
    for mol in mols:
        if mol is None or mol.GetNumConformers() == 0:
            continue
        pos = mol.GetConformer().GetPositions()
        bonds = [
            (b.GetBeginAtomIdx(), b.GetEndAtomIdx())
            for b in mol.GetBonds()
            if include_hydrogens
            or (
                b.GetBeginAtom().GetAtomicNum() != 1
                and b.GetEndAtom().GetAtomicNum() != 1
            )
        ]
        if bonds:
            idx = np.array(bonds)
            _collect(
                acc["bonds"],
                mol,
                bonds,
                np.linalg.norm(pos[idx[:, 0]] - pos[idx[:, 1]], axis=1),
            )
        angles = _angle_paths(mol, include_hydrogens)
        if angles:
            with np.errstate(invalid="ignore", divide="ignore"):
                _collect(acc["angles"], mol, angles, _angles_deg(pos, np.array(angles)))
        torsions = _torsion_paths(mol)
        if torsions:
            with np.errstate(invalid="ignore", divide="ignore"):
                _collect(
                    acc["torsions"],
                    mol,
                    torsions,
                    _dihedrals_deg(pos, np.array(torsions)),
                )
    return {
        kind: {k: np.asarray(v) for k, v in sorted(d.items())}
        for kind, d in acc.items()
    }


def circular_wasserstein_distance(
    u: np.ndarray, v: np.ndarray, period: float = 360.0
) -> float:
    """Exact Wasserstein-1 distance between two empirical distributions on a circle.

    Uses W1 = min_a ∫ |F_u(t) - F_v(t) - a| dt over one period (Rabin, Delon & Gousseau
    2011, "Transportation distances on the circle"), with the optimal ``a`` the length-
    weighted median of the CDF difference. Same units as the inputs (degrees for the
    default period of 360). Samples are equally weighted; either set may be any size.
    """
    x = np.mod(np.asarray(u, dtype=np.float64).ravel(), period)
    y = np.mod(np.asarray(v, dtype=np.float64).ravel(), period)
    if x.size == 0 or y.size == 0:
        return float("nan")
    x.sort()
    y.sort()
    grid = np.concatenate([[0.0], np.union1d(x, y), [period]])
    left = grid[:-1]
    lengths = np.diff(grid)
    diff = (
        np.searchsorted(x, left, side="right") / x.size
        - np.searchsorted(y, left, side="right") / y.size
    )
    order = np.argsort(diff)
    cum = np.cumsum(lengths[order])
    shift = diff[order][np.searchsorted(cum, 0.5 * cum[-1])]
    return float(np.sum(lengths * np.abs(diff - shift)))


def _w1_per_key(
    gen: Mapping[str, np.ndarray],
    ref: Mapping[str, np.ndarray],
    min_samples: int,
    circular: bool,
) -> tuple[dict[str, float], float]:
    """Per-key W1 and its mean weighted by the number of reference samples of each key."""
    out: dict[str, float] = {}
    weights: list[int] = []
    for key in sorted(set(gen) & set(ref)):
        g, r = np.asarray(gen[key]), np.asarray(ref[key])
        if g.size < min_samples or r.size < min_samples:
            continue
        out[key] = (
            circular_wasserstein_distance(g, r)
            if circular
            else float(wasserstein_distance(g, r))
        )
        weights.append(r.size)
    if not out:
        return out, float("nan")
    return out, float(np.average(list(out.values()), weights=weights))


def wasserstein_distances(
    gen: Mapping[str, Mapping[str, np.ndarray]],
    ref: Mapping[str, Mapping[str, np.ndarray]],
    *,
    min_samples: int = 20,
) -> dict[str, Any]:
    """Wasserstein-1 distances between generated and reference geometry distributions.

    Args:
        gen, ref: outputs of :func:`geometry_distributions`.
        min_samples: a key is compared only when both sets have at least this many values.

    Returns:
        ``{"bonds": {key: W1 Å}, "angles": {key: W1 degrees}, "torsions": {key: W1
        degrees}, "bonds_mean", "angles_mean", "torsions_mean"}``: bonds and angles use
        ``scipy.stats.wasserstein_distance`` on the line, torsions the exact W1 on the
        circle of :func:`circular_wasserstein_distance`. Each ``*_mean`` is the mean over
        the compared keys weighted by the number of reference values of the key (NaN when
        no key qualifies). Keys present in only one set are left out; compare the key sets
        separately if missing bond types matter.
    """
    out: dict[str, Any] = {}
    for kind in ("bonds", "angles", "torsions"):
        per_key, mean = _w1_per_key(
            gen.get(kind, {}), ref.get(kind, {}), min_samples, kind == "torsions"
        )
        out[kind] = per_key
        out[f"{kind}_mean"] = mean
    return out

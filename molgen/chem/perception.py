"""Bond perception: turn generated atoms (elements + 3D positions) into RDKit molecules.

:func:`mol_from_atoms` builds an RDKit molecule from atomic numbers and positions (Å) the way
3D generators are evaluated since EDM (Hoogeboom et al. 2022): bonds are not generated, they
are perceived from the geometry. Connectivity comes from
:func:`rdkit.Chem.rdDetermineBonds.DetermineConnectivity` (connect-the-dots on covalent
radii), bond orders and formal charges from
:func:`rdkit.Chem.rdDetermineBonds.DetermineBondOrders` (the xyz2mol algorithm of Kim & Kim
2015 / Jensen), followed by RDKit sanitisation.

Validity follows EDM: a sample is *valid* when the molecule built from the perceived bonds
sanitises, whatever its number of fragments. Connectedness is reported separately
(:attr:`PerceptionResult.num_fragments`); EDM computes its uniqueness and novelty on the
SMILES of the largest fragment, which :attr:`PerceptionResult.largest_fragment_smiles` holds.

Unlike EDM, which builds its RDKit molecules from its own distance-table bond orders
(:mod:`molgen.chem.molecule_metrics`) and lets RDKit add implicit hydrogens to under-bonded
atoms (so only over-bonded atoms make a sample invalid there), hydrogens are explicit here:
every atom has ``NoImplicit`` set, so a missing hydrogen makes perception fail. That is
stricter than EDM's number and should be reported as such.

:func:`mol_from_atoms` never raises on bad input (NaN positions, overlapping atoms, unknown
elements, wrong shapes): it returns ``valid=False`` with a short, countable ``reason``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdDetermineBonds
from rdkit.Geometry import Point3D

__all__ = [
    "PerceptionResult",
    "canonical_smiles",
    "largest_fragment",
    "mol_from_atoms",
]

#: default cap on the iterations of RDKit's bond-order search (0 means unlimited there);
#: keeps pathological samples (huge conjugated blobs) from running for minutes
DEFAULT_MAX_ITERATIONS = 200_000


@dataclass(frozen=True)
class PerceptionResult:
    """Outcome of :func:`mol_from_atoms`.

    Attributes:
        mol: the sanitised molecule with explicit hydrogens and one 3D conformer (Å), or
            ``None`` when perception or sanitisation failed. Atom ``i`` is input atom ``i``.
        smiles: canonical SMILES of the whole molecule (hydrogens implicit, no stereo;
            fragments joined by ``.``), or ``None`` when not valid.
        largest_fragment_smiles: canonical SMILES of the fragment with most atoms (EDM's
            basis for uniqueness and novelty), or ``None`` when not valid.
        valid: ``True`` when bond perception and sanitisation succeeded (EDM's validity;
            fragments allowed).
        reason: why the sample is not valid, or, for a valid sample with several fragments,
            ``"disconnected (k fragments)"``; ``None`` for a valid, connected sample. One of
            ``"empty"``, ``"invalid input: <what>"``, ``"non-finite positions"``,
            ``"unknown element"``, ``"connectivity failed"``,
            ``"bond perception failed: <kind>"`` (kind: ``charge mismatch``, ``valence``,
            ``unsupported element``, ``too many iterations``, ``other``),
            ``"sanitization failed: <exception class>"``, ``"disconnected (k fragments)"``.
        num_fragments: connected components of the perceived connectivity graph (also set
            when bond orders could not be assigned); 0 when connectivity is unknown.
        charge_used: total charge passed to the bond-order assignment that succeeded (or
            to the last one tried), ``None`` when it was never reached.
        charges_from_input: ``True`` when the successful assignment started from the input
            formal charges, ``False`` when it fell back to neutral atoms, ``None`` when no
            formal charges were given or nothing succeeded.
        charges_consistent: ``True`` when the formal charges of :attr:`mol` equal the input
            formal charges; ``None`` when none were given or the sample is not valid.
            RDKit's bond-order assignment may add charges to make valences fit (ethanol
            with one hydrogen pulled away becomes ``[CH2-]CO.[H+]``), so this can be
            ``False`` even when :attr:`charges_from_input` is ``True``.
    """

    mol: Chem.Mol | None
    smiles: str | None
    largest_fragment_smiles: str | None
    valid: bool
    reason: str | None
    num_fragments: int
    charge_used: int | None = None
    charges_from_input: bool | None = None
    charges_consistent: bool | None = None


def canonical_smiles(mol: Chem.Mol) -> str | None:
    """Canonical SMILES used for uniqueness and novelty: hydrogens implicit, no stereo.

    Stereo is dropped because EDM's SMILES carry none (its molecules have no perceived
    stereo); use the same function on training molecules. Returns ``None`` when RDKit cannot
    write the molecule.
    """
    try:
        with rdBase.BlockLogs():  # RemoveHs warns about isolated hydrogens
            return Chem.MolToSmiles(
                Chem.RemoveHs(mol, sanitize=False), isomericSmiles=False
            )
    except Exception:  # noqa: BLE001 - RDKit raises many unrelated types
        return None


def largest_fragment(mol: Chem.Mol) -> Chem.Mol:
    """Fragment of ``mol`` with the most atoms (ties: the first), sanitised like ``mol``."""
    frags = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
    return max(frags, key=lambda m: m.GetNumAtoms())


def _invalid(reason: str, num_fragments: int = 0, **kw: object) -> PerceptionResult:
    return PerceptionResult(
        mol=None,
        smiles=None,
        largest_fragment_smiles=None,
        valid=False,
        reason=reason,
        num_fragments=num_fragments,
        **kw,  # type: ignore[arg-type]
    )


def _check_inputs(
    atomic_numbers: object, positions: object, formal_charges: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | str:
    """Arrays as (N,) int, (N,3) float, (N,) int or None; a reason string when unusable."""
    try:
        z = np.asarray(atomic_numbers)
        pos = np.asarray(positions, dtype=np.float64)
        q = None if formal_charges is None else np.asarray(formal_charges)
    except (TypeError, ValueError):
        return "invalid input: not numeric"
    if z.ndim != 1 or pos.shape != (z.shape[0], 3):
        return "invalid input: shape"
    if q is not None and q.shape != z.shape:
        return "invalid input: shape"
    if z.shape[0] == 0:
        return "empty"
    for arr in (z, q):
        if arr is None:
            continue
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(
            arr.dtype, np.complexfloating
        ):
            return "invalid input: not numeric"
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            return "invalid input: non-integer"
    if not np.all(np.isfinite(pos)):
        return "non-finite positions"
    z = z.astype(np.int64)
    if np.any(z < 1) or np.any(z > 118):
        return "unknown element"
    return z, pos, None if q is None else q.astype(np.int64)


def _build_mol(
    z: np.ndarray, pos: np.ndarray, charges: np.ndarray | None
) -> Chem.RWMol:
    """Bond-less molecule with explicit-only hydrogens, optional charges and one conformer."""
    rw = Chem.RWMol()
    for i, zi in enumerate(z):
        atom = Chem.Atom(int(zi))
        atom.SetNoImplicit(True)
        if charges is not None:
            atom.SetFormalCharge(int(charges[i]))
        rw.AddAtom(atom)
    conf = Chem.Conformer(len(z))
    conf.Set3D(True)
    for i, p in enumerate(pos):
        conf.SetAtomPosition(i, Point3D(float(p[0]), float(p[1]), float(p[2])))
    rw.AddConformer(conf, assignId=True)
    return rw


def _bond_order_failure_kind(exc: Exception) -> str:
    """Short, countable kind of a DetermineBondOrders failure."""
    msg = str(exc).lower()
    if isinstance(exc, Chem.MolSanitizeException):
        return f"sanitization failed: {type(exc).__name__}"
    if "iteration" in msg or "MaxFindBondOrdersItersExceeded" in type(exc).__name__:
        kind = "too many iterations"
    elif "charge" in msg:
        kind = "charge mismatch"
    elif "no valences defined" in msg:
        kind = "unsupported element"
    elif "valence" in msg:
        kind = "valence"
    else:
        kind = "other"
    return f"bond perception failed: {kind}"


def _assign_bond_orders(
    connected: Chem.RWMol,
    attempts: list[tuple[int, bool]],
    charges: np.ndarray | None,
    max_iterations: int,
    allow_charged_fragments: bool,
) -> tuple[Chem.RWMol | None, int | None, bool | None, str | None]:
    """Try ``(total charge, use input charges)`` attempts in order on copies of ``connected``.

    Returns (molecule, charge used, charges from input, failure reason of the last attempt).
    """
    reason: str | None = None
    charge_used: int | None = None
    for total, use_input in attempts:
        mol = Chem.RWMol(connected)
        for atom in mol.GetAtoms():
            q = (
                int(charges[atom.GetIdx()])
                if (use_input and charges is not None)
                else 0
            )
            atom.SetFormalCharge(q)
        charge_used = total
        try:
            rdDetermineBonds.DetermineBondOrders(
                mol,
                charge=int(total),
                allowChargedFragments=allow_charged_fragments,
                embedChiral=True,
                maxIterations=int(max_iterations),
            )
        except Exception as exc:  # noqa: BLE001 - ValueError, RuntimeError, sanitize errors
            reason = _bond_order_failure_kind(exc)
            continue
        return mol, total, (use_input if charges is not None else None), None
    return None, charge_used, None, reason


def _charge_attempts(
    charges: np.ndarray | None, total_charge: int | None
) -> list[tuple[int, bool]]:
    """(total charge, use input charges) to try: the given charge first, then neutral."""
    if charges is not None:
        first = (int(charges.sum()), True)
    else:
        first = (0 if total_charge is None else int(total_charge), False)
    attempts = [first]
    if first != (0, False):
        attempts.append((0, False))
    return attempts


def mol_from_atoms(
    atomic_numbers: np.ndarray,
    positions: np.ndarray,
    formal_charges: np.ndarray | None = None,
    *,
    total_charge: int | None = None,
    allow_charged_fragments: bool = True,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
) -> PerceptionResult:
    """Perceive bonds of one generated sample and build a sanitised RDKit molecule.

    Args:
        atomic_numbers: (N,) integer atomic numbers (hydrogens included, as explicit atoms).
        positions: (N, 3) coordinates in Å.
        formal_charges: optional (N,) integer formal charges. When given they are set on
            the atoms before bond orders are assigned and the total charge is their sum
            (``total_charge`` is then ignored).
        total_charge: total charge of the molecule when ``formal_charges`` is not given
            (default 0).
        allow_charged_fragments: passed to ``DetermineBondOrders``: place formal charges
            on atoms whose valence requires it (``True``, RDKit's default) or radicals.
        max_iterations: cap on RDKit's bond-order search (0: unlimited).

    Charge handling: bond orders are first assigned with the given total charge (and the
    input formal charges, if any); if that fails and it was not already a neutral,
    charge-free attempt, it is retried with total charge 0 and neutral atoms.
    :attr:`PerceptionResult.charge_used` and :attr:`PerceptionResult.charges_from_input`
    record which attempt succeeded.

    Returns:
        A :class:`PerceptionResult`; never raises.
    """
    try:
        return _mol_from_atoms(
            atomic_numbers,
            positions,
            formal_charges,
            total_charge,
            allow_charged_fragments,
            max_iterations,
        )
    except Exception as exc:  # noqa: BLE001 - the contract is to never raise
        return _invalid(f"internal error: {type(exc).__name__}")


def _mol_from_atoms(
    atomic_numbers: object,
    positions: object,
    formal_charges: object,
    total_charge: int | None,
    allow_charged_fragments: bool,
    max_iterations: int,
) -> PerceptionResult:
    checked = _check_inputs(atomic_numbers, positions, formal_charges)
    if isinstance(checked, str):
        return _invalid(checked)
    z, pos, charges = checked

    with rdBase.BlockLogs():  # silence RDKit while it fails on garbage
        return _perceive(
            z, pos, charges, total_charge, allow_charged_fragments, max_iterations
        )


def _perceive(
    z: np.ndarray,
    pos: np.ndarray,
    charges: np.ndarray | None,
    total_charge: int | None,
    allow_charged_fragments: bool,
    max_iterations: int,
) -> PerceptionResult:
    """Connectivity, bond orders and sanitisation of checked inputs."""
    connected = _build_mol(z, pos, charges)
    try:
        rdDetermineBonds.DetermineConnectivity(connected)
    except Exception:  # noqa: BLE001
        return _invalid("connectivity failed")
    num_fragments = len(Chem.GetMolFrags(connected, sanitizeFrags=False))

    attempts = _charge_attempts(charges, total_charge)
    mol, charge_used, from_input, reason = _assign_bond_orders(
        connected, attempts, charges, max_iterations, allow_charged_fragments
    )
    if mol is None:
        reason = reason or "bond perception failed: other"
        return _invalid(reason, num_fragments, charge_used=charge_used)
    try:
        Chem.SanitizeMol(mol)
    except Exception as exc:  # noqa: BLE001 - MolSanitizeException subclasses
        reason = f"sanitization failed: {type(exc).__name__}"
        return _invalid(reason, num_fragments, charge_used=charge_used)

    out = mol.GetMol()
    smiles = canonical_smiles(out)
    largest = canonical_smiles(largest_fragment(out)) if num_fragments > 1 else smiles
    if smiles is None or largest is None:
        return _invalid(
            "sanitization failed: smiles", num_fragments, charge_used=charge_used
        )
    consistent = None
    if charges is not None:
        consistent = [a.GetFormalCharge() for a in out.GetAtoms()] == charges.tolist()
    return PerceptionResult(
        mol=out,
        smiles=smiles,
        largest_fragment_smiles=largest,
        valid=True,
        reason=None
        if num_fragments == 1
        else f"disconnected ({num_fragments} fragments)",
        num_fragments=num_fragments,
        charge_used=charge_used,
        charges_from_input=from_input,
        charges_consistent=consistent,
    )

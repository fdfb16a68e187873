"""Sanity checks of generated conformers before export.

A :class:`ConformerValidator` is built once per molecule (from the input Mol, with
explicit hydrogens) and then checks conformer coordinates (Å) with a handful of
vectorised numpy operations. Checks run in this order; the first failure is reported
with a short, stable reason key:

``nonfinite``
    NaN or infinite coordinates.
``stereo``
    A stereocentre or stereo double bond specified by the input is not reproduced.
    Tetrahedral centres: the sign of the signed volume ``det[n0-c, n1-c, n2-c]`` of the
    first three neighbours (in RDKit bond order) must be positive for ``CHI_TETRAHEDRAL_CCW``
    and negative for ``CHI_TETRAHEDRAL_CW`` (RDKit's convention, checked against CIP labels
    from ``AssignStereochemistryFrom3D`` in the tests), and the centre must not be flat
    (|volume of the unit bond vectors| >= ``min_chiral_volume``). Double bonds: the
    reference atoms of each E/Z (or cis/trans) bond must be on the same side (dihedral
    < 90°) for Z/cis and on opposite sides for E/trans. Only stereo the input specifies
    (after RDKit's clean-up) is checked. This avoids the slow CIP route.
``bond_length``
    A bond length outside RDKit's distance-geometry bounds for that bond widened by
    ``bond_tol`` (default 0.25 Å). ETKDGv3 conformers of drug-like molecules stay within
    0.15 Å of these bounds.
``bond_angle``
    A 1-3 distance (i.e. a bond angle) outside RDKit's 1-3 bounds widened by
    ``angle_tol`` (default 0.35 Å, about 15° for typical bond lengths). ETKDGv3 stays
    within 0.22 Å.
``clash``
    Two heavy atoms separated by 4 or more bonds closer than ``clash_scale`` (default
    0.6) times the sum of their van der Waals radii (C···C 2.04 Å, N···O 1.84 Å,
    O···O 1.82 Å, Cl···Cl 2.10 Å). The closest such contact seen in ETKDGv3 conformers
    of ~35 drug-like molecules (1050 conformers, incl. morphine, steroids, a macrocycle,
    intramolecular H-bonds) is 0.70 times the radii sum (2.21 Å), so ordinary conformers
    pass while atoms pushed into each other fail. Pairs 1-2, 1-3 and 1-4 apart are covered
    by the bond/angle checks or are legitimately close. Atoms of different fragments
    (salts, solvent) are not checked: their relative placement is arbitrary (ETKDG
    overlaps them).
``planarity``
    An aromatic ring (all atoms aromatic, from RingInfo) whose atoms deviate from their
    best (least-squares) plane by more than ``planarity_tol`` (default 0.1 Å). ETKDGv3
    rings are flat to 0.002 Å.


The last four checks reproduce the conformer checks of PoseBusters' molecule configuration
(``posebusters.PoseBusters(config="mol")``, posebusters 0.6.5, ``config/mol.yml``) with the
same thresholds, so that a conformer passing them passes PoseBusters too (PoseBusters' bond
length, bond angle and aromatic ring flatness checks are implied by the stricter checks above;
its sanitization, InChI, connectivity and radical checks concern the molecule, not the
conformer). They are computed here with RDKit and numpy, once per molecule where possible and
vectorised over the conformer stack; posebusters itself is not imported
(``molgen/bench/posebusters_agreement.py`` and the tests compare the verdicts with it):

``internal_clash``
    PoseBusters' "Internal steric clash": two heavy atoms 3 or more bonds apart (1-4 pairs
    included) closer than ``internal_clash_scale`` (default 0.7, PoseBusters'
    ``threshold_clash`` 0.3 as ``1 - 0.3``) times their lower distance bound from RDKit's
    distance-geometry bounds matrix (``GetMoleculeBoundsMatrix``: 1-5 bounds set, triangle
    smoothing, no macrocycle 1-4 rule; PoseBusters' parameters), in Å. Pairs of different
    fragments are not checked (see ``clash``).
``double_bond_planarity``
    PoseBusters' "Double bond flatness": the six atoms of each match of
    ``[C;X3;^2](*)(*)=[C;X3;^2](*)(*)`` (a C=C with three neighbours on each carbon) lie more
    than ``double_bond_tol`` (default 0.25 Å) from their least-squares plane.
``flat_ring``
    PoseBusters' "Non-aromatic ring non-flatness": a non-aromatic single-ring 6-membered ring of
    C, N, O, S (PoseBusters' five SMARTS: saturated, or one double bond in position 2 or 3)
    whose atoms all lie within ``flat_ring_tol`` (default 0.07 Å: PoseBusters' 0.05 Å plus a margin, since
    a conformer relaxed just out of the plane could pass here and fail there by rounding) of their
    least-squares plane.
    Ring conformations come from ETKDG, which makes some rings with five sp2 atoms flat every
    time (e.g. the 1,3,5-triazinane-2-thione ring of ``S=C1NC(c2ccccc2)=NCN1c1ccccc1``, flat to
    0.01 Å); such a molecule then gets no valid conformer (PoseBusters fails ETKDG's conformers
    of it too). ``flat_ring_tol=0`` switches the check off.
``internal_energy``
    PoseBusters' "Internal energy": the conformer's UFF energy ``E`` (kcal/mol; RDKit UFF of the
    molecule as given, explicit hydrogens, no minimisation: exactly PoseBusters' number) divided
    by a reference energy ``E_ref`` (kcal/mol) of the molecule exceeds ``energy_ratio`` (default
    70: PoseBusters' ``threshold_energy_ratio`` of 100 in ``mol.yml`` times 0.7, because ``E_ref`` only
    estimates PoseBusters' reference (measured ratio 0.75-1.09, below); with 100, one conformer in
    about 900 of the CCD benchmark passed here and failed PoseBusters). The ratio is taken as
    PoseBusters takes it: ``E / E_ref``, passing iff ``<= energy_ratio`` (a zero ``E_ref`` is
    clipped to 1e-10); a NaN ratio fails. Skipped when UFF has no parameters for the molecule.
    One departure: a conformer less than ``energy_margin`` (10 kcal/mol) above ``E_ref`` passes
    whatever the ratio. For drug-like molecules a ratio of 100 means thousands of kcal/mol, so
    the margin never decides; for very small molecules (methane, CHF3, CH2Cl2) the relaxed energy
    is near zero and any conformer, ETKDG's included, has a huge ratio: PoseBusters fails them all,
    molgen delivers them.

    PoseBusters' reference is the mean UFF energy of an ensemble of 50 ETKDGv3 conformers
    (seed 42, from the molecule's InChI), each UFF-minimised for at most 200 steps; that costs
    0.1-6 s per molecule. Here ``E_ref`` is a one-sample estimate of the same quantity, computed
    once per molecule from the first stack whose conformers reach this check: the one with the
    lowest ``E`` among those that pass every other check is UFF-minimised for at most
    ``reference_max_iters`` (200) steps, as PoseBusters minimises each ensemble member
    (``UFFOptimizeMoleculeConfs``); ``E_ref`` is its energy. ``E_ref`` / PoseBusters' mean was
    0.75-1.06 (median 0.98) on 20 drug-like molecules (2 x 20 stacks of molgen conformers) and
    0.85-1.09 (median 0.98) on the 40 molecules of the agreement benchmark, where the verdicts
    of this check and PoseBusters' agreed on all 800 unvalidated molgen conformers. Later stacks
    reuse ``E_ref``; it can also be given (``reference_energy``).

    Most stacks never need the 200 steps (10-30 ms for 40-70 atoms): first the start conformer
    is minimised for ``quick_iters`` (20) steps only (2-4 ms), giving ``E_quick >= E_ref``
    (minimisation only lowers the energy). A conformer with ``E / E_quick > energy_ratio`` fails
    (it fails against ``E_ref`` too); one with ``E / E_quick <= quick_gate * energy_ratio``
    (0.15 x 100) passes, which is exact as long as steps 21-200 lower the energy less than
    6.7-fold: measured at most 2.1-fold (20 drug-like molecules above), 1.8-fold (160 stacks of 80
    MOSES test molecules) and 2.9-fold (40 GEOM-DRUGS test molecules of the agreement benchmark).
    Only when some conformer lies between the two (about one stack in six of unvalidated molgen
    output) is ``E_ref`` computed. ``E_quick`` is not used (``E_ref`` is computed at once) when
    it is not positive or when the start conformer's ``E`` was more than 3 x ``E_quick`` (a
    strained start may still be relaxing after 20 steps).

Timing (2-CPU VM under load, numpy 2): building the validator takes ~1.6 ms; validating
one conformer of a 29-heavy-atom molecule (lisinopril, 60 atoms with H, 3 stereocentres)
takes ~0.10 ms with :meth:`ConformerValidator.validate` and ~0.015 ms per conformer when
a stack is checked at once with :meth:`ConformerValidator.validate_many` without the
PoseBusters checks (``posebusters_checks=False``). With them (the default), building takes
~1.4 ms, the first stack of 5 conformers that reaches the energy check ~4-7 ms in all (the
20-step UFF minimisation for ``E_quick``, and in about one molecule in ten the 200-step one),
and every further conformer ~0.03-0.14 ms (mostly its UFF energy). Over 40 GEOM-DRUGS test
molecules at 5 conformers (``python -m molgen.bench.posebusters_agreement``) that is ~1 ms per
delivered conformer more than before (``first stack`` ~4.4 ms per molecule with the checks,
~1.5 ms for the whole older validator), against ~50-70 ms per conformer for sampling them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdDistGeom, rdForceFieldHelpers

__all__ = [
    "DOUBLE_BOND_SMARTS",
    "NONFLAT_RING_SMARTS",
    "REASONS",
    "ConformerValidator",
    "ValidationResult",
]

#: The reason keys, in the order the checks run.
REASONS = (
    "nonfinite",
    "stereo",
    "bond_length",
    "bond_angle",
    "clash",
    "planarity",
    "internal_clash",
    "double_bond_planarity",
    "flat_ring",
    "internal_energy",
)

#: PoseBusters' (0.6.5, ``config/mol.yml``) SMARTS of C=C double bonds that must be flat.
DOUBLE_BOND_SMARTS = ("[C;X3;^2](*)(*)=[C;X3;^2](*)(*)",)
#: PoseBusters' SMARTS of non-aromatic 6-membered rings that must not be flat.
NONFLAT_RING_SMARTS = (
    "[C,O,S,N;R1]~1[C,O,S,N;R1][C,O,S,N;R1][C,O,S,N;R1][C,O,S,N;R1][C,O,S,N;R1]1",
    "[C;R1]~1[C;R1][C,O,S,N;R1]~[C,O,S,N;R1][C;R1][C;R1]1",
    "[C;R1]~1[C;R1][C;R1]~[C;R1][C,O,S,N;R1][C;R1]1",
    "[C;R1]~1[C;R1][C;R1][C,O,S,N;R1]~[C,O,S,N;R1][C;R1]1",
    "[C;R1]~1[C;R1][C,O,S,N;R1][C;R1]~[C;R1][C;R1]1",
)
_ZERO_ENERGY = 1e-10  # PoseBusters clips a zero reference energy to this
_QUICK_MAX_DROP = 3.0  # the quick estimate is trusted if the start was at most this x higher

_CCW = Chem.ChiralType.CHI_TETRAHEDRAL_CCW
_CW = Chem.ChiralType.CHI_TETRAHEDRAL_CW
_CIS_LIKE = {Chem.BondStereo.STEREOZ, Chem.BondStereo.STEREOCIS}
_TRANS_LIKE = {Chem.BondStereo.STEREOE, Chem.BondStereo.STEREOTRANS}


def chiral_centres(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tetrahedral stereocentres of ``mol`` with at least three neighbours.

    Returns ``(centres (c,), neighbours (c, 3), signs (c,))``: atom indices, the first three neighbours in
    bond order, and +1 for ``CHI_TETRAHEDRAL_CCW`` / -1 for ``CW`` (the sign of the chiral volume that the
    tag requires in that neighbour order).
    """
    centres, neighbours, signs = [], [], []
    for atom in mol.GetAtoms():
        tag = atom.GetChiralTag()
        if tag not in (_CW, _CCW):
            continue
        idx = atom.GetIdx()
        nbrs = [b.GetOtherAtomIdx(idx) for b in atom.GetBonds()]
        if len(nbrs) < 3:
            continue
        centres.append(idx)
        neighbours.append(nbrs[:3])
        signs.append(1.0 if tag == _CCW else -1.0)
    return (np.array(centres, dtype=np.intp), np.array(neighbours, dtype=np.intp).reshape(-1, 3),
            np.array(signs, dtype=float))


def signed_chiral_volumes(x: np.ndarray, centres: np.ndarray, neighbours: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """``(k, c)`` chiral volumes of conformers ``x`` ``(k, n_atoms, 3)`` (Å) from unit bond vectors, times the
    sign each centre's tag requires: positive where the conformer has the right configuration (at most 1)."""
    v = x[:, neighbours, :] - x[:, centres, None, :]  # (k, c, 3, 3)
    v = v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-12)
    vol = np.einsum("kci,kci->kc", v[:, :, 0], np.cross(v[:, :, 1], v[:, :, 2]))
    return vol * signs


@dataclass(frozen=True)
class ValidationResult:
    """Outcome of validating one conformer.

    Attributes:
        ok: True when every check passed.
        reason: ``None`` when ok, else the key of the first failed check (see ``REASONS``).
    """

    ok: bool
    reason: str | None = None


_OK = ValidationResult(True, None)


class ConformerValidator:
    """Validate conformers of one molecule (see the module docstring for the checks).

    Args:
        mol: the input molecule *with explicit hydrogens*; its specified stereo (chiral
            tags, E/Z double bonds) is the reference. The atom order of validated
            coordinates must match it.
        bond_tol: Å beyond RDKit's 1-2 distance bounds that a bond may deviate.
        angle_tol: Å beyond RDKit's 1-3 distance bounds that an angle's 1-3 distance may
            deviate.
        clash_scale: heavy atoms ≥4 bonds apart must be at least this fraction of the sum
            of their van der Waals radii apart.
        planarity_tol: Å, maximum deviation of an aromatic ring atom from the ring plane.
        min_chiral_volume: minimum |det| of the three unit bond vectors of a stereocentre
            (a flat centre has no defined configuration).
        posebusters_checks: run the four checks that reproduce PoseBusters' conformer checks
            (``internal_clash``, ``double_bond_planarity``, ``flat_ring``, ``internal_energy``).
        internal_clash_scale: heavy atoms ≥3 bonds apart must be at least this fraction of
            their distance-geometry lower bound (Å) apart (PoseBusters: 1 - 0.3).
        double_bond_tol: Å, maximum distance of the six atoms of a C=C from their plane.
        flat_ring_tol: Å, a checked non-aromatic 6-ring needs an atom at least this far from
            its plane.
        energy_ratio: maximum ratio of a conformer's UFF energy to the reference energy.
        energy_margin: kcal/mol; a conformer within this much of the reference energy passes whatever
            its ratio (molecules whose relaxed UFF energy is near zero, such as methane).
        reference_energy: kcal/mol, the reference UFF energy ``E_ref``; None: computed from the
            first conformers that reach the energy check (see the module docstring).
        reference_max_iters: UFF minimisation iterations for the reference energy.
        quick_iters: iterations of the first, cheap minimisation that decides most conformers
            without the full reference (0: always compute the full reference).
        quick_gate: a conformer passes on the cheap estimate when its energy ratio to it is at
            most this fraction of ``energy_ratio``.

    Attributes:
        stereo_centres: ``{atom index: CIP label ('R'/'S', or '?' when RDKit gives none)}``
            of the checked tetrahedral centres.
        stereo_bonds: ``{(begin, end): 'Z' | 'E'}`` of the checked double bonds (relative
            to RDKit's stereo reference atoms).
        reference_energy: kcal/mol, ``E_ref`` of the energy check once known, else None.
        quick_energy: kcal/mol, the cheap upper estimate of ``E_ref`` once known, else None.
        energy_checked: whether the energy check runs (PoseBusters checks on and UFF
            parameters available).

    Attributes:
        stereo_centres: ``{atom index: CIP label ('R'/'S', or '?' when RDKit gives none)}``
            of the checked tetrahedral centres.
        stereo_bonds: ``{(begin, end): 'Z' | 'E'}`` of the checked double bonds (relative
            to RDKit's stereo reference atoms).
    """

    def __init__(
        self,
        mol: Chem.Mol,
        *,
        bond_tol: float = 0.25,
        angle_tol: float = 0.35,
        clash_scale: float = 0.6,
        planarity_tol: float = 0.1,
        min_chiral_volume: float = 0.05,
        posebusters_checks: bool = True,
        internal_clash_scale: float = 0.7,
        double_bond_tol: float = 0.25,
        flat_ring_tol: float = 0.07,
        energy_ratio: float = 70.0,
        energy_margin: float = 10.0,
        reference_energy: float | None = None,
        reference_max_iters: int = 200,
        quick_iters: int = 20,
        quick_gate: float = 0.15,
    ) -> None:
        self._input = Chem.Mol(mol)  # as given (PoseBusters' SMARTS and UFF see this)
        self._input.RemoveAllConformers()
        mol = Chem.Mol(mol)
        Chem.AssignStereochemistry(mol, cleanIt=True, force=True)
        self.n_atoms = mol.GetNumAtoms()
        self.planarity_tol = float(planarity_tol)
        self.min_chiral_volume = float(min_chiral_volume)
        self.posebusters_checks = bool(posebusters_checks)
        self.double_bond_tol = float(double_bond_tol)
        self.flat_ring_tol = float(flat_ring_tol)
        self.energy_ratio = float(energy_ratio)
        self.energy_margin = float(energy_margin)
        self.reference_max_iters = int(reference_max_iters)
        self.quick_iters = int(quick_iters)
        self.quick_gate = float(quick_gate)
        self.quick_energy: float | None = None  # after quick_iters steps, kcal/mol
        self._ref_start: np.ndarray | None = None  # start conformer of the reference, Å
        self.reference_energy: float | None = (
            None if reference_energy is None else float(reference_energy)
        )
        self._ff = None  # UFF force field, built on first use
        self._init_stereo(mol)
        self._init_distances(mol, bond_tol, angle_tol, clash_scale, internal_clash_scale)
        self._init_rings(mol)
        self._init_flatness(mol)
        self._uff_ok: bool | None = None  # UFF has parameters; known on first use
        self.energy_checked = self.posebusters_checks and self.n_atoms > 1
        if self.energy_checked:
            self._uff_ok = bool(rdForceFieldHelpers.UFFHasAllMoleculeParams(self._input))
            self.energy_checked = self._uff_ok

    # -- set-up -----------------------------------------------------------------------
    def _init_stereo(self, mol: Chem.Mol) -> None:
        self._chi_c, self._chi_n, self._chi_sign = chiral_centres(mol)
        self.stereo_centres: dict[int, str] = {}
        for idx in self._chi_c.tolist():
            atom = mol.GetAtomWithIdx(idx)
            self.stereo_centres[idx] = atom.GetProp("_CIPCode") if atom.HasProp("_CIPCode") else "?"

        quads, cis = [], []
        self.stereo_bonds: dict[tuple[int, int], str] = {}
        for bond in mol.GetBonds():
            stereo = bond.GetStereo()
            if stereo not in _CIS_LIKE and stereo not in _TRANS_LIKE:
                continue
            ref = list(bond.GetStereoAtoms())
            if len(ref) != 2:
                continue
            i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
            if (
                mol.GetBondBetweenAtoms(ref[0], i) is None
            ):  # stereo atoms are (begin-side, end-side)
                ref = ref[::-1]
            quads.append((ref[0], i, j, ref[1]))
            cis.append(stereo in _CIS_LIKE)
            self.stereo_bonds[(i, j)] = "Z" if stereo in _CIS_LIKE else "E"
        self._db = np.array(quads, dtype=np.intp).reshape(-1, 4)
        self._db_cis = np.array(cis, dtype=bool)

    def _init_distances(
        self,
        mol: Chem.Mol,
        bond_tol: float,
        angle_tol: float,
        clash_scale: float,
        internal_clash_scale: float,
    ) -> None:
        n = self.n_atoms
        # Upper triangle: upper bounds; lower triangle: lower bounds (Å). The parameters are
        # PoseBusters' (mol.yml: 1-5 bounds, triangle smoothing, no macrocycle 1-4 rule).
        bounds = (
            rdDistGeom.GetMoleculeBoundsMatrix(
                mol, set15bounds=True, doTriangleSmoothing=True, useMacrocycle14config=False
            )
            if n > 1
            else np.zeros((n, n))
        )
        topo = Chem.GetDistanceMatrix(mol) if n > 1 else np.zeros((n, n))

        def pairs_with(mask: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            i, j = np.nonzero(np.triu(mask, k=1))
            return np.stack([i, j]).astype(np.intp), bounds[j, i] - tol, bounds[i, j] + tol

        self._b_idx, self._b_lo, self._b_hi = pairs_with(topo == 1, bond_tol)
        self._a_idx, self._a_lo, self._a_hi = pairs_with(topo == 2, angle_tol)
        heavy = np.array([a.GetAtomicNum() > 1 for a in mol.GetAtoms()], dtype=bool)
        ptable = Chem.GetPeriodicTable()
        rvdw = np.array([ptable.GetRvdw(a.GetAtomicNum()) for a in mol.GetAtoms()])
        frag = np.zeros(n, dtype=np.intp)
        for k, atoms in enumerate(Chem.GetMolFrags(mol)):
            frag[list(atoms)] = k
        # Only within a fragment: RDKit places disconnected fragments (salts, solvents)
        # arbitrarily, often on top of each other.
        far = (topo >= 4) & (frag[:, None] == frag[None, :]) & heavy[:, None] & heavy[None, :]
        i, j = np.nonzero(np.triu(far, k=1))
        self._c_idx = np.stack([i, j]).astype(np.intp)
        self._c_min2 = (clash_scale * (rvdw[i] + rvdw[j])) ** 2
        # PoseBusters' internal clash: heavy pairs that are neither bonds nor angles (>= 3 bonds
        # apart) closer than (1 - 0.3) x their lower bound (bounds[j, i], i < j).
        near = (topo >= 3) & (frag[:, None] == frag[None, :]) & heavy[:, None] & heavy[None, :]
        if not self.posebusters_checks:
            near[:] = False
        i, j = np.nonzero(np.triu(near, k=1))
        self._ic_idx = np.stack([i, j]).astype(np.intp)
        self._ic_min2 = (internal_clash_scale * bounds[j, i]) ** 2

    def _init_rings(self, mol: Chem.Mol) -> None:
        by_size: dict[int, list[tuple[int, ...]]] = {}
        for ring in mol.GetRingInfo().AtomRings():
            if all(mol.GetAtomWithIdx(k).GetIsAromatic() for k in ring):
                by_size.setdefault(len(ring), []).append(ring)
        self._rings = [np.array(rings, dtype=np.intp) for rings in by_size.values()]

    def _init_flatness(self, mol: Chem.Mol) -> None:
        def matches(smarts: tuple[str, ...]) -> list[np.ndarray]:
            if not self.posebusters_checks:
                return []
            groups: set[tuple[int, ...]] = set()
            found: list[tuple[int, ...]] = []
            for sma in smarts:
                for match in self._input.GetSubstructMatches(Chem.MolFromSmarts(sma)):
                    key = tuple(sorted(match))
                    if key not in groups:  # the same atoms give the same plane
                        groups.add(key)
                        found.append(tuple(match))
            by_size: dict[int, list[tuple[int, ...]]] = {}
            for group in found:
                by_size.setdefault(len(group), []).append(group)
            return [np.array(g, dtype=np.intp) for g in by_size.values()]

        self._db_groups = matches(DOUBLE_BOND_SMARTS)
        self._nf_groups = matches(NONFLAT_RING_SMARTS)

    # -- checks -----------------------------------------------------------------------
    def validate(self, conf_coords: np.ndarray) -> ValidationResult:
        """Validate one conformer.

        Args:
            conf_coords: coordinates, shape ``(n_atoms, 3)``, Å.

        Returns:
            ``ValidationResult(True, None)`` or ``ValidationResult(False, reason)``.

        Raises:
            ValueError: wrong shape.
        """
        x = np.asarray(conf_coords, dtype=float)
        if x.shape != (self.n_atoms, 3):
            raise ValueError(f"expected coordinates of shape ({self.n_atoms}, 3), got {x.shape}")
        return self.validate_many(x[None])[0]

    def validate_many(self, coords: np.ndarray) -> list[ValidationResult]:
        """Validate a stack of conformers at once (faster per conformer).

        Args:
            coords: coordinates, shape ``(n_confs, n_atoms, 3)``, Å.

        Returns:
            One :class:`ValidationResult` per conformer.
        """
        x = np.asarray(coords, dtype=float)
        if x.ndim != 3 or x.shape[1:] != (self.n_atoms, 3):
            raise ValueError(
                f"expected coordinates of shape (n_confs, {self.n_atoms}, 3), got {x.shape}"
            )
        failed = np.zeros(len(x), dtype=bool)
        reasons: list[str | None] = [None] * len(x)
        for reason, check in self._checks():
            todo = ~failed
            if not todo.any():
                break
            bad = np.zeros(len(x), dtype=bool)
            bad[todo] = check(x[todo])
            for k in np.nonzero(bad)[0]:
                reasons[k] = reason
            failed |= bad
        return [_OK if r is None else ValidationResult(False, r) for r in reasons]

    def failures(self, coords: np.ndarray) -> dict[str, np.ndarray]:
        """Every check on every conformer (no short-cut after the first failure).

        Slower than :meth:`validate_many`; meant for analysis (e.g. comparing single checks
        with PoseBusters'). Checks after ``nonfinite`` see only finite conformers (the others
        count as passing them); the energy reference, if not yet known, is computed from the
        conformers that pass all other checks, as in :meth:`validate_many`.

        Args:
            coords: coordinates, shape ``(n_confs, n_atoms, 3)``, Å.

        Returns:
            ``{reason: bool array (n_confs,)}``, True where that check fails, for every key of
            ``REASONS``.
        """
        x = np.asarray(coords, dtype=float)
        if x.ndim != 3 or x.shape[1:] != (self.n_atoms, 3):
            raise ValueError(
                f"expected coordinates of shape (n_confs, {self.n_atoms}, 3), got {x.shape}"
            )
        out = {reason: np.zeros(len(x), dtype=bool) for reason in REASONS}
        finite = ~self._nonfinite(x) if len(x) else np.zeros(0, dtype=bool)
        out["nonfinite"] = ~finite
        others = np.zeros(len(x), dtype=bool)
        for reason, check in self._checks()[1:]:
            if not finite.any():
                break
            if reason == "internal_energy":
                # the reference comes from conformers that pass everything else
                if self._ref_start is None and self.energy_checked:
                    ok = finite & ~others
                    if ok.any():
                        self._energy_bad(x[ok])
                out[reason][finite] = self._energy_bad(x[finite])
            else:
                out[reason][finite] = check(x[finite])
                others |= out[reason]
        return out

    def _checks(self) -> list[tuple[str, Callable[[np.ndarray], np.ndarray]]]:
        checks: list[tuple[str, Callable[[np.ndarray], np.ndarray]]] = [
            ("nonfinite", self._nonfinite),
            ("stereo", self._stereo_bad),
            ("bond_length", self._bonds_bad),
            ("bond_angle", self._angles_bad),
            ("clash", self._clash_bad),
            ("planarity", self._planarity_bad),
        ]
        if self.posebusters_checks:
            checks += [
                ("internal_clash", self._internal_clash_bad),
                ("double_bond_planarity", self._double_bond_bad),
                ("flat_ring", self._flat_ring_bad),
                ("internal_energy", self._energy_bad),
            ]
        return checks

    @staticmethod
    def _nonfinite(x: np.ndarray) -> np.ndarray:
        return ~np.isfinite(x).all(axis=(1, 2))

    def _stereo_bad(self, x: np.ndarray) -> np.ndarray:
        bad = np.zeros(len(x), dtype=bool)
        if len(self._chi_c):
            vol = signed_chiral_volumes(x, self._chi_c, self._chi_n, self._chi_sign)
            bad |= (vol < self.min_chiral_volume).any(axis=1)
        if len(self._db):
            a, i, j, d = (x[:, self._db[:, m], :] for m in range(4))
            axis = j - i
            axis /= np.linalg.norm(axis, axis=-1, keepdims=True) + 1e-12
            u = a - i
            w = d - j
            u -= np.sum(u * axis, axis=-1, keepdims=True) * axis
            w -= np.sum(w * axis, axis=-1, keepdims=True) * axis
            same_side = np.sum(u * w, axis=-1) > 0.0
            bad |= (same_side != self._db_cis).any(axis=1)
        return bad

    @staticmethod
    def _distances(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        d = x[:, idx[0]] - x[:, idx[1]]
        return np.sqrt(np.einsum("kpi,kpi->kp", d, d))

    def _bonds_bad(self, x: np.ndarray) -> np.ndarray:
        if not self._b_idx.shape[1]:
            return np.zeros(len(x), dtype=bool)
        d = self._distances(x, self._b_idx)
        return ((d < self._b_lo) | (d > self._b_hi)).any(axis=1)

    def _angles_bad(self, x: np.ndarray) -> np.ndarray:
        if not self._a_idx.shape[1]:
            return np.zeros(len(x), dtype=bool)
        d = self._distances(x, self._a_idx)
        return ((d < self._a_lo) | (d > self._a_hi)).any(axis=1)

    def _clash_bad(self, x: np.ndarray) -> np.ndarray:
        if not self._c_idx.shape[1]:
            return np.zeros(len(x), dtype=bool)
        d = x[:, self._c_idx[0]] - x[:, self._c_idx[1]]
        return (np.einsum("kpi,kpi->kp", d, d) < self._c_min2).any(axis=1)

    def _planarity_bad(self, x: np.ndarray) -> np.ndarray:
        bad = np.zeros(len(x), dtype=bool)
        for rings in self._rings:  # rings: (r, s) atom indices of same-size rings
            p = x[:, rings, :]  # (k, r, s, 3)
            p = p - p.mean(axis=2, keepdims=True)
            cov = np.einsum("krsi,krsj->krij", p, p)
            _, vecs = np.linalg.eigh(cov)
            normal = vecs[..., :, 0]  # eigenvector of the smallest eigenvalue
            dev = np.abs(np.einsum("krsi,kri->krs", p, normal))
            bad |= dev.max(axis=(1, 2)) > self.planarity_tol
        return bad

    def _internal_clash_bad(self, x: np.ndarray) -> np.ndarray:
        if not self._ic_idx.shape[1]:
            return np.zeros(len(x), dtype=bool)
        d = x[:, self._ic_idx[0]] - x[:, self._ic_idx[1]]
        return (np.einsum("kpi,kpi->kp", d, d) < self._ic_min2).any(axis=1)

    @staticmethod
    def _plane_distances(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Max |distance| (Å) of each group's atoms from their least-squares plane: (k, g)."""
        p = x[:, groups, :]  # (k, g, s, 3)
        p = p - p.mean(axis=2, keepdims=True)
        cov = np.einsum("kgsi,kgsj->kgij", p, p)
        _, vecs = np.linalg.eigh(cov)
        normal = vecs[..., :, 0]  # eigenvector of the smallest eigenvalue
        return np.abs(np.einsum("kgsi,kgi->kgs", p, normal)).max(axis=2)

    def _double_bond_bad(self, x: np.ndarray) -> np.ndarray:
        bad = np.zeros(len(x), dtype=bool)
        for groups in self._db_groups:
            bad |= (self._plane_distances(x, groups) > self.double_bond_tol).any(axis=1)
        return bad

    def _flat_ring_bad(self, x: np.ndarray) -> np.ndarray:
        bad = np.zeros(len(x), dtype=bool)
        for groups in self._nf_groups:
            bad |= (self._plane_distances(x, groups) < self.flat_ring_tol).any(axis=1)
        return bad

    def uff_energies(self, coords: np.ndarray) -> np.ndarray:
        """UFF energies of conformers, as PoseBusters' energy check computes them.

        Args:
            coords: coordinates, shape ``(n_confs, n_atoms, 3)``, Å.

        Returns:
            Energies, shape ``(n_confs,)``, kcal/mol (RDKit UFF of the molecule as given, with
            its explicit hydrogens; no minimisation). NaN when UFF has no parameters.
        """
        x = np.asarray(coords, dtype=float).reshape(-1, self.n_atoms, 3)
        if self._uff_ok is None:
            self._uff_ok = self.n_atoms > 1 and bool(
                rdForceFieldHelpers.UFFHasAllMoleculeParams(self._input)
            )
        if not self._uff_ok:
            return np.full(len(x), np.nan)
        if self._ff is None:
            # All atoms at the origin: every non-bonded pair gets a van der Waals term (RDKit
            # drops pairs > 10x their contact distance, ~35 Å, apart in the starting geometry).
            mol = Chem.Mol(self._input)
            mol.RemoveAllConformers()
            mol.AddConformer(Chem.Conformer(self.n_atoms), assignId=True)
            self._ff_mol = mol  # the force field points into this conformer
            self._ff = rdForceFieldHelpers.UFFGetMoleculeForceField(mol)
        ff = self._ff
        return np.array([ff.CalcEnergy(xi.ravel().tolist()) for xi in x], dtype=float)

    def _minimised_energy(self, start: np.ndarray, max_iters: int) -> float:
        """UFF energy (kcal/mol) of ``start`` (Å) after at most ``max_iters`` minimisation steps."""
        mol = Chem.Mol(self._input)
        mol.RemoveAllConformers()
        conf = Chem.Conformer(self.n_atoms)
        conf.SetPositions(np.ascontiguousarray(start, dtype=np.float64))
        mol.AddConformer(conf, assignId=True)
        ((_, energy),) = rdForceFieldHelpers.UFFOptimizeMoleculeConfs(
            mol, numThreads=1, maxIters=int(max_iters)
        )
        return float(energy)

    def compute_reference_energy(self, coords: np.ndarray | None = None) -> float:
        """The reference energy ``E_ref`` of the energy check, computing it if not yet known.

        Args:
            coords: ``(n_confs, n_atoms, 3)`` Å; if no start conformer was chosen yet, the one
                with the lowest UFF energy is minimised. Not needed once a stack has reached
                the energy check.

        Returns:
            ``E_ref``, kcal/mol (UFF, ``reference_max_iters`` minimisation steps).

        Raises:
            ValueError: no start conformer known and no ``coords`` given.
        """
        if self.reference_energy is None:
            if self._ref_start is None:
                if coords is None:
                    raise ValueError("no conformer to compute the reference energy from")
                x = np.asarray(coords, dtype=float).reshape(-1, self.n_atoms, 3)
                self._ref_start = x[int(np.nanargmin(self.uff_energies(x)))].copy()
            self.reference_energy = self._minimised_energy(self._ref_start, self.reference_max_iters)
        return self.reference_energy

    def _energy_bad(self, x: np.ndarray) -> np.ndarray:
        if not self.energy_checked or not len(x):
            return np.zeros(len(x), dtype=bool)
        energies = self.uff_energies(x)
        if self.reference_energy is None and self._ref_start is None:
            finite = np.isfinite(energies)
            best = int(np.argmin(np.where(finite, energies, np.inf))) if finite.any() else 0
            self._ref_start = x[best].copy()
            if 0 < self.quick_iters < self.reference_max_iters:
                quick = self._minimised_energy(self._ref_start, self.quick_iters)
                # trusted only if the start was not strained (a start whose energy the first
                # steps cut by more than _QUICK_MAX_DROP may still be relaxing a clash)
                if quick > 0 and energies[best] <= _QUICK_MAX_DROP * quick:
                    self.quick_energy = quick
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            if self.reference_energy is None and self.quick_energy is not None:
                # Minimisation only lowers the energy: E_ref <= quick_energy, so a ratio above
                # the threshold against quick_energy fails against E_ref too; a ratio below
                # quick_gate x the threshold passes as long as the remaining steps lower the
                # energy by less than 1 / quick_gate (measured: at most 2.9x for 20 -> 200).
                ratio = energies / self.quick_energy
                # E - E_ref >= E - E_quick: above the margin against E_quick is above it against E_ref
                fail = ~(ratio <= self.energy_ratio) & ~(energies - self.quick_energy <= self.energy_margin)
                if (fail | (ratio <= self.energy_ratio * self.quick_gate)).all():
                    return fail
            ref = self.compute_reference_energy()
            ratio = energies / (ref if ref != 0.0 else _ZERO_ENERGY)
            return ~(ratio <= self.energy_ratio) & ~(energies - ref <= self.energy_margin)

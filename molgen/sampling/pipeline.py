"""From prepared molecules to validated conformers, many molecules at once.

:func:`generate_many` runs sampling rounds over a list of molecules: each round asks the model's sampler
for the conformers still missing of every molecule (one packed batch of requests, see
:mod:`molgen.sampling.conformer_sampler`), validates them (:class:`~molgen.chem.validate.ConformerValidator`)
and keeps those that pass; a conformer that fails is counted under its reason and replaced in the next
round, with torsions drawn anew on local structures that already passed. Then each molecule is
optionally relaxed with MMFF94, filtered by an energy window, pruned by RMSD and renumbered.

Samplers are found by the model's ``kind`` (:func:`register_sampler`); ``"torsion"`` is torsional
diffusion, ``"cartesian"`` diffusion of every atom position (:mod:`molgen.sampling.cartesian_sampler`). Everything here works on RDKit molecules and arrays: no files.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rdkit import Chem

from molgen.chem.postprocess import (
    apply_energy_window,
    optimize_mmff,
    prune_by_rms,
    select_conformers,
)
from molgen.chem.validate import REASONS, ConformerValidator
from molgen.errors import MoleculeError
from molgen.models.registry import LoadedModel
from molgen.sampling.options import SamplingOptions

__all__ = ["attempt_seed", "generate_many", "register_sampler", "sampler_for"]

log = logging.getLogger(__name__)

#: sample_fn(loaded, requests, options, batch_atoms=...) -> per request (n, n_atoms, 3) Å or an Exception
SampleFn = Callable[..., list[Any]]
_SAMPLERS: dict[str, SampleFn] = {}


def register_sampler(kind: str, fn: SampleFn) -> None:
    """Use ``fn`` to sample conformers for models of ``kind`` (a later registration replaces it)."""
    _SAMPLERS[kind] = fn


def sampler_for(kind: str) -> SampleFn:
    """The sample function registered for a model kind (``"torsion"``: torsional diffusion)."""
    if kind not in _SAMPLERS and kind == "torsion":
        from molgen.sampling.conformer_sampler import sample_requests

        register_sampler("torsion", sample_requests)
    if kind not in _SAMPLERS and kind == "cartesian":
        from molgen.sampling.cartesian_sampler import (
            sample_requests as sample_cartesian,
        )

        register_sampler("cartesian", sample_cartesian)
    try:
        return _SAMPLERS[kind]
    except KeyError:
        raise ValueError(f"no conformer sampler for models of kind {kind!r}") from None


def attempt_seed(seed: int, attempt: int) -> int:
    """Seed of sampling round ``attempt`` (0 -> ``seed``); deterministic, in [1, 2**31-1)."""
    if attempt == 0:
        return int(seed)
    state = np.random.SeedSequence([int(seed), attempt]).generate_state(1)[0]
    return int(state % (2**31 - 2)) + 1


def _ordered_reasons(drops: Counter[str]) -> dict[str, int]:
    order = [*REASONS, "energy_window", "rms", "surplus"]
    rank = {r: k for k, r in enumerate(order)}
    keys = sorted((r for r in drops if drops[r]), key=lambda r: (rank.get(r, len(order)), r))
    return {r: int(drops[r]) for r in keys}


@dataclass
class _Molecule:
    """Book-keeping of one molecule across sampling rounds."""

    mol: Chem.Mol  # prepared: explicit H, stereo perceived, no conformers
    label: str
    seed: int
    system: Any = None
    validator: ConformerValidator | None = None
    kept: list[np.ndarray] = field(default_factory=list)  # (n_atoms, 3) Å each
    drops: Counter = field(default_factory=Counter)
    n_sampled: int = 0
    error: Exception | None = None


def _system_for(kind: str, mol: Chem.Mol) -> Any:
    if kind == "torsion":
        from molgen.sampling.conformer_sampler import TorsionSystem

        return TorsionSystem.build(mol)
    return mol


def generate_many(
    mols: Sequence[Chem.Mol],
    options: SamplingOptions,
    *,
    model: LoadedModel,
    seeds: Sequence[int] | None = None,
    batch_atoms: int | None = None,
    num_threads: int = 1,
) -> list[Chem.Mol | Exception]:
    """Validated conformers of every molecule.

    Args:
        mols: prepared molecules (sanitized, stereo perceived, explicit hydrogens, ``_Name`` set); their
            stereo tags are the reference for validation.
        options: sampling and post-processing options; ``options.n`` conformers are requested each.
        model: the loaded model; its ``kind`` selects the sampler.
        seeds: one seed per molecule (default: ``options.seed`` for all).
        batch_atoms: heavy-atom budget of one denoiser call (default: the sampler's).
        num_threads: RDKit threads for MMFF and RMSD pruning (0 = all cores).

    Returns:
        Per molecule, a new Mol with explicit hydrogens holding up to ``n`` conformers (conformer
        properties ``conf_id seed model sampler steps`` and, with MMFF, ``energy delta_energy`` in
        kcal/mol; molecule properties ``molgen_n_requested molgen_n_sampled molgen_n_dropped
        molgen_drop_reasons``), or the exception that stopped that molecule
        (:class:`~molgen.errors.MoleculeError` when nothing passed validation or it cannot be embedded).
    """
    from molgen.sampling.conformer_sampler import SampleRequest

    sample = sampler_for(model.kind)
    seeds = [options.seed] * len(mols) if seeds is None else list(seeds)
    if len(seeds) != len(mols):
        raise ValueError(f"{len(seeds)} seeds for {len(mols)} molecules")
    todo: list[_Molecule] = []
    for mol, seed in zip(mols, seeds):
        state = _Molecule(Chem.Mol(mol), mol.GetProp("_Name") if mol.HasProp("_Name") else "", int(seed))
        state.mol.RemoveAllConformers()
        try:
            state.system = _system_for(model.kind, state.mol)
            state.validator = ConformerValidator(state.mol)
        except Exception as exc:  # noqa: BLE001 - one molecule must not stop the others
            state.error = MoleculeError(f"{state.label}: cannot prepare for sampling: {exc}")
        todo.append(state)

    kwargs = {} if batch_atoms is None else {"batch_atoms": int(batch_atoms)}
    for attempt in range(options.max_attempts):
        active = [m for m in todo if m.error is None and len(m.kept) < options.n]
        if not active:
            break
        requests = []
        for m in active:
            need = options.n - len(m.kept)
            reuse = np.stack(m.kept[:need]) if m.kept and options.sigma_start is None else None
            # resampling reuses local structures that already passed validation: no new embedding, and a
            # conformer dropped for its torsions (a clash) gets new torsions, not a new ring conformation
            requests.append(SampleRequest(m.system, need, attempt_seed(m.seed, attempt), reuse))
        results = sample(model, requests, options, **kwargs)
        for m, req, coords in zip(active, requests, results):
            if isinstance(coords, Exception):
                m.error = coords if isinstance(coords, MoleculeError) else MoleculeError(f"{m.label}: {coords}")
                continue
            coords = np.asarray(coords, dtype=np.float64)
            if coords.ndim != 3 or coords.shape[1:] != (m.mol.GetNumAtoms(), 3):
                m.error = MoleculeError(
                    f"{m.label}: sampler returned coordinates of shape {coords.shape}, "
                    f"expected (k, {m.mol.GetNumAtoms()}, 3)"
                )
                continue
            m.n_sampled += len(coords)
            flat = []
            for xyz, result in zip(coords, m.validator.validate_many(coords)):
                if result.ok:
                    m.kept.append(xyz)
                elif result.reason == "flat_ring":
                    flat.append(xyz)
                else:
                    m.drops[result.reason] += 1
            if flat:
                for xyz, result in zip(*_unflatten(m, np.stack(flat))):
                    if result.ok:
                        m.kept.append(xyz)
                    else:
                        m.drops[result.reason] += 1
            log.debug("%s: round %d (seed %d): %d sampled, %d valid so far", m.label, attempt, req.seed,
                      len(coords), len(m.kept))
    return [_finish(m, options, model, num_threads) for m in todo]


def _unflatten(m: _Molecule, coords: np.ndarray, max_iters: int = 200) -> tuple[np.ndarray, list[Any]]:
    """Relax conformers that failed only for a flat non-aromatic six-membered ring with UFF and check
    them again: ETKDG builds some partly unsaturated rings exactly flat, and a local relaxation puckers
    those whose minimum is not flat (a ring whose minimum is flat stays flat and is dropped).

    Args:
        coords: ``(k, n_atoms, 3)`` Å.

    Returns:
        The relaxed coordinates and their validation results.
    """
    from rdkit.Chem import rdForceFieldHelpers

    mol = Chem.Mol(m.mol)
    for xyz in coords:
        conf = Chem.Conformer(mol.GetNumAtoms())
        conf.SetPositions(np.ascontiguousarray(xyz, dtype=np.float64))
        mol.AddConformer(conf, assignId=True)
    try:
        rdForceFieldHelpers.UFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=max_iters)
    except Exception:  # noqa: BLE001 - no UFF parameters: keep the verdict
        return coords, m.validator.validate_many(coords)
    relaxed = np.array([c.GetPositions() for c in mol.GetConformers()])
    return relaxed, m.validator.validate_many(relaxed)


def _finish(m: _Molecule, options: SamplingOptions, model: LoadedModel, num_threads: int) -> Chem.Mol | Exception:
    if m.error is not None:
        return m.error
    try:
        return _postprocess(m, options, model, num_threads)
    except Exception as exc:  # noqa: BLE001 - e.g. MMFF has no parameters for this molecule
        return exc if isinstance(exc, MoleculeError) else MoleculeError(f"{m.label}: {exc}")


def _postprocess(m: _Molecule, options: SamplingOptions, model: LoadedModel, num_threads: int) -> Chem.Mol:
    if len(m.kept) > options.n:  # a sampler that returned more than asked for
        m.drops["surplus"] += len(m.kept) - options.n
        m.kept = m.kept[: options.n]
    if not m.kept:
        detail = ", ".join(f"{k} {v}" for k, v in m.drops.items()) or "sampler returned none"
        raise MoleculeError(
            f"{m.label}: no conformer passed validation after {options.max_attempts} sampling round(s) "
            f"({m.n_sampled} sampled; {detail})"
        )
    result = Chem.Mol(m.mol)
    n_atoms = result.GetNumAtoms()
    for xyz in m.kept:
        conf = Chem.Conformer(n_atoms)
        conf.SetPositions(np.ascontiguousarray(xyz, dtype=np.float64))
        conf.SetIntProp("seed", m.seed)
        conf.SetProp("model", model.name)
        conf.SetProp("sampler", options.sampler_label)
        conf.SetIntProp("steps", int(options.cartesian_steps if model.kind == "cartesian" else options.steps))
        result.AddConformer(conf, assignId=True)
    if options.optimize == "mmff":
        optimize_mmff(result, num_threads=num_threads)
    if options.energy_window is not None or options.optimize is not None:
        before = result.GetNumConformers()
        window = math.inf if options.energy_window is None else options.energy_window
        result = apply_energy_window(result, window)
        m.drops["energy_window"] += before - result.GetNumConformers()
    if options.rms is not None and options.rms > 0:
        before = result.GetNumConformers()
        result = prune_by_rms(result, options.rms, num_threads=num_threads)
        m.drops["rms"] += before - result.GetNumConformers()
    result = select_conformers(result, list(range(result.GetNumConformers())))
    for k, conf in enumerate(result.GetConformers()):
        conf.SetIntProp("conf_id", k)
    reasons = _ordered_reasons(m.drops)
    result.SetProp("_Name", m.label)
    result.SetIntProp("molgen_n_requested", int(options.n))
    result.SetIntProp("molgen_n_sampled", m.n_sampled)
    result.SetIntProp("molgen_n_dropped", sum(reasons.values()))
    result.SetProp("molgen_drop_reasons", json.dumps(reasons))
    return result

"""Public Python API: :func:`generate_conformers` and :func:`load_model`.

``generate_conformers`` turns a SMILES or an RDKit Mol into a Mol holding validated 3D
conformers (Å). The sampling itself is done by
``molgen.sampling.conformer_sampler`` (torsional diffusion), imported lazily so that
importing this module stays light.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import logging
import math
import threading
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from rdkit import Chem

from molgen.chem.io import parse_smiles, prepare_molecule
from molgen.chem.postprocess import (
    apply_energy_window,
    optimize_mmff,
    prune_by_rms,
    select_conformers,
)
from molgen.chem.torsions import PLANAR_BOND_MODES
from molgen.chem.validate import REASONS, ConformerValidator
from molgen.errors import InputError, MoleculeError

__all__ = ["OPTIMIZERS", "SAMPLERS", "clear_model_cache", "generate_conformers", "load_model"]

log = logging.getLogger(__name__)

SAMPLERS = ("ode", "sde")
ODE_METHODS = ("euler", "heun")
OPTIMIZERS = ("mmff",)
_SAMPLER_MODULE = "molgen.sampling.conformer_sampler"

_MODEL_CACHE: dict[str | None, Any] = {}
_MODEL_LOCK = threading.Lock()


def _sampler_module() -> ModuleType:
    return importlib.import_module(_SAMPLER_MODULE)


def _model_key(path: str | Path | None, device: str) -> tuple[str | None, str]:
    if path is None:
        return None, device
    p = Path(path).expanduser()
    return (str(p.resolve()) if p.exists() else str(path)), device


def _accepts_device(func: Any) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False
    return "device" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def load_model(path: str | Path | None = None, device: str = "cpu") -> Any:
    """Load a conformer model (the shipped default model when ``path`` is None).

    Loaded once per (path, device) and process; later calls return the cached object.

    Args:
        path: a model checkpoint, or None for the model shipped with molgen.
        device: torch device to load it on, e.g. ``"cpu"`` or ``"cuda"``.

    Returns:
        The model object expected by the sampler.

    Raises:
        InputError: the checkpoint does not exist.
    """
    key = _model_key(path, device)
    with _MODEL_LOCK:
        if key in _MODEL_CACHE:
            return _MODEL_CACHE[key]
    loader = _sampler_module().load_model
    try:
        model = loader(path, device=device) if _accepts_device(loader) else loader(path)
    except FileNotFoundError as exc:
        label = "the default model" if path is None else f"model {path}"
        raise InputError(f"cannot load {label}: file not found ({exc})") from None
    with _MODEL_LOCK:
        return _MODEL_CACHE.setdefault(key, model)


def clear_model_cache() -> None:
    """Forget all models loaded by :func:`load_model`."""
    with _MODEL_LOCK:
        _MODEL_CACHE.clear()


@contextlib.contextmanager
def _torch_threads(num_threads: int):
    """Run the sampler with ``num_threads`` torch CPU threads (0: leave torch's setting), then restore.

    The denoiser works on small tensors: torch's default of one thread per core gains little and,
    when anything else runs on the machine, its threads contend and sampling slows down tenfold.
    """
    if not num_threads or num_threads < 1:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(int(num_threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _attempt_seed(seed: int, attempt: int) -> int:
    """Seed of sampling round ``attempt`` (0 -> ``seed``); deterministic, in [1, 2**31-1)."""
    if attempt == 0:
        return seed
    state = np.random.SeedSequence([seed, attempt]).generate_state(1)[0]
    return int(state % (2**31 - 2)) + 1


def _check_options(
    n: int,
    sampler: str,
    steps: int,
    seed: int,
    rms: float | None,
    optimize: str | None,
    energy_window: float | None,
    max_attempts: int,
    conformers_per_structure: int | None = None,
    ode_method: str = "euler",
    sigma_start: float | None = None,
    planar_bonds: str | None = None,
    score_scale: float | None = None,
) -> None:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise InputError(f"n must be a positive integer (number of conformers), got {n!r}")
    if sampler not in SAMPLERS:
        raise InputError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise InputError(f"steps must be a positive integer, got {steps!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    if rms is not None and not (rms >= 0):
        raise InputError(f"rms must be >= 0 Å, got {rms!r}")
    if optimize is not None and optimize not in OPTIMIZERS:
        raise InputError(
            f"optimize must be one of {', '.join(OPTIMIZERS)} or None, got {optimize!r}"
        )
    if energy_window is not None and not (energy_window >= 0):
        raise InputError(f"energy_window must be >= 0 kcal/mol, got {energy_window!r}")
    if not isinstance(max_attempts, (int, np.integer)) or max_attempts < 1:
        raise InputError(f"max_attempts must be a positive integer, got {max_attempts!r}")
    if conformers_per_structure is not None and (
        not isinstance(conformers_per_structure, (int, np.integer)) or conformers_per_structure < 1
    ):
        raise InputError(
            "conformers_per_structure must be a positive integer or None, "
            f"got {conformers_per_structure!r}"
        )
    if ode_method not in ODE_METHODS:
        raise InputError(f"ode_method must be one of {', '.join(ODE_METHODS)}, got {ode_method!r}")
    if sigma_start is not None and not (sigma_start > 0):
        raise InputError(f"sigma_start must be > 0 radians or None, got {sigma_start!r}")
    if planar_bonds is not None and planar_bonds not in PLANAR_BOND_MODES:
        raise InputError(
            f"planar_bonds must be one of {', '.join(PLANAR_BOND_MODES)} or None, got {planar_bonds!r}"
        )
    if score_scale is not None and not (score_scale > 0):
        raise InputError(f"score_scale must be > 0 or None, got {score_scale!r}")


def _ordered_reasons(drops: Counter[str]) -> dict[str, int]:
    order = [*REASONS, "energy_window", "rms", "surplus"]
    rank = {r: k for k, r in enumerate(order)}
    keys = sorted((r for r in drops if drops[r]), key=lambda r: (rank.get(r, len(order)), r))
    return {r: int(drops[r]) for r in keys}


def _prepare(mol: str | Chem.Mol, name: str | None) -> Chem.Mol:
    if isinstance(mol, str):
        if not mol.strip():
            raise InputError("empty SMILES")
        return parse_smiles(mol.strip(), name)
    if isinstance(mol, Chem.Mol):
        return prepare_molecule(mol, name)
    raise InputError(f"expected a SMILES string or an RDKit Mol, got {type(mol).__name__}")


def generate_conformers(
    mol: str | Chem.Mol,
    n: int = 10,
    *,
    model: str | Path | None = None,
    sampler: str = "ode",
    steps: int = 8,
    seed: int = 42,
    rms: float | None = None,
    optimize: str | None = None,
    energy_window: float | None = None,
    max_attempts: int = 5,
    device: str = "cpu",
    name: str | None = None,
    num_threads: int = 1,
    conformers_per_structure: int | None = None,
    ode_method: str = "euler",
    sigma_start: float | None = None,
    planar_bonds: str | None = None,
    score_scale: float | None = None,
) -> Chem.Mol:
    """Generate validated 3D conformers of a molecule.

    Steps: prepare the input (sanitize, perceive stereo, add explicit hydrogens); sample
    ``n`` conformers; validate each (stereo, bond lengths, angles, clashes, aromatic
    planarity: :class:`~molgen.chem.validate.ConformerValidator`) and resample the missing
    number, with seeds derived deterministically from ``seed`` and the round number, for
    at most ``max_attempts`` sampling rounds in all; then optionally relax with MMFF94,
    apply the energy window and prune near-duplicates by RMSD; finally renumber the
    conformers 0..k-1 (conformer property ``conf_id``).

    Args:
        mol: a SMILES string or an RDKit Mol (hydrogens are added if missing; its stereo
            tags are the reference for validation).
        n: number of conformers requested.
        model: model checkpoint path; None for the shipped default model.
        sampler: ``"ode"`` (deterministic probability-flow) or ``"sde"``.
        steps: number of diffusion steps.
        seed: random seed (≥ 0) of the first sampling round.
        rms: if set, drop conformers within this heavy-atom RMSD (Å) of a kept
            (lower-energy when energies are known) conformer.
        optimize: ``"mmff"`` to relax every conformer with MMFF94; None for no relaxation.
        energy_window: if set, drop conformers more than this many kcal/mol above the
            lowest (MMFF94 energies; single-point energies when ``optimize`` is None).
        max_attempts: total number of sampling rounds (the first included).
        device: torch device of the model, e.g. ``"cpu"`` or ``"cuda"``.
        name: molecule name (``_Name``); default: the input's ``_Name`` or its SMILES.
        num_threads: CPU threads for the denoiser (torch, restored afterwards; 0 = torch's own
            setting) and for RDKit's MMFF and RMSD (0 = all cores).
        conformers_per_structure: how many conformers share one ETKDG embedding (its bond
            lengths, angles and ring conformations); None for the sampler's default. Larger is
            faster (fewer embeddings) but varies ring conformations less.
        ode_method: ``"euler"`` (DDIM-like) or ``"heun"`` integration of the ODE sampler.
        sigma_start: if set (radians), refine ETKDG torsions from this noise level instead of
            sampling them from the uniform prior (partial diffusion).
        planar_bonds: amide, ester, thioamide, carbamate and urea C–N / C–O bonds: ``"free"``
            (diffused like any torsion), ``"snap"`` (diffused, then set to the nearer of cis and
            trans) or ``"fixed"`` (ETKDG's value); None for the sampler's default.
        score_scale: multiplies the network's torsion scores (> 1 sharpens the sampled
            distribution towards its modes); None for the sampler's default.

    Returns:
        A new Mol with explicit hydrogens holding up to ``n`` conformers. Conformer
        properties: ``conf_id``, ``seed``, ``model``, ``sampler``, ``steps`` (from the
        sampler) and, when MMFF was used, ``energy`` and ``delta_energy`` (kcal/mol).
        Molecule properties: ``molgen_n_requested`` (n), ``molgen_n_sampled`` (drawn
        from the sampler in all rounds), ``molgen_n_dropped`` (drawn but not returned)
        and ``molgen_drop_reasons`` (JSON object reason -> count, summing to
        ``molgen_n_dropped``; reasons are validation keys such as ``clash``/``stereo``
        plus ``energy_window`` and ``rms``).

    Raises:
        InputError: invalid SMILES/Mol or option values.
        MoleculeError: the molecule cannot be embedded, MMFF94 has no parameters (when
            needed), or no conformer passed validation.
    """
    _check_options(
        n, sampler, steps, seed, rms, optimize, energy_window, max_attempts,
        conformers_per_structure, ode_method, sigma_start, planar_bonds, score_scale,
    )
    sampler_options: dict[str, Any] = {}
    if ode_method != "euler":
        sampler_options["ode_method"] = ode_method
    if sigma_start is not None:
        sampler_options["sigma_start"] = float(sigma_start)
    if planar_bonds is not None:
        sampler_options["planar_bonds"] = planar_bonds
    if score_scale is not None:
        sampler_options["score_scale"] = float(score_scale)
    prepared = _prepare(mol, name)
    label = prepared.GetProp("_Name")
    base = Chem.Mol(prepared)
    base.RemoveAllConformers()
    validator = ConformerValidator(prepared)
    model_obj = load_model(model, device)
    sample = _sampler_module().sample_conformers

    kept: list[Chem.Conformer] = []
    kept_xyz: list[np.ndarray] = []  # their coordinates (n_atoms, 3) Å
    drops: Counter[str] = Counter()
    n_sampled = 0
    for attempt in range(max_attempts):
        need = n - len(kept)
        if need <= 0:
            break
        round_seed = _attempt_seed(int(seed), attempt)
        if conformers_per_structure is not None:
            sampler_options["local_structures"] = -(-need // int(conformers_per_structure))
        if kept and sigma_start is None:
            # resample on local structures that already passed validation (new prior torsions):
            # saves the ETKDG embeddings, and a conformer dropped for its torsions (a clash) gets
            # new torsions rather than a new, possibly worse, ring conformation
            sampler_options["structures"] = np.stack(kept_xyz[:need])
        else:
            sampler_options.pop("structures", None)
        with _torch_threads(num_threads):
            out = sample(
                base,
                need,
                model=model_obj,
                sampler=sampler,
                steps=steps,
                seed=round_seed,
                device=device,
                **sampler_options,
            )
        confs = list(out.GetConformers())
        n_sampled += len(confs)
        if not confs:
            continue
        if out.GetNumAtoms() != base.GetNumAtoms():
            raise MoleculeError(
                f"{label}: sampler returned {out.GetNumAtoms()} atoms, "
                f"expected {base.GetNumAtoms()}"
            )
        coords = np.array([c.GetPositions() for c in confs])
        for conf, xyz, result in zip(confs, coords, validator.validate_many(coords)):
            if result.ok:
                kept.append(Chem.Conformer(conf))
                kept_xyz.append(xyz)
            else:
                drops[result.reason] += 1
        log.debug(
            "%s: round %d (seed %d): %d sampled, %d valid so far",
            label,
            attempt,
            round_seed,
            len(confs),
            len(kept),
        )
    if len(kept) > n:  # a sampler that returned more than asked for
        drops["surplus"] += len(kept) - n
        kept = kept[:n]
    if not kept:
        detail = ", ".join(f"{k} {v}" for k, v in drops.items()) or "sampler returned none"
        raise MoleculeError(
            f"{label}: no conformer passed validation after {max_attempts} sampling round(s) "
            f"({n_sampled} sampled; {detail})"
        )

    result = Chem.Mol(base)
    for conf in kept:
        result.AddConformer(conf, assignId=True)
    if optimize == "mmff":
        optimize_mmff(result, num_threads=num_threads)
    if energy_window is not None or optimize is not None:
        before = result.GetNumConformers()
        result = apply_energy_window(result, math.inf if energy_window is None else energy_window)
        drops["energy_window"] += before - result.GetNumConformers()
    if rms is not None and rms > 0:
        before = result.GetNumConformers()
        result = prune_by_rms(result, rms, num_threads=num_threads)
        drops["rms"] += before - result.GetNumConformers()

    result = select_conformers(result, list(range(result.GetNumConformers())))
    for k, conf in enumerate(result.GetConformers()):
        conf.SetIntProp("conf_id", k)
    reasons = _ordered_reasons(drops)
    result.SetProp("_Name", label)
    result.SetIntProp("molgen_n_requested", int(n))
    result.SetIntProp("molgen_n_sampled", n_sampled)
    result.SetIntProp("molgen_n_dropped", sum(reasons.values()))
    result.SetProp("molgen_drop_reasons", json.dumps(reasons))
    return result

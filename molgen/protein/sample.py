"""Protein ensembles from a trained protein torsion model: sample, validate, keep sampling until N are valid.

The model (:data:`molgen.models.registry.PROTEIN_FORMAT`, trained by :mod:`molgen.training.train_protein`)
carries its :class:`~molgen.protein.system.ProteinSystem`. Each round draws every rotatable torsion from the
uniform prior on the torus and runs the reverse diffusion of the small-molecule torsion sampler
(:func:`molgen.sampling.conformer_sampler.sample_requests`): every atom moves by exact rotations, so each
sample keeps the bond lengths and angles of the structure it starts from. Local structures are drawn at random from
the training frames stored in the model (as the small-molecule sampler draws them from several ETKDG
embeddings), so the ensemble has MD's spread of bond lengths and angles and the network sees the geometries
it was trained on; a model without stored frames uses its one structure (the first training frame), whose
thermal fluctuation of bond angles then biases every sample (alanine dipeptide: φ/ψ JS divergence 0.065
against 0.160 on the validation frames, see ``benchmarks/protein_ala2``). Each
structure is then checked (:func:`molgen.protein.validate.validate_frames` against the training frames'
ranges); failures are dropped and counted by reason, and rounds continue until ``n`` structures pass or
``max_rounds`` rounds have run.

With ``start="frames"`` (large proteins, whose fold a uniform prior over hundreds of torsions would have to
find again) each structure starts from one of the training frames stored in the model, its free torsions
perturbed by wrapped-normal noise of ``sigma_start`` radians, and the reverse diffusion runs from that noise
level (partial diffusion, as SDEdit): new structures near the sampled basins, bond lengths and angles of that
frame.

Amide bonds (backbone ω, the caps' and side-chain amides) are ``planar_bonds="fixed"`` by default: they keep
the structure's value (trans, as in the input); ``"snap"`` diffuses them and sets each to the nearer of cis
and trans, ``"free"`` leaves them as diffused.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from molgen.errors import InputError

__all__ = ["SHIPPED_SYSTEMS", "EnsembleResult", "load_protein_model", "protein_system_of", "sample_ensemble"]

#: system name -> shipped checkpoint file in ``molgen/weights``
SHIPPED_SYSTEMS = {"alanine-dipeptide": "protein_ala2_v1.pt"}


@dataclass
class EnsembleResult:
    """Outcome of :func:`sample_ensemble`.

    Attributes:
        traj: the valid structures (``mdtraj.Trajectory``, nm), at most ``n``.
        n_requested: ``n``; n_sampled: structures generated in all rounds; rounds: rounds run.
        dropped: failing check -> structures dropped (:data:`molgen.protein.validate.CHECKS`).
        seconds: wall time of sampling and validation.
        relieved: structures that failed only the clash check as sampled and passed after clash relief.
    """

    traj: Any
    n_requested: int
    n_sampled: int
    rounds: int
    dropped: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    relieved: int = 0

    @property
    def valid_fraction(self) -> float:
        """Fraction of generated structures that passed validation as sampled (before the filter and before
        any clash relief)."""
        return 0.0 if self.n_sampled == 0 else 1.0 - (sum(self.dropped.values()) + self.relieved) / self.n_sampled

    @property
    def relieved_fraction(self) -> float:
        """Fraction of generated structures that passed only after clash relief."""
        return 0.0 if self.n_sampled == 0 else self.relieved / self.n_sampled

    def summary(self) -> dict[str, Any]:
        return {"n_requested": self.n_requested, "n_valid": int(self.traj.n_frames), "n_sampled": self.n_sampled,
                "rounds": self.rounds, "valid_fraction": self.valid_fraction, "relieved": self.relieved,
                "relieved_fraction": self.relieved_fraction, "dropped": dict(self.dropped), "seconds": self.seconds}


def protein_sampling_options(**changes: Any) -> Any:
    """Sampling options for ensembles: the torsion sampler's with SDE sampling in 20 steps (chosen on the
    alanine-dipeptide model's validation frames: φ/ψ JS divergence 0.153 against 0.193 for the ODE in 20 steps
    and 0.153 for the SDE in 50; ``benchmarks/protein_ala2/run.sh`` with ``VAL=1``), with unscaled scores (``score_scale=1``: the
    small-molecule default of 2 sharpens towards the modes, which suits a best-conformer search, not a
    Boltzmann ensemble) and amide bonds fixed; ``changes`` (None values ignored) replace fields."""
    from molgen.sampling.options import SamplingOptions

    return SamplingOptions(score_scale=1.0, planar_bonds="fixed", sampler="sde", steps=20).replace(
        **{k: v for k, v in changes.items() if v is not None})


def _shipped_path(name: str) -> Path:
    from molgen.weights import __file__ as weights_init

    return Path(weights_init).parent / SHIPPED_SYSTEMS[name]


def load_protein_model(model: str | Path | None = None, *, system: str | None = None, device: str = "cpu") -> Any:
    """A protein model: checkpoint ``model``, or the shipped model of ``system`` (:data:`SHIPPED_SYSTEMS`).

    Raises:
        InputError: neither or both given, an unknown system, or a checkpoint that is not a protein model.
    """
    from molgen.models.registry import load_model

    if (model is None) == (system is None):
        raise InputError("give a protein model (--model) or a shipped system (--system: "
                         f"{', '.join(SHIPPED_SYSTEMS)}), not both")
    if system is not None:
        if system not in SHIPPED_SYSTEMS:
            raise InputError(f"unknown system {system!r}; shipped systems: {', '.join(SHIPPED_SYSTEMS)}")
        path = _shipped_path(system)
        if not path.is_file():
            raise InputError(f"the model of {system!r} ({path.name}) is not in this installation")
    else:
        path = Path(model).expanduser()  # type: ignore[arg-type]
        if not path.is_file():
            raise InputError(f"protein model {path}: file not found")
    loaded = load_model(path, device)
    if loaded.kind != "protein":
        raise InputError(f"{path} is a {loaded.kind!r} model, not a protein model (train one with `molgen protein train`)")
    return loaded


def protein_system_of(loaded: Any) -> Any:
    """The :class:`~molgen.protein.system.ProteinSystem` stored in a protein model (built once, then cached)."""
    from molgen.protein.system import ProteinSystem

    cached = loaded.meta.get("_protein_system")
    if cached is None:
        cached = ProteinSystem.from_dict(loaded.meta["task"]["system"])
        loaded.meta["_protein_system"] = cached
    return cached


def _drawn_frames(system: Any, m: int, rng: np.random.Generator) -> np.ndarray:
    """(m, n_atoms, 3) Å: stored frames drawn at random (the structure, repeated, when none are stored)."""
    if system.frames is None or len(system.frames) == 0:
        structure = np.asarray(system.structure.xyz[:1], dtype=np.float64) * 10.0
        return np.repeat(structure, m, axis=0)
    return np.asarray(system.frames, dtype=np.float64)[rng.integers(0, len(system.frames), size=m)]


def _perturbed_frames(system: Any, tsys: Any, m: int, sigma: float, seed: int, keep_planar: bool) -> np.ndarray:
    """(m, n_atoms, 3) Å: stored frames drawn at random, each free torsion turned by wrapped-normal noise."""
    from molgen.chem.torsions import apply_torsion_deltas

    if system.frames is None or len(system.frames) == 0:
        raise InputError("start='frames' needs a model trained with stored frames (task option keep_frames)")
    rng = np.random.default_rng(seed)
    g = tsys.graph
    free = ~tsys.is_planar.astype(bool) if keep_planar else np.ones(len(g.full_torsions), dtype=bool)
    out = _drawn_frames(system, m, rng)
    for k in range(m):
        deltas = rng.normal(0.0, sigma, size=len(g.full_torsions)) * free
        out[k] = apply_torsion_deltas(out[k], g.full_torsions, g.full_torsion_masks, deltas)
    return out


def sample_ensemble(
    loaded: Any,
    n: int,
    *,
    seed: int = 1,
    options: Any = None,
    max_rounds: int = 10,
    oversample: float = 1.1,
    batch_atoms: int | None = None,
    start: str = "prior",
    sigma_start: float = 0.5,
    clash_relief: Any = None,
) -> EnsembleResult:
    """Sample until ``n`` structures of the model's system pass validation, or ``max_rounds`` rounds ran.

    Memory stays bounded for large systems and large ``n``: the torsion sampler evaluates the denoiser in
    chunks of ``batch_atoms`` heavy atoms and splits a round whose torsion index is too large
    (:data:`molgen.sampling.conformer_sampler.MAX_TORSION_PAIRS`).

    Args:
        loaded: a protein model (:func:`load_protein_model`).
        n: structures wanted.
        seed: seed of the first round (round ``r`` uses a seed derived from it).
        options: :class:`~molgen.sampling.options.SamplingOptions` (sampler, steps, ...); default
            :func:`protein_sampling_options`.
        max_rounds: bound on the rounds.
        oversample: a round samples ``ceil(missing * oversample / valid fraction so far)`` structures.
        batch_atoms: heavy atoms per denoiser call (default the torsion sampler's).
        start: ``"prior"`` (every torsion uniform) or ``"frames"`` (partial diffusion from stored training
            frames, see the module docstring).
        sigma_start: noise level of ``start="frames"`` (radians).
        clash_relief: a :class:`~molgen.sampling.clash_relief.ClashRelief` to relieve the structures that fail
            only for clashes (torsion moves, bonds and angles kept) and validate them again; None drops them.
    """
    import mdtraj as md

    from molgen.protein.validate import validate_frames
    from molgen.sampling.clash_relief import relieve_clashes
    from molgen.sampling.conformer_sampler import (
        DEFAULT_BATCH_ATOMS,
        SampleRequest,
        TorsionSystem,
        sample_requests,
    )

    if n < 1 or max_rounds < 1:
        raise InputError(f"n={n} and max_rounds={max_rounds} must be >= 1")
    if start not in ("prior", "frames"):
        raise InputError(f"start={start!r}: use 'prior' or 'frames'")
    opts = options or protein_sampling_options()
    t0 = time.perf_counter()
    system = protein_system_of(loaded)
    tsys = loaded.meta.get("_torsion_system")
    if tsys is None:
        tsys = loaded.meta["_torsion_system"] = TorsionSystem.build(system.mol)
    kept: list[np.ndarray] = []
    dropped: Counter = Counter()
    n_sampled = rounds = relieved = 0
    while len(kept) < n and rounds < max_rounds:
        missing = n - len(kept)
        rate = max(0.05, 1.0 - sum(dropped.values()) / n_sampled) if n_sampled else 1.0  # delivered
        m = max(1, math.ceil(missing * oversample / rate))
        round_seed = int(seed) + 1_000_003 * rounds
        if start == "frames":
            starts = _perturbed_frames(system, tsys, m, sigma_start, round_seed, opts.planar_bonds == "fixed")
            req = SampleRequest(tsys, m, round_seed, structures=starts)
            round_opts = opts.replace(n=m, sigma_start=sigma_start)
        else:
            starts = _drawn_frames(system, m, np.random.default_rng(round_seed))
            req = SampleRequest(tsys, m, round_seed, structures=starts)
            round_opts = opts.replace(n=m)
        (coords,) = sample_requests(loaded, [req], round_opts, batch_atoms=batch_atoms or DEFAULT_BATCH_ATOMS)
        if isinstance(coords, Exception):
            raise coords
        frames = md.Trajectory((coords / 10.0).astype(np.float32), system.topology)
        result = validate_frames(frames, geometry=system.geometry)
        valid, reasons = result.valid.copy(), list(result.reason)
        clashed = np.array([r == "clash" for r in reasons])
        if clash_relief is not None and clashed.any():
            free = ~tsys.is_planar.astype(bool) if opts.planar_bonds == "fixed" else None
            g = tsys.graph
            fixed, _ = relieve_clashes(coords[clashed], g.full_torsions[:, 1:3], g.full_torsion_masks,
                                       g.heavy_atoms, tsys.topo, free, clash_relief)
            frames.xyz[clashed] = (fixed / 10.0).astype(np.float32)
            again = validate_frames(frames[np.flatnonzero(clashed)], geometry=system.geometry)
            for k, ok, why in zip(np.flatnonzero(clashed), again.valid, again.reason):
                valid[k], reasons[k] = bool(ok), why
            relieved += int(again.valid.sum())
        dropped.update(r for r in reasons if r is not None)
        kept.extend(frames.xyz[valid])
        n_sampled += m
        rounds += 1
    xyz = np.stack(kept[:n]) if kept else np.zeros((0, system.num_atoms, 3), dtype=np.float32)
    traj = md.Trajectory(xyz, system.topology)
    return EnsembleResult(traj=traj, n_requested=n, n_sampled=n_sampled, rounds=rounds, dropped=dropped,
                          seconds=time.perf_counter() - t0, relieved=relieved)

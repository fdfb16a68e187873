"""Torsional-diffusion conformer sampling for one molecule: RDKit local structure + denoiser + sampler.

1. Local structure: ``k`` ETKDGv3 embeddings of the molecule (with hydrogens) give bond lengths, angles
   and ring conformations; conformer ``i`` starts from structure ``i mod k`` (default ``k = ceil(n / 2)``,
   :func:`num_local_structures`).
2. Prior: every rotatable torsion of every conformer is set to a uniform random angle.
3. Reverse diffusion on the torus (:func:`molgen.diffusion.samplers.ode_sample` or ``sde_sample``): the
   denoiser reads the heavy atoms, its torsion scores move all atoms (hydrogens included) through exact
   rotations about the rotatable bonds, so bond lengths, angles and stereochemistry never change.

Validation, resampling and export are the job of :mod:`molgen.api`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from rdkit import Chem

from molgen.chem.embedding import embed_local_structures
from molgen.chem.featurize import MolGraph, featurize
from molgen.chem.torsions import PLANAR_BOND_MODES, planar_bond_references
from molgen.diffusion.samplers import ode_sample, sde_sample
from molgen.diffusion.torsion_ops import TorsionIndex, apply_torsion_deltas, dihedrals
from molgen.diffusion.torus import TorusSchedule, wrap_angle
from molgen.errors import MoleculeError
from molgen.models.graph import collate_graphs, topological_distances
from molgen.models.torsion_denoiser import TorsionDenoiser
from molgen.training.checkpoint import load_denoiser

DEFAULT_WEIGHTS = "torsion_ccd_v2.pt"
SAMPLERS = ("ode", "sde")
#: defaults chosen on the CCD validation split with the default weights
#: (``python -m molgen.bench.tune_sampler --configs final|shared2|n50``, tables in ``benchmarks/``)
DEFAULT_PLANAR_BONDS = "snap"
DEFAULT_SCORE_SCALE = 2.0
CONFORMERS_PER_STRUCTURE = 2  # conformers sharing one ETKDG local structure


@dataclass
class LoadedModel:
    """A denoiser ready for sampling, with its schedule and provenance."""

    model: TorsionDenoiser
    schedule: TorusSchedule
    name: str
    meta: dict
    device: torch.device


def default_model_path() -> Path:
    """The shipped default weights (``molgen/weights/``), or ``$MOLGEN_MODEL`` when set."""
    env = os.environ.get("MOLGEN_MODEL")
    if env:
        return Path(env)
    return Path(str(resources.files("molgen.weights").joinpath(DEFAULT_WEIGHTS)))


_CACHE: dict[tuple[str, str], LoadedModel] = {}


def load_model(path: str | Path | None = None, device: str = "cpu") -> LoadedModel:
    """Load a torsion-denoiser checkpoint (the shipped default when ``path`` is None); cached per path."""
    p = Path(path) if path is not None else default_model_path()
    key = (str(p.resolve()) if p.exists() else str(p), str(device))
    if key not in _CACHE:
        if not p.exists():
            raise FileNotFoundError(f"model file not found: {p}")
        model, schedule, meta = load_denoiser(p, device)
        name = meta.get("extra", {}).get("name") or p.stem
        _CACHE[key] = LoadedModel(model, schedule, name, meta, torch.device(device))
    return _CACHE[key]


def rdkit_seed(seed: int) -> int:
    """A nonzero RDKit seed derived from ``seed`` (RDKit's seed 0 yields identical conformers)."""
    return (int(seed) * 7919 + 1) % 2_147_483_647 or 1


def num_local_structures(n: int, per_structure: int = CONFORMERS_PER_STRUCTURE) -> int:
    """Number of ETKDG local structures for ``n`` conformers: ``ceil(n / per_structure)``.

    The default ``per_structure`` was chosen on the CCD validation split
    (``python -m molgen.bench.tune_sampler``, tables in ``benchmarks/tune_sampler_*.md``).
    """
    return max(1, -(-n // max(1, per_structure)))


def _full_index(graph: MolGraph, n_atoms: int, copies: int) -> TorsionIndex:
    """Torsion index acting on all atoms (hydrogens included) of ``copies`` stacked conformers."""
    tors = torch.as_tensor(graph.full_torsions, dtype=torch.long)
    n_t = len(tors)
    offsets = torch.arange(copies).repeat_interleave(n_t) * n_atoms
    axis = tors[:, 1:3].repeat(copies, 1) + offsets[:, None]
    rank = torch.arange(n_t).repeat(copies)
    tt, aa = np.nonzero(graph.full_torsion_masks)
    tt, aa = torch.as_tensor(tt), torch.as_tensor(aa)
    pair_t = torch.cat([tt + c * n_t for c in range(copies)])
    pair_a = torch.cat([aa + c * n_atoms for c in range(copies)])
    return TorsionIndex.build(axis, rank, pair_t, pair_a)


@torch.no_grad()
def sample_conformers(
    mol: Chem.Mol,
    n: int,
    *,
    model: LoadedModel | str | Path | None = None,
    sampler: str = "ode",
    steps: int = 8,
    seed: int = 42,
    device: str = "cpu",
    local_structures: int | None = None,
    ode_method: str = "euler",
    sigma_start: float | None = None,
    structures: np.ndarray | None = None,
    planar_bonds: str = DEFAULT_PLANAR_BONDS,
    score_scale: float = DEFAULT_SCORE_SCALE,
) -> Chem.Mol:
    """Sample ``n`` conformers of ``mol`` by torsional diffusion.

    Args:
        mol: RDKit molecule with explicit hydrogens and perceived stereochemistry.
        n: number of conformers.
        model: a :class:`LoadedModel`, a checkpoint path, or None for the shipped default.
        sampler: ``"ode"`` (deterministic probability flow, DDIM-like) or ``"sde"`` (stochastic).
        steps: reverse-diffusion steps.
        seed: seed of the ETKDG local structures, the prior torsions and the SDE noise.
        device: torch device of the denoiser.
        local_structures: ETKDG embeddings shared by the conformers (default :func:`num_local_structures`).
        ode_method: ``"heun"`` or ``"euler"`` for the ODE sampler.
        sigma_start: if set (radians), start the reverse process at this noise level from the ETKDG
            torsions instead of at ``sigma_max`` from uniform torsions (partial diffusion, as in SDEdit):
            the denoiser refines ETKDG conformers rather than drawing torsions from scratch.
        structures: ``(k, n_atoms, 3)`` Å coordinates of ``mol`` (hydrogens included, its atom order)
            whose local structure to reuse instead of embedding new ETKDG structures, e.g. conformers
            that already passed validation. Conformer ``i`` starts from structure ``i mod k``; only
            the local structure matters, because every torsion is redrawn from the prior (so
            ``sigma_start`` must be None).
        planar_bonds: the rotatable C–N / C–O bonds of amides, esters, thioamides, carbamates and
            ureas (:data:`molgen.chem.torsions.PLANAR_BOND_SMARTS`), whose resonance keeps them near cis
            or trans: ``"free"`` diffuses them like any torsion; ``"snap"`` diffuses them and then sets
            each to the nearer of cis (0) and trans (pi); ``"fixed"`` keeps ETKDG's value (no noise,
            no score).
        score_scale: multiplies the predicted score (an inverse temperature: values above 1 sharpen
            the sampled torsion distribution towards its modes, compensating a network whose scores
            are shrunk towards zero where it is unsure; 1 samples the learned distribution).

    Returns:
        A copy of ``mol`` holding ``n`` conformers (Å) with properties ``seed``, ``model``, ``sampler``,
        ``steps``.

    Raises:
        MoleculeError: the molecule cannot be embedded.
        ValueError: bad ``n``, ``steps`` or ``sampler``.
    """
    if n < 1:
        raise ValueError(f"number of conformers must be >= 1, got {n}")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not score_scale > 0:
        raise ValueError(f"score_scale must be > 0, got {score_scale!r}")
    if planar_bonds not in PLANAR_BOND_MODES:
        raise ValueError(f"planar_bonds must be one of {PLANAR_BOND_MODES}, got {planar_bonds!r}")
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device)
    dev = loaded.device
    mol = Chem.Mol(mol)
    if any(a.GetNumImplicitHs() for a in mol.GetAtoms()):
        mol = Chem.AddHs(mol)
    mol.RemoveAllConformers()
    n_atoms = mol.GetNumAtoms()
    if structures is not None:
        local = np.asarray(structures, dtype=np.float64)
        if sigma_start is not None:
            raise ValueError("structures are reused with torsions from the prior: sigma_start must be None")
        if local.ndim != 3 or local.shape[1:] != (n_atoms, 3) or len(local) == 0:
            raise ValueError(f"structures must have shape (k, {n_atoms}, 3), got {local.shape}")
    else:
        k = min(n, local_structures or num_local_structures(n))
        try:
            local = embed_local_structures(mol, k, rdkit_seed(seed))  # (k, n_atoms, 3)
        except ValueError as exc:
            raise MoleculeError(f"cannot embed {Chem.MolToSmiles(Chem.RemoveHs(mol))}: {exc}") from exc
    start = local[np.arange(n) % len(local)]  # (n, n_atoms, 3)
    graph = featurize(mol)
    gen = torch.Generator().manual_seed(int(seed))
    n_t = len(graph.full_torsions)

    if n_t > 0:
        pos = torch.as_tensor(start.reshape(-1, 3), dtype=torch.float32, device=dev)
        index = _full_index(graph, n_atoms, n).to(dev)
        schedule = loaded.schedule
        is_planar, planar_refs = planar_bond_references(mol, graph.full_torsions)
        if planar_bonds == "free" or not is_planar.any():
            is_planar[:] = False
        planar = torch.as_tensor(is_planar, device=dev).repeat(n)  # (n * n_t,)
        free = (~planar).float() if planar_bonds == "fixed" else torch.ones_like(planar, dtype=torch.float32)
        if sigma_start is None:
            prior = schedule.sample_prior((n * n_t,), gen).to(dev) * free
            pos = apply_torsion_deltas(pos, index, prior)
        else:
            schedule = TorusSchedule(schedule.sigma_min, min(float(sigma_start), schedule.sigma_max))
        item = {
            "node_features": graph.node_features, "bond_index": graph.bond_index,
            "bond_features": graph.bond_features, "torsions": graph.torsions,
            "torsion_masks": graph.torsion_masks, "pos": start[0][graph.heavy_atoms],
            # the n copies share one graph: compute its topological distances once, not per copy
            "topo": topological_distances(graph.num_nodes, graph.bond_index),
        }
        batch = collate_graphs([item] * n).to(dev)
        heavy = (torch.as_tensor(graph.heavy_atoms)[None, :] + torch.arange(n)[:, None] * n_atoms).reshape(-1).to(dev)

        def score_fn(state: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            score = loaded.model(batch.with_pos(state[heavy]), sigma.expand(n).to(state.dtype))
            return score * score_scale if score_scale != 1.0 else score

        def apply_fn(state: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
            return apply_torsion_deltas(state, index, delta.to(state.dtype) * free)  # fixed bonds never move

        if sampler == "sde":
            noise_gen = torch.Generator(device=dev).manual_seed(int(seed) + 1)
            pos = sde_sample(score_fn, pos, schedule, steps, apply_fn=apply_fn, generator=noise_gen)
        else:
            pos = ode_sample(score_fn, pos, schedule, steps, apply_fn=apply_fn, method=ode_method)
        if planar_bonds == "snap" and bool(planar.any()):
            refs = torch.as_tensor(planar_refs, device=dev)
            quads = (refs[None] + torch.arange(n, device=dev)[:, None, None] * n_atoms).reshape(-1, 4)
            phi = dihedrals(pos, quads)
            target = torch.where(phi.abs() < torch.pi / 2, torch.zeros_like(phi), torch.full_like(phi, torch.pi))
            pos = apply_torsion_deltas(pos, index, wrap_angle(target - phi) * planar)
        coords = pos.reshape(n, n_atoms, 3).cpu().double().numpy()
    else:
        coords = start

    for i in range(n):
        conf = Chem.Conformer(n_atoms)
        conf.SetPositions(np.ascontiguousarray(coords[i], dtype=np.float64))
        conf.SetIntProp("seed", int(seed))
        conf.SetProp("model", loaded.name)
        conf.SetProp("sampler", sampler if sampler == "sde" else f"ode-{ode_method}")
        conf.SetIntProp("steps", int(steps))
        mol.AddConformer(conf, assignId=True)
    return mol

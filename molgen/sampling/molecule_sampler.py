"""De novo 3D molecules from a position/type diffusion model, with classifier-free guidance.

1. Sizes: the number of atoms of each molecule is given, or drawn from the training distribution stored
   in the checkpoint (given a heavy-atom condition, from the distribution of molecules with that many
   heavy atoms).
2. Prior: positions ``N(0, I)`` in the zero-centre-of-mass subspace (Å), type encodings ``N(0, I)``.
3. Reverse diffusion of both variables with one sampler (:func:`molgen.diffusion.samplers.reverse_diffusion`):
   ``"ddpm"`` (ancestral, EDM's sampler, e.g. 1000 steps) or ``"ddim"`` (deterministic, e.g. 100 steps).
   With conditions, the score is ``s_null + w (s_cond - s_null)`` (:func:`guided_score_fn`); ``w = 1`` is
   the plain conditional model, ``w = 0`` the unconditional one.
4. Decoding: argmax of the element and charge blocks; bonds perceived from the geometry and the molecule
   sanitised (:func:`molgen.chem.perception.mol_from_atoms`); what fails is kept with its reason, never
   passed off as a valid molecule.

Results depend on the seed, the options and ``batch_size`` (each batch has its own generator).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from molgen.chem.atom_encoding import AtomEncoding
from molgen.diffusion.samplers import METHODS, guided_score_fn, reverse_diffusion
from molgen.diffusion.subspace import remove_mean, subspace_noise
from molgen.errors import InputError
from molgen.models.graph import node_batch
from molgen.models.registry import LoadedModel

__all__ = ["GeneratedMolecule", "MoleculeModelInfo", "sample_atoms"]


@dataclass(frozen=True)
class MoleculeModelInfo:
    """What a molecule model's checkpoint says about its variables (``LoadedModel.meta["task"]``)."""

    encoding: AtomEncoding
    type_scale: float
    conditions: tuple[str, ...]
    normalisation: dict[str, dict[str, float]]
    atom_counts: dict[int, float]
    atom_counts_by_heavy: dict[int, dict[int, float]]

    @staticmethod
    def of(loaded: LoadedModel) -> MoleculeModelInfo:
        if loaded.kind != "molecules":
            raise InputError(f"model {loaded.name!r} is a {loaded.kind!r} model, not a de novo molecule model")
        t = loaded.meta.get("task") or {}
        return MoleculeModelInfo(
            encoding=AtomEncoding.from_dict(t["encoding"]),
            type_scale=float(t["type_scale"]),
            conditions=tuple(t.get("conditions", [])),
            normalisation=t.get("normalisation", {}),
            atom_counts={int(k): float(v) for k, v in t["atom_counts"].items()},
            atom_counts_by_heavy={
                int(h): {int(k): float(v) for k, v in d.items()} for h, d in t.get("atom_counts_by_heavy", {}).items()
            },
        )


@dataclass
class GeneratedMolecule:
    """One generated molecule before bond perception: elements, charges, positions (Å) and its request."""

    atomic_numbers: np.ndarray
    formal_charges: np.ndarray
    positions: np.ndarray
    conditions: dict[str, float] = field(default_factory=dict)
    guidance: float = 1.0
    seed: int = 0


def _draw_sizes(info: MoleculeModelInfo, n: int, rng: np.random.Generator, heavy: float | None) -> np.ndarray:
    dist = info.atom_counts
    if heavy is not None:
        key = int(round(heavy))
        if key not in info.atom_counts_by_heavy:
            known = sorted(info.atom_counts_by_heavy)
            raise InputError(f"num_heavy_atoms={heavy:g} never occurs in the training data (known: {known})")
        dist = info.atom_counts_by_heavy[key]
    sizes = np.array(sorted(dist), dtype=np.int64)
    p = np.array([dist[int(k)] for k in sizes])
    return rng.choice(sizes, size=n, p=p / p.sum())


def check_conditions(info: MoleculeModelInfo, conditions: Mapping[str, float]) -> None:
    """Raise :class:`InputError` for a condition the model was not trained with."""
    unknown = sorted(set(conditions) - set(info.conditions))
    if unknown:
        trained = ", ".join(info.conditions) or "none"
        raise InputError(f"condition(s) {unknown} unknown to this model (trained with: {trained})")


@torch.no_grad()
def sample_atoms(
    loaded: LoadedModel,
    n: int,
    *,
    conditions: Mapping[str, float | Sequence[float]] | None = None,
    guidance: float = 1.0,
    num_atoms: int | list[int] | None = None,
    method: str = "ddim",
    steps: int = 100,
    seed: int = 1,
    batch_size: int = 256,
) -> list[GeneratedMolecule]:
    """Generate ``n`` molecules as atoms and positions (no bond perception yet).

    Args:
        loaded: a ``"molecules"`` model (:func:`molgen.models.registry.load_model`).
        n: number of molecules.
        conditions: raw property values by name (e.g. ``{"alpha": 80.0}`` in Bohr^3, ``{"gap": 5.0}`` in
            eV, ``{"num_heavy_atoms": 9}``), one value for all molecules or a sequence of ``n`` (one per
            molecule); conditions not named are dropped (marginalised).
        guidance: classifier-free guidance scale ``w`` (ignored without conditions).
        num_atoms: atoms per molecule (all the same, or one per molecule); default drawn from training.
        method: ``"ddpm"``, ``"ddim"``, ``"sde"`` or ``"heun"``; steps: reverse steps.
        seed: seed of the sizes and of every batch's noise.
        batch_size: molecules per denoiser call.

    Raises:
        InputError: bad options or conditions unknown to the model.
    """
    info = MoleculeModelInfo.of(loaded)
    conditions = dict(conditions or {})
    check_conditions(info, conditions)
    if n < 1:
        raise InputError(f"number of molecules must be >= 1, got {n}")
    if method not in METHODS:
        raise InputError(f"unknown sampler {method!r}; choose one of {', '.join(METHODS)}")
    if steps < 1:
        raise InputError(f"steps must be >= 1, got {steps}")
    for name, v in conditions.items():
        if np.ndim(v) > 1 or (np.ndim(v) == 1 and len(v) != n):
            raise InputError(f"condition {name!r}: give one value or one per molecule ({n}), got shape {np.shape(v)}")
        try:
            arr = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"condition {name!r}: expected numbers, got {v!r}") from None
        if not np.isfinite(arr).all():
            raise InputError(f"condition {name!r}: values must be finite, got {v!r}")
        if name == "num_heavy_atoms" and (arr != np.round(arr)).any():
            raise InputError(f"condition 'num_heavy_atoms' must be whole numbers, got {v!r}")
    if num_atoms is not None and np.ndim(num_atoms) == 1 and len(num_atoms) != n:
        raise InputError(f"num_atoms: give one value or one per molecule ({n}), got {len(num_atoms)}")
    rng = np.random.default_rng(seed)
    heavy = conditions.get("num_heavy_atoms")
    if num_atoms is None and heavy is not None and np.ndim(heavy) > 0:
        raise InputError("per-molecule num_heavy_atoms conditions need num_atoms (one per molecule)")
    if num_atoms is None:
        sizes = _draw_sizes(info, n, rng, heavy)
    else:
        sizes = np.broadcast_to(np.asarray(num_atoms, dtype=np.int64), (n,)).copy()
        if (sizes < 1).any():
            raise InputError(f"num_atoms must be >= 1, got {sorted(set(sizes.tolist()))[:5]}")
    dev = torch.device(loaded.device)
    model = loaded.module
    procs = loaded.processes
    values = {k: np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)) for k, v in conditions.items()}
    cond_all = mask_all = None
    if info.conditions:
        cond_all = torch.zeros((n, len(info.conditions)))
        mask_all = torch.zeros((n, len(info.conditions)), dtype=torch.bool)
        for k, name in enumerate(info.conditions):
            if name in values:
                norm = info.normalisation[name]
                cond_all[:, k] = torch.from_numpy((values[name] - norm["mean"]) / norm["mad"]).float()
                mask_all[:, k] = True
    guided = mask_all is not None and bool(mask_all.any())
    out: list[GeneratedMolecule] = []
    for start in range(0, n, batch_size):
        bsz_sizes = sizes[start : start + batch_size].tolist()
        b = len(bsz_sizes)
        gen = torch.Generator(device=dev).manual_seed(int(seed) * 1_000_003 + start)
        graph = node_batch(torch.zeros((sum(bsz_sizes), info.encoding.dim), device=dev),
                           torch.zeros((sum(bsz_sizes), 3), device=dev), bsz_sizes)
        idx = graph.batch
        cv = cm = None
        if cond_all is not None:
            cv, cm = cond_all[start : start + b].to(dev), mask_all[start : start + b].to(dev)
        state = {
            "pos": subspace_noise(idx, 3, gen, num_graphs=b),
            "atom_type": torch.randn((len(idx), info.encoding.dim), generator=gen, device=dev),
        }

        def scores_with(mask: torch.Tensor | None, st: dict, t: float) -> dict[str, torch.Tensor]:
            a, s = procs["pos"].alpha_sigma(t)
            rho = torch.full((b,), s / a, device=dev)
            eps_pos, eps_type = model(graph.replace(pos=st["pos"], node_features=st["atom_type"]), rho, cv, mask)
            return {"pos": procs["pos"].score(eps_pos, st["pos"], t),
                    "atom_type": procs["atom_type"].score(eps_type, st["atom_type"], t)}

        def cond_fn(st: dict, t: float, _m=cm) -> dict[str, torch.Tensor]:
            return scores_with(_m, st, t)

        def null_fn(st: dict, t: float) -> dict[str, torch.Tensor]:
            return scores_with(None if cm is None else torch.zeros_like(cm), st, t)

        score_fn = guided_score_fn(cond_fn, null_fn, float(guidance)) if guided else null_fn
        final = reverse_diffusion(
            score_fn, state, procs, steps, method=method,  # type: ignore[arg-type]
            noise_fns={"pos": lambda like: subspace_noise(idx, 3, gen, dtype=like.dtype, num_graphs=b),
                       "atom_type": lambda like: torch.randn(like.shape, generator=gen, dtype=like.dtype, device=dev)},
            generator=gen,
        )
        pos = remove_mean(final["pos"], idx, b).cpu().double().numpy()
        types = (final["atom_type"] / info.type_scale).cpu().numpy()
        ptr = graph.ptr.cpu().numpy()
        for k in range(b):
            z, q = info.encoding.decode(types[ptr[k] : ptr[k + 1]])
            mol_conditions = {name: float(v[start + k]) for name, v in values.items()}
            out.append(GeneratedMolecule(z, q, pos[ptr[k] : ptr[k + 1]], mol_conditions, float(guidance), int(seed)))
    return out


def summarise_reasons(results: list[Any]) -> dict[str, int]:
    """Counts of failure reasons of perception results (``valid`` False)."""
    return dict(Counter(r.reason for r in results if not r.valid))

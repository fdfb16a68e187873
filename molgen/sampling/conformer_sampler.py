"""Torsional-diffusion conformer sampling, many molecules per denoiser call.

For each :class:`SampleRequest` (a molecule, a number of conformers, a seed):

1. Local structure: ETKDGv3 embeddings give bond lengths, angles and ring conformations; conformer ``i``
   starts from structure ``i mod k``, with ``k`` from :meth:`SamplingOptions.num_structures` (one for a
   molecule without flexible rings), or the structures the request brings (resampling rounds reuse
   conformers that passed validation).
2. Prior: every rotatable torsion of every conformer is set to a uniform random angle drawn from the
   request's own generator, so a molecule's conformers do not depend on which other molecules share
   its batch.
3. Reverse diffusion on the torus (:func:`molgen.diffusion.samplers.ode_sample` or ``sde_sample``):
   requests are packed into groups of at most ``batch_atoms`` heavy atoms (conformers × heavy atoms); a
   request larger than the budget gets a group of its own, whose denoiser calls still see at most
   ``batch_atoms`` heavy atoms (the group is evaluated in consecutive chunks of whole conformers, and
   identical chunks share one collated graph). A request whose torsion index (conformers × atoms moved
   by each torsion) exceeds ``max_torsion_pairs`` is split into pieces with their own noise streams,
   which bounds the memory of large systems (a protein ensemble of thousands of structures). The
   denoiser reads the heavy atoms, its scores move all atoms through exact rotations about the
   rotatable bonds, so bond lengths, angles and stereochemistry never change.

Validation, resampling and post-processing are the job of :mod:`molgen.sampling.pipeline`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rdkit import Chem

from molgen.chem.embedding import embed_local_structures
from molgen.chem.featurize import MolGraph, featurize
from molgen.chem.torsions import has_flexible_rings, planar_bond_references
from molgen.diffusion.samplers import ode_sample, sde_sample
from molgen.diffusion.torsion_ops import TorsionIndex, apply_torsion_deltas, dihedrals
from molgen.diffusion.torus import TorusSchedule, wrap_angle
from molgen.errors import MoleculeError
from molgen.models.graph import GraphBatch, collate_graphs, topological_distances
from molgen.models.registry import LoadedModel, load_model
from molgen.sampling.options import SamplingOptions

__all__ = ["DEFAULT_BATCH_ATOMS", "MAX_TORSION_PAIRS", "SampleRequest", "TorsionSystem", "rdkit_seed", "sample_conformers", "sample_requests"]

#: heavy atoms (conformers × heavy atoms per conformer) of one denoiser call on the CPU
DEFAULT_BATCH_ATOMS = 4096
#: torsion-atom pairs (conformers × atoms moved by each torsion) of one sampling group: about 0.5 GB of index
MAX_TORSION_PAIRS = 1 << 25


def rdkit_seed(seed: int) -> int:
    """A nonzero RDKit seed derived from ``seed`` (RDKit's seed 0 yields identical conformers)."""
    return (int(seed) * 7919 + 1) % 2_147_483_647 or 1


@dataclass
class TorsionSystem:
    """What sampling needs of one molecule, computed once (featurization, topology, planar bonds).

    Attributes:
        mol: the molecule with explicit hydrogens, no conformers.
        graph: heavy-atom graph and rotatable torsions.
        topo: ``(N, N)`` topological distances between heavy atoms.
        is_planar: ``(T,)`` amide-like torsions; planar_refs: ``(T, 4)`` their reference dihedrals.
        flexible_rings: whether ring conformations vary (:func:`molgen.chem.torsions.has_flexible_rings`).
    """

    mol: Chem.Mol
    graph: MolGraph
    topo: np.ndarray
    is_planar: np.ndarray
    planar_refs: np.ndarray
    flexible_rings: bool

    @staticmethod
    def build(mol: Chem.Mol) -> TorsionSystem:
        mol = Chem.Mol(mol)
        if any(a.GetNumImplicitHs() for a in mol.GetAtoms()):
            mol = Chem.AddHs(mol)
        mol.RemoveAllConformers()
        graph = featurize(mol)
        is_planar, refs = planar_bond_references(mol, graph.full_torsions)
        return TorsionSystem(
            mol, graph, topological_distances(graph.num_nodes, graph.bond_index), is_planar, refs,
            has_flexible_rings(mol),
        )

    @property
    def num_atoms(self) -> int:
        return self.mol.GetNumAtoms()


@dataclass
class SampleRequest:
    """``n`` conformers of one molecule.

    Attributes:
        system: the molecule's :class:`TorsionSystem`.
        n: number of conformers.
        seed: seed of its ETKDG structures, prior torsions and SDE noise.
        structures: optional ``(k, n_atoms, 3)`` Å coordinates to use instead of ETKDG embeddings: with
            ``sigma_start`` None their local structure is reused and every torsion is redrawn from the prior;
            with ``sigma_start`` set they are the starting points of partial diffusion from that noise level
            (torsions as given).
    """

    system: TorsionSystem
    n: int
    seed: int
    structures: np.ndarray | None = None
    # filled while sampling
    start: np.ndarray | None = field(default=None, repr=False)
    prior: torch.Tensor | None = field(default=None, repr=False)


def _local_structures(req: SampleRequest, options: SamplingOptions) -> np.ndarray:
    sys_ = req.system
    if req.structures is not None:
        local = np.asarray(req.structures, dtype=np.float64)
        if local.ndim != 3 or local.shape[1:] != (sys_.num_atoms, 3) or len(local) == 0:
            raise ValueError(f"structures must have shape (k, {sys_.num_atoms}, 3), got {local.shape}")
        return local
    k = min(req.n, options.num_structures(req.n, sys_.flexible_rings))
    try:
        return embed_local_structures(sys_.mol, k, rdkit_seed(req.seed),
                                      torsion_preferences=options.torsion_preferences)
    except ValueError as exc:
        smiles = Chem.MolToSmiles(Chem.RemoveHs(sys_.mol))
        raise MoleculeError(f"cannot embed {smiles}: {exc}") from exc


def _planar_mask(system: TorsionSystem, mode: str) -> np.ndarray:
    """``(T,)`` bool: the torsions that ``planar_bonds=mode`` treats specially."""
    if mode == "free":
        return np.zeros(len(system.is_planar), dtype=bool)
    return system.is_planar.astype(bool)


def pack_by_cost(costs: Sequence[int], budget: int) -> list[list[int]]:
    """Greedy packing of items (in order) into groups whose summed ``costs`` stay within ``budget``
    (an item costlier than the budget gets a group of its own)."""
    groups: list[list[int]] = []
    current: list[int] = []
    load = 0
    for i, cost in enumerate(costs):
        if current and load + cost > budget:
            groups.append(current)
            current, load = [], 0
        current.append(i)
        load += cost
    if current:
        groups.append(current)
    return groups


def _pack(requests: Sequence[SampleRequest], batch_atoms: int) -> list[list[int]]:
    """Requests packed into groups of at most ``batch_atoms`` heavy atoms (conformers x heavy atoms)."""
    return pack_by_cost([req.n * max(1, req.system.graph.num_nodes) for req in requests], batch_atoms)


def _denoiser_chunks(
    items: Sequence[dict], heavy: torch.Tensor, batch_atoms: int, dev: torch.device
) -> list[tuple[GraphBatch, torch.Tensor]]:
    """The group's conformer graphs ``items`` (in order) as consecutive denoiser batches of at most
    ``batch_atoms`` heavy atoms (at least one graph each), with the indices ``heavy`` of each chunk's heavy
    atoms in the group's state. Chunks of the same graphs share one collated batch (a request's copies)."""
    sizes = [len(it["node_features"]) for it in items]
    cached: dict[tuple[int, ...], GraphBatch] = {}
    chunks = []
    off = 0
    for group in pack_by_cost(sizes, batch_atoms):
        key = tuple(id(items[i]) for i in group)
        if key not in cached:
            cached[key] = collate_graphs([items[i] for i in group]).to(dev)
        n_heavy = sum(sizes[i] for i in group)
        chunks.append((cached[key], heavy[off : off + n_heavy].to(dev)))
        off += n_heavy
    return chunks


def _split_large(requests: Sequence[SampleRequest], max_pairs: int) -> tuple[list[SampleRequest], list[int]]:
    """Requests whose torsion index would exceed ``max_pairs`` torsion-atom pairs, split into pieces of
    whole conformers (prior and starts sliced from the request's; each piece after the first draws its
    SDE noise from a seed derived from the request's). Returns the pieces and each piece's request."""
    pieces: list[SampleRequest] = []
    owner: list[int] = []
    for i, req in enumerate(requests):
        per_copy = int(np.count_nonzero(req.system.graph.full_torsion_masks))
        size = max(1, max_pairs // max(1, per_copy))
        if req.n <= size:
            pieces.append(req)
            owner.append(i)
            continue
        n_t = len(req.system.graph.full_torsions)
        for k, first in enumerate(range(0, req.n, size)):
            m = min(size, req.n - first)
            piece = SampleRequest(req.system, m, int(req.seed) + 7_919 * k)
            piece.start = req.start[first : first + m]
            piece.prior = req.prior[first * n_t : (first + m) * n_t]
            pieces.append(piece)
            owner.append(i)
    return pieces, owner


@torch.no_grad()
def _sample_group(
    loaded: LoadedModel, reqs: Sequence[SampleRequest], options: SamplingOptions, schedule: TorusSchedule,
    batch_atoms: int,
) -> list[np.ndarray]:
    """Reverse diffusion of the torsions of every request of one group (denoiser calls of at most
    ``batch_atoms`` heavy atoms)."""
    dev = torch.device(loaded.device)
    pos_parts, blocks, heavy, planar, refs, items = [], [], [], [], [], []
    atom_off = 0
    spans = []  # (atom offset, n, n_atoms) per request
    for req in reqs:
        g, n, n_at = req.system.graph, req.n, req.system.num_atoms
        spans.append((atom_off, n, n_at))
        pos_parts.append(torch.as_tensor(req.start.reshape(-1, 3), dtype=torch.float32))
        copies = torch.arange(n)
        blocks.append((torch.as_tensor(g.full_torsions, dtype=torch.long)[:, 1:3],
                       torch.as_tensor(g.full_torsion_masks, dtype=torch.bool), n, n_at))
        heavy.append((torch.as_tensor(g.heavy_atoms)[None, :] + copies[:, None] * n_at).reshape(-1) + atom_off)
        mask = _planar_mask(req.system, options.planar_bonds)
        planar.append(torch.as_tensor(mask).repeat(n))
        quads = torch.as_tensor(req.system.planar_refs, dtype=torch.long)
        refs.append((quads[None] + copies[:, None, None] * n_at).reshape(-1, 4) + atom_off)
        item = g.item(req.start[0][g.heavy_atoms], req.system.topo)
        items.extend([item] * n)
        atom_off += n * n_at
    pos = torch.cat(pos_parts).to(dev)
    index = TorsionIndex.replicated(blocks).to(dev)
    chunks = _denoiser_chunks(items, torch.cat(heavy), batch_atoms, dev)
    planar_t = torch.cat(planar).to(dev)
    free = (~planar_t).float() if options.planar_bonds == "fixed" else torch.ones_like(planar_t, dtype=torch.float32)
    prior = torch.cat([req.prior for req in reqs]).to(dev)
    if options.sigma_start is None:
        pos = apply_torsion_deltas(pos, index, prior * free)
    scale = float(options.score_scale)

    def score_fn(state: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        parts = []
        for batch, heavy_t in chunks:
            sig = sigma.expand(batch.num_graphs).to(state.dtype)
            raw = loaded.module(batch.with_pos(state[heavy_t]), sig)
            parts.append(schedule.score_from_sigma(raw, sig[batch.torsion_graph]))
        score = torch.cat(parts)
        return score * scale if scale != 1.0 else score

    def apply_fn(state: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return apply_torsion_deltas(state, index, delta.to(state.dtype) * free)  # fixed bonds never move

    if options.sampler == "sde":
        gens = [torch.Generator(device=dev).manual_seed(int(req.seed) + 1) for req in reqs]
        sizes = [req.n * len(req.system.graph.full_torsions) for req in reqs]

        def noise_fn(like: torch.Tensor) -> torch.Tensor:
            parts = [torch.randn(s, generator=gen, dtype=like.dtype, device=like.device) for gen, s in zip(gens, sizes)]
            return torch.cat(parts)

        pos = sde_sample(score_fn, pos, schedule, options.steps, apply_fn=apply_fn, noise_fn=noise_fn)
    else:
        pos = ode_sample(score_fn, pos, schedule, options.steps, apply_fn=apply_fn, method=options.ode_method)
    if options.planar_bonds == "snap" and bool(planar_t.any()):
        phi = dihedrals(pos, torch.cat(refs).to(dev))
        target = torch.where(phi.abs() < torch.pi / 2, torch.zeros_like(phi), torch.full_like(phi, torch.pi))
        pos = apply_torsion_deltas(pos, index, wrap_angle(target - phi) * planar_t)
    flat = pos.cpu().double().numpy()
    return [flat[off : off + n * n_at].reshape(n, n_at, 3) for off, n, n_at in spans]


def sample_requests(
    loaded: LoadedModel,
    requests: Sequence[SampleRequest],
    options: SamplingOptions,
    *,
    batch_atoms: int = DEFAULT_BATCH_ATOMS,
    max_torsion_pairs: int = MAX_TORSION_PAIRS,
) -> list[np.ndarray | Exception]:
    """Sample every request; returns per request ``(n, n_atoms, 3)`` Å coordinates or the error that
    stopped it (e.g. :class:`~molgen.errors.MoleculeError` when it cannot be embedded).

    The result of a request depends only on its molecule, ``n``, seed, ``options`` and
    ``max_torsion_pairs``, not on the other requests or ``batch_atoms`` (up to float32 rounding in the
    denoiser). ``batch_atoms`` bounds the heavy atoms of one denoiser call, ``max_torsion_pairs`` the
    torsion index of one group (see the module docstring).
    """
    schedule: TorusSchedule = loaded.schedule
    if options.sigma_start is not None:
        schedule = TorusSchedule(schedule.sigma_min, min(float(options.sigma_start), schedule.sigma_max))
    results: list[np.ndarray | Exception | None] = [None] * len(requests)
    pending: list[int] = []
    for i, req in enumerate(requests):
        try:
            local = _local_structures(req, options)
        except (MoleculeError, ValueError) as exc:
            results[i] = exc
            continue
        req.start = local[np.arange(req.n) % len(local)]
        n_t = len(req.system.graph.full_torsions)
        if n_t == 0:
            results[i] = req.start.copy()
            continue
        gen = torch.Generator().manual_seed(int(req.seed))
        req.prior = loaded.schedule.sample_prior((req.n * n_t,), gen)
        pending.append(i)
    pieces, owner = _split_large([requests[i] for i in pending], max_torsion_pairs)
    parts: list[list[np.ndarray]] = [[] for _ in pending]
    for group in _pack(pieces, batch_atoms):
        coords = _sample_group(loaded, [pieces[j] for j in group], options, schedule, batch_atoms)
        for j, c in zip(group, coords):
            parts[owner[j]].append(c)
    for k, i in enumerate(pending):
        results[i] = parts[k][0] if len(parts[k]) == 1 else np.concatenate(parts[k])
    for req in requests:
        req.start = req.prior = None
    return results  # type: ignore[return-value]


def sample_conformers(
    mol: Chem.Mol,
    n: int,
    *,
    model: LoadedModel | str | Path | None = None,
    options: SamplingOptions | None = None,
    seed: int | None = None,
    device: str = "cpu",
    structures: np.ndarray | None = None,
    **option_changes: object,
) -> Chem.Mol:
    """Sample ``n`` conformers of one molecule (no validation): a copy of ``mol`` holding them.

    Args:
        mol: RDKit molecule (hydrogens are added when missing).
        n: number of conformers.
        model: a :class:`LoadedModel`, a checkpoint path, or None for the shipped default.
        options: sampling options (default :class:`SamplingOptions`); ``option_changes`` replace fields.
        seed: the molecule's seed (default ``options.seed``).
        device: torch device when ``model`` is loaded here.
        structures: ``(k, n_atoms, 3)`` Å local structures to reuse (see :class:`SampleRequest`).

    Raises:
        MoleculeError: the molecule cannot be embedded.
        InputError: bad options.
    """
    options = (options or SamplingOptions()).replace(n=n, **option_changes)
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device)
    seed = options.seed if seed is None else seed
    system = TorsionSystem.build(mol)
    (result,) = sample_requests(loaded, [SampleRequest(system, n, seed, structures)], options)
    if isinstance(result, Exception):
        raise result
    out = Chem.Mol(system.mol)
    for coords in result:
        conf = Chem.Conformer(system.num_atoms)
        conf.SetPositions(np.ascontiguousarray(coords, dtype=np.float64))
        conf.SetIntProp("seed", int(seed))
        conf.SetProp("model", loaded.name)
        conf.SetProp("sampler", options.sampler_label)
        conf.SetIntProp("steps", int(options.steps))
        out.AddConformer(conf, assignId=True)
    return out

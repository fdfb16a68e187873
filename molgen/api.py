"""Public Python API: :func:`generate_conformers`, :func:`generate_conformers_many`, :func:`sample_molecules`
and :func:`load_model`.

They turn SMILES strings or RDKit Mols into Mols holding validated 3D conformers (Å); the work is done
by :func:`molgen.sampling.pipeline.generate_many` (sampling rounds, validation, post-processing) with
the sampler that the model's kind names (torsional diffusion for the shipped model). Sampling options
are one :class:`~molgen.sampling.options.SamplingOptions`, checked once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rdkit import Chem

from molgen.chem.io import parse_smiles, prepare_molecule
from molgen.errors import InputError
from molgen.sampling.options import OPTIMIZERS, SAMPLERS, SamplingOptions

__all__ = [
    "OPTIMIZERS",
    "SAMPLERS",
    "SamplingOptions",
    "clear_model_cache",
    "generate_conformers",
    "generate_conformers_many",
    "load_model",
    "sample_ensemble",
    "sample_molecules",
]

log = logging.getLogger(__name__)


def load_model(path: str | Path | None = None, device: str = "cpu") -> Any:
    """Load a conformer model (the shipped default model when ``path`` is None), once per process.

    Args:
        path: a model checkpoint, or None for the model shipped with molgen (or ``$MOLGEN_MODEL``).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.

    Returns:
        A :class:`molgen.models.registry.LoadedModel`.

    Raises:
        InputError: the checkpoint does not exist or is not a molgen model; a bad device.
    """
    from molgen.cluster import resolve_device
    from molgen.models import registry

    try:
        return registry.load_model(path, resolve_device(device))
    except FileNotFoundError as exc:
        label = "the default model" if path is None else f"model {path}"
        raise InputError(f"cannot load {label}: file not found ({exc})") from None
    except ValueError as exc:
        raise InputError(f"cannot load model: {exc}") from None


def clear_model_cache() -> None:
    """Forget all models loaded by :func:`load_model`."""
    from molgen.models import registry

    registry.clear_model_cache()


@contextlib.contextmanager
def torch_threads(num_threads: int) -> Iterator[None]:
    """Run the block with ``num_threads`` torch CPU threads (0: leave torch's setting), then restore.

    The denoiser works on small tensors: one thread per process is fastest when processes share the
    cores, which is how :mod:`molgen.batch` uses the machine.
    """
    if not num_threads or num_threads < 1:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    if previous != num_threads:
        torch.set_num_threads(int(num_threads))
    try:
        yield
    finally:
        if previous != num_threads:
            torch.set_num_threads(previous)


def _prepare(mol: str | Chem.Mol, name: str | None) -> Chem.Mol:
    if isinstance(mol, str):
        if not mol.strip():
            raise InputError("empty SMILES")
        return parse_smiles(mol.strip(), name)
    if isinstance(mol, Chem.Mol):
        return prepare_molecule(mol, name)
    raise InputError(f"expected a SMILES string or an RDKit Mol, got {type(mol).__name__}")


def _options(options: SamplingOptions | None, n: int | None, kwargs: dict[str, Any]) -> SamplingOptions:
    unknown = set(kwargs) - set(SamplingOptions.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown sampling option(s): {', '.join(sorted(unknown))}")
    base = options or SamplingOptions()
    changes = {k: v for k, v in kwargs.items() if v is not None}
    if n is not None:
        changes["n"] = n
    return base.replace(**changes) if changes else base


def generate_conformers_many(
    mols: Sequence[str | Chem.Mol],
    n: int | None = None,
    *,
    options: SamplingOptions | None = None,
    model: str | Path | None = None,
    device: str = "cpu",
    seeds: Sequence[int] | None = None,
    names: Sequence[str | None] | None = None,
    num_threads: int = 1,
    batch_atoms: int | None = None,
    **option_kwargs: Any,
) -> list[Chem.Mol | Exception]:
    """Validated conformers of many molecules, their denoiser calls packed into shared batches.

    Args:
        mols: SMILES strings or RDKit Mols.
        n, option_kwargs: fields of :class:`SamplingOptions` (``n``, ``sampler``, ``steps``, ``seed``,
            ``rms`` (Å), ``optimize``, ``energy_window`` (kcal/mol), ...); None keeps the default.
        options: a ready :class:`SamplingOptions` (``n`` and ``option_kwargs`` replace its fields).
        model, device: as in :func:`load_model`.
        seeds: one seed per molecule (default ``options.seed`` for each).
        names: ``_Name`` per molecule (default: the input's name or SMILES).
        num_threads: torch threads for the denoiser (restored afterwards; 0 = torch's setting) and RDKit
            threads for MMFF and RMSD pruning.
        batch_atoms: heavy-atom budget of one denoiser call.

    Returns:
        Per input, the Mol of :func:`generate_conformers` or the exception (:class:`InputError`,
        :class:`~molgen.errors.MoleculeError`) that stopped that molecule; one failure never stops the
        others.

    Raises:
        InputError: bad options, or the model cannot be loaded.
    """
    from molgen.sampling.pipeline import generate_many

    opts = _options(options, n, option_kwargs)
    names = [None] * len(mols) if names is None else list(names)
    prepared: list[Chem.Mol | Exception] = []
    for mol, name in zip(mols, names):
        try:
            prepared.append(_prepare(mol, name))
        except InputError as exc:
            prepared.append(exc)
    loaded = load_model(model, device)
    ok = [i for i, p in enumerate(prepared) if not isinstance(p, Exception)]
    seed_list = [opts.seed] * len(mols) if seeds is None else list(seeds)
    with torch_threads(num_threads):
        results = generate_many(
            [prepared[i] for i in ok], opts, model=loaded, seeds=[seed_list[i] for i in ok],
            batch_atoms=batch_atoms, num_threads=num_threads,
        )
    for i, result in zip(ok, results):
        prepared[i] = result
    return prepared


def generate_conformers(
    mol: str | Chem.Mol,
    n: int | None = None,
    *,
    options: SamplingOptions | None = None,
    model: str | Path | None = None,
    device: str = "cpu",
    name: str | None = None,
    num_threads: int = 1,
    **option_kwargs: Any,
) -> Chem.Mol:
    """Generate validated 3D conformers of a molecule.

    Steps: prepare the input (sanitize, perceive stereo, add explicit hydrogens); sample ``n``
    conformers; validate each (stereo, bond lengths, angles, clashes, aromatic planarity:
    :class:`~molgen.chem.validate.ConformerValidator`) and resample the missing number, with seeds
    derived deterministically from ``seed`` and the round number, for at most ``max_attempts`` rounds;
    then optionally relax with MMFF94, apply the energy window and prune near-duplicates by RMSD;
    finally renumber the conformers 0..k-1 (conformer property ``conf_id``).

    Args:
        mol: a SMILES string or an RDKit Mol (hydrogens are added if missing; its stereo tags are the
            reference for validation).
        n: number of conformers requested (default 10).
        options: a ready :class:`SamplingOptions`; ``n`` and ``option_kwargs`` replace its fields.
        option_kwargs: any field of :class:`SamplingOptions`: ``sampler`` (``"ode"``/``"sde"``),
            ``steps``, ``seed`` (≥ 0), ``rms`` (Å), ``optimize`` (``"mmff"``), ``energy_window``
            (kcal/mol), ``max_attempts``, ``conformers_per_structure``, ``max_structures``,
            ``rigid_conformers_per_structure``, ``ode_method``, ``sigma_start`` (radians), ``planar_bonds``,
            ``score_scale``; None keeps the default.
        model: model checkpoint path; None for the shipped default model.
        device: torch device of the model: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        name: molecule name (``_Name``); default: the input's ``_Name`` or its SMILES.
        num_threads: CPU threads for the denoiser (torch, restored afterwards; 0 = torch's own
            setting) and for RDKit's MMFF and RMSD (0 = all cores).

    Returns:
        A new Mol with explicit hydrogens holding up to ``n`` conformers. Conformer properties:
        ``conf_id``, ``seed``, ``model``, ``sampler``, ``steps`` and, when MMFF was used, ``energy`` and
        ``delta_energy`` (kcal/mol). Molecule properties: ``molgen_n_requested``, ``molgen_n_sampled``
        (drawn in all rounds), ``molgen_n_dropped`` and ``molgen_drop_reasons`` (JSON object reason ->
        count; validation keys such as ``clash``/``stereo`` plus ``energy_window`` and ``rms``).

    Raises:
        InputError: invalid SMILES/Mol or option values.
        MoleculeError: the molecule cannot be embedded, MMFF94 has no parameters (when needed), or no
            conformer passed validation.
    """
    (result,) = generate_conformers_many(
        [mol], n, options=options, model=model, device=device, names=[name],
        num_threads=num_threads, **option_kwargs,
    )
    if isinstance(result, Exception):
        raise result
    return result


def sample_molecules(
    n: int,
    *,
    conditions: dict[str, float] | None = None,
    guidance: float = 1.0,
    num_atoms: int | list[int] | None = None,
    method: str = "ddim",
    steps: int = 100,
    seed: int = 1,
    model: str | Path | None = None,
    device: str = "cpu",
    keep_invalid: bool = False,
    batch_size: int = 256,
) -> Any:
    """Generate new 3D molecules (with hydrogens) from the de novo position/type diffusion model.

    Args:
        n: molecules to generate.
        conditions: target properties by name, in the model's units (QM9 model: ``alpha`` in Bohr^3,
            ``gap`` in eV, ``num_heavy_atoms``); the others are left free.
        guidance: classifier-free guidance scale ``w`` (0: unconditional, 1: conditional, > 1: stronger).
        num_atoms: atoms per molecule, hydrogens included (default: drawn from the training data).
        method: ``"ddim"`` (deterministic) or ``"ddpm"`` (ancestral, EDM's sampler; use ~1000 steps).
        steps: reverse-diffusion steps.
        seed: random seed.
        model: a checkpoint (default: the shipped QM9 model, or ``$MOLGEN_MOLECULE_MODEL``).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        keep_invalid: also return molecules whose bonds could not be perceived (flagged ``valid=0``).
        batch_size: molecules per denoiser call.

    Returns:
        A :class:`~molgen.sampling.molecule_output.GeneratedMolecules`: a sequence of RDKit ``Mol``
        objects with one 3D conformer (Å) each and the properties ``valid``, ``atom_stable_fraction``,
        ``mol_stable``, ``smiles``, ``condition_<name>``, ``guidance``, ``seed``; ``.num_generated``,
        ``.reasons`` (failures by reason) and ``.summary`` tell what happened to all of them.

    Raises:
        InputError: bad options, an unknown condition, or a model that cannot be loaded.
    """
    from molgen.models.registry import default_molecule_model_path
    from molgen.sampling.molecule_output import collect
    from molgen.sampling.molecule_sampler import sample_atoms

    loaded = load_model(model if model is not None else default_molecule_model_path(), device)
    gens = sample_atoms(loaded, n, conditions=conditions, guidance=guidance, num_atoms=num_atoms, method=method,
                        steps=steps, seed=seed, batch_size=batch_size)
    return collect(gens, keep_invalid=keep_invalid, model_name=loaded.name)


def sample_ensemble(
    n: int,
    *,
    model: str | Path | None = None,
    system: str | None = None,
    seed: int = 1,
    sampler: str = "sde",
    steps: int | None = None,
    planar_bonds: str = "fixed",
    max_rounds: int = 10,
    device: str = "cpu",
    output: str = "mdtraj",
) -> Any:
    """A validated conformational ensemble of a protein model's system.

    Args:
        n: valid structures wanted.
        model: a protein model checkpoint (``molgen protein train``), or
        system: the name of a shipped one (``"alanine-dipeptide"``).
        seed: sampling seed.
        sampler: ``"sde"`` (default) or ``"ode"`` (probability flow, deterministic).
        steps: diffusion steps (default 20).
        planar_bonds: amide bonds (ω): ``"fixed"`` (the structure's), ``"snap"`` or ``"free"``.
        max_rounds: bound on the sample-validate rounds.
        device: torch device.
        output: ``"mdtraj"`` (an ``mdtraj.Trajectory``, nm) or ``"biopython"`` (a ``Bio.PDB`` Structure, one
            model per structure, Å).

    Returns:
        The valid structures (at most ``n``; fewer only when ``max_rounds`` ran out, with a logged warning
        that counts the dropped structures by reason).

    Raises:
        InputError: no or both of ``model`` and ``system``, an unknown system, a checkpoint that is not a
            protein model, bad options.
    """
    from molgen.protein.io import to_biopython
    from molgen.protein.sample import load_protein_model, protein_sampling_options
    from molgen.protein.sample import sample_ensemble as _sample

    if output not in ("mdtraj", "biopython"):
        raise InputError(f"output={output!r}: use 'mdtraj' or 'biopython'")
    opts = protein_sampling_options(sampler=sampler, planar_bonds=planar_bonds, steps=steps)
    result = _sample(load_protein_model(model, system=system, device=device), n, seed=seed, options=opts,
                     max_rounds=max_rounds)
    if result.traj.n_frames < n:
        log.warning("only %d of %d structures passed validation in %d rounds (dropped: %s)", result.traj.n_frames, n,
                    result.rounds, dict(result.dropped))
    return result.traj if output == "mdtraj" else to_biopython(result.traj)

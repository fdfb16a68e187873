"""The work of one batch unit: raw records in, formatted conformers and failures out.

A unit is a few molecules (up to a heavy-atom budget); it is parsed, checked, sampled in one packed
call of :func:`molgen.sampling.pipeline.generate_many`, and formatted as output text, all in one
(worker) process, so the main process only reads input and writes files. Every molecule comes back as
a :class:`MoleculeOutcome`; nothing here raises for a bad molecule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from rdkit import Chem, rdBase

from molgen.batch.sharding import molecule_seed
from molgen.chem.readers import RawRecord, parse_raw_record
from molgen.chem.writers import format_conformers
from molgen.errors import MoleculeError
from molgen.sampling.options import SamplingOptions

__all__ = ["MoleculeOutcome", "WorkConfig", "largest_fragment", "run_unit"]


@dataclass(frozen=True)
class WorkConfig:
    """What every worker needs (picklable; the model is loaded once per process).

    Attributes:
        options: sampling options.
        model: checkpoint path or None (the shipped model).
        device: concrete torch device string.
        fmt: output format (``sdf``, ``xyz``, ``pdb``).
        batch_atoms: heavy-atom budget of one denoiser call.
        max_heavy_atoms: larger molecules are reported as failures instead of sampled.
        keep_salts: keep every fragment of a multi-fragment input (default: the largest one only).
    """

    options: SamplingOptions
    model: str | None
    device: str
    fmt: str = "sdf"
    batch_atoms: int | None = None
    max_heavy_atoms: int = 250
    keep_salts: bool = False


@dataclass
class MoleculeOutcome:
    """The result of one input record.

    Attributes:
        name, source, raw: the record's ID, ``file:line`` and input text (SMILES).
        text: the formatted conformers (empty on failure); n_conformers: how many.
        drops: conformers dropped per reason; error: why the molecule failed (None when it did not).
        note: e.g. the fragments removed from a salt.
    """

    name: str
    source: str
    raw: str
    text: str = ""
    n_conformers: int = 0
    drops: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def largest_fragment(mol: Chem.Mol) -> tuple[Chem.Mol, str | None]:
    """The largest fragment (most heavy atoms) of a multi-fragment molecule, and a note naming the
    removed fragments (None when there was one fragment)."""
    frags = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=True)
    if len(frags) < 2:
        return mol, None
    order = sorted(range(len(frags)), key=lambda i: (-frags[i].GetNumHeavyAtoms(), i))
    keep = frags[order[0]]
    removed = [Chem.MolToSmiles(Chem.RemoveHs(frags[i], sanitize=False)) for i in order[1:]]
    if mol.HasProp("_Name"):
        keep.SetProp("_Name", mol.GetProp("_Name"))
    return keep, "removed fragment(s) " + ".".join(removed)


def _unexpected(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _prepare(config: WorkConfig, raw: RawRecord) -> tuple[MoleculeOutcome, Chem.Mol | None]:
    """The outcome of one record so far, and its molecule when it is to be sampled."""
    try:
        rec = parse_raw_record(raw)
    except Exception as exc:  # noqa: BLE001 - one record must not stop the others
        return MoleculeOutcome(raw.name, raw.source, raw.text if raw.kind != "sdf" else "",
                               error=f"cannot read: {_unexpected(exc)}"), None
    out = MoleculeOutcome(raw.name, raw.source, rec.raw or raw.text if raw.kind != "sdf" else (rec.raw or ""))
    if rec.mol is None:
        out.error = (rec.error or "unreadable").removeprefix(f"{raw.source} ({raw.name}): ")
        return out, None
    mol = rec.mol
    try:
        if not config.keep_salts:
            mol, out.note = largest_fragment(mol)
    except Exception as exc:  # noqa: BLE001
        out.error = f"cannot split fragments: {_unexpected(exc)}"
        return out, None
    heavy = mol.GetNumHeavyAtoms()
    if heavy > config.max_heavy_atoms:
        out.error = f"too large: {heavy} heavy atoms (limit {config.max_heavy_atoms}, --max-heavy-atoms)"
        return out, None
    return out, mol


def _sample(config: WorkConfig, mols: list[Chem.Mol], seeds: list[int]) -> list[Any]:
    """:func:`generate_many` of the molecules; when the packed call fails as a whole (a sampler error,
    memory), each molecule again on its own, so that only the molecule at fault fails."""
    from molgen.api import (
        load_model,  # cached per (path, device) by molgen.models.registry
    )
    from molgen.sampling.pipeline import generate_many

    try:
        return generate_many(mols, config.options, model=load_model(config.model, config.device), seeds=seeds,
                             batch_atoms=config.batch_atoms, num_threads=1)
    except Exception as exc:  # noqa: BLE001 - one molecule must not stop the others
        if len(mols) == 1:
            return [exc]
        return [_sample(config, [m], [s])[0] for m, s in zip(mols, seeds)]


def run_unit(config: WorkConfig, records: list[RawRecord], seed: int) -> list[MoleculeOutcome]:
    """Parse, check, sample and format the molecules of ``records`` (in order).

    Args:
        config: the work configuration.
        records: raw input records.
        seed: the global seed; each molecule's seed is :func:`molecule_seed` of it and its ID.
    """
    blocker = rdBase.BlockLogs()
    outcomes: list[MoleculeOutcome] = []
    mols, slots, seeds = [], [], []
    for raw in records:
        out, mol = _prepare(config, raw)
        outcomes.append(out)
        if mol is not None:
            mols.append(mol)
            slots.append(out)
            seeds.append(molecule_seed(seed, raw.name))
    if mols:
        import torch

        if torch.get_num_threads() != 1 and config.device == "cpu":
            torch.set_num_threads(1)
        for out, result in zip(slots, _sample(config, mols, seeds)):
            if isinstance(result, Exception):
                message = str(result) if isinstance(result, MoleculeError) and str(result) else _unexpected(result)
                out.error = message.removeprefix(f"{out.name}: ")
                continue
            try:
                out.text = format_conformers(result, config.fmt)
            except Exception as exc:  # noqa: BLE001
                out.error = f"cannot write conformers: {_unexpected(exc)}"
                continue
            out.n_conformers = result.GetNumConformers()
            out.drops = json.loads(result.GetProp("molgen_drop_reasons"))
    del blocker
    return outcomes

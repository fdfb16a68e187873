"""Generated atoms to RDKit molecules with their verdicts (validity, stability, reason) as properties.

Every generated molecule becomes an RDKit ``Mol`` with one 3D conformer (Å) and these properties (SD
tags when written): ``valid`` (1/0: bonds perceived from the geometry, molecule sanitised), ``reason``
(why not, when invalid), ``atom_stable_fraction`` and ``mol_stable`` (EDM's distance-based valence check),
``smiles`` (canonical, largest fragment), ``num_fragments``, ``condition_<name>`` for each requested
condition, ``guidance`` (the scale ``w``), ``seed``. An invalid molecule keeps its atoms and coordinates but
no bonds, so it can be inspected and is never mistaken for a good one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from rdkit import Chem

from molgen.chem.molecule_metrics import atom_stability
from molgen.chem.perception import mol_from_atoms
from molgen.sampling.molecule_sampler import GeneratedMolecule

__all__ = ["GeneratedMolecules", "to_rdkit"]


def _bare_mol(gen: GeneratedMolecule) -> Chem.Mol:
    rw = Chem.RWMol()
    for z, q in zip(gen.atomic_numbers, gen.formal_charges):
        atom = Chem.Atom(int(z))
        atom.SetFormalCharge(int(q))
        atom.SetNoImplicit(True)
        rw.AddAtom(atom)
    conf = Chem.Conformer(len(gen.atomic_numbers))
    conf.SetPositions(np.ascontiguousarray(gen.positions, dtype=np.float64))
    mol = rw.GetMol()
    mol.AddConformer(conf, assignId=True)
    return mol


def to_rdkit(gen: GeneratedMolecule, model_name: str = "") -> Chem.Mol:
    """The RDKit molecule of one generated sample, with its verdicts as properties (module docstring)."""
    result = mol_from_atoms(gen.atomic_numbers, gen.positions, gen.formal_charges)
    mol = Chem.Mol(result.mol) if result.valid and result.mol is not None else _bare_mol(gen)
    try:
        stable = atom_stability(gen.atomic_numbers, gen.positions)
    except ValueError:
        stable = np.zeros(len(gen.atomic_numbers), dtype=bool)
    mol.SetIntProp("valid", int(result.valid))
    if not result.valid:
        mol.SetProp("reason", result.reason or "invalid")
    mol.SetDoubleProp("atom_stable_fraction", float(stable.mean()) if len(stable) else 0.0)
    mol.SetIntProp("mol_stable", int(bool(len(stable)) and bool(stable.all())))
    mol.SetIntProp("num_fragments", int(result.num_fragments))
    if result.largest_fragment_smiles:
        mol.SetProp("smiles", result.largest_fragment_smiles)
    for name, value in gen.conditions.items():
        mol.SetDoubleProp(f"condition_{name}", float(value))
    if gen.conditions:
        mol.SetDoubleProp("guidance", float(gen.guidance))
    mol.SetIntProp("seed", int(gen.seed))
    if model_name:
        mol.SetProp("model", model_name)
    return mol


@dataclass
class GeneratedMolecules:
    """Generated molecules and what became of them.

    Attributes:
        mols: the molecules delivered (valid ones; with ``keep_invalid`` also the invalid ones, flagged).
        num_generated: molecules generated in all.
        num_valid: of them valid (bonds perceived, sanitised).
        reasons: failure reason -> count for the invalid ones.
        summary: stability and validity fractions of everything generated.
    """

    mols: list[Chem.Mol]
    num_generated: int
    num_valid: int
    reasons: dict[str, int] = field(default_factory=dict)
    summary: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.mols)

    def __iter__(self):
        return iter(self.mols)

    def __getitem__(self, i: int) -> Chem.Mol:
        return self.mols[i]


def collect(gens: list[GeneratedMolecule], *, keep_invalid: bool = False, model_name: str = "") -> GeneratedMolecules:
    """Perceive, judge and gather generated samples (see :class:`GeneratedMolecules`)."""
    mols = [to_rdkit(g, model_name) for g in gens]
    valid = [m for m in mols if m.GetIntProp("valid")]
    reasons = Counter(m.GetProp("reason") for m in mols if not m.GetIntProp("valid"))
    n_atoms = sum(m.GetNumAtoms() for m in mols)
    stable_atoms = sum(m.GetDoubleProp("atom_stable_fraction") * m.GetNumAtoms() for m in mols)
    summary = {
        "atom_stability": stable_atoms / n_atoms if n_atoms else 0.0,
        "mol_stability": float(np.mean([m.GetIntProp("mol_stable") for m in mols])) if mols else 0.0,
        "validity": len(valid) / len(mols) if mols else 0.0,
    }
    return GeneratedMolecules(mols if keep_invalid else valid, len(mols), len(valid), dict(reasons), summary)

"""One definition of how conformers are sampled and post-processed: :class:`SamplingOptions`.

The API, the CLI, the batch runner and the benchmarks all build one ``SamplingOptions``; it is checked
once, when it is made, and raises :class:`~molgen.errors.InputError` naming the bad option. The defaults
were chosen on the CCD validation split with the default weights
(``python -m molgen.bench.tune_sampler``, tables in ``benchmarks/``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from molgen.chem.torsions import PLANAR_BOND_MODES
from molgen.errors import InputError

__all__ = ["ODE_METHODS", "OPTIMIZERS", "PLANAR_BOND_MODES", "SAMPLERS", "SamplingOptions"]

SAMPLERS = ("ode", "sde")
ODE_METHODS = ("euler", "heun")
OPTIMIZERS = ("mmff",)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class SamplingOptions:
    """Everything that decides which conformers come out for a molecule (besides the model).

    Attributes:
        n: conformers requested per molecule.
        sampler: ``"ode"`` (probability-flow ODE, deterministic, DDIM-like) or ``"sde"`` (reverse SDE).
        steps: reverse-diffusion steps. The default 5 was chosen on the validation split
            (``python -m molgen.bench.tune_structures --configs steps``): 8, 6, 5 and 4 steps gave
            0.764, 0.786, 0.783 and 0.787 Å median / 61.0, 63.5, 63.5 and 63.5 % under 1 Å, all ahead of
            ETKDG's 0.834 Å / 59.0 %; 5 is the middle of that plateau at 5/8 of the network evaluations.
        seed: global seed (≥ 0). A molecule's own seed derives from it and, in batch runs, its ID.
        ode_method: ``"euler"`` (DDIM-like) or ``"heun"``.
        sigma_start: radians; if set, refine ETKDG torsions from this noise level (partial diffusion).
        planar_bonds: amide, ester, thioamide, carbamate and urea C–N / C–O bonds: ``"free"``,
            ``"snap"`` (diffused, then set to the nearer of cis and trans) or ``"fixed"`` (ETKDG's value).
        score_scale: multiplies the network's torsion scores (> 1 sharpens towards the modes).
        conformers_per_structure: conformers sharing one ETKDG local structure (bond lengths, angles,
            ring conformations) in molecules whose rings can change conformation.
        max_structures: at most this many ETKDG local structures per molecule and sampling round
            (None: no cap). The default 10 binds only for large ``n``; chosen on the validation split at
            N = 50 (``python -m molgen.bench.tune_structures --configs cap --n 50``): 0.653 Å / 72 % at
            0.20 structures per conformer, against 0.601 Å / 70 % at 0.37 without a cap and ETKDG's
            0.744 Å / 64 %.
        rigid_conformers_per_structure: the same for molecules without flexible rings (every ring
            aromatic or otherwise without an sp3 atom in a ring of 5+ atoms), whose local structures
            differ only in bond lengths and angles; None: ``conformers_per_structure``. The default 5
            was chosen on the validation split (``python -m molgen.bench.tune_structures --configs
            rigid``): 0.764 Å / 61 % at 0.35 ETKDG structures per conformer against 0.750 Å / 61 % at
            0.50 with 2, and 0.806 Å with one structure for all.
        torsion_preferences: embed local structures with ETKDG's experimental torsion-angle terms
            (ETKDGv3) or without them (faster; rotatable torsions are redrawn anyway).
        rms: Å; drop conformers within this heavy-atom RMSD of a kept one.
        optimize: ``"mmff"`` to relax every conformer with MMFF94, or None.
        energy_window: kcal/mol; drop conformers this far above the lowest (MMFF94), or None.
        max_attempts: sampling rounds (the first included) to replace conformers that fail validation.
        cartesian_steps: reverse-diffusion steps of Cartesian models (``kind == "cartesian"``), which
            generate every coordinate and need more steps than torsions (``steps`` is the torsion models').
    """

    n: int = 10
    sampler: str = "ode"
    steps: int = 5
    seed: int = 42
    ode_method: str = "euler"
    sigma_start: float | None = None
    planar_bonds: str = "snap"
    score_scale: float = 2.0
    conformers_per_structure: int = 2
    max_structures: int | None = 10
    rigid_conformers_per_structure: int | None = 5
    torsion_preferences: bool = True
    rms: float | None = None
    optimize: str | None = None
    energy_window: float | None = None
    max_attempts: int = 5
    cartesian_steps: int = 50

    def __post_init__(self) -> None:
        def positive_int(name: str, what: str) -> None:
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise InputError(f"{name} must be a positive integer ({what}), got {value!r}")

        positive_int("n", "number of conformers")
        positive_int("steps", "diffusion steps")
        positive_int("conformers_per_structure", "conformers per ETKDG structure")
        positive_int("max_attempts", "sampling rounds")
        positive_int("cartesian_steps", "diffusion steps of Cartesian models")
        if self.max_structures is not None:
            positive_int("max_structures", "ETKDG structures per molecule")
        if self.rigid_conformers_per_structure is not None:
            positive_int("rigid_conformers_per_structure", "conformers per ETKDG structure without flexible rings")
        if not _is_int(self.seed) or self.seed < 0:
            raise InputError(f"seed must be a non-negative integer, got {self.seed!r}")
        choices = {
            "sampler": SAMPLERS,
            "ode_method": ODE_METHODS,
            "planar_bonds": PLANAR_BOND_MODES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.optimize is not None and self.optimize not in OPTIMIZERS:
            raise InputError(f"optimize must be one of {', '.join(OPTIMIZERS)} or None, got {self.optimize!r}")
        if not isinstance(self.score_scale, (int, float)) or not self.score_scale > 0:
            raise InputError(f"score_scale must be > 0, got {self.score_scale!r}")
        for name, unit in (("sigma_start", "radians"), ("rms", "Å"), ("energy_window", "kcal/mol")):
            value = getattr(self, name)
            strict = name == "sigma_start"
            if value is not None and not (value > 0 if strict else value >= 0):
                raise InputError(f"{name} must be {'>' if strict else '>='} 0 {unit} or None, got {value!r}")

    def replace(self, **changes: Any) -> SamplingOptions:
        """A copy with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> SamplingOptions:
        """Build from keyword arguments, ignoring those that are None (= keep the default)."""
        return cls(**{k: v for k, v in kwargs.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of all fields (for run fingerprints and reports)."""
        return dataclasses.asdict(self)

    @property
    def sampler_label(self) -> str:
        """``sde`` or ``ode-<method>``: the ``sampler`` SD tag of every conformer."""
        return "sde" if self.sampler == "sde" else f"ode-{self.ode_method}"

    def num_structures(self, n: int, flexible_rings: bool) -> int:
        """ETKDG local structures for ``n`` conformers of a molecule (see the attributes)."""
        per = self.conformers_per_structure
        if not flexible_rings and self.rigid_conformers_per_structure is not None:
            per = self.rigid_conformers_per_structure
        k = max(1, -(-n // per))
        return min(k, self.max_structures) if self.max_structures else k

"""In-process conformer generators of the benchmark: ``generate(smiles, n) -> Mol``.

Both start from a SMILES string, never from experimental coordinates:

* ``molgen``: :func:`molgen.api.generate_conformers` (``n=N``, model/sampler/steps/seed
  configurable; validated conformers, so fewer than N may come back);
* ``etkdg``: RDKit ETKDGv3, ``EmbedMultipleConfs(AddHs(MolFromSmiles(smiles)), N)`` with a
  nonzero ``randomSeed`` and otherwise default parameters.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "WARMUP_SMILES",
    "GenerateFn",
    "etkdg_seed",
    "make_etkdg_generator",
    "make_molgen_generator",
    "warm_up",
]

WARMUP_SMILES = "CC(=O)Nc1ccc(O)cc1"  # paracetamol

#: a generator maps (smiles, n) to a Mol holding the conformers (None or 0 conformers = failure)
GenerateFn = Callable[[str, int], Any]


def etkdg_seed(seed: int) -> int:
    """A nonzero RDKit ``randomSeed`` from ``seed`` (with seed 0 RDKit returns identical conformers)."""
    return int(seed) % 2_147_483_647 or 1


def make_etkdg_generator(seed: int = 42, threads: int = 1) -> GenerateFn:
    """RDKit ETKDGv3 from a SMILES: ``EmbedMultipleConfs(AddHs(mol), n)``, default parameters.

    ``threads``: RDKit's ``numThreads`` (0: all cores).
    """
    from rdkit import Chem
    from rdkit.Chem import rdDistGeom

    def generate(smiles: str, n: int) -> Any:
        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            raise ValueError(f"RDKit cannot parse {smiles!r}")
        mol = Chem.AddHs(mol)
        params = rdDistGeom.ETKDGv3()
        params.randomSeed = etkdg_seed(seed)
        params.numThreads = int(threads)
        rdDistGeom.EmbedMultipleConfs(mol, int(n), params)
        return mol

    return generate


def make_molgen_generator(
    *,
    model: str | None = None,
    device: str = "cpu",
    threads: int = 1,
    options: Any = None,
    **option_kwargs: Any,
) -> GenerateFn:
    """molgen from a SMILES: :func:`molgen.api.generate_conformers` (validated conformers).

    The sampling options are one :class:`~molgen.sampling.options.SamplingOptions` (``options``, default
    molgen's defaults), checked once here; ``option_kwargs`` (``sampler``, ``steps``, ``seed``,
    ``conformers_per_structure``, ``planar_bonds``, ...) replace its fields when not None.
    """
    from molgen import api
    from molgen.sampling.options import SamplingOptions

    base = options or SamplingOptions()
    opts = base.replace(**{k: v for k, v in option_kwargs.items() if v is not None})

    def generate(smiles: str, n: int) -> Any:
        return api.generate_conformers(smiles, n=int(n), options=opts, model=model, device=device,
                                       num_threads=int(threads))

    return generate


def warm_up(generators: dict[str, GenerateFn], smiles: str = WARMUP_SMILES) -> dict[str, Any]:
    """One call per method before timing (loads models, fills caches); ``{method: {"seconds", "error"}}``."""
    info = {}
    for method, generate in generators.items():
        start = time.perf_counter()
        try:
            generate(smiles, 2)
            err = None
        except Exception as exc:  # noqa: BLE001
            err = f"{type(exc).__name__}: {exc}"[:300]
        info[method] = {"seconds": time.perf_counter() - start, "error": err}
    return info

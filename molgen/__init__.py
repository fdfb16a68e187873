"""molgen: 3D conformers, new 3D molecules and protein ensembles from E(3)-equivariant diffusion.

Heavy modules (torch, rdkit, e3nn) are imported lazily so that ``import molgen`` and
``molgen --help`` stay fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "SamplingOptions",
    "__version__",
    "generate_conformers",
    "generate_conformers_many",
    "load_model",
    "sample_ensemble",
    "sample_molecules",
]


def __getattr__(name: str):  # PEP 562 lazy public API
    if name in ("SamplingOptions", "generate_conformers", "generate_conformers_many", "load_model", "sample_molecules",
                "sample_ensemble"):
        from molgen import api

        return getattr(api, name)
    raise AttributeError(f"module 'molgen' has no attribute {name!r}")

"""Model checkpoints by type: read a checkpoint, build the network it names, keep one cache.

A checkpoint is one ``torch.save`` dict whose ``format`` names its model type (e.g.
``molgen-torsion-denoiser/1``); each type registers a builder that turns the stored config and weights
into a :class:`LoadedModel`. Training writes checkpoints (:mod:`molgen.training.checkpoint`); inference
only reads them through this module, so sampling never imports training code. The config travels with
the weights (as in TorchMD-Net): ``load_model(path)`` needs nothing else.

The shipped default model is ``molgen/weights/torsion_ccd_v2.pt`` (``$MOLGEN_MODEL`` overrides it).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "CARTESIAN_FORMAT",
    "DEFAULT_WEIGHTS",
    "MOLECULE_FORMAT",
    "PROTEIN_FORMAT",
    "TORSION_FORMAT",
    "LoadedModel",
    "clear_model_cache",
    "default_cartesian_model_path",
    "default_model_path",
    "default_molecule_model_path",
    "load_checkpoint_model",
    "load_model",
    "read_checkpoint",
    "register_model_type",
]

DEFAULT_WEIGHTS = "torsion_ccd_v2.pt"
#: the shipped de novo molecule model (QM9); ``$MOLGEN_MOLECULE_MODEL`` overrides it
DEFAULT_MOLECULE_WEIGHTS = "qm9_edm_v1.pt"
#: the shipped Cartesian conformer model (QM9); ``$MOLGEN_CARTESIAN_MODEL`` overrides it
DEFAULT_CARTESIAN_WEIGHTS = "cartesian_qm9_v1.pt"
TORSION_FORMAT = "molgen-torsion-denoiser/1"
MOLECULE_FORMAT = "molgen-molecule-denoiser/1"
CARTESIAN_FORMAT = "molgen-cartesian-conformer/1"
#: a torsion denoiser of one protein system, the system stored beside it (:mod:`molgen.training.train_protein`)
PROTEIN_FORMAT = "molgen-protein-torsion/1"


@dataclass
class LoadedModel:
    """A network ready for sampling, with its noise processes and provenance.

    Attributes:
        kind: what it denoises (``"torsion"``, ``"molecules"``); :mod:`molgen.sampling` picks the sampler by kind.
        module: the ``torch.nn.Module`` in eval mode on ``device`` (None for non-network test models).
        processes: the noise process of each diffused variable (:mod:`molgen.diffusion.process`), e.g.
            ``{"torsion": TorusSchedule(...)}``.
        name: model name written into every conformer (``model`` SD tag).
        meta: data hash, training step and config, the task's facts (``task``), checkpoint path.
        device: torch device string.
    """

    kind: str
    module: Any
    processes: dict
    name: str
    meta: dict = field(default_factory=dict)
    device: str = "cpu"

    @property
    def model(self) -> Any:
        """Alias of :attr:`module` (the denoiser)."""
        return self.module

    @property
    def schedule(self) -> Any:
        """The noise process of a model that diffuses one variable (e.g. the torsion schedule)."""
        if not self.processes or len(self.processes) != 1:
            raise AttributeError(f"model {self.name!r} diffuses {sorted(self.processes or {})}: use .processes")
        return next(iter(self.processes.values()))


#: checkpoint format -> builder(state dict, device) -> (kind, module, {variable: noise process})
Builder = Callable[[dict, str], tuple[str, Any, Any]]
_BUILDERS: dict[str, Builder] = {}


def register_model_type(fmt: str, builder: Builder) -> None:
    """Register how checkpoints of format ``fmt`` become a model (a later registration replaces it)."""
    _BUILDERS[fmt] = builder


def _import_e3nn() -> None:
    """Import e3nn without importing ``torch._dynamo``.

    e3nn decorates one function with ``torch.compiler.disable`` at import time, which imports
    ``torch._dynamo`` (about 1 s of start-up for every ``molgen conformers`` run, half of the CLI's
    start-up). Sampling never compiles, so while e3nn is imported the decorator is the identity; when
    ``torch._dynamo`` is already loaded (e.g. under ``torch.compile``) nothing is changed.
    """
    import sys

    import torch

    if "e3nn.o3" in sys.modules or "torch._dynamo" in sys.modules:
        return
    original = torch.compiler.disable

    def _identity(fn: Any = None, *args: Any, **kwargs: Any) -> Any:
        return fn if fn is not None else (lambda f: f)

    torch.compiler.disable = _identity  # type: ignore[assignment]
    try:
        import e3nn.nn
        import e3nn.o3  # noqa: F401
    finally:
        torch.compiler.disable = original


def _build_torsion(state: dict, device: str) -> tuple[str, Any, Any]:
    _import_e3nn()
    from molgen.diffusion.torus import wrapped_normal_score_norm
    from molgen.models.torsion_denoiser import build_denoiser

    module = build_denoiser(state["model_config"])
    module.load_state_dict(state["state_dict"])
    module.eval().to(device)
    # build the E[score^2] table now: worker processes forked after loading inherit it
    wrapped_normal_score_norm(1.0)
    return "torsion", module, stored_processes(state)


def _molecule_denoiser_builder(kind: str) -> Builder:
    """A builder of :class:`~molgen.models.molecule_denoiser.MoleculeDenoiser` checkpoints of ``kind``."""

    def build(state: dict, device: str) -> tuple[str, Any, Any]:
        _import_e3nn()
        from molgen.models.molecule_denoiser import build_molecule_denoiser

        module = build_molecule_denoiser(state["model_config"])
        module.load_state_dict(state["state_dict"])
        module.eval().to(device)
        return kind, module, stored_processes(state)

    return build


def stored_processes(state: dict) -> dict:
    """The noise processes of a checkpoint (``processes``; older torsion checkpoints hold ``schedule``)."""
    from molgen.diffusion.process import process_from_dict, processes_from_dict

    if "processes" in state:
        return processes_from_dict(state["processes"])
    return {"torsion": process_from_dict({"type": "torus", **state["schedule"]})}


register_model_type(TORSION_FORMAT, _build_torsion)
register_model_type(PROTEIN_FORMAT, lambda state, device: ("protein", *_build_torsion(state, device)[1:]))
register_model_type(MOLECULE_FORMAT, _molecule_denoiser_builder("molecules"))
register_model_type(CARTESIAN_FORMAT, _molecule_denoiser_builder("cartesian"))


#: model types whose builder lives outside this module: format -> module that registers it when imported
_REGISTERED_BY = {"molgen-property-regressor/1": "molgen.models.property_regressor"}


def read_checkpoint(path: Path | str) -> dict[str, Any]:
    """Load a checkpoint dict on the CPU and check that its format is a registered model type.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a molgen checkpoint, or of an unknown model type.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise ValueError(f"{path}: not a readable molgen checkpoint ({type(exc).__name__}: {exc})") from None
    fmt = state.get("format") if isinstance(state, dict) else type(state).__name__
    if isinstance(state, dict) and fmt in _REGISTERED_BY and fmt not in _BUILDERS:
        import importlib

        importlib.import_module(_REGISTERED_BY[fmt])  # registers its model type on import
    if not isinstance(state, dict) or fmt not in _BUILDERS:
        known = ", ".join(sorted(_BUILDERS))
        raise ValueError(f"{path}: not a molgen checkpoint of a known type (format {fmt!r}; known: {known})")
    return state


def load_checkpoint_model(path: Path | str, device: str = "cpu") -> LoadedModel:
    """Build the model stored in ``path`` on ``device`` (uncached; see :func:`load_model`)."""
    state = read_checkpoint(path)
    kind, module, processes = _BUILDERS[state["format"]](state, str(device))
    meta = {k: state.get(k) for k in ("data_hash", "step", "train_config", "task", "extra")}
    meta["path"] = str(path)
    name = (state.get("extra") or {}).get("name") or Path(path).stem
    return LoadedModel(kind, module, processes, name, meta, str(device))


def default_model_path() -> Path:
    """The shipped default weights (``molgen/weights/``), or ``$MOLGEN_MODEL`` when set."""
    return _shipped("MOLGEN_MODEL", DEFAULT_WEIGHTS)


def _shipped(env_var: str, filename: str) -> Path:
    env = os.environ.get(env_var)
    if env:
        return Path(env).expanduser()
    return Path(str(resources.files("molgen.weights").joinpath(filename)))


def default_molecule_model_path() -> Path:
    """The shipped de novo molecule model (``molgen/weights/``), or ``$MOLGEN_MOLECULE_MODEL`` when set."""
    return _shipped("MOLGEN_MOLECULE_MODEL", DEFAULT_MOLECULE_WEIGHTS)


def default_cartesian_model_path() -> Path:
    """The shipped Cartesian conformer model (``molgen/weights/``), or ``$MOLGEN_CARTESIAN_MODEL`` when set."""
    return _shipped("MOLGEN_CARTESIAN_MODEL", DEFAULT_CARTESIAN_WEIGHTS)


_CACHE: dict[tuple[str, str], LoadedModel] = {}
_LOCK = threading.Lock()


def load_model(path: str | Path | None = None, device: str = "cpu") -> LoadedModel:
    """Load a model once per (path, device) and process; later calls return the cached object.

    Args:
        path: a checkpoint, or None for :func:`default_model_path`.
        device: a concrete torch device string (``cpu``, ``cuda:0``; see :func:`molgen.cluster.resolve_device`).

    Raises:
        FileNotFoundError: the checkpoint does not exist.
        ValueError: the file is not a checkpoint of a registered model type.
    """
    p = Path(path).expanduser() if path is not None else default_model_path()
    key = (str(p.resolve()) if p.exists() else str(p), str(device))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = load_checkpoint_model(p, device)
        return _CACHE[key]


def clear_model_cache() -> None:
    """Forget every model loaded by :func:`load_model`."""
    with _LOCK:
        _CACHE.clear()

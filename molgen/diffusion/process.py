"""Noise processes: one per kind of variable, each with its marginal, prior, target, score and loss.

molgen diffuses several kinds of variables side by side, the way BioEmu keeps one SDE per variable
(``{"torsion": TorusSchedule(), "pos": VPSchedule(), "atom_type": VPSchedule()}``). Every process here is
a member of the Gaussian family

    x_t = alpha(t) x_0 + sigma(t) eps,       eps ~ N(0, I),   t in [0, 1] (t = 1 is pure noise),

written so that one sampler (:mod:`molgen.diffusion.samplers`) can step all of them with the same
formulas:

* :class:`~molgen.diffusion.torus.TorusSchedule` is variance-exploding (``alpha = 1``) on the torus: the
  increment is wrapped into ``[-pi, pi)`` and its perturbation kernel is a wrapped normal (radians).
* :class:`VPSchedule` is variance-preserving (``alpha^2 + sigma^2 = 1``) in Euclidean space, for Cartesian
  positions (Å, noise projected onto the zero-centre-of-mass subspace by the caller, see
  :func:`molgen.diffusion.subspace.remove_mean`) and one-hot atom types / charges (EDM, Hoogeboom et al. 2022).

What a network outputs differs per process, and the process alone knows how to read it:

* :meth:`NoiseProcess.target`: the regression target of the raw network output given the drawn noise
  (torus: the wrapped-normal score divided by its root-mean-square, a unit-variance quantity; VP: ``eps``);
* :meth:`NoiseProcess.score`: the raw output turned into the score ``nabla_x log p_t(x)``;
* :meth:`NoiseProcess.output_loss`: ``(output - target)^2`` per element.

The network never imports a process: the training task and the sampler sit between the two.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import torch
from torch import Tensor

__all__ = ["PROCESS_TYPES", "NoiseProcess", "VPSchedule", "process_from_dict", "processes_from_dict",
           "processes_to_dict"]


class NoiseProcess(ABC):
    """Interface of a noise process over one kind of variable (see the module docstring).

    Subclasses are frozen dataclasses; ``type_name`` keys their serialisation.
    """

    type_name: ClassVar[str]
    #: end sampling with one denoising step ``x <- E[x_0 | x_t]`` at the last level (EDM's ``p(x_0 | z_0)``)
    denoise_at_end: ClassVar[bool] = False
    #: ``alpha(t) = 1`` for every ``t``: the sampler's increments do not depend on the current value
    variance_exploding: ClassVar[bool] = False

    @abstractmethod
    def alpha_sigma(self, t: float) -> tuple[float, float]:
        """Signal and noise scales ``(alpha(t), sigma(t))`` of the marginal at time ``t`` as python floats."""

    @abstractmethod
    def sample_prior(
        self,
        shape: tuple[int, ...] | torch.Size,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """A draw from the prior at ``t = 1``, tensor of ``shape``."""

    @abstractmethod
    def draw_noise(
        self, t: Tensor, shape: tuple[int, ...] | torch.Size, generator: torch.Generator | None = None
    ) -> Tensor:
        """The noise that :meth:`noised` adds at time ``t`` (broadcastable to ``shape``); dtype/device of ``t``."""

    @abstractmethod
    def noised(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """``x_t`` from clean ``x0`` and the noise of :meth:`draw_noise`."""

    @abstractmethod
    def target(self, noise: Tensor, t: Tensor, x_t: Tensor | None = None) -> Tensor:
        """Regression target of the raw network output for this noise at time ``t`` (and noised value
        ``x_t``, which processes with a skip connection read)."""

    @abstractmethod
    def score(self, output: Tensor, x_t: Tensor | None, t: Tensor | float) -> Tensor:
        """The raw network output as the score ``nabla_x log p_t(x_t)`` (units of 1 / x)."""

    def apply(self, x: Tensor, delta: Tensor) -> Tensor:
        """``x + delta`` in the variable's space (the torus wraps); must not modify ``x`` in place."""
        return x + delta

    def output_loss(self, output: Tensor, noise: Tensor, t: Tensor, x_t: Tensor | None = None) -> Tensor:
        """Per-element squared error ``(output - target(noise, t, x_t))^2``; reduce as the task needs."""
        return (output - self.target(noise, t, x_t).to(output.dtype)) ** 2

    # -- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly ``{"type": type_name, **parameters}``."""
        return {"type": self.type_name, **asdict(self)}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NoiseProcess:
        """Inverse of :meth:`to_dict` (the ``type`` key is optional); unknown keys raise ``ValueError``."""
        d = {k: v for k, v in d.items() if k != "type"}
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"{cls.__name__}.from_dict: unknown keys {sorted(unknown)}")
        return cls(**d)


def _as_tensor(t: Tensor | float, like: Tensor | None = None) -> Tensor:
    if isinstance(t, Tensor):
        return t if t.is_floating_point() else t.to(torch.get_default_dtype())
    if like is not None:
        return torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return torch.as_tensor(t, dtype=torch.get_default_dtype())


@dataclass(frozen=True)
class VPSchedule(NoiseProcess):
    """Variance-preserving Gaussian schedule with EDM's polynomial noise schedule.

    ``alpha(t)^2 = (1 - 2 s) (1 - t^power)^2 + s`` and ``sigma(t)^2 = 1 - alpha(t)^2`` for ``t in [0, 1]``,
    with ``s = precision`` (EDM, Hoogeboom et al. 2022, App. B: ``polynomial_2`` with precision ``1e-5``;
    their ``t = step / T`` of ``T = 1000`` discrete steps is this continuous ``t``). At ``t = 1`` the
    marginal is ``N(0, I)`` to within ``alpha = sqrt(s)``; at ``t = 0`` the noise is ``sigma = sqrt(s)``.

    Output parameterisation: with ``data_rms = None`` the network predicts ``eps`` (EDM); its score is
    ``-eps / sigma(t)``. With ``data_rms = r`` (the root mean square of the clean data per coordinate)
    the prediction of ``eps`` is preconditioned as Karras et al. (2022) precondition their denoiser:
    ``eps_hat = c_skip(t) x_t + c_out(t) F`` with ``c_skip = sigma / (alpha^2 r^2 + sigma^2)`` (the best
    linear estimate of ``eps`` from ``x_t``) and ``c_out = alpha r / sqrt(alpha^2 r^2 + sigma^2)`` (the
    standard deviation of what it leaves), so the network output ``F`` has unit variance at every noise
    level and at ``t -> 1`` the prediction tends to ``x_t`` whatever ``F`` is: errors of ``F`` are not
    amplified by ``1 / alpha`` in the first, nearly pure-noise steps of sampling.

    Data scaling (EDM scales one-hot types by 0.25) and the zero-centre-of-mass projection of position
    noise belong to the training task, which knows the variables.
    """

    type_name: ClassVar[str] = "vp"
    denoise_at_end: ClassVar[bool] = True

    power: float = 2.0
    precision: float = 1e-5
    data_rms: float | None = None

    def __post_init__(self) -> None:
        if self.data_rms is not None and not (self.data_rms > 0 and math.isfinite(self.data_rms)):
            raise ValueError(f"VPSchedule: data_rms must be a positive number or None, got {self.data_rms}")
        if not (self.power > 0 and math.isfinite(self.power)):
            raise ValueError(f"VPSchedule: power must be a positive number, got {self.power}")
        if not (0.0 < self.precision < 0.5):
            raise ValueError(f"VPSchedule: precision must lie in (0, 0.5), got {self.precision}")

    def alpha2(self, t: Tensor | float) -> Tensor:
        """``alpha(t)^2`` (dimensionless), same shape as ``t``."""
        t = _as_tensor(t)
        s = self.precision
        return (1.0 - 2.0 * s) * (1.0 - t.clamp(0.0, 1.0) ** self.power) ** 2 + s

    def alpha(self, t: Tensor | float) -> Tensor:
        """Signal scale ``alpha(t)``."""
        return self.alpha2(t).sqrt()

    def sigma(self, t: Tensor | float) -> Tensor:
        """Noise scale ``sigma(t) = sqrt(1 - alpha(t)^2)``."""
        return (1.0 - self.alpha2(t)).sqrt()

    def alpha_sigma(self, t: float) -> tuple[float, float]:
        s = self.precision
        a2 = (1.0 - 2.0 * s) * (1.0 - min(max(float(t), 0.0), 1.0) ** self.power) ** 2 + s
        return math.sqrt(a2), math.sqrt(1.0 - a2)

    def sample_prior(self, shape, generator=None, *, dtype=None, device=None) -> Tensor:
        """``N(0, I)`` of ``shape`` (project position noise onto the zero-mean subspace afterwards)."""
        return torch.randn(tuple(shape), generator=generator, dtype=dtype, device=device)

    def draw_noise(self, t: Tensor, shape, generator=None) -> Tensor:
        return torch.randn(tuple(shape), generator=generator, dtype=t.dtype, device=t.device)

    def noised(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        t = _as_tensor(t, x0)
        a2 = self.alpha2(t).to(x0.dtype)
        return a2.sqrt() * x0 + (1.0 - a2).sqrt() * noise

    def preconditioning(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(c_skip(t), c_out(t))`` of the preconditioned parameterisation (``(0, 1)`` without ``data_rms``)."""
        if self.data_rms is None:
            return torch.zeros_like(t), torch.ones_like(t)
        a2 = self.alpha2(t).to(t.dtype)
        r2 = self.data_rms**2
        var = a2 * r2 + (1.0 - a2)
        return (1.0 - a2).sqrt() / var, (a2 * r2 / var).sqrt()

    def target(self, noise: Tensor, t: Tensor, x_t: Tensor | None = None) -> Tensor:
        """``eps``; preconditioned: ``(eps - c_skip x_t) / c_out``."""
        if self.data_rms is None:
            return noise
        if x_t is None:
            raise ValueError("a preconditioned VPSchedule needs x_t for its target")
        c_skip, c_out = self.preconditioning(_as_tensor(t, noise).to(noise.dtype))
        return (noise - c_skip * x_t) / c_out

    def predicted_noise(self, output: Tensor, x_t: Tensor | None, t: Tensor | float) -> Tensor:
        """The estimate of ``eps`` that the raw output stands for."""
        if self.data_rms is None:
            return output
        if x_t is None:
            raise ValueError("a preconditioned VPSchedule needs x_t to read its network output")
        c_skip, c_out = self.preconditioning(_as_tensor(t, output).to(output.dtype))
        return c_skip * x_t + c_out * output

    def score(self, output: Tensor, x_t: Tensor | None, t: Tensor | float) -> Tensor:
        sigma = self.sigma(_as_tensor(t, output)).to(output.dtype)
        return -self.predicted_noise(output, x_t, t) / sigma


def _registry() -> dict[str, type[NoiseProcess]]:
    from molgen.diffusion.torus import TorusSchedule

    return {TorusSchedule.type_name: TorusSchedule, VPSchedule.type_name: VPSchedule}


#: process types by name, for checkpoints (filled lazily: the torus module imports this one)
PROCESS_TYPES: dict[str, type[NoiseProcess]] = {}


def process_from_dict(d: dict[str, Any]) -> NoiseProcess:
    """Rebuild a process from :meth:`NoiseProcess.to_dict`; a dict without ``type`` is a torus schedule
    (checkpoints written before processes carried their type)."""
    if not PROCESS_TYPES:
        PROCESS_TYPES.update(_registry())
    kind = d.get("type", "torus")
    if kind not in PROCESS_TYPES:
        raise ValueError(f"unknown noise process type {kind!r} (known: {', '.join(sorted(PROCESS_TYPES))})")
    return PROCESS_TYPES[kind].from_dict(d)


def processes_to_dict(processes: dict[str, NoiseProcess]) -> dict[str, dict[str, Any]]:
    """``{variable: process.to_dict()}``."""
    return {name: p.to_dict() for name, p in processes.items()}


def processes_from_dict(d: dict[str, dict[str, Any]]) -> dict[str, NoiseProcess]:
    """Inverse of :func:`processes_to_dict`."""
    return {name: process_from_dict(v) for name, v in d.items()}

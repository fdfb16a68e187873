"""Reverse-time samplers for torsional diffusion, independent of any model and of the state type.

A sampler only needs
  * ``score_fn(state, sigma) -> score``: the (learned) score ``nabla_theta log p_sigma(theta)`` of every
    torsion (rad^-1, a tensor of any shape ``S``) at the current state and noise level ``sigma`` (a 0-d
    tensor, radians);
  * ``apply_fn(state, delta) -> state``: returns a *new* state with the torsion increments ``delta``
    (radians, shape ``S``) applied. It must not modify ``state`` in place (Heun re-uses the old state).

For a pure torus state (a tensor of angles) the default is ``wrap_angle(theta + delta)``; for molecules pass a
function that rotates the coordinates about the rotatable bonds. The state itself is never inspected
except to pick the default device/dtype of ``sigma`` when it is a tensor.

Noise levels are ``schedule.sigmas(steps)``: ``sigma_0 = sigma_max > sigma_1 > ... > sigma_steps = sigma_min``
(``steps + 1`` values, ``steps`` updates). The forward process is the variance-exploding SDE
``d theta = sqrt(d sigma^2/dt) dW`` (paper Sec. 4.2), so in terms of ``sigma``

  * reverse SDE:           ``d theta = -d(sigma^2) * score + sqrt(-d(sigma^2)) dW``  (d sigma^2 < 0),
  * probability-flow ODE:  ``d theta / d sigma = -sigma * score``.

The samplers stop at ``sigma_min`` (no final denoising step), like the reference implementation.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal, TypeVar

import torch
from torch import Tensor

from molgen.diffusion.torus import TorusSchedule, _check_steps, wrap_angle

__all__ = ["ApplyFn", "ScoreFn", "apply_torus", "guided_score", "ode_sample", "sde_sample"]

State = TypeVar("State")
ScoreFn = Callable[[State, Tensor], Tensor]
"""``score_fn(state, sigma) -> score``: score per torsion (rad^-1, any shape ``S``); ``sigma`` 0-d, radians."""
ApplyFn = Callable[[State, Tensor], State]
"""``apply_fn(state, delta) -> new_state``: apply torsion increments ``delta`` (radians, shape ``S``)."""


def apply_torus(theta: Tensor, delta: Tensor) -> Tensor:
    """Default :data:`ApplyFn` for a tensor of angles: ``wrap_angle(theta + delta)`` in ``[-pi, pi)``."""
    return wrap_angle(theta + delta)


def _sigma_options(
    state: Any, dtype: torch.dtype | None, device: torch.device | str | None
) -> tuple[torch.dtype, torch.device | str | None]:
    """Device/dtype for the 0-d sigma passed to ``score_fn``: explicit > tensor state > torch defaults."""
    if isinstance(state, Tensor):
        if dtype is None and state.is_floating_point():
            dtype = state.dtype
        if device is None:
            device = state.device
    return (dtype or torch.get_default_dtype()), device


def _levels(schedule: TorusSchedule, steps: int) -> list[float]:
    """float64 noise levels sigma_0 = sigma_max > ... > sigma_steps = sigma_min as python floats."""
    return schedule.sigmas(_check_steps(steps), dtype=torch.float64).tolist()


def sde_sample(
    score_fn: ScoreFn[State],
    state: State,
    schedule: TorusSchedule,
    steps: int,
    *,
    apply_fn: ApplyFn[State] = apply_torus,  # type: ignore[assignment]
    generator: torch.Generator | None = None,
    noise_fn: Callable[[Tensor], Tensor] | None = None,
    noise_scale: float = 1.0,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> State:
    """Stochastic reverse-SDE sampler (Euler–Maruyama in ``sigma^2``, DDPM-like).

    For ``i = 0 .. steps-1`` with ``s_i = score_fn(state_i, sigma_i)`` and ``z ~ N(0, I)`` of ``s_i``'s shape::

        delta_i     = (sigma_i^2 - sigma_{i+1}^2) * s_i + noise_scale * sqrt(sigma_i^2 - sigma_{i+1}^2) * z
        state_{i+1} = apply_fn(state_i, delta_i)

    i.e. ``g^2 dt`` of the paper's reverse SDE replaced by the exact variance increment of the step
    (it equals the paper's ``g(t)^2 / steps`` to first order). One score evaluation per step.

    Args:
        score_fn: ``(state, sigma) -> score`` (see module docstring).
        state: initial state at ``sigma_max``, e.g. ``schedule.sample_prior(shape)`` for a torus state.
        schedule: noise schedule; levels are ``schedule.sigmas(steps)``.
        steps: number of reverse steps (``>= 1``).
        apply_fn: applies an increment; default wraps ``theta + delta`` into ``[-pi, pi)``.
        generator: torch generator for the noise (on the score's device).
        noise_fn: ``noise_fn(score) -> z``, standard normal noise of the score's shape, dtype and device;
            replaces ``generator`` (e.g. to draw each molecule's noise from its own generator, so that a
            molecule's samples do not depend on the others in its batch).
        noise_scale: multiplies the injected noise (1 = the exact reverse SDE; < 1 tempers sampling).
        dtype, device: of the 0-d ``sigma`` handed to ``score_fn``; default from ``state`` if it is a
            tensor, else the torch defaults.

    Returns:
        The final state at ``sigma_min``.

    Raises:
        ValueError: if ``steps < 1``.
    """
    levels = _levels(schedule, steps)
    sdtype, sdevice = _sigma_options(state, dtype, device)
    for sigma_i, sigma_next in zip(levels[:-1], levels[1:]):
        score = score_fn(state, torch.tensor(sigma_i, dtype=sdtype, device=sdevice))  # s_theta(x_i, sigma_i)
        dvar = sigma_i**2 - sigma_next**2  # sigma_i^2 - sigma_{i+1}^2 = g^2 dt  (> 0)
        if noise_fn is not None:
            z = noise_fn(score)
        else:
            z = torch.randn(score.shape, generator=generator, dtype=score.dtype, device=score.device)
        delta = dvar * score + (noise_scale * math.sqrt(dvar)) * z
        state = apply_fn(state, delta)
    return state


def ode_sample(
    score_fn: ScoreFn[State],
    state: State,
    schedule: TorusSchedule,
    steps: int,
    *,
    apply_fn: ApplyFn[State] = apply_torus,  # type: ignore[assignment]
    method: Literal["euler", "heun"] = "heun",
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> State:
    """Deterministic probability-flow ODE sampler ``d theta / d sigma = -sigma * score`` (DDIM-like).

    With ``s_i = score_fn(state_i, sigma_i)`` and ``h_i = sigma_i - sigma_{i+1} > 0``:

    * ``"euler"`` (= DDIM for a VE process, Karras et al. 2022 Alg. 1 without the corrector)::

          delta_i = h_i * sigma_i * s_i

    * ``"heun"`` (2nd order, Karras Alg. 1): predictor ``state' = apply_fn(state_i, h_i sigma_i s_i)``,
      ``s' = score_fn(state', sigma_{i+1})``, then from the *old* state::

          delta_i = h_i * (sigma_i * s_i + sigma_{i+1} * s') / 2

    ``state_{i+1} = apply_fn(state_i, delta_i)``. Score evaluations: ``steps`` (Euler) or ``2 * steps`` (Heun).
    The map from the initial state to the result is deterministic.

    Args:
        score_fn, state, schedule, steps, apply_fn, dtype, device: as in :func:`sde_sample`.
        method: ``"euler"`` or ``"heun"``.

    Returns:
        The final state at ``sigma_min``.

    Raises:
        ValueError: if ``steps < 1`` or ``method`` is unknown.
    """
    if method not in ("euler", "heun"):
        raise ValueError(f"ode_sample: method must be 'euler' or 'heun', got {method!r}")
    levels = _levels(schedule, steps)
    sdtype, sdevice = _sigma_options(state, dtype, device)
    for sigma_i, sigma_next in zip(levels[:-1], levels[1:]):
        h = sigma_i - sigma_next  # step size in sigma (> 0 going backwards)
        score = score_fn(state, torch.tensor(sigma_i, dtype=sdtype, device=sdevice))
        delta = (h * sigma_i) * score  # Euler: -d sigma * (-sigma s)
        if method == "heun":
            predicted = apply_fn(state, delta)
            score_next = score_fn(predicted, torch.tensor(sigma_next, dtype=sdtype, device=sdevice))
            delta = (0.5 * h) * (sigma_i * score + sigma_next * score_next)  # trapezoidal corrector
        state = apply_fn(state, delta)
    return state


def guided_score(score_cond: Tensor, score_uncond: Tensor, guidance_scale: float | Tensor) -> Tensor:
    """Classifier-free guidance: ``score_uncond + w * (score_cond - score_uncond)``.

    ``w = guidance_scale``: ``w = 0`` gives the unconditional score, ``w = 1`` the conditional one, ``w > 1``
    sharpens towards the condition (it targets ``p(x) p(c|x)^w``, up to the usual approximation).
    Shapes broadcast; ``w`` may be a float or a tensor broadcastable to the scores.
    """
    return score_uncond + guidance_scale * (score_cond - score_uncond)

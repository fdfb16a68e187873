"""Reverse-time samplers, written once for every noise process and every kind of state.

A sampler is a plain function (as in BioEmu's ``dpm_solver(sdes, batch, N, score_model)``) of

* ``processes``: ``{variable: NoiseProcess}``, e.g. ``{"torsion": TorusSchedule()}`` or
  ``{"pos": VPSchedule(), "atom_type": VPSchedule()}`` (:mod:`molgen.diffusion.process`);
* ``score_fn(state, t) -> {variable: score}``: the scores ``nabla_x log p_t(x)`` of every variable at the
  current state and diffusion time ``t`` (a python float in ``[0, 1]``). For a network, read its raw
  outputs through :meth:`NoiseProcess.score`; for classifier-free guidance wrap two of them with
  :func:`guided_score_fn`;
* ``values_fn(state) -> {variable: x_t}``: the current value of each variable. Only variance-preserving
  processes need it; a variance-exploding process (the torus) steps by increments that do not depend on
  the current value, so its value may be missing (e.g. torsions, which live in the coordinates);
* ``apply_fn(state, deltas) -> state``: a *new* state with the increments ``{variable: delta}`` applied
  (it must not modify ``state`` in place: Heun reuses the old state). For torsions it rotates the
  coordinates about the rotatable bonds.

The default state is a dict ``{variable: tensor}``, read and updated through the processes.

Time grid: ``t_i = t_start (1 - i / steps)``, ``i = 0..steps``, so ``steps`` reverse steps from
``t_start`` to 0. With ``a = alpha``, ``s = sigma`` of each process at ``t`` (current) and ``u`` (next),
``a_tu = a_t / a_u``, ``v = s_t^2 - a_tu^2 s_u^2`` (the variance the forward process adds from ``u`` to
``t``), the score ``g``, the noise estimate ``eps = -s_t g`` and ``x0 = (x + s_t^2 g) / a_t``:

* ``"sde"``: ``x_u = (x + v g) / a_tu + noise_scale sqrt(v) z`` — Euler–Maruyama of the reverse SDE with
  the exact variance increment (DDPM with the reverse variance ``beta``); for the torus this is
  ``delta = (s_t^2 - s_u^2) g + sqrt(s_t^2 - s_u^2) z`` (torsional diffusion's sampler);
* ``"ddpm"``: ancestral sampling, ``x_u = (x + v g) / a_tu + sqrt(v) (s_u / s_t) z`` (DDPM's posterior
  variance ``beta-tilde``; Ho et al. 2020, EDM's sampler);
* ``"ddim"``: ``x_u = a_u x0 + s_u eps`` (Song et al. 2021, eta = 0; for a variance-exploding process the
  Euler step of the probability-flow ODE in ``sigma``);
* ``"heun"``: the DDIM step as predictor, then the trapezoidal rule on ``eps`` in the variables
  ``x / a`` and ``s / a`` (Karras et al. 2022, Alg. 1), two score evaluations per step.

After the last step, a process with ``denoise_at_end`` (the VP schedules) is replaced by ``x0``, one more
score evaluation at ``t = 0`` (EDM's ``p(x_0 | z_0)`` mean); the torus stops at ``sigma_min``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

import torch
from torch import Tensor

from molgen.diffusion.process import NoiseProcess
from molgen.diffusion.torus import TorusSchedule, _check_steps, wrap_angle

__all__ = [
    "METHODS",
    "ApplyFn",
    "ScoreFn",
    "apply_torus",
    "guided_score",
    "guided_score_fn",
    "ode_sample",
    "reverse_diffusion",
    "sde_sample",
    "time_grid",
]

State = TypeVar("State")
Method = Literal["sde", "ddpm", "ddim", "heun"]
METHODS: tuple[str, ...] = ("sde", "ddpm", "ddim", "heun")
ScoreFn = Callable[[Any, float], Mapping[str, Tensor]]
"""``score_fn(state, t) -> {variable: score}`` at diffusion time ``t`` (python float)."""
ApplyFn = Callable[[Any, Mapping[str, Tensor]], Any]
"""``apply_fn(state, {variable: delta}) -> new state``."""


def time_grid(steps: int, t_start: float = 1.0) -> list[float]:
    """``steps + 1`` diffusion times ``t_start (1 - i / steps)`` from ``t_start`` down to exactly 0."""
    steps = _check_steps(steps)
    if not 0.0 < t_start <= 1.0:
        raise ValueError(f"t_start must lie in (0, 1], got {t_start}")
    return [t_start * (1.0 - i / steps) for i in range(steps)] + [0.0]


def _dict_values(state: Mapping[str, Tensor]) -> Mapping[str, Tensor]:
    return state


def _step(
    method: str,
    process: NoiseProcess,
    x: Tensor | None,
    score: Tensor,
    t: float,
    u: float,
    z: Tensor | None,
    noise_scale: float,
) -> Tensor:
    """Increment ``x_u - x_t`` of one reverse step of ``method`` (formulas in the module docstring)."""
    a_t, s_t = process.alpha_sigma(t)
    a_u, s_u = process.alpha_sigma(u)
    if x is None:
        if not process.variance_exploding:
            raise ValueError(f"{type(process).__name__} needs the current value of its variable (values_fn)")
        x = torch.zeros_like(score)  # VE increments do not depend on x
    if method in ("sde", "ddpm"):
        a_tu = a_t / a_u
        v = max(s_t**2 - a_tu**2 * s_u**2, 0.0)
        std = math.sqrt(v) * (noise_scale if method == "sde" else s_u / s_t)
        mean = (x + v * score) / a_tu
        return mean - x + std * z if z is not None else mean - x
    # ddim: x_u = a_u x0 + s_u eps, with eps = -s_t g and x0 = (x + s_t^2 g) / a_t
    eps = -s_t * score
    x0 = (x - s_t * eps) / a_t
    return a_u * x0 + s_u * eps - x


def reverse_diffusion(
    score_fn: ScoreFn,
    state: Any,
    processes: Mapping[str, NoiseProcess],
    steps: int,
    *,
    method: Method = "sde",
    values_fn: Callable[[Any], Mapping[str, Tensor]] | None = None,
    apply_fn: ApplyFn | None = None,
    generator: torch.Generator | None = None,
    noise_fns: Mapping[str, Callable[[Tensor], Tensor]] | None = None,
    noise_scale: float = 1.0,
    t_start: float = 1.0,
) -> Any:
    """Run the reverse process of ``processes`` from ``t_start`` to 0 (see the module docstring).

    Args:
        score_fn: ``(state, t) -> {variable: score}``; every variable of ``processes`` must be present.
        state: the state at ``t_start`` (e.g. prior samples).
        processes: the noise process of each variable.
        steps: number of reverse steps (``>= 1``).
        method: ``"sde"``, ``"ddpm"``, ``"ddim"`` or ``"heun"``.
        values_fn: current value of each variable (default: ``state`` is that dict).
        apply_fn: applies increments (default: ``{k: process.apply(state[k], delta[k])}`` on a dict state).
        generator: torch generator for the injected noise.
        noise_fns: per variable, ``noise_fn(like) -> z``, standard normal noise of ``like``'s shape, dtype
            and device; replaces ``generator`` for that variable (e.g. to project position noise onto the
            zero-mean subspace, or to draw each molecule's noise from its own generator).
        noise_scale: multiplies the injected noise of ``"sde"`` (1 = the exact reverse SDE).
        t_start: the first time (``< 1`` starts from a partially noised state).

    Returns:
        The final state.

    Raises:
        ValueError: ``steps < 1``, an unknown method, or a variable without a score or a value.
    """
    if method not in METHODS:
        raise ValueError(f"unknown sampler method {method!r}; choose one of {', '.join(METHODS)}")
    times = time_grid(steps, t_start)
    values_fn = values_fn or _dict_values
    noise_fns = noise_fns or {}

    def default_apply(st: Mapping[str, Tensor], deltas: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {k: (processes[k].apply(v, deltas[k]) if k in deltas else v) for k, v in st.items()}

    apply = apply_fn or default_apply

    def scores_at(st: Any, t: float) -> Mapping[str, Tensor]:
        out = score_fn(st, t)
        missing = set(processes) - set(out)
        if missing:
            raise ValueError(f"score_fn returned no score for {sorted(missing)}")
        return out

    def increments(st: Any, scores: Mapping[str, Tensor], t: float, u: float, stochastic: bool) -> dict[str, Tensor]:
        values = values_fn(st)
        deltas = {}
        for name, process in processes.items():
            score = scores[name]
            z = None
            if stochastic:
                fn = noise_fns.get(name)
                z = fn(score) if fn is not None else torch.randn(
                    score.shape, generator=generator, dtype=score.dtype, device=score.device
                )
            deltas[name] = _step(method, process, values.get(name), score, t, u, z, noise_scale)
        return deltas

    stochastic = method in ("sde", "ddpm")
    for t, u in zip(times[:-1], times[1:]):
        scores = scores_at(state, t)
        deltas = increments(state, scores, t, u, stochastic)
        if method == "heun":
            predicted = apply(state, deltas)
            scores_u = scores_at(predicted, u)
            deltas = _heun(processes, values_fn(state), scores, scores_u, t, u)
        state = apply(state, deltas)
    final = {k: p for k, p in processes.items() if p.denoise_at_end}
    if final:
        scores = scores_at(state, 0.0)
        values = values_fn(state)
        deltas = {}
        for name, process in final.items():
            a0, s0 = process.alpha_sigma(0.0)
            x = values[name]
            deltas[name] = (x + s0**2 * scores[name]) / a0 - x  # E[x_0 | x_t] by Tweedie's formula
        state = apply(state, deltas)
    return state


def _heun(
    processes: Mapping[str, NoiseProcess],
    values: Mapping[str, Tensor],
    scores_t: Mapping[str, Tensor],
    scores_u: Mapping[str, Tensor],
    t: float,
    u: float,
) -> dict[str, Tensor]:
    """Trapezoidal (Heun) increments in ``y = x / a``, ``rho = s / a``: ``dy = (rho_u - rho_t) eps``."""
    deltas = {}
    for name, process in processes.items():
        a_t, s_t = process.alpha_sigma(t)
        a_u, s_u = process.alpha_sigma(u)
        eps = 0.5 * (-s_t * scores_t[name] - s_u * scores_u[name])
        x = values.get(name)
        if x is None:
            x = torch.zeros_like(eps)
        y_u = x / a_t + (s_u / a_u - s_t / a_t) * eps
        deltas[name] = a_u * y_u - x
    return deltas


# --------------------------------------------------------------------------------------------------
# classifier-free guidance
# --------------------------------------------------------------------------------------------------
def guided_score(score_cond: Tensor, score_uncond: Tensor, guidance_scale: float | Tensor) -> Tensor:
    """Classifier-free guidance: ``score_uncond + w * (score_cond - score_uncond)``.

    ``w = guidance_scale``: ``w = 0`` gives the unconditional score, ``w = 1`` the conditional one, ``w > 1``
    sharpens towards the condition (it targets ``p(x) p(c|x)^w``, up to the usual approximation).
    Shapes broadcast; ``w`` may be a float or a tensor broadcastable to the scores.
    """
    return score_uncond + guidance_scale * (score_cond - score_uncond)


def guided_score_fn(cond_fn: ScoreFn, uncond_fn: ScoreFn, guidance_scale: float | Tensor) -> ScoreFn:
    """A :data:`ScoreFn` mixing a conditional and an unconditional one by :func:`guided_score` per variable.

    With ``guidance_scale = 1`` only ``cond_fn`` is evaluated, with ``0`` only ``uncond_fn``.
    """
    if not isinstance(guidance_scale, Tensor) and guidance_scale == 1.0:
        return cond_fn
    if not isinstance(guidance_scale, Tensor) and guidance_scale == 0.0:
        return uncond_fn

    def fn(state: Any, t: float) -> dict[str, Tensor]:
        cond, uncond = cond_fn(state, t), uncond_fn(state, t)
        return {k: guided_score(cond[k], uncond[k], guidance_scale) for k in cond}

    return fn


# --------------------------------------------------------------------------------------------------
# one torus variable: the torsional-diffusion interface
# --------------------------------------------------------------------------------------------------
def apply_torus(theta: Tensor, delta: Tensor) -> Tensor:
    """Apply function for a tensor of angles: ``wrap_angle(theta + delta)`` in ``[-pi, pi)``."""
    return wrap_angle(theta + delta)


def _single(
    score_fn: Callable[[Any, Tensor], Tensor],
    state: Any,
    schedule: TorusSchedule,
    apply_fn: Callable[[Any, Tensor], Any],
    dtype: torch.dtype | None,
    device: torch.device | str | None,
) -> tuple[ScoreFn, ApplyFn]:
    """Adapt ``score_fn(state, sigma)`` / ``apply_fn(state, delta)`` of one variable to the dict interface."""
    if isinstance(state, Tensor):
        if dtype is None and state.is_floating_point():
            dtype = state.dtype
        device = state.device if device is None else device
    sdtype = dtype or torch.get_default_dtype()

    def scores(st: Any, t: float) -> dict[str, Tensor]:
        sigma = torch.tensor(schedule.alpha_sigma(t)[1], dtype=sdtype, device=device)
        return {"x": score_fn(st, sigma)}

    return scores, lambda st, deltas: apply_fn(st, deltas["x"])


def sde_sample(
    score_fn: Callable[[Any, Tensor], Tensor],
    state: State,
    schedule: TorusSchedule,
    steps: int,
    *,
    apply_fn: Callable[[Any, Tensor], Any] = apply_torus,
    generator: torch.Generator | None = None,
    noise_fn: Callable[[Tensor], Tensor] | None = None,
    noise_scale: float = 1.0,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> State:
    """:func:`reverse_diffusion` with ``method="sde"`` for one torus variable.

    ``score_fn(state, sigma)`` gets the noise level ``sigma`` (0-d tensor, radians; ``dtype``/``device``
    default to the state's when it is a tensor); ``apply_fn(state, delta)`` applies torsion increments.
    """
    scores, apply = _single(score_fn, state, schedule, apply_fn, dtype, device)
    return reverse_diffusion(
        scores, state, {"x": schedule}, steps, method="sde", values_fn=lambda st: {}, apply_fn=apply,
        generator=generator, noise_fns={"x": noise_fn} if noise_fn else None, noise_scale=noise_scale,
    )


def ode_sample(
    score_fn: Callable[[Any, Tensor], Tensor],
    state: State,
    schedule: TorusSchedule,
    steps: int,
    *,
    apply_fn: Callable[[Any, Tensor], Any] = apply_torus,
    method: Literal["euler", "heun"] = "heun",
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> State:
    """Deterministic probability-flow sampler for one torus variable: ``"euler"`` (= DDIM) or ``"heun"``."""
    if method not in ("euler", "heun"):
        raise ValueError(f"ode_sample: method must be 'euler' or 'heun', got {method!r}")
    scores, apply = _single(score_fn, state, schedule, apply_fn, dtype, device)
    return reverse_diffusion(
        scores, state, {"x": schedule}, steps, method="ddim" if method == "euler" else "heun",
        values_fn=lambda st: {}, apply_fn=apply,
    )

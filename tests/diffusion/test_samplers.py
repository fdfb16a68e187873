"""Tests for molgen.diffusion.samplers on targets whose noised score is known exactly.

A mixture of wrapped normals ``sum_k w_k WN(mu_k, s_k^2)`` convolved with ``WN(0, sigma^2)`` is the mixture
``sum_k w_k WN(mu_k, s_k^2 + sigma^2)``, so its score at every noise level is exact; the samplers must then
reproduce the target (convolved with the final ``sigma_min``) up to discretisation and sampling error.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from molgen.diffusion.samplers import apply_torus, guided_score, ode_sample, sde_sample
from molgen.diffusion.torus import (
    TorusSchedule,
    wrap_angle,
    wrapped_normal_log_density,
    wrapped_normal_score,
)

torch.set_num_threads(1)
PI = math.pi
F64 = torch.float64


class WrappedMixture:
    """Independent per-dimension mixtures of wrapped normals; parameters have shape (dims, components)."""

    def __init__(self, mu: list[list[float]], s: list[list[float]], w: list[list[float]]) -> None:
        self.mu = torch.tensor(mu, dtype=F64)
        self.s = torch.tensor(s, dtype=F64)
        self.w = torch.tensor(w, dtype=F64)
        self.w = self.w / self.w.sum(-1, keepdim=True)

    def _terms(self, x: Tensor, sigma) -> tuple[Tensor, Tensor]:
        sd = torch.sqrt(self.s**2 + sigma**2)  # noised component std: sqrt(s_k^2 + sigma^2)
        d = x.unsqueeze(-1) - self.mu  # (N, dims, K)
        logp = wrapped_normal_log_density(d, sd) + self.w.log()
        return logp, wrapped_normal_score(d, sd)

    def log_density(self, x: torch.Tensor, sigma) -> torch.Tensor:
        return torch.logsumexp(self._terms(x, sigma)[0], -1)

    def score(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """Exact score of the noised mixture, shape of ``x`` (N, dims)."""
        logp, comp_score = self._terms(x, sigma)
        return (torch.softmax(logp, -1) * comp_score).sum(-1).to(x.dtype)

    def moments(self, sigma: float) -> torch.Tensor:
        """Exact (E cos x, E sin x, E cos 2x) per dim of the target convolved with WN(sigma): (dims, 3)."""
        var = self.s**2 + sigma**2
        out = [
            (self.w * torch.exp(-0.5 * n * n * var) * f(n * self.mu)).sum(-1)
            for n, f in ((1, torch.cos), (1, torch.sin), (2, torch.cos))
        ]
        return torch.stack(out, -1)

    def nearest_mode(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the circularly nearest component mean, (N, dims)."""
        return wrap_angle(x.unsqueeze(-1) - self.mu).abs().argmin(-1)

    def mode_fractions(self, sigma: float, grid: int = 20_000) -> torch.Tensor:
        """Exact probability mass nearest each mode (quadrature on a periodic grid): (dims, K)."""
        x = torch.arange(grid, dtype=F64) * (2 * PI / grid) - PI
        xs = x.unsqueeze(-1).expand(grid, self.mu.shape[0])
        p = self.log_density(xs, sigma).exp() * (2 * PI / grid)  # (grid, dims)
        idx = self.nearest_mode(xs)
        dims, comps = self.mu.shape
        return torch.stack([torch.stack([p[idx[:, d] == k, d].sum() for k in range(comps)]) for d in range(dims)])


MIX1 = WrappedMixture(mu=[[-2.0, 0.4, 2.3]], s=[[0.35, 0.25, 0.3]], w=[[0.5, 0.2, 0.3]])
MIX3 = WrappedMixture(
    mu=[[-2.0, 0.4, 2.3], [-1.0, 1.5, 3.0], [0.0, 2.5, -2.5]],
    s=[[0.35, 0.25, 0.3], [0.4, 0.3, 0.3], [0.3, 0.3, 0.3]],
    w=[[0.5, 0.2, 0.3], [0.6, 0.4, 1e-9], [0.2, 0.5, 0.3]],
)
SCHEDULE = TorusSchedule()


def _check_recovery(mix: WrappedMixture, x: torch.Tensor, bias: float) -> None:
    """Circular moments and nearest-mode weights within 4.5 standard errors + a discretisation allowance."""
    n = x.shape[0]
    assert bool((x >= -PI).all()) and bool((x < PI).all())
    feats = torch.stack([torch.cos(x), torch.sin(x), torch.cos(2 * x)], -1)  # (N, dims, 3)
    se = feats.std(0) / math.sqrt(n)
    err = (feats.mean(0) - mix.moments(SCHEDULE.sigma_min)).abs()
    assert bool((err <= 4.5 * se + bias).all()), f"moment errors {err} vs tolerance {4.5 * se + bias}"

    target = mix.mode_fractions(SCHEDULE.sigma_min)  # (dims, K)
    idx = mix.nearest_mode(x)
    frac = torch.stack([(idx == k).double().mean(0) for k in range(target.shape[1])], -1)
    tol = 4.5 * torch.sqrt(target * (1 - target) / n) + bias
    assert bool(((frac - target).abs() <= tol).all()), f"weights {frac} vs target {target}"


def _prior(n: int, dims: int, seed: int) -> torch.Tensor:
    return SCHEDULE.sample_prior((n, dims), torch.Generator().manual_seed(seed), dtype=F64)


# ---------------------------------------------------------------------------------------------- recovery
def test_sde_recovers_wrapped_mixture_1d() -> None:
    x = sde_sample(MIX1.score, _prior(6000, 1, 0), SCHEDULE, 200, generator=torch.Generator().manual_seed(1))
    _check_recovery(MIX1, x, bias=0.012)


@pytest.mark.parametrize("method, steps, bias", [("heun", 25, 0.008), ("euler", 50, 0.02)])
def test_ode_recovers_wrapped_mixture_1d(method: str, steps: int, bias: float) -> None:
    x = ode_sample(MIX1.score, _prior(6000, 1, 2), SCHEDULE, steps, method=method)
    _check_recovery(MIX1, x, bias=bias)


def test_samplers_recover_wrapped_mixture_3d() -> None:
    x0 = _prior(2500, 3, 3)
    x_sde = sde_sample(MIX3.score, x0, SCHEDULE, 150, generator=torch.Generator().manual_seed(4))
    _check_recovery(MIX3, x_sde, bias=0.015)
    x_ode = ode_sample(MIX3.score, x0, SCHEDULE, 20, method="heun")
    _check_recovery(MIX3, x_ode, bias=0.01)


# ------------------------------------------------------------------------------------ generic state, accuracy
def test_generic_state_and_ode_convergence_order() -> None:
    """Gaussian N(0, s^2) on the real line, state held in a dict: the probability-flow ODE solution is
    x(sigma) = x(sigma_max) * sqrt((s^2 + sigma^2) / (s^2 + sigma_max^2)); Heun must converge at order 2,
    Euler at order 1."""
    s2 = 0.3**2
    sch = TorusSchedule(sigma_min=0.01, sigma_max=2.0)
    x0 = torch.tensor([-3.0, 0.5, 2.0], dtype=F64)
    exact = x0 * math.sqrt((s2 + sch.sigma_min**2) / (s2 + sch.sigma_max**2))

    def score_fn(state: dict, sigma: torch.Tensor) -> torch.Tensor:
        assert sigma.ndim == 0 and sigma.dtype == F64
        return -state["x"] / (s2 + sigma**2)

    calls = [0]

    def apply_fn(state: dict, delta: torch.Tensor) -> dict:
        calls[0] += 1
        return {"x": state["x"] + delta, "n": state["n"] + 1}  # new object, no in-place update

    errors = {}
    for method in ("euler", "heun"):
        for steps in (20, 40):
            calls[0] = 0
            out = ode_sample(score_fn, {"x": x0, "n": 0}, sch, steps, apply_fn=apply_fn, method=method, dtype=F64)
            # the Heun predictor is applied to a copy; only the corrected step is kept
            assert out["n"] == steps and calls[0] == steps * (2 if method == "heun" else 1)
            errors[method, steps] = (out["x"] - exact).abs().max().item()
    assert errors["heun", 40] < 2e-3
    assert 3.0 < errors["heun", 20] / errors["heun", 40] < 5.0  # ~4x: second order
    assert 1.6 < errors["euler", 20] / errors["euler", 40] < 2.5  # ~2x: first order


def test_sde_gaussian_variance_and_noise_scale() -> None:
    """On a real-line Gaussian the reverse SDE must end with variance ~ s^2 + sigma_min^2; noise_scale=0
    makes the sampler deterministic (independent of the generator)."""
    s2 = 0.5**2
    sch = TorusSchedule(sigma_min=0.01, sigma_max=3.0)

    def score_fn(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return -x / (s2 + sigma**2)

    def add(x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return x + d

    g = torch.Generator().manual_seed(6)
    x0 = torch.randn(20_000, generator=g, dtype=F64) * math.sqrt(s2 + sch.sigma_max**2)
    steps = 100
    x = sde_sample(score_fn, x0, sch, steps, apply_fn=add, generator=g)
    # exact variance of the Euler-Maruyama-in-sigma^2 chain started at the exact marginal:
    # v' = v (1 - dvar / (s^2 + sigma_i^2))^2 + dvar  (slightly above s^2 + sigma_{i+1}^2: EM bias)
    levels = sch.sigmas(steps).tolist()
    v = s2 + sch.sigma_max**2
    for a, b in zip(levels[:-1], levels[1:]):
        dvar = a * a - b * b
        v = v * (1 - dvar / (s2 + a * a)) ** 2 + dvar
    var = x.var().item()
    assert abs(var / v - 1.0) < 4.5 * math.sqrt(2 / x.numel())  # the chain does what is documented
    assert abs(var / (s2 + sch.sigma_min**2) - 1.0) < 0.08  # and is close to the target variance
    a = sde_sample(score_fn, x0, sch, 10, apply_fn=add, noise_scale=0.0, generator=torch.Generator().manual_seed(1))
    b = sde_sample(score_fn, x0, sch, 10, apply_fn=add, noise_scale=0.0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)


def test_sampler_reproducibility_and_sigma_levels() -> None:
    x0 = _prior(50, 2, 7)
    seen: list[float] = []

    def score_fn(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        assert sigma.ndim == 0 and sigma.dtype == x.dtype
        seen.append(sigma.item())
        return MIX3.score(torch.cat([x, x[:, :1]], 1), sigma)[:, :2]

    a = sde_sample(score_fn, x0, SCHEDULE, 8, generator=torch.Generator().manual_seed(11))
    assert seen == pytest.approx(SCHEDULE.sigmas(8)[:-1].tolist(), rel=1e-12)
    b = sde_sample(score_fn, x0, SCHEDULE, 8, generator=torch.Generator().manual_seed(11))
    c = sde_sample(score_fn, x0, SCHEDULE, 8, generator=torch.Generator().manual_seed(12))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(ode_sample(score_fn, x0, SCHEDULE, 5), ode_sample(score_fn, x0, SCHEDULE, 5))
    # float32 state: sigma follows the state's dtype, output stays float32
    out32 = ode_sample(score_fn, x0.float(), SCHEDULE, 3, method="euler")
    assert out32.dtype == torch.float32 and out32.shape == (50, 2)
    torch.testing.assert_close(apply_torus(torch.tensor([3.0]), torch.tensor([1.0])), torch.tensor([4.0 - 2 * PI]))


# computed once with this implementation (float64, CPU); a change means the sampler or score changed
PINNED = [
    -2.404323204391, -2.053013414424, -1.765519597913, 0.181473563168, 0.937122613148, 2.310012830431, -2.652497578440
]


def test_pinned_ode_regression() -> None:
    """A full deterministic Heun loop from a fixed initial state on MIX1 (values computed once, float64)."""
    x0 = torch.linspace(-3.0, 3.0, 7, dtype=F64).unsqueeze(-1)
    out = ode_sample(MIX1.score, x0, SCHEDULE, 10, method="heun").squeeze(-1)
    expected = torch.tensor(PINNED, dtype=F64)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-8)


@pytest.mark.parametrize("sampler", [sde_sample, ode_sample])
@pytest.mark.parametrize("steps", [0, -3, 1.5])
def test_samplers_reject_bad_steps(sampler, steps) -> None:
    with pytest.raises(ValueError, match="steps"):
        sampler(MIX1.score, _prior(4, 1, 0), SCHEDULE, steps)


def test_ode_rejects_unknown_method() -> None:
    with pytest.raises(ValueError, match="method"):
        ode_sample(MIX1.score, _prior(4, 1, 0), SCHEDULE, 3, method="rk4")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- guidance
def test_guided_score() -> None:
    g = torch.Generator().manual_seed(8)
    cond, uncond = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    torch.testing.assert_close(guided_score(cond, uncond, 1.0), cond)
    torch.testing.assert_close(guided_score(cond, uncond, 0.0), uncond)
    torch.testing.assert_close(guided_score(cond, uncond, 2.5), uncond + 2.5 * (cond - uncond))
    w = torch.tensor([0.0, 1.0, 2.0, 0.5, 3.0]).unsqueeze(-1)  # per-sample guidance scale broadcasts
    torch.testing.assert_close(guided_score(cond, uncond, w)[1], cond[1])

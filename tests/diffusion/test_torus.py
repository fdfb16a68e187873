"""Tests for molgen.diffusion.torus: wrapped normal density/score/score-norm and the noise schedule."""

from __future__ import annotations

import json
import math

import pytest
import torch

from molgen.diffusion import torus
from molgen.diffusion.torus import (
    TorusSchedule,
    sample_wrapped_normal,
    wrap_angle,
    wrapped_normal_log_density,
    wrapped_normal_score,
    wrapped_normal_score_norm,
)

torch.set_num_threads(1)
PI = math.pi
F64 = torch.float64


# ---------------------------------------------------------------------------------------------- wrap
def test_wrap_angle_range_and_edge_cases() -> None:
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, F64):
        x = 50.0 * torch.randn(10_000, generator=g, dtype=dtype)
        y = wrap_angle(x)
        assert y.dtype == dtype
        assert bool((y >= -PI).all()) and bool((y < PI).all())
        # same point on the circle
        torch.testing.assert_close(torch.cos(y), torch.cos(x), atol=1e-4 if dtype == torch.float32 else 1e-10, rtol=0)
        torch.testing.assert_close(torch.sin(y), torch.sin(x), atol=1e-4 if dtype == torch.float32 else 1e-10, rtol=0)
    edge = torch.tensor([PI, -PI, 3 * PI, -1e-20, 1e-20, 0.0, 2 * PI], dtype=F64)
    out = wrap_angle(edge)
    torch.testing.assert_close(out, torch.tensor([-PI, -PI, -PI, -1e-20, 1e-20, 0.0, 0.0], dtype=F64))
    assert bool((out < PI).all())


# ---------------------------------------------------------------------------------------------- score
def test_score_matches_finite_difference_of_log_density() -> None:
    x = torch.linspace(-PI + 1e-3, PI - 1e-3, 97, dtype=F64)
    sigmas = torch.logspace(math.log10(0.01), math.log10(5.0), 40, dtype=F64)
    for sigma in sigmas.tolist():
        # 5-point central difference (O(h^4)); h ~ sigma resolves the kink-like region near x = +-pi
        h = 1e-3 * min(sigma, 1.0)

        def f(y):
            return wrapped_normal_log_density(y, sigma)

        fd = (8 * (f(x + h) - f(x - h)) - (f(x + 2 * h) - f(x - 2 * h))) / (12 * h)
        score = wrapped_normal_score(x, sigma)
        torch.testing.assert_close(score, fd, rtol=1e-6, atol=1e-9, msg=f"sigma={sigma}")


def test_score_equals_autograd_of_log_density() -> None:
    x = torch.linspace(-3.0, 3.0, 31, dtype=F64).unsqueeze(0).repeat(6, 1).requires_grad_(True)
    sigma = torch.tensor([0.003, 0.05, 0.7, 1.9, 2.1, 8.0], dtype=F64).unsqueeze(1)
    (grad,) = torch.autograd.grad(wrapped_normal_log_density(x, sigma).sum(), x)
    torch.testing.assert_close(wrapped_normal_score(x.detach(), sigma), grad, rtol=1e-9, atol=1e-14)


def _mp_reference(x: float, sigma: float) -> tuple[float, float]:
    """High-precision (50 digits) log density and score by a brute-force image sum."""
    mpmath = pytest.importorskip("mpmath")
    mp = mpmath.mp
    mp.dps = 50
    xs, s = mp.mpf(x), mp.mpf(sigma)
    kmax = int(10 + 12 * sigma)
    p = dp = mp.mpf(0)
    for k in range(-kmax, kmax + 1):
        y = xs + 2 * mp.pi * k
        e = mp.exp(-(y**2) / (2 * s**2))
        p += e
        dp += -y / s**2 * e
    norm = s * mp.sqrt(2 * mp.pi)
    return float(mp.log(p / norm)), float(dp / p)


@pytest.mark.parametrize("sigma", [0.001 * PI, 0.02, 0.3, 1.0, 1.999, 2.0, 3.0, 6.0, 10.0])
def test_score_and_density_against_high_precision_reference(sigma: float) -> None:
    xs = [-3.14, -2.5, -1.0, -0.01, 0.004, 0.5, 2.0, 3.1]
    x = torch.tensor(xs, dtype=F64)
    score = wrapped_normal_score(x, sigma)
    logp = wrapped_normal_log_density(x, sigma)
    for i, xi in enumerate(xs):
        ref_logp, ref_score = _mp_reference(xi, sigma)
        assert abs(logp[i].item() - ref_logp) <= 1e-12 * max(1.0, abs(ref_logp)), (xi, sigma)
        # relative accuracy of the score even where it is tiny (large sigma)
        assert abs(score[i].item() - ref_score) <= 1e-9 * abs(ref_score) + 1e-300, (xi, sigma, ref_score)


def test_score_float32_extremes_and_broadcasting() -> None:
    x64 = torch.linspace(-PI, PI - 1e-3, 41, dtype=F64).reshape(1, 41)
    s64 = torch.tensor([0.001 * PI, 0.01, 0.1, 1.0, 2.5, 10.0], dtype=F64).reshape(6, 1)
    ref = wrapped_normal_score(x64, s64)
    out32 = wrapped_normal_score(x64.float(), s64.float())
    assert out32.dtype == torch.float32 and out32.shape == (6, 41)
    assert bool(torch.isfinite(out32).all())
    torch.testing.assert_close(out32.double(), ref, rtol=2e-4, atol=1e-6)
    # tiny sigma: score is -x / sigma^2 away from the antipode
    xs = torch.tensor([-1.0, 0.3, 2.0])
    torch.testing.assert_close(wrapped_normal_score(xs, 0.001 * PI), -xs / (0.001 * PI) ** 2, rtol=1e-5, atol=0)
    # broadcasting (4,1,5) x (3,1) -> (4,3,5), python-float sigma, periodicity
    x = torch.randn(4, 1, 5, dtype=F64)
    sig = torch.tensor([[0.2], [1.0], [3.0]], dtype=F64)
    assert wrapped_normal_score(x, sig).shape == (4, 3, 5)
    assert wrapped_normal_log_density(x, sig).shape == (4, 3, 5)
    torch.testing.assert_close(wrapped_normal_score(x + 4 * PI, 0.7), wrapped_normal_score(x, 0.7))


def test_density_integrates_to_one() -> None:
    m = 20_000
    x = torch.arange(m, dtype=F64) * (2 * PI / m) - PI
    for sigma in (0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0):
        total = wrapped_normal_log_density(x, sigma).exp().sum() * (2 * PI / m)
        assert abs(total.item() - 1.0) < 1e-10, sigma


# ---------------------------------------------------------------------------------------------- score norm
def test_score_norm_matches_monte_carlo() -> None:
    g = torch.Generator().manual_seed(1)
    n = 200_000
    for sigma in (0.05, 0.3, 1.0, 2.0, PI):
        x = sample_wrapped_normal(sigma, (n,), g, dtype=F64)
        mc = (wrapped_normal_score(x, sigma) ** 2).mean().item()
        ref = wrapped_normal_score_norm(torch.tensor(sigma, dtype=F64)).item()
        assert abs(mc / ref - 1.0) < 0.03, (sigma, mc, ref)


def test_score_norm_limits_interpolation_and_caching() -> None:
    small = torch.tensor([1e-3, 0.001 * PI, 0.01, 0.05, 0.1, 0.19, 0.21, 0.3], dtype=F64)
    torch.testing.assert_close(wrapped_normal_score_norm(small), 1.0 / small**2, rtol=1e-8, atol=0)
    large = torch.tensor([5.0, 8.0, 11.0, 13.0, 20.0], dtype=F64)
    torch.testing.assert_close(wrapped_normal_score_norm(large), 2.0 * torch.exp(-(large**2)), rtol=2e-4, atol=0)
    assert torch.is_tensor(torus._SCORE_NORM_LOG_TABLE)  # built lazily on first use, kept in memory

    # interpolated table vs direct quadrature at off-grid sigmas
    m = 512
    x = torch.arange(m, dtype=F64) * (2 * PI / m) - PI
    for sigma in (0.2345, 0.777, 1.5, 2.2, 3.0):
        direct = (wrapped_normal_log_density(x, sigma).exp() * wrapped_normal_score(x, sigma) ** 2).sum() * (2 * PI / m)
        got = wrapped_normal_score_norm(torch.tensor(sigma, dtype=F64))
        assert abs(got.item() / direct.item() - 1.0) < 1e-5, sigma

    sig = torch.tensor([[0.05, 0.5], [1.0, PI]])
    out = wrapped_normal_score_norm(sig)
    assert out.shape == (2, 2) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), wrapped_normal_score_norm(sig.double()), rtol=1e-5, atol=0)
    assert wrapped_normal_score_norm(0.5).shape == ()  # python float accepted


# ---------------------------------------------------------------------------------------------- sampling
def test_sample_wrapped_normal() -> None:
    g = torch.Generator().manual_seed(2)
    x = sample_wrapped_normal(torch.tensor(0.8, dtype=F64), (100_000,), g)
    assert x.shape == (100_000,) and x.dtype == F64
    assert bool((x >= -PI).all()) and bool((x < PI).all())
    assert abs(torch.cos(x).mean().item() - math.exp(-0.32)) < 0.01  # E cos x = exp(-sigma^2 / 2)
    assert abs(torch.sin(x).mean().item()) < 0.01
    # shape from sigma, reproducible with a seeded generator
    sig = torch.full((3, 4), 0.5)
    a = sample_wrapped_normal(sig, generator=torch.Generator().manual_seed(3))
    b = sample_wrapped_normal(sig, generator=torch.Generator().manual_seed(3))
    assert a.shape == (3, 4) and torch.equal(a, b)


# ---------------------------------------------------------------------------------------------- schedule
def test_schedule_sigma_and_g2() -> None:
    sch = TorusSchedule()
    assert sch.sigma_min == pytest.approx(0.01 * PI) and sch.sigma_max == pytest.approx(PI)
    assert sch.sigma(torch.tensor(0.0, dtype=F64)).item() == pytest.approx(sch.sigma_min, rel=1e-12)
    assert sch.sigma(torch.tensor(1.0, dtype=F64)).item() == pytest.approx(sch.sigma_max, rel=1e-12)
    assert sch.sigma(0.0).item() == pytest.approx(sch.sigma_min, rel=1e-6)  # python float -> default dtype
    t = torch.linspace(0.0, 1.0, 101, dtype=F64)
    s = sch.sigma(t)
    assert bool((s[1:] > s[:-1]).all())
    torch.testing.assert_close(sch.t_of_sigma(s), t, atol=1e-12, rtol=0)
    # g^2 = d sigma^2 / dt
    h = 1e-6
    tt = torch.linspace(0.01, 0.99, 25, dtype=F64)
    fd = (sch.sigma(tt + h) ** 2 - sch.sigma(tt - h) ** 2) / (2 * h)
    torch.testing.assert_close(sch.g2(tt), fd, rtol=1e-7, atol=0)


def test_schedule_sigmas() -> None:
    sch = TorusSchedule(sigma_min=0.05, sigma_max=2.0)
    s = sch.sigmas(10)
    assert s.shape == (11,) and s.dtype == F64
    assert s[0].item() == 2.0 and s[-1].item() == 0.05
    assert bool((s[1:] < s[:-1]).all())
    torch.testing.assert_close(s[1:] / s[:-1], torch.full((10,), (0.05 / 2.0) ** 0.1, dtype=F64))
    assert sch.sigmas(1).tolist() == [2.0, 0.05]
    assert sch.sigmas(3, dtype=torch.float32).dtype == torch.float32


@pytest.mark.parametrize("steps", [0, -1, 2.5, True, "3"])
def test_schedule_rejects_bad_steps(steps) -> None:
    with pytest.raises(ValueError, match="steps"):
        TorusSchedule().sigmas(steps)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sigma_min": 0.0}, "sigma_min must be > 0"),
        ({"sigma_min": -0.1}, "sigma_min must be > 0"),
        ({"sigma_min": 1.0, "sigma_max": 1.0}, "sigma_min < sigma_max"),
        ({"sigma_min": 2.0, "sigma_max": 1.0}, "sigma_min < sigma_max"),
        ({"sigma_max": float("inf")}, "finite"),
    ],
)
def test_schedule_rejects_bad_sigmas(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        TorusSchedule(**kwargs)


def test_schedule_dict_round_trip() -> None:
    sch = TorusSchedule(sigma_min=0.02, sigma_max=3.0)
    d = sch.to_dict()
    assert d == {"type": "torus", "sigma_min": 0.02, "sigma_max": 3.0}
    assert TorusSchedule.from_dict(json.loads(json.dumps(d))) == sch
    assert TorusSchedule.from_dict(TorusSchedule().to_dict()) == TorusSchedule()
    with pytest.raises(ValueError, match="unknown keys"):
        TorusSchedule.from_dict({**d, "bogus": 1})


def test_sample_prior_uniform() -> None:
    x = TorusSchedule().sample_prior((50_000,), torch.Generator().manual_seed(4), dtype=F64)
    assert x.shape == (50_000,) and x.dtype == F64
    assert bool((x >= -PI).all()) and bool((x < PI).all())
    for f in (torch.cos, torch.sin):
        assert abs(f(x).mean().item()) < 0.02
        assert abs(f(2 * x).mean().item()) < 0.02


def test_perturb_and_loss() -> None:
    sch = TorusSchedule()
    g = torch.Generator().manual_seed(5)
    theta0 = torch.rand(4000, generator=g, dtype=F64) * 2 * PI - PI
    sigma = sch.sigma(torch.rand(4000, generator=g, dtype=F64))  # one sigma per torsion
    theta_t, delta, target = sch.perturb(theta0, sigma, generator=g)
    assert theta_t.shape == delta.shape == target.shape == (4000,)
    assert bool((theta_t >= -PI).all()) and bool((theta_t < PI).all())
    assert bool((delta >= -PI).all()) and bool((delta < PI).all())
    torch.testing.assert_close(theta_t, wrap_angle(theta0 + delta))
    torch.testing.assert_close(target, wrapped_normal_score(delta, sigma))
    # exact prediction -> zero loss; zero prediction -> expected loss 1 (normalisation by E[score^2])
    assert sch.loss(target, delta, sigma).item() == pytest.approx(0.0, abs=1e-20)
    zero_loss = sch.loss(torch.zeros_like(target), delta, sigma).item()
    assert abs(zero_loss - 1.0) < 0.1
    # time instead of sigma, scalar t broadcast over a batch
    _, d2, s2 = sch.perturb(torch.zeros(3, 5), t=0.5, generator=g)
    assert d2.shape == (3, 5) and s2.dtype == torch.float32
    torch.testing.assert_close(s2, wrapped_normal_score(d2, sch.sigma(0.5).float()))
    with pytest.raises(ValueError, match="exactly one"):
        sch.perturb(theta0)
    with pytest.raises(ValueError, match="exactly one"):
        sch.perturb(theta0, 0.5, t=0.5)
    # loss gradient flows to the prediction only
    pred = torch.zeros(4000, dtype=F64, requires_grad=True)
    sch.loss(pred, delta, sigma).backward()
    assert pred.grad is not None and bool(torch.isfinite(pred.grad).all())


def test_shipped_score_norm_table_equals_a_fresh_build() -> None:
    from molgen.diffusion import torus

    shipped = torus._load_score_norm_table()
    assert torch.equal(shipped, torus._build_score_norm_table())

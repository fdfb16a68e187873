"""The variance-preserving schedule and the generic sampler on targets with an exact score.

For Gaussian-mixture data ``sum_k w_k N(mu_k, s_k^2)`` the VP marginal at time ``t`` is the mixture
``sum_k w_k N(alpha mu_k, alpha^2 s_k^2 + sigma^2)``, so the score is exact at every ``t``; each sampler
method must then reproduce the data up to discretisation and sampling error.
"""

from __future__ import annotations

import math

import pytest
import torch

from molgen.diffusion.process import (
    VPSchedule,
    process_from_dict,
    processes_from_dict,
    processes_to_dict,
)
from molgen.diffusion.samplers import guided_score_fn, reverse_diffusion, time_grid
from molgen.diffusion.subspace import graph_means, remove_mean, subspace_noise
from molgen.diffusion.torus import TorusSchedule

torch.set_num_threads(1)
F64 = torch.float64
VP = VPSchedule()


# ------------------------------------------------------------------------------------------- schedule
def test_vp_marginal_scales() -> None:
    t = torch.linspace(0, 1, 101, dtype=F64)
    a2 = VP.alpha2(t)
    torch.testing.assert_close(VP.alpha(t) ** 2 + VP.sigma(t) ** 2, torch.ones_like(t))
    assert a2[0].item() == pytest.approx(1 - 1e-5, abs=1e-12)
    assert a2[-1].item() == pytest.approx(1e-5, abs=1e-12)
    assert bool((a2[1:] < a2[:-1]).all()), "alpha must decrease with t"
    for x in (0.0, 0.3, 0.77, 1.0):
        a, s = VP.alpha_sigma(x)
        assert a == pytest.approx(VP.alpha(torch.tensor(x, dtype=F64)).item(), rel=1e-12)
        assert s == pytest.approx(VP.sigma(torch.tensor(x, dtype=F64)).item(), rel=1e-12)


def test_vp_noised_has_the_closed_form_marginal() -> None:
    """x_t = alpha x0 + sigma eps: empirical mean and std match alpha x0 and sigma."""
    g = torch.Generator().manual_seed(3)
    x0 = torch.full((200_000,), 1.7, dtype=F64)
    t = torch.tensor(0.6, dtype=F64)
    noise = VP.draw_noise(t, x0.shape, g)
    xt = VP.noised(x0, noise, t)
    a, s = VP.alpha_sigma(0.6)
    assert xt.mean().item() == pytest.approx(a * 1.7, abs=4 * s / math.sqrt(len(x0)))
    assert xt.std().item() == pytest.approx(s, rel=0.01)
    assert torch.equal(VP.target(noise, t), noise)
    # loss is zero for the exact target and equals E[eps^2] = 1 for a zero prediction
    assert VP.output_loss(noise, noise, t).max().item() == 0.0
    assert VP.output_loss(torch.zeros_like(noise), noise, t).mean().item() == pytest.approx(1.0, rel=0.01)


def test_vp_score_from_eps_matches_numerical_gradient() -> None:
    """For Gaussian data the ideal eps prediction, read through ``score``, is d/dx log p_t by autograd."""
    m, c, t = 0.8, 0.5, 0.4
    a, s = VP.alpha_sigma(t)
    var = a * a * c * c + s * s
    x = torch.linspace(-3, 3, 41, dtype=F64, requires_grad=True)
    logp = (-0.5 * (x - a * m) ** 2 / var).sum()
    (grad,) = torch.autograd.grad(logp, x)
    eps_hat = s * (x.detach() - a * m) / var  # E[eps | x_t] = -sigma * score
    torch.testing.assert_close(VP.score(eps_hat, x.detach(), t), grad)


def test_vp_rejects_bad_parameters_and_round_trips() -> None:
    with pytest.raises(ValueError, match="precision"):
        VPSchedule(precision=0.0)
    with pytest.raises(ValueError, match="power"):
        VPSchedule(power=-1)
    d = VPSchedule(power=3.0).to_dict()
    assert d == {"type": "vp", "power": 3.0, "precision": 1e-5, "data_rms": None}
    assert process_from_dict(d) == VPSchedule(power=3.0)
    both = {"torsion": TorusSchedule(), "pos": VPSchedule()}
    assert processes_from_dict(processes_to_dict(both)) == both
    assert process_from_dict({"sigma_min": 0.1, "sigma_max": 3.0}) == TorusSchedule(0.1, 3.0)  # old checkpoints
    with pytest.raises(ValueError, match="unknown noise process"):
        process_from_dict({"type": "bogus"})


def test_time_grid() -> None:
    assert time_grid(4) == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert time_grid(2, 0.5) == [0.5, 0.25, 0.0]
    with pytest.raises(ValueError, match="positive integer"):
        time_grid(0)
    with pytest.raises(ValueError, match="t_start"):
        time_grid(3, 1.5)


# -------------------------------------------------------------------------------------- exact mixture
W = torch.tensor([0.3, 0.7], dtype=F64)
MU = torch.tensor([-1.5, 1.0], dtype=F64)
S = torch.tensor([0.3, 0.5], dtype=F64)


def mixture_score(x: torch.Tensor, t: float) -> torch.Tensor:
    """Exact score of the VP-noised 1-D mixture at time ``t``; ``x`` (N,)."""
    a, s = VP.alpha_sigma(t)
    var = a * a * S**2 + s * s
    d = x[:, None] - a * MU
    logp = -0.5 * d**2 / var - 0.5 * torch.log(var) + W.log()
    return (torch.softmax(logp, -1) * (-d / var)).sum(-1)


def mixture_samples(method: str, steps: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    state = {"x": VP.sample_prior((40_000,), g, dtype=F64)}
    out = reverse_diffusion(
        lambda st, t: {"x": mixture_score(st["x"], t)}, state, {"x": VP}, steps, method=method, generator=g
    )
    return out["x"]


@pytest.mark.parametrize(("method", "steps"), [("ddpm", 200), ("sde", 200), ("ddim", 100), ("heun", 100)])
def test_samplers_recover_a_gaussian_mixture(method: str, steps: int) -> None:
    x = mixture_samples(method, steps, seed=7)
    n = len(x)
    left = (x < -0.4).double().mean().item()
    assert left == pytest.approx(W[0].item(), abs=4.5 * math.sqrt(0.21 / n) + 0.01)
    exact_mean = (W * MU).sum().item()
    exact_var = (W * (S**2 + MU**2)).sum().item() - exact_mean**2
    assert x.mean().item() == pytest.approx(exact_mean, abs=4.5 * math.sqrt(exact_var / n) + 0.02)
    assert x.var().item() == pytest.approx(exact_var, rel=0.04)
    for k in range(2):  # each component's spread
        part = x[(x < -0.4) if k == 0 else (x >= -0.4)]
        assert part.std().item() == pytest.approx(S[k].item(), rel=0.08)


def test_ddim_is_deterministic_and_ddpm_depends_on_the_seed() -> None:
    x0 = {"x": VP.sample_prior((100,), torch.Generator().manual_seed(1), dtype=F64)}

    def fn(st, t):
        return {"x": mixture_score(st["x"], t)}

    a = reverse_diffusion(fn, x0, {"x": VP}, 10, method="ddim")
    b = reverse_diffusion(fn, x0, {"x": VP}, 10, method="ddim")
    assert torch.equal(a["x"], b["x"])
    c = reverse_diffusion(fn, x0, {"x": VP}, 10, method="ddpm", generator=torch.Generator().manual_seed(1))
    d = reverse_diffusion(fn, x0, {"x": VP}, 10, method="ddpm", generator=torch.Generator().manual_seed(2))
    assert not torch.equal(c["x"], d["x"])
    with pytest.raises(ValueError, match="unknown sampler method"):
        reverse_diffusion(fn, x0, {"x": VP}, 10, method="rk4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no score"):
        reverse_diffusion(lambda st, t: {}, x0, {"x": VP}, 2)


# ------------------------------------------------------------------------------ zero centre of mass
def test_zero_centre_of_mass_is_kept_through_sampling() -> None:
    """Positions of 3 molecules in their zero-mean subspaces, Gaussian data N(0, c^2) there, exact score."""
    batch = torch.tensor([0] * 5 + [1] * 9 + [2] * 3)
    c = 1.3
    g = torch.Generator().manual_seed(5)
    reps = 2000
    big = torch.cat([batch + 3 * r for r in range(reps)])

    def score(st, t):
        a, s = VP.alpha_sigma(t)
        return {"pos": remove_mean(-st["pos"] / (a * a * c * c + s * s), big)}

    for method in ("ddpm", "ddim"):
        state = {"pos": subspace_noise(big, 3, g, dtype=F64)}
        out = reverse_diffusion(score, state, {"pos": VP}, 500, method=method, generator=g,
                                noise_fns={"pos": lambda like: subspace_noise(big, 3, g, dtype=like.dtype)})
        pos = out["pos"]
        assert graph_means(pos, big).abs().max().item() < 1e-10
        # variance per degree of freedom: sum |x|^2 / (3 (n - 1)) = c^2
        dof = 3 * (torch.bincount(big) - 1).sum().item()
        assert (pos**2).sum().item() / dof == pytest.approx(c * c, rel=0.03)


# ------------------------------------------------------------------------------------ several kinds
def test_torus_and_vp_variables_step_together() -> None:
    """One call steps a torus variable and a VP variable; each matches its single-variable run."""
    torus = TorusSchedule()
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    th = torus.sample_prior((50,), torch.Generator().manual_seed(2), dtype=F64)
    x = VP.sample_prior((50,), torch.Generator().manual_seed(3), dtype=F64)

    def score(st, t):
        return {"theta": -torch.sin(st["theta"]), "x": mixture_score(st["x"], t)}

    both = reverse_diffusion(score, {"theta": th, "x": x}, {"theta": torus, "x": VP}, 8, method="ddim")
    alone = reverse_diffusion(lambda st, t: {"x": mixture_score(st["x"], t)}, {"x": x}, {"x": VP}, 8, method="ddim")
    torch.testing.assert_close(both["x"], alone["x"])
    assert bool((both["theta"] >= -math.pi).all() and (both["theta"] < math.pi).all())
    del g1, g2


def test_guided_score_fn_mixes_per_variable() -> None:
    def cond(st, t):
        return {"x": torch.ones(3)}

    def uncond(st, t):
        return {"x": torch.zeros(3)}

    assert guided_score_fn(cond, uncond, 0.0) is uncond
    assert guided_score_fn(cond, uncond, 1.0) is cond
    torch.testing.assert_close(guided_score_fn(cond, uncond, 2.5)(None, 0.5)["x"], torch.full((3,), 2.5))


def test_preconditioned_vp_reads_its_output_consistently() -> None:
    """With data_rms = r and Gaussian data N(0, r^2), the output F = 0 is exact: the score it stands for is
    the exact -x / (alpha^2 r^2 + sigma^2); the target of the true noise has unit variance at every t."""
    r = 1.4
    vp = VPSchedule(data_rms=r)
    g = torch.Generator().manual_seed(2)
    for t in (0.02, 0.3, 0.7, 0.999):
        a, s = vp.alpha_sigma(t)
        tt = torch.tensor(t, dtype=F64)
        x = torch.linspace(-4, 4, 9, dtype=F64)
        torch.testing.assert_close(vp.score(torch.zeros_like(x), x, t), -x / (a * a * r * r + s * s))
        x0 = r * torch.randn(100_000, generator=g, dtype=F64)
        eps = vp.draw_noise(tt, x0.shape, g)
        xt = vp.noised(x0, eps, tt)
        target = vp.target(eps, tt, xt)
        assert target.var().item() == pytest.approx(1.0, rel=0.02)
        # reading the target back through score gives the score of the true noise
        torch.testing.assert_close(vp.score(target, xt, t), -eps / s)
    with pytest.raises(ValueError, match="x_t"):
        vp.target(eps, tt)
    with pytest.raises(ValueError, match="data_rms"):
        VPSchedule(data_rms=-1.0)

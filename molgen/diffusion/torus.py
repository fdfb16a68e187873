"""Diffusion on the torus: wrapped normal densities, scores and the torsion noise schedule.

Torsional diffusion (Jing et al. 2022, "Torsional Diffusion for Molecular Conformer Generation")
diffuses the ``m`` torsion angles of a molecule, a point on the torus ``T^m = [-pi, pi)^m``, with the
variance-exploding SDE ``d theta = sqrt(d sigma^2(t) / dt) dW`` (paper Sec. 4.2). The perturbation
kernel of this process is a *wrapped normal* ``WN(0, sigma^2)`` in every coordinate:

    p_sigma(x) = sum_{k in Z} N(x + 2 pi k; 0, sigma^2),      x in [-pi, pi)

and the score-matching target is ``nabla_x log p_sigma(x)`` (paper Eq. 4 and App. "Torus"). All angles
are in **radians** and ``sigma`` is the standard deviation of the (unwrapped) normal, also in radians.

Numerics
--------
* ``sigma < 2``: truncated image sum over ``k = -K..K`` (``K = 5``), evaluated with log-sum-exp /
  softmax weights after wrapping ``x`` into ``[-pi, pi)``. The first neglected image is ``< e^-60``
  relative to the retained ones, so this is exact to double precision for every ``sigma < 2`` and
  does not under/overflow down to ``sigma ~ 1e-4`` even in float32.
* ``sigma >= 2``: the equivalent Fourier (Jacobi theta) series
  ``p_sigma(x) = (1 / 2 pi) (1 + 2 sum_{n>=1} q^{n^2} cos(n x))``, ``q = exp(-sigma^2 / 2)``, with
  ``n = 1..8``; the first neglected term is ``< e^-160``. Unlike the image sum (whose score is a
  cancellation of ``O(1/sigma)`` terms) this keeps *relative* accuracy of the tiny score
  (``~ 2 q sin x``) for large ``sigma``, e.g. ``sigma = 10``.

The score norm ``E_{x ~ WN(sigma)}[score(x, sigma)^2]`` (the Fisher information of the wrapped normal,
used to normalise the loss, paper App.) is tabulated once by periodic trapezoidal quadrature, which is
spectrally accurate here; see :func:`wrapped_normal_score_norm`.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from molgen.diffusion.process import NoiseProcess

__all__ = [
    "TorusSchedule",
    "sample_wrapped_normal",
    "wrap_angle",
    "wrapped_normal_log_density",
    "wrapped_normal_score",
    "wrapped_normal_score_norm",
]

TWO_PI = 2.0 * math.pi

# Number of images on each side for the image sum (k = -_N_IMAGES .. _N_IMAGES), used for sigma < _SWITCH.
_N_IMAGES = 5
# Number of Fourier terms (n = 1 .. _N_FOURIER), used for sigma >= _SWITCH.
_N_FOURIER = 8
# Switch between the two representations (radians).
_SWITCH = 2.0

# Score-norm table: log-spaced sigmas on [_TABLE_MIN, _TABLE_MAX]. Below _TABLE_MIN the norm is
# 1/sigma^2 to double precision (wrapping correction ~ (pi/sigma)^2 exp(-pi^2 / (2 sigma^2)) < 1e-30);
# above _TABLE_MAX it is 2 exp(-sigma^2) to double precision (relative correction O(exp(-sigma^2))).
_TABLE_SIZE = 5000
_TABLE_MIN = 0.2
_TABLE_MAX = 12.0
_QUAD_POINTS = 256
_SCORE_NORM_LOG_TABLE: Tensor | None = None  # lazily built, float64 log(E[score^2]) on the log-sigma grid
_score_norm_cache: dict[tuple[torch.device, torch.dtype], Tensor] = {}


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def _as_float_tensors(x: Tensor | float, sigma: Tensor | float) -> tuple[Tensor, Tensor, torch.dtype]:
    """Broadcast ``x`` and ``sigma`` to a common floating dtype/shape; half precisions run in float32."""
    if not isinstance(x, Tensor):
        ref = sigma if isinstance(sigma, Tensor) and sigma.is_floating_point() else None
        x = torch.as_tensor(
            x,
            dtype=ref.dtype if ref is not None else torch.get_default_dtype(),
            device=sigma.device if isinstance(sigma, Tensor) else None,
        )
    if not isinstance(sigma, Tensor):
        sigma = torch.as_tensor(
            sigma,
            dtype=x.dtype if x.is_floating_point() else torch.get_default_dtype(),
            device=x.device,
        )
    out_dtype = torch.result_type(x, sigma)
    if not out_dtype.is_floating_point:
        out_dtype = torch.get_default_dtype()
    work = out_dtype if out_dtype in (torch.float32, torch.float64) else torch.float32
    x, sigma = torch.broadcast_tensors(x.to(work), sigma.to(work))
    return x, sigma, out_dtype


def wrap_angle(x: Tensor) -> Tensor:
    """Wrap angles (radians) into ``[-pi, pi)``; any shape, dtype preserved.

    Handles the floating-point edge case where ``remainder`` rounds up to exactly ``2 pi``.
    """
    y = torch.remainder(x + math.pi, TWO_PI) - math.pi
    return torch.where(y >= math.pi, y - TWO_PI, y)


def _image_terms(x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image shifted angles ``x + 2 pi k`` and log-weights ``-(x + 2 pi k)^2 / (2 sigma^2)``.

    Shapes: ``x, sigma`` (...), returns two tensors of shape (..., 2K+1).
    """
    k = torch.arange(-_N_IMAGES, _N_IMAGES + 1, dtype=x.dtype, device=x.device)
    xk = x.unsqueeze(-1) + TWO_PI * k  # x + 2 pi k
    s = sigma.unsqueeze(-1)
    logw = -0.5 * (xk / s) ** 2
    return xk, logw


def _fourier_terms(x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``n``, ``q^{n^2}`` and ``n x`` for the theta-series representation; shapes (..., N)."""
    n = torch.arange(1, _N_FOURIER + 1, dtype=x.dtype, device=x.device)
    s = sigma.clamp_min(_SWITCH).unsqueeze(-1)  # clamp: the series is only used for sigma >= _SWITCH
    qn = torch.exp(-0.5 * (n**2) * s**2)  # q^{n^2} with q = exp(-sigma^2/2)
    nx = n * x.unsqueeze(-1)
    return n, qn, nx


def _dispatch(sigma: Tensor, small_fn, large_fn) -> Tensor:
    """Evaluate ``small_fn`` where ``sigma < _SWITCH`` and ``large_fn`` elsewhere (skipping unused)."""
    large = sigma >= _SWITCH
    if sigma.numel() == 0 or not bool(large.any()):
        return small_fn()
    if bool(large.all()):
        return large_fn()
    return torch.where(large, large_fn(), small_fn())


# --------------------------------------------------------------------------------------------------
# wrapped normal
# --------------------------------------------------------------------------------------------------
def wrapped_normal_log_density(x: Tensor | float, sigma: Tensor | float) -> Tensor:
    """Log density of the wrapped normal ``WN(0, sigma^2)`` on the circle ``[-pi, pi)``.

    Args:
        x: angles in radians, any shape (wrapped internally, so any real value is accepted).
        sigma: standard deviation(s) in radians, ``> 0``, broadcastable with ``x``.

    Returns:
        ``log p_sigma(x)`` with the broadcast shape of ``x`` and ``sigma``; the density is with respect to
        the Lebesgue measure on ``[-pi, pi)`` (it integrates to 1 there). float32/float64 preserved.
    """
    x, sigma, out_dtype = _as_float_tensors(x, sigma)
    x = wrap_angle(x)

    def small() -> Tensor:
        _, logw = _image_terms(x, sigma)
        return torch.logsumexp(logw, dim=-1) - torch.log(sigma) - 0.5 * math.log(TWO_PI)

    def large() -> Tensor:
        _, qn, nx = _fourier_terms(x, sigma)
        return torch.log1p(2.0 * (qn * torch.cos(nx)).sum(-1)) - math.log(TWO_PI)

    return _dispatch(sigma, small, large).to(out_dtype)


def wrapped_normal_score(x: Tensor | float, sigma: Tensor | float) -> Tensor:
    """Exact score ``d/dx log p_sigma(x)`` of the wrapped normal ``WN(0, sigma^2)``.

    This is the denoising score-matching target of torsional diffusion: for ``theta_t = theta_0 + delta``
    with ``delta ~ WN(0, sigma^2)``, ``nabla log p(theta_t | theta_0) = wrapped_normal_score(delta, sigma)``.

    Small sigma: ``score = sum_k w_k * (-(x + 2 pi k) / sigma^2)`` with softmax weights
    ``w_k ∝ exp(-(x + 2 pi k)^2 / (2 sigma^2))``; large sigma: ratio of theta series (module docstring).

    Args:
        x: angles in radians, any shape.
        sigma: standard deviation(s) in radians, ``> 0``, broadcastable with ``x``.

    Returns:
        Score in rad^-1, broadcast shape of ``x`` and ``sigma``, dtype float32/float64 as the inputs.
    """
    x, sigma, out_dtype = _as_float_tensors(x, sigma)
    x = wrap_angle(x)

    def small() -> Tensor:
        xk, logw = _image_terms(x, sigma)
        w = torch.softmax(logw, dim=-1)
        return -(w * xk).sum(-1) / sigma**2

    def large() -> Tensor:
        n, qn, nx = _fourier_terms(x, sigma)
        num = -2.0 * (n * qn * torch.sin(nx)).sum(-1)  # 2 pi p'(x)
        den = 1.0 + 2.0 * (qn * torch.cos(nx)).sum(-1)  # 2 pi p(x)
        return num / den

    return _dispatch(sigma, small, large).to(out_dtype)


def sample_wrapped_normal(
    sigma: Tensor | float,
    shape: tuple[int, ...] | torch.Size | None = None,
    generator: torch.Generator | None = None,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw ``x ~ WN(0, sigma^2)``, returned wrapped into ``[-pi, pi)`` (radians).

    Args:
        sigma: standard deviation(s) in radians, float or tensor broadcastable to ``shape``.
        shape: output shape; defaults to ``sigma.shape`` (``()`` for a float sigma).
        generator: optional torch generator (on the output device) for reproducibility.
        dtype, device: default to those of ``sigma`` if it is a floating tensor, else the torch defaults.

    Returns:
        Tensor of shape ``shape`` (broadcast with ``sigma``).
    """
    if isinstance(sigma, Tensor):
        device = sigma.device if device is None else device
        if dtype is None:
            dtype = sigma.dtype if sigma.is_floating_point() else torch.get_default_dtype()
        sigma = sigma.to(dtype=dtype, device=device)
    else:
        dtype = torch.get_default_dtype() if dtype is None else dtype
    if shape is None:
        shape = tuple(sigma.shape) if isinstance(sigma, Tensor) else ()
    z = torch.randn(tuple(shape), generator=generator, dtype=dtype, device=device)
    return wrap_angle(sigma * z)


# --------------------------------------------------------------------------------------------------
# score norm E[score^2]
# --------------------------------------------------------------------------------------------------
def _build_score_norm_table() -> Tensor:
    """float64 ``log E_{x~WN(sigma)}[score(x, sigma)^2]`` on ``_TABLE_SIZE`` log-spaced sigmas.

    Periodic trapezoidal rule with ``M = 256`` nodes over ``[-pi, pi)``: the integrand ``p s^2`` is
    smooth and periodic, and for a Gaussian-like integrand of width sigma the error is
    ``~ exp(-2 pi^2 sigma^2 / h^2)`` with ``h = 2 pi / M``; at ``sigma = 0.2`` this is ``< e^-2000``.
    Deterministic, about 0.1 s on one CPU core.
    """
    log_sigmas = torch.linspace(math.log(_TABLE_MIN), math.log(_TABLE_MAX), _TABLE_SIZE, dtype=torch.float64)
    x = torch.arange(_QUAD_POINTS, dtype=torch.float64) * (TWO_PI / _QUAD_POINTS) - math.pi
    out = torch.empty(_TABLE_SIZE, dtype=torch.float64)
    chunk = 250
    for i in range(0, _TABLE_SIZE, chunk):
        sig = log_sigmas[i : i + chunk].exp().unsqueeze(-1)  # (c, 1)
        logp = wrapped_normal_log_density(x, sig)  # (c, M)
        s = wrapped_normal_score(x, sig)  # (c, M)
        # log( (2pi/M) sum_m p s^2 ) computed in log space to keep relative accuracy for tiny values
        out[i : i + chunk] = torch.logsumexp(logp + torch.log(s**2 + 1e-300), dim=-1) + math.log(
            TWO_PI / _QUAD_POINTS
        )
    return out


#: the table of :func:`_build_score_norm_table`, shipped with the package (40 kB) because the quadrature
#: costs 0.1-0.8 s of every process's start-up; ``tests/diffusion/test_torus.py`` checks it equals a
#: fresh build, and it is rebuilt when missing or of another shape
_SHIPPED_TABLE = "score_norm_log_table.npy"


def _load_score_norm_table() -> Tensor:
    from importlib import resources

    import numpy as np

    try:
        with resources.files("molgen.diffusion").joinpath(_SHIPPED_TABLE).open("rb") as fh:
            table = torch.from_numpy(np.load(fh))
        if table.shape == (_TABLE_SIZE,) and table.dtype == torch.float64:
            return table
    except (FileNotFoundError, OSError, ValueError):
        pass
    return _build_score_norm_table()


def _get_score_norm_table(device: torch.device, dtype: torch.dtype) -> Tensor:
    global _SCORE_NORM_LOG_TABLE
    key = (device, dtype)
    table = _score_norm_cache.get(key)
    if table is None:
        if _SCORE_NORM_LOG_TABLE is None:
            _SCORE_NORM_LOG_TABLE = _load_score_norm_table()
        table = _SCORE_NORM_LOG_TABLE.to(device=device, dtype=dtype)
        _score_norm_cache[key] = table
    return table


def wrapped_normal_score_norm(sigma: Tensor | float) -> Tensor:
    """Expected squared score ``E_{x ~ WN(0, sigma^2)}[score(x, sigma)^2]`` (rad^-2).

    This is the Fisher information of the wrapped normal; torsional diffusion divides the squared
    score error by it so every noise level contributes equally to the loss. Limits: ``1 / sigma^2``
    for small sigma, ``2 exp(-sigma^2)`` for large sigma.

    Implementation: a float64 table of ``log E[score^2]`` at 5000 log-spaced sigmas in ``[0.2, 12]``,
    built once on first use by deterministic quadrature (no files written) and linearly interpolated in
    ``log sigma`` (relative interpolation error ``< 1e-6`` for sigma <= pi, ``< 1e-4`` up to 12); the exact
    asymptotes are used outside the table. Note that in float32 the value underflows for sigma >~ 9.4.

    Args:
        sigma: standard deviation(s) in radians, ``> 0``, any shape.

    Returns:
        Tensor with the shape of ``sigma`` (float32/float64 as ``sigma``, float python input -> default dtype).
    """
    if not isinstance(sigma, Tensor) or not sigma.is_floating_point():
        sigma = torch.as_tensor(sigma, dtype=torch.get_default_dtype())
    out_dtype = sigma.dtype
    work = out_dtype if out_dtype in (torch.float32, torch.float64) else torch.float32
    sig = sigma.to(work)
    table = _get_score_norm_table(sig.device, work)
    log_sig = torch.log(sig)
    lo, hi = math.log(_TABLE_MIN), math.log(_TABLE_MAX)
    step = (hi - lo) / (_TABLE_SIZE - 1)
    pos = ((log_sig - lo) / step).clamp(0.0, _TABLE_SIZE - 1.0)
    idx = pos.floor().long().clamp(max=_TABLE_SIZE - 2)
    frac = pos - idx.to(work)
    interp = table[idx] * (1.0 - frac) + table[idx + 1] * frac
    log_norm = torch.where(
        sig < _TABLE_MIN,
        -2.0 * log_sig,  # 1/sigma^2
        torch.where(sig > _TABLE_MAX, math.log(2.0) - sig**2, interp),  # 2 exp(-sigma^2)
    )
    return torch.exp(log_norm).to(out_dtype)


# --------------------------------------------------------------------------------------------------
# schedule
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TorusSchedule(NoiseProcess):
    """Geometric noise schedule of torsional diffusion (paper Sec. 4.2 / App.).

    ``sigma(t) = sigma_min^(1-t) * sigma_max^t`` for diffusion time ``t in [0, 1]`` (radians); the forward
    SDE is ``d theta = g(t) dW`` with ``g(t)^2 = d sigma^2 / dt``. Defaults are the paper's
    ``sigma_min = 0.01 pi``, ``sigma_max = pi``.

    As a :class:`~molgen.diffusion.process.NoiseProcess` it is variance-exploding (``alpha = 1``), its noise
    is the wrapped increment ``delta ~ WN(0, sigma(t)^2)``, and the network's raw output is the score in
    units of its root-mean-square ``sqrt(E[score^2](sigma))`` (:meth:`target`, :meth:`score`), so that the
    network predicts a unit-variance quantity at every noise level.
    """

    type_name: ClassVar[str] = "torus"
    variance_exploding: ClassVar[bool] = True

    sigma_min: float = 0.01 * math.pi
    sigma_max: float = math.pi

    def __post_init__(self) -> None:
        for name in ("sigma_min", "sigma_max"):
            value = getattr(self, name)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"TorusSchedule.{name} must be a real number, got {value!r}") from None
            if not math.isfinite(value):
                raise ValueError(f"TorusSchedule.{name} must be finite, got {value}")
            object.__setattr__(self, name, value)
        if self.sigma_min <= 0:
            raise ValueError(f"TorusSchedule.sigma_min must be > 0 (radians), got {self.sigma_min}")
        if self.sigma_min >= self.sigma_max:
            raise ValueError(
                f"TorusSchedule needs sigma_min < sigma_max, got sigma_min={self.sigma_min}, "
                f"sigma_max={self.sigma_max}"
            )

    # -- time <-> noise level -------------------------------------------------------------------
    @property
    def log_ratio(self) -> float:
        """``log(sigma_max / sigma_min)``."""
        return math.log(self.sigma_max / self.sigma_min)

    def sigma(self, t: Tensor | float) -> Tensor:
        """Noise level ``sigma(t) = sigma_min^(1-t) sigma_max^t`` (radians); same shape as ``t``.

        ``t`` in ``[0, 1]`` (not checked for tensors); a float gives a 0-d default-dtype tensor.
        """
        t = _as_time(t)
        return self.sigma_min * torch.exp(t * self.log_ratio)

    def t_of_sigma(self, sigma: Tensor | float) -> Tensor:
        """Inverse of :meth:`sigma`: ``t = log(sigma / sigma_min) / log(sigma_max / sigma_min)``."""
        sigma = _as_time(sigma)
        return torch.log(sigma / self.sigma_min) / self.log_ratio

    def g2(self, t: Tensor | float) -> Tensor:
        """Squared diffusion coefficient ``g(t)^2 = d sigma^2 / dt = 2 sigma(t)^2 log(sigma_max/sigma_min)``
        (rad^2 per unit time); same shape as ``t``."""
        return 2.0 * self.log_ratio * self.sigma(t) ** 2

    def sigmas(
        self, steps: int, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
    ) -> Tensor:
        """Sampling noise levels: ``steps + 1`` values ``sigma(1 - i/steps)``, ``i = 0..steps``.

        Strictly decreasing from ``sigma_max`` (first) to ``sigma_min`` (last), i.e. ``steps`` reverse
        steps ``sigma_i -> sigma_{i+1}``. Shape ``(steps + 1,)``, float64 by default.

        Raises:
            ValueError: if ``steps`` is not a positive integer.
        """
        steps = _check_steps(steps)
        t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
        out = self.sigma(t)
        out[0], out[-1] = self.sigma_max, self.sigma_min  # exact end points
        return out.to(dtype=dtype, device=device)

    # -- forward process ------------------------------------------------------------------------
    def sample_prior(
        self,
        shape: tuple[int, ...] | torch.Size,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Prior sample for the reverse process: uniform angles on ``[-pi, pi)``, tensor of ``shape``.

        (The marginal at ``sigma_max = pi`` is ``WN(pi^2)`` convolved with the data, within
        ``2 exp(-pi^2/2) ~ 1%`` of uniform, as in the paper.)
        """
        u = torch.rand(tuple(shape), generator=generator, dtype=dtype, device=device)
        return wrap_angle(TWO_PI * u - math.pi)

    def perturb(
        self,
        theta0: Tensor,
        sigma: Tensor | float | None = None,
        *,
        t: Tensor | float | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Noise clean torsions: ``theta_t = wrap(theta_0 + delta)``, ``delta ~ WN(0, sigma^2)``.

        Give exactly one of ``sigma`` (radians) or ``t`` (diffusion time, ``sigma = self.sigma(t)``); either
        broadcastable to ``theta0`` (e.g. a per-torsion sigma gathered from a per-molecule one).
        For molecules pass ``theta0 = zeros(n_torsions)`` and apply ``delta`` to the coordinates.

        Args:
            theta0: clean torsion angles (radians), shape (...).
            sigma / t: noise level or diffusion time, broadcastable to ``theta0``.
            generator: optional torch generator.

        Returns:
            ``(theta_t, delta, score_target)``, each with the broadcast shape of ``theta0`` and sigma:
            the noised angles in ``[-pi, pi)``, the increment ``delta`` (wrapped to ``[-pi, pi)``), and
            ``score_target = nabla_{theta_t} log p(theta_t | theta_0) = wrapped_normal_score(delta, sigma)``.
        """
        if (sigma is None) == (t is None):
            raise ValueError("TorusSchedule.perturb needs exactly one of `sigma` or `t`")
        if sigma is None:
            sigma = self.sigma(t)
        sigma = torch.as_tensor(sigma, dtype=theta0.dtype, device=theta0.device)
        shape = torch.broadcast_shapes(theta0.shape, sigma.shape)
        delta = sample_wrapped_normal(sigma, shape, generator, dtype=theta0.dtype, device=theta0.device)
        theta_t = wrap_angle(theta0 + delta)
        return theta_t, delta, wrapped_normal_score(delta, sigma)

    def loss(self, pred_score: Tensor, delta: Tensor, sigma: Tensor | float) -> Tensor:
        """Normalised denoising score-matching loss (paper Eq. 4 with the torus normalisation).

        ``mean( (pred_score - score(delta, sigma))^2 / E[score^2](sigma) )``, averaged over all elements
        of the broadcast shape. ``pred_score``, ``delta`` (radians) and ``sigma`` (radians) broadcast
        together (e.g. shape ``(n_torsions,)``). Returns a 0-d tensor; an exact score gives an expected
        loss of 1 for a network that predicts zero.
        """
        sigma = torch.as_tensor(sigma, dtype=pred_score.dtype, device=pred_score.device)
        target = wrapped_normal_score(delta, sigma).to(pred_score.dtype)
        norm = wrapped_normal_score_norm(sigma).to(pred_score.dtype)
        return ((pred_score - target) ** 2 / norm).mean()

    # -- NoiseProcess interface ----------------------------------------------------------------
    def alpha_sigma(self, t: float) -> tuple[float, float]:
        """``(1, sigma(t))`` with the end points ``sigma(1) = sigma_max`` and ``sigma(0) = sigma_min`` exact."""
        t = float(t)
        if t >= 1.0:
            return 1.0, self.sigma_max
        if t <= 0.0:
            return 1.0, self.sigma_min
        return 1.0, self.sigma_min * math.exp(t * self.log_ratio)

    def draw_noise(self, t: Tensor, shape, generator=None) -> Tensor:
        """Wrapped increments ``delta ~ WN(0, sigma(t)^2)`` (radians), dtype/device of ``t``."""
        return sample_wrapped_normal(self.sigma(t), tuple(shape), generator, dtype=t.dtype, device=t.device)

    def noised(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """``wrap(theta_0 + delta)`` (radians)."""
        return wrap_angle(x0 + noise)

    def target(self, noise: Tensor, t: Tensor, x_t: Tensor | None = None) -> Tensor:
        """``score(delta, sigma) / sqrt(E[score^2](sigma))``: the unit-variance target of the network."""
        sigma = self.sigma(t).to(noise.dtype)
        return wrapped_normal_score(noise, sigma) / wrapped_normal_score_norm(sigma).sqrt()

    def score(self, output: Tensor, x_t: Tensor | None, t: Tensor | float) -> Tensor:
        """``output * sqrt(E[score^2](sigma(t)))`` (rad^-1); ``t`` broadcastable to ``output``."""
        sigma = self.sigma(t if isinstance(t, Tensor) else torch.as_tensor(float(t), dtype=torch.float64))
        return self.score_from_sigma(output, sigma)

    @staticmethod
    def score_from_sigma(output: Tensor, sigma: Tensor) -> Tensor:
        """:meth:`score` given the noise level ``sigma`` (radians, broadcastable to ``output``)."""
        return output * wrapped_normal_score_norm(sigma.to(output.dtype)).sqrt()

    def apply(self, x: Tensor, delta: Tensor) -> Tensor:
        """``wrap_angle(x + delta)`` in ``[-pi, pi)``."""
        return wrap_angle(x + delta)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict ``{"type": "torus", "sigma_min": float, "sigma_max": float}``."""
        return super().to_dict()


def _as_time(t: Tensor | float) -> Tensor:
    if isinstance(t, Tensor):
        return t if t.is_floating_point() else t.to(torch.get_default_dtype())
    return torch.as_tensor(t, dtype=torch.get_default_dtype())


def _check_steps(steps: int) -> int:
    """Validate a number of sampling steps (a positive integer, bools rejected)."""
    if isinstance(steps, bool):
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    try:
        steps = operator.index(steps)
    except TypeError:
        raise ValueError(f"steps must be a positive integer, got {steps!r}") from None
    if steps < 1:
        raise ValueError(f"steps must be a positive integer (>= 1), got {steps}")
    return steps

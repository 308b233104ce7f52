"""Activation functions sigma: registry, values, derivatives and Hermite coefficients.

The key quantity (MATH.md section 1) is, for ``Z ~ N(0, 1)``, ``t >= 0`` and real ``b``,

    alpha_k(t; b) = E[ sigma(b + t Z) He_k(Z) ] / sqrt(k!),   k = 0..kmax,

with ``alpha_k(-t; b) = (-1)^k alpha_k(t; b)`` and ``alpha_k(0; b) = sigma(b) [k = 0]``.
How each activation computes it (``Activation.hermite_method``):

* ``ramp``, ``relu`` -- piecewise linear, ``sigma(u) = A + B u + sum_m D_m (u - kappa_m)_+``.
  Closed form with ``x_m = (kappa_m - b) / t`` and ``Q = 1 - Phi``:
  ``alpha_0 = A + B b + t sum_m D_m (phi(x_m) - x_m Q(x_m))``,
  ``alpha_1 = t (B + sum_m D_m Q(x_m))``, and by Stein's lemma for ``k >= 2``
  ``alpha_k = t sum_m D_m phi(x_m) h_{k-2}(x_m) / sqrt(k (k-1))``.
* ``erf`` -- closed form.  With ``s = 1/sqrt(1 + 2 t^2)``, ``a = sqrt(2) t s`` and
  ``y = -sqrt(2) b s``: ``alpha_0 = erf(b s)`` and for ``k >= 1``
  ``alpha_k = (2/sqrt(pi)) t s exp(-b^2 s^2) a^{k-1} h_{k-1}(y) / sqrt(k)``
  (Stein's lemma, then ``E[exp(-(b+tZ)^2) He_n(Z)] = s exp(-b^2 s^2) a^n He_n(y)``, which follows
  from the generating function ``exp(x u - u^2/2) = sum_n He_n(x) u^n / n!``).
* ``tanh``, ``sigmoid``, ``softplus`` -- quadrature of ``sigma(b + t z) h_k(z) phi(z)``.  Their
  singularities nearest the real axis are at ``z0 + i delta`` with ``z0 = -b/t`` and
  ``delta = c/t`` (``c = pi/2`` for tanh, ``pi`` for sigmoid and softplus).  For each t the
  cheaper of two rules that reach ~1e-14 (relative to ``1 + max_k |alpha_k|``) is used:
  (i) Gauss-Hermite with ``n >= (700 + 1.5 kmax) / delta^2 + kmax/2 + 16`` nodes, at most 400
  (spectral in sqrt(n) for a function analytic in the strip ``|Im z| < delta``); (ii) composite
  Gauss-Legendre (``ORDER`` = 16 nodes per panel) on ``[-L, L]``, ``L = 14``, panels graded
  geometrically (ratio 2)
  towards ``z0`` from width ``delta`` up to a maximum width that resolves ``h_kmax``
  (``h_max sqrt(kmax + 1) <= OMEGA_H``).  The neglected tails are below
  ``0.434 int_{|z|>14} (|b| + log 2 + t|z|) exp(-z^2/4) dz < 1e-20 (1 + |b| + t)``.

:func:`hermite_plain_gh` computes the same coefficients with a plain Gauss-Hermite rule (for
the benchmark showing that it converges only algebraically on a kink).
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy import special

from .errors import ConfigError
from .hermite_kernels import (
    _erf_hermite_kernel,
    _pl_hermite_kernel,
    _smooth_composite_kernel,
)
from .quadrature import (
    gauss_hermite,
    gauss_legendre,
    hermite_normalized,
)

__all__ = [
    "Activation",
    "available_activations",
    "get_activation",
    "hermite_plain_gh",
]

# quadrature settings for the smooth activations (see the module docstring); calibrated against
# an over-resolved composite rule (32 nodes/panel, panels <= 0.25) for t in [1e-3, 50],
# kmax in {0, ..., 2000}, b in {0, 1.3, -3}: errors <= 1e-14 (1 + max_k |alpha_k|).
HALF_WIDTH = 14.0  # L: integration window [-L, L] in z
ORDER = 16  # Gauss-Legendre nodes per panel
GRADING = 2.0  # width ratio of neighbouring panels
HMIN_FACTOR = 1.0  # smallest panel = HMIN_FACTOR * delta
HMAX = 1.5  # widest panel for small kmax
OMEGA_H = 8.0  # widest panel also satisfies h_max * sqrt(kmax + 1) <= OMEGA_H
GH_A2 = 700.0  # Gauss-Hermite: n >= (GH_A2 + GH_A2K * kmax) / delta^2 + kmax / 2 + GH_N0
GH_A2K = 1.5
GH_N0 = 16
_GH_LEVELS = (16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 320, 400)
GH_MAX = _GH_LEVELS[-1]  # never use more Gauss-Hermite nodes than this
_CHUNK = 4096  # t values per matrix product in the Gauss-Hermite path


# ----------------------------------------------------------------------------- helpers


def _as_float_array(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _heaviside(x: np.ndarray) -> np.ndarray:
    """``H(x)`` with ``H(0) = 1/2`` (derivative of a kink: mean of the one-sided slopes)."""
    return np.heaviside(x, 0.5)


# ----------------------------------------------------------------------------- base class


class Activation(ABC):
    """An activation sigma with its parameters.

    Attributes: ``name``; ``params`` (every parameter, defaults filled in, as floats);
    ``bounded``; ``hermite_method`` (how :meth:`hermite` computes, for reports).
    """

    name: str = ""
    bounded: bool = False
    hermite_method: str = ""

    def __init__(self, params: Mapping[str, float] | None = None) -> None:
        self._params = {k: float(v) for k, v in (params or {}).items()}

    @property
    def params(self) -> dict[str, float]:
        """All parameters (defaults filled in) as a JSON-serialisable dict of floats."""
        return dict(self._params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{type(self).__name__}({self.name!r}{', ' if args else ''}{args})"

    @abstractmethod
    def value(self, x: np.ndarray) -> np.ndarray:
        """sigma(x), elementwise."""

    @abstractmethod
    def derivative(self, x: np.ndarray) -> np.ndarray:
        """sigma'(x), elementwise (at a kink: the mean of the one-sided slopes)."""

    @abstractmethod
    def _hermite_positive(self, t: np.ndarray, b: np.ndarray, kmax: int) -> np.ndarray:
        """``out[k, i] = alpha_k(t_i; b_i)`` for flat float64 arrays with every t_i > 0."""

    def hermite(self, t: np.ndarray | float, kmax: int, b: np.ndarray | float = 0.0) -> np.ndarray:
        """Hermite coefficients ``alpha_k(t; b) = E[sigma(b + t Z) He_k(Z)] / sqrt(k!)``.

        ``Z ~ N(0, 1)``, k = 0..kmax; ``t`` and ``b`` broadcast together, the result has shape
        ``(kmax + 1, *broadcast(t, b).shape)``.  ``t = 0`` gives ``[sigma(b), 0, 0, ...]``;
        negative t use ``alpha_k(-t; b) = (-1)^k alpha_k(t; b)``.
        """
        if isinstance(kmax, bool) or not isinstance(kmax, numbers.Integral) or kmax < 0:
            raise ConfigError(f"kmax must be an integer >= 0, got {kmax!r}")
        kmax = int(kmax)
        ta, ba = np.broadcast_arrays(_as_float_array(t), _as_float_array(b))
        shape = ta.shape
        tf = np.array(ta, dtype=np.float64).ravel()  # copies: broadcast views are read-only
        bf = np.array(ba, dtype=np.float64).ravel()
        if not (np.all(np.isfinite(tf)) and np.all(np.isfinite(bf))):
            raise ConfigError("hermite: t and b must be finite real numbers")
        zero = np.flatnonzero(tf == 0.0)
        out = self._hermite_positive(np.where(tf == 0.0, 1.0, np.abs(tf)), bf, kmax)
        if zero.size:  # alpha_k(0; b) = sigma(b) [k = 0]
            out[:, zero] = 0.0
            out[0, zero] = self.value(bf[zero])
        if np.any(tf < 0.0):  # alpha_k(-t; b) = (-1)^k alpha_k(t; b)
            out[1::2, :] *= np.where(tf < 0.0, -1.0, 1.0)[None, :]
        return out.reshape((kmax + 1, *shape))


# ----------------------------------------------------------------------------- piecewise linear


class PiecewiseLinearActivation(Activation):
    """``sigma(u) = A + B u + sum_m D_m (u - kappa_m)_+`` (kinks kappa_m, slope jumps D_m)."""

    hermite_method = "closed form (Stein's lemma at the kinks)"

    def __init__(
        self,
        params: Mapping[str, float],
        intercept: float,
        slope: float,
        kinks: list[float],
        jumps: list[float],
    ) -> None:
        super().__init__(params)
        self._a = float(intercept)
        self._b = float(slope)
        self._kinks = np.ascontiguousarray(kinks, dtype=np.float64)
        self._jumps = np.ascontiguousarray(jumps, dtype=np.float64)

    @property
    def pieces(self) -> tuple[float, float, np.ndarray, np.ndarray]:
        """(A, B, kinks kappa_m, slope jumps D_m) of the representation above (read-only
        copies): what compiled closed forms elsewhere need."""
        return self._a, self._b, self._kinks.copy(), self._jumps.copy()

    def value(self, x: np.ndarray) -> np.ndarray:
        """``A + B x + sum_m D_m max(x - kappa_m, 0)``."""
        x = _as_float_array(x)
        out = self._a + self._b * x
        for kappa, jump in zip(self._kinks, self._jumps, strict=True):
            out = out + jump * np.maximum(x - kappa, 0.0)
        return out

    def derivative(self, x: np.ndarray) -> np.ndarray:
        """``B + sum_m D_m H(x - kappa_m)``, ``H(0) = 1/2``."""
        x = _as_float_array(x)
        out = np.full(x.shape, self._b)
        for kappa, jump in zip(self._kinks, self._jumps, strict=True):
            out = out + jump * _heaviside(x - kappa)
        return out

    def _hermite_positive(self, t, b, kmax):
        return _pl_hermite_kernel(t, b, self._a, self._b, self._kinks, self._jumps, kmax)


class Ramp(PiecewiseLinearActivation):
    """MMN18 ramp: ``s1`` for ``u <= t1``, ``s2`` for ``u >= t2``, linear in between.

    ``sigma(u) = s1 + S (u - t1)_+ - S (u - t2)_+``, ``S = (s2 - s1)/(t2 - t1)``.
    """

    name = "ramp"
    bounded = True

    def __init__(self, params: Mapping[str, float]) -> None:
        s1, s2, t1, t2 = (float(params[k]) for k in ("s1", "s2", "t1", "t2"))
        slope = (s2 - s1) / (t2 - t1)
        super().__init__(params, s1, 0.0, [t1, t2], [slope, -slope])
        self._s1, self._s2, self._t1, self._t2 = s1, s2, t1, t2

    def value(self, x: np.ndarray) -> np.ndarray:
        """Linear interpolation between ``(t1, s1)`` and ``(t2, s2)``, constant outside."""
        x = _as_float_array(x)
        return np.interp(x, [self._t1, self._t2], [self._s1, self._s2])


class Relu(PiecewiseLinearActivation):
    """``sigma(u) = max(u, 0)``."""

    name = "relu"
    bounded = False

    def __init__(self, params: Mapping[str, float]) -> None:
        super().__init__(params, 0.0, 0.0, [0.0], [1.0])


# ----------------------------------------------------------------------------- erf


class Erf(Activation):
    """``sigma(u) = erf(u)``; Hermite coefficients in closed form."""

    name = "erf"
    bounded = True
    hermite_method = "closed form (Gaussian integral)"

    def value(self, x: np.ndarray) -> np.ndarray:
        """``erf(x)``."""
        return special.erf(_as_float_array(x))

    def derivative(self, x: np.ndarray) -> np.ndarray:
        """``2/sqrt(pi) exp(-x^2)``."""
        x = _as_float_array(x)
        return 2.0 / math.sqrt(math.pi) * np.exp(-x * x)

    def _hermite_positive(self, t, b, kmax):
        return _erf_hermite_kernel(t, b, kmax)


# ----------------------------------------------------------------------------- smooth (quadrature)


class SmoothActivation(Activation):
    """An analytic sigma whose singularities nearest the real axis are at ``Im u = +-pole``.

    ``alpha_k`` by quadrature: per t, Gauss-Hermite or graded composite Gauss-Legendre,
    whichever needs fewer nodes (see the module docstring).
    """

    code: int = -1
    pole: float = math.nan
    hermite_method = "quadrature (Gauss-Hermite or graded composite Gauss-Legendre)"

    def _hermite_positive(self, t, b, kmax):
        out = np.empty((kmax + 1, t.size))
        n_gh = _gh_nodes_needed(self.pole / t, kmax)
        n_cl = _composite_nodes_estimate(self.pole / t, kmax)
        use_gh = (n_gh <= GH_MAX) & (n_gh <= n_cl)
        level = np.searchsorted(_GH_LEVELS, n_gh)
        for lev in np.unique(level[use_gh]):
            sel = np.flatnonzero(use_gh & (level == lev))
            out[:, sel] = _hermite_gh(self.value, t[sel], b[sel], kmax, _GH_LEVELS[lev])
        sel = np.flatnonzero(~use_gh)
        if sel.size:
            out[:, sel] = self._composite(self.code, t[sel], b[sel], kmax)
        return out

    def _composite(self, code: int, t: np.ndarray, b: np.ndarray, kmax: int) -> np.ndarray:
        """The graded composite Gauss-Legendre rule for the kernel's function ``code``, with
        a breakpoint at the centre z = -b/t (a kink there is integrated exactly)."""
        xg, wg = gauss_legendre(ORDER)
        grading = (self.pole, HALF_WIDTH, _hmax(kmax), HMIN_FACTOR, GRADING)
        rule = (np.ascontiguousarray(xg), np.ascontiguousarray(wg))
        return _smooth_composite_kernel(code, np.ascontiguousarray(t), np.ascontiguousarray(b),
                                        grading, rule, kmax)


def _hmax(kmax: int) -> float:
    """Widest panel of the composite rule: ``min(HMAX, OMEGA_H / sqrt(kmax + 1))``."""
    return min(HMAX, OMEGA_H / math.sqrt(kmax + 1.0))


def _gh_nodes_needed(delta: np.ndarray, kmax: int) -> np.ndarray:
    """Gauss-Hermite nodes for ~1e-14: ``(GH_A2 + GH_A2K kmax)/delta^2 + kmax/2 + GH_N0``.

    ``delta = pole / t``: the Hermite coefficients of ``sigma(b + t .)`` decay like
    ``exp(-delta sqrt(2m))`` and an n-node rule is exact up to degree ``2n - 1``.
    """
    return (GH_A2 + GH_A2K * kmax) / delta**2 + 0.5 * kmax + GH_N0


def _composite_nodes_estimate(delta: np.ndarray, kmax: int) -> np.ndarray:
    """Nodes of the graded composite rule (slight over-estimate of the exact panel count)."""
    hmax = _hmax(kmax)
    hmin = np.minimum(HMIN_FACTOR * delta, hmax)
    n_grow = np.ceil(np.log(hmax / hmin) / math.log(GRADING))
    n_uniform = 2.0 * HALF_WIDTH / hmax
    return ORDER * (2.0 * n_grow + n_uniform + 2.0)


def _hermite_gh(
    value: Callable[[np.ndarray], np.ndarray], t: np.ndarray, b: np.ndarray, kmax: int, n: int
) -> np.ndarray:
    """``out[k, i] = sum_j w_j sigma(b_i + t_i x_j) h_k(x_j)`` with the n-node Gauss-Hermite rule.

    Vectorised as a matrix product ``(w h_k(x_j))_{kj} @ (sigma(b_i + t_i x_j))_{ji}`` in chunks.
    Nodes whose weight underflows to 0 (``|x| > 38``, n > ~400) are dropped, so that every
    ``h_k(x_j)`` used is finite (``|x_j| <= 53``, Cramer) and no ``0 * inf`` arises.
    """
    x, w = gauss_hermite(n)
    keep = w > 0.0
    x, w = x[keep], w[keep]
    hw = hermite_normalized(x, kmax) * w[None, :]
    out = np.empty((kmax + 1, t.size))
    for start in range(0, t.size, _CHUNK):
        sl = slice(start, start + _CHUNK)
        vals = value(b[None, sl] + x[:, None] * t[None, sl])
        out[:, sl] = hw @ vals
    return out


class Tanh(SmoothActivation):
    """``sigma(u) = tanh(u)``; poles at ``u = i pi (n + 1/2)``."""

    name = "tanh"
    bounded = True
    code = 0
    pole = 0.5 * math.pi

    def value(self, x: np.ndarray) -> np.ndarray:
        """``tanh(x)``."""
        return np.tanh(_as_float_array(x))

    def derivative(self, x: np.ndarray) -> np.ndarray:
        """``sech(x)^2 = 4 e / (1 + e)^2`` with ``e = exp(-2|x|)`` (no overflow)."""
        e = np.exp(-2.0 * np.abs(_as_float_array(x)))
        return 4.0 * e / (1.0 + e) ** 2


class Sigmoid(SmoothActivation):
    """Logistic ``sigma(u) = 1 / (1 + exp(-u))``; poles at ``u = i pi (2n + 1)``."""

    name = "sigmoid"
    bounded = True
    code = 1
    pole = math.pi

    def value(self, x: np.ndarray) -> np.ndarray:
        """``1 / (1 + exp(-x))`` (scipy.special.expit, no overflow)."""
        return special.expit(_as_float_array(x))

    def derivative(self, x: np.ndarray) -> np.ndarray:
        """``sigma (1 - sigma) = e / (1 + e)^2`` with ``e = exp(-|x|)``."""
        e = np.exp(-np.abs(_as_float_array(x)))
        return e / (1.0 + e) ** 2


#: above this scale t the softplus coefficients are relu's closed form plus the quadrature of
#: the bounded remainder (below it, quadrature of softplus loses at most eps * t ~ 1e-14)
SOFTPLUS_SPLIT_T = 64.0
#: the kernel's code (hermite_kernels._smooth_value) of log1p(exp(-|u|))
SOFTPLUS_REMAINDER_CODE = 3


class Softplus(SmoothActivation):
    """``sigma(u) = log(1 + exp(u)) = max(u, 0) + log1p(exp(-|u|))``; branch points
    at ``u = i pi (2n + 1)``."""

    name = "softplus"
    bounded = False
    code = 2
    pole = math.pi

    def value(self, x: np.ndarray) -> np.ndarray:
        """``max(x, 0) + log1p(exp(-|x|))`` (no overflow)."""
        x = _as_float_array(x)
        return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))

    def derivative(self, x: np.ndarray) -> np.ndarray:
        """The logistic function ``1 / (1 + exp(-x))``."""
        return special.expit(_as_float_array(x))

    def _hermite_positive(self, t, b, kmax):
        """Above t = SOFTPLUS_SPLIT_T: the relu part max(u, 0) in closed form (its centred
        stable form), plus the bounded remainder log1p(exp(-|u|)) by the composite rule (kink
        at z = -b/t on a breakpoint).  Quadrature of softplus itself, whose integrand is of size
        t, loses eps * t absolutely in every coefficient (alpha_3 at t = 1e17, b = 0.7: off by
        9 against 0.11); the split keeps each coefficient to a few eps of its own size."""
        big = t > SOFTPLUS_SPLIT_T
        if not np.any(big):
            return super()._hermite_positive(t, b, kmax)
        out = np.empty((kmax + 1, t.size))
        small = np.flatnonzero(~big)
        if small.size:
            out[:, small] = super()._hermite_positive(t[small], b[small], kmax)
        sel = np.flatnonzero(big)
        out[:, sel] = (Relu({})._hermite_positive(t[sel], b[sel], kmax)
                       + self._composite(SOFTPLUS_REMAINDER_CODE, t[sel], b[sel], kmax))
        return out


# ----------------------------------------------------------------------------- registry


def _ramp_check(p: dict[str, float]) -> None:
    if not p["t1"] < p["t2"]:
        raise ConfigError(f"ramp parameters need t1 < t2, got t1 = {p['t1']}, t2 = {p['t2']}")
    if not math.isfinite((p["s2"] - p["s1"]) / (p["t2"] - p["t1"])):
        raise ConfigError("ramp slope (s2 - s1) / (t2 - t1) overflows; accepted: a finite slope")


_REGISTRY: dict[str, tuple[type[Activation], dict[str, float], Callable | None]] = {
    "ramp": (Ramp, {"s1": -2.5, "s2": 7.5, "t1": 0.5, "t2": 1.5}, _ramp_check),
    "relu": (Relu, {}, None),
    "tanh": (Tanh, {}, None),
    "erf": (Erf, {}, None),
    "sigmoid": (Sigmoid, {}, None),
    "softplus": (Softplus, {}, None),
}


def available_activations() -> list[str]:
    """Names accepted by :func:`get_activation`."""
    return list(_REGISTRY)


def _coerce_param(name: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(
            f"activation {name!r} parameter {key} = {value!r} is not a number; "
            "accepted: a finite real number")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(
            f"activation {name!r} parameter {key} = {value} is not finite; "
            "accepted: a finite real number")
    return value


def get_activation(name: str, params: Mapping[str, Any] | None = None) -> Activation:
    """The activation called ``name`` with ``params`` (missing ones take their defaults).

    Raises :class:`ConfigError` for an unknown name, an unknown parameter, a non-finite value,
    or (ramp) ``t1 >= t2``.
    """
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ConfigError(
            f"unknown activation {name!r}; known: {', '.join(available_activations())}")
    cls, defaults, check = _REGISTRY[name]
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise ConfigError(f"activation parameters must be a table (dict), got {params!r}")
    unknown = sorted(str(k) for k in params if k not in defaults)
    if unknown:
        accepted = ", ".join(defaults) if defaults else "none"
        raise ConfigError(
            f"unknown parameter(s) {', '.join(unknown)} for activation {name!r}; "
            f"accepted: {accepted}")
    full = dict(defaults)
    for key, value in params.items():
        full[key] = _coerce_param(name, key, value)
    if check is not None:
        check(full)
    return cls(full)


def hermite_plain_gh(
    act: Activation, t: np.ndarray | float, kmax: int, n_nodes: int, b: np.ndarray | float = 0.0
) -> np.ndarray:
    """``alpha_k(t; b)`` by a plain ``n_nodes``-point Gauss-Hermite rule, shape as ``hermite``.

    ``sum_j w_j sigma(b + t x_j) h_k(x_j)``: exact for polynomial sigma of degree
    ``<= 2 n_nodes - 1 - k``, spectrally accurate for analytic sigma at moderate t, but only
    algebraically convergent for a kinked sigma (benchmark reference, not for production).
    """
    if isinstance(kmax, bool) or not isinstance(kmax, numbers.Integral) or kmax < 0:
        raise ConfigError(f"kmax must be an integer >= 0, got {kmax!r}")
    if isinstance(n_nodes, bool) or not isinstance(n_nodes, numbers.Integral) or n_nodes < 1:
        raise ConfigError(f"n_nodes must be an integer >= 1, got {n_nodes!r}")
    ta, ba = np.broadcast_arrays(_as_float_array(t), _as_float_array(b))
    tf = np.ascontiguousarray(ta, dtype=np.float64).ravel()
    bf = np.ascontiguousarray(ba, dtype=np.float64).ravel()
    out = _hermite_gh(act.value, tf, bf, int(kmax), int(n_nodes))
    return out.reshape((int(kmax) + 1, *ta.shape))

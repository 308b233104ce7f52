"""Activations encoded for the compiled particle kernels: a code and a parameter array.

Piecewise linear σ(u) = A + B u + Σ_m D_m (u − κ_m)_+ (ramp, relu, …) carries its parameters
``[A, B, n, κ_1..κ_n, D_1..D_n]``; tanh, sigmoid, softplus and erf need none.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..activations import Activation, Erf, PiecewiseLinearActivation
from ..errors import ConfigError

# activation codes of the compiled kernels
ACT_PL, ACT_TANH, ACT_SIGMOID, ACT_SOFTPLUS, ACT_ERF = 0, 1, 2, 3, 4
_SMOOTH_CODES = {"tanh": ACT_TANH, "sigmoid": ACT_SIGMOID, "softplus": ACT_SOFTPLUS}

_TWO_OVER_SQRT_PI = 1.1283791670955126


def encode_activation(act: Activation) -> tuple[int, np.ndarray]:
    """(code, params) of ``act`` for the compiled kernels.

    Piecewise linear σ(u) = A + B u + Σ_m D_m (u − κ_m)_+: params ``[A, B, n, κ_1..κ_n,
    D_1..D_n]``; the smooth activations need no parameters.
    """
    if isinstance(act, PiecewiseLinearActivation):
        a, b, kinks, jumps = act.pieces
        params = np.concatenate([[a, b, float(kinks.size)], kinks, jumps])
        return ACT_PL, np.ascontiguousarray(params)
    if isinstance(act, Erf):
        return ACT_ERF, np.zeros(1)
    if act.name in _SMOOTH_CODES:
        return _SMOOTH_CODES[act.name], np.zeros(1)
    raise ConfigError(f"particle SGD does not support the activation {act.name!r}")


@numba.njit(cache=True)
def act_vd(code: int, p: np.ndarray, u: float) -> tuple[float, float]:
    """(σ(u), σ'(u)) for an encoded activation; σ' at a kink is the mean of the slopes."""
    if code == ACT_PL:
        v = p[0] + p[1] * u
        dv = p[1]
        nk = int(p[2])
        for m in range(nk):
            x = u - p[3 + m]
            if x > 0.0:
                v += p[3 + nk + m] * x
                dv += p[3 + nk + m]
            elif x == 0.0:
                dv += 0.5 * p[3 + nk + m]
        return v, dv
    if code == ACT_TANH:
        e = math.exp(-2.0 * abs(u))
        return math.tanh(u), 4.0 * e / ((1.0 + e) * (1.0 + e))
    if code == ACT_SIGMOID or code == ACT_SOFTPLUS:
        e = math.exp(-abs(u))
        sig = 1.0 / (1.0 + e) if u >= 0.0 else e / (1.0 + e)
        if code == ACT_SIGMOID:
            return sig, e / ((1.0 + e) * (1.0 + e))
        return max(u, 0.0) + math.log1p(e), sig
    # ACT_ERF
    return math.erf(u), _TWO_OVER_SQRT_PI * math.exp(-u * u)


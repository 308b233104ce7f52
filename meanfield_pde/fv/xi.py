"""ξ(t), the step-size schedule, as the Numba kernels evaluate it (no configuration here).

    constant:   ξ(t) = xi0                                    params = [xi0]
    power:      ξ(t) = xi0 (1 + t/t0)^(−p)                    params = [xi0, t0, p]
    piecewise:  ξ(t) = values[i]  for times[i−1] <= t < times[i]
                (times[−1] = 0, times[n] = ∞)                 params = [n, t_1..t_n, v_0..v_n]

One compiled kernel serves every schedule: ``kind`` is one of the integer codes below.
:class:`meanfield_pde.schedule.Schedule` builds (kind, params) from a configuration.
"""

from __future__ import annotations

import math

import numba
import numpy as np

CONSTANT, POWER, PIECEWISE = 0, 1, 2


@numba.njit(cache=True)
def xi_at(kind: int, params: np.ndarray, t: float) -> float:
    """ξ(t) for the schedule encoded as (kind, params); see the module docstring.

    params: constant -> [xi0]; power -> [xi0, t0, p]; piecewise -> [n, t_1..t_n, v_0..v_n].
    """
    if kind == CONSTANT:
        return params[0]
    if kind == POWER:  # exp(−p ln(1 + t/t0)), also where t/t0 overflows
        q = t / params[1]
        lg = math.log1p(q) if q < math.inf else math.log(t) - math.log(params[1])
        return params[0] * math.exp(-params[2] * lg)
    n = int(params[0])
    i = 0
    while i < n and t >= params[1 + i]:
        i += 1
    return params[1 + n + i]

"""The adaptive Shu–Osher SSP-RK3 driver, written once for every explicit scheme of the package.

    ρ¹ = ρ + dt L(ρ, t);  ρ² = ¾ρ + ¼(ρ¹ + dt L(ρ¹, t + dt));
    ρⁿ⁺¹ = ⅓ρ + ⅔(ρ² + dt L(ρ², t + dt/2)).

Each stage is a convex combination of forward-Euler steps, so ρ stays >= 0 when every stage
satisfies the forward-Euler positivity bound of its right-hand side, written ``dt · rate <= limit``
with the ``rate`` the right-hand side returns.  dt = cfl · scale / rate(ρⁿ) (``scale`` and
``limit`` let a scheme keep its own units: the 1-D transport returns max|u| with scale = h,
limit = h/2).  A step whose later stages exceed the bound (also the first stage's if ``first``),
or whose result is negative or not finite, is rejected and retried with dt/2.  The loop lands
exactly on ``t_stop`` and returns one of the status codes below.

The driver is generic over the scheme: :func:`make_ssp_rk3` binds the right-hand side
``rhs(model, x, t, out) -> rate`` and the elementwise stage kernel (serial :func:`stage` or
threaded :func:`stage_par`) in a closure.  The driver is not cached itself (a closure over
compiled functions has no stable cache key, and a compiled function passed as an argument is a
dynamic address that Numba refuses to cache); each scheme calls it from a small cached entry
point, whose compiled code embeds the driver specialised for that scheme, so the entry point
loads from the on-disk cache whole.
Every state array the driver sees is flat (a 3-D scheme passes flat views and reshapes in its
``rhs``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba

from .variants import serial_and_parallel

REACHED, MAX_STEPS, NONFINITE, DT_UNDERFLOW = 0, 1, 2, 3
STATUS_TEXT = {
    REACHED: "reached the stop time",
    MAX_STEPS: "step budget of this call used",
    NONFINITE: "non-finite value in the state",
    DT_UNDERFLOW: "time step underflow",
}

EULER, SECOND, THIRD, COPY = 1, 2, 3, 4  # the stage kernels' operations


class RK3Control(NamedTuple):
    """dt = cfl · scale / rate; a stage is admissible when dt · rate <= limit (``first``: the
    rate of the first stage is checked too)."""

    cfl: float
    scale: float
    limit: float
    first: bool


def _stage(op, rho, x, l, dt, out):
    """out = the SSP-RK3 combination ``op`` on flat arrays; returns the number of negative or nan
    entries for THIRD (0 otherwise).

    EULER: out = ρ + dt l;  SECOND: out = ¾ρ + ¼(x + dt l);  THIRD: out = (ρ + 2(x + dt l))/3;
    COPY: out = ρ.  Elementwise, so the serial and the threaded variant are bit-identical.
    """
    bad = 0
    if op == EULER:
        for n in numba.prange(rho.size):
            out[n] = rho[n] + dt * l[n]
    elif op == SECOND:
        for n in numba.prange(rho.size):
            out[n] = 0.75 * rho[n] + 0.25 * (x[n] + dt * l[n])
    elif op == THIRD:
        for n in numba.prange(rho.size):
            v = (rho[n] + 2.0 * (x[n] + dt * l[n])) / 3.0
            bad += 0 if v >= 0.0 else 1
            out[n] = v
    else:
        for n in numba.prange(rho.size):
            out[n] = rho[n]
    return bad


stage, stage_par = serial_and_parallel(_stage)


def make_ssp_rk3(rhs, stage_fn):
    """The compiled SSP-RK3 loop of one scheme: ``rhs(model, x, t, out) -> rate`` and the stage
    kernel (:func:`stage` or :func:`stage_par`) are bound here, at import time of the scheme.

    The returned function ``ssp_rk3(model, rho, t, t_stop, max_steps, ctl, work)`` advances the
    flat state ``rho`` in place from ``t`` towards ``t_stop`` (module doc); ``ctl`` is a
    :class:`RK3Control`, ``work`` = (w1, w2, l0, l1), flat arrays like ρ.  It returns (t, steps,
    rejected, status, dt_last, rate_last).  It is not cached itself (its closure holds compiled
    functions, which do not pickle stably); the scheme's cached entry point embeds it.
    """

    @numba.njit
    def ssp_rk3(model, rho, t, t_stop, max_steps, ctl, work):
        w1, w2, l0, l1 = work
        steps = 0
        rejected = 0
        dt = 0.0
        rate = 0.0
        while t < t_stop:
            if steps >= max_steps:
                return t, steps, rejected, MAX_STEPS, dt, rate
            rate = rhs(model, rho, t, l0)
            if not math.isfinite(rate):
                return t, steps, rejected, NONFINITE, dt, rate
            dt = ctl.cfl * ctl.scale / rate if rate > 0.0 else t_stop - t
            while True:
                land = dt >= t_stop - t
                if land:
                    dt = t_stop - t
                stage_fn(EULER, rho, rho, l0, dt, w1)
                r1 = rhs(model, w1, t + dt, l1)
                stage_fn(SECOND, rho, w1, l1, dt, w2)
                r2 = rhs(model, w2, t + 0.5 * dt, l1)
                ok = math.isfinite(r1) and math.isfinite(r2)
                top = max(rate, max(r1, r2)) if ctl.first else max(r1, r2)
                ok = ok and dt * top <= ctl.limit
                if ok:
                    ok = stage_fn(THIRD, rho, w2, l1, dt, w1) == 0
                if ok:
                    break
                rejected += 1
                dt *= 0.5
                if dt <= 1e-15 * max(abs(t), 1.0):
                    return t, steps, rejected, DT_UNDERFLOW, dt, rate
            stage_fn(COPY, w1, w1, w1, dt, rho)
            t = t_stop if land else t + dt
            steps += 1
        return t, steps, rejected, REACHED, dt, rate

    return ssp_rk3

"""The frozen-interaction semi-implicit driver with the energy acceptance test, and the
steady-state loop, written once for the 1-D and the 3-D drift–diffusion schemes.

A step freezes the interaction at ρⁿ (its effective potential Φⁿ), takes ξ at the midpoint of
the step and solves the linearly implicit Scharfetter–Gummel system (one tridiagonal solve in
1-D, a Lie splitting of three line solves in 3-D): ρⁿ⁺¹ >= 0 and mass is conserved for every dt.
Adaptive dt: a trial step is accepted only if ρⁿ⁺¹ is finite and >= 0 and

    F(ρⁿ⁺¹) <= F(ρⁿ) + F_REL_TOL · max(|F(ρⁿ)|, Σ|terms of F|)                        (a)
    ½ Σ_k λ_k Δm_k² <= dt D + Breg + 1e-24 Σ|terms of F|                              (b)

(a) on the values of F (the tolerance is the round-off of their compensated evaluation);
(b) is F(ρⁿ⁺¹) <= F(ρⁿ) written as the exact energy balance of the step, whose terms are
resolved to relative precision: near equilibrium the change of F falls below the round-off of F,
and (a) alone would let the frozen-interaction step sit in a small oscillation (the Picard-type
instability of large steps under a strong interaction).  (b) is evaluated only when (a) holds
with F(ρⁿ) − F(ρⁿ⁺¹) <= ``band`` · max(|F(ρⁿ)|, Σ|terms|) (``band`` = inf: always).  A rejected
step is retried with dt/2; an accepted one multiplies dt by ``GROWTH`` (not right after a
rejection), capped at dt_max; the last step lands exactly on ``t_stop``; dt_init <= 0 means
start at dt_max.

The scheme enters through a NamedTuple of compiled functions (:class:`SemiImplicitOps`) acting
on a scheme-specific ``model`` bundle, bound by :func:`make_frozen_implicit` in a closure.  The
loop is not cached itself (see :mod:`.rk`); each scheme calls it from a cached entry point whose
compiled code embeds it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np

from .rk import DT_UNDERFLOW, MAX_STEPS, NONFINITE, REACHED
from .xi import xi_at

F_REL_TOL = 1e-14  # accepted free-energy increase, relative to the magnitude of F
GROWTH = 1.5  # dt growth factor after an accepted step


class SemiImplicitOps(NamedTuple):
    """The compiled pieces of one semi-implicit scheme (each takes the scheme's ``model``).

    init(model, ρ) -> (F, Σ|terms|) of ρ (nan if ρ is invalid), leaving the potential of ρ in
    the model; freeze(model): Φ and the face factors from that potential; solve(model, ρ, dt, c)
    -> ok: the trial state from ρ (c = 2ξ), ok iff finite and >= 0; energy(model) -> (F, Σ|terms|)
    of the trial state (its potential left in the model); balance(model, ρ, dt, c) -> (ok, ½ΣλΔm²,
    dt D, Breg); accept(model, ρ): ρ = trial; restore(model, ρ): the potential of ρ again.
    """

    init: object
    freeze: object
    solve: object
    energy: object
    balance: object
    accept: object
    restore: object


class SemiImplicitControl(NamedTuple):
    """dt_init (<= 0: dt_max), dt_max, and the band of (b) (module doc)."""

    dt_init: float
    dt_max: float
    band: float


def make_frozen_implicit(ops: SemiImplicitOps):
    """The compiled adaptive loop of one scheme, with its ``ops`` bound here (at import time).

    The returned function ``frozen_implicit(model, xi, rho, t, t_stop, max_steps, ctl)``
    advances ``rho`` in place from ``t`` to ``t_stop`` (module doc); ``xi`` is a
    :class:`.bundles.Xi`, ``ctl`` a :class:`SemiImplicitControl`.  It returns (t, steps,
    rejected, status, dt_next, F_last): dt_next is the step to pass as dt_init to the next call
    (not shortened by the landing), F_last the free energy of the returned state.
    """
    init, freeze, solve, energy, balance, accept, restore = ops

    @numba.njit
    def frozen_implicit(model, xi, rho, t, t_stop, max_steps, ctl):
        f_old, scale = init(model, rho)
        dt_max = ctl.dt_max
        dt = dt_max if ctl.dt_init <= 0.0 else min(ctl.dt_init, dt_max)
        steps = 0
        rejected = 0
        if not math.isfinite(f_old):
            return t, steps, rejected, NONFINITE, dt, f_old
        while t < t_stop:
            if steps >= max_steps:
                return t, steps, rejected, MAX_STEPS, dt, f_old
            freeze(model)
            retried = False
            while True:
                land = dt >= t_stop - t
                step = t_stop - t if land else dt
                c = 2.0 * xi_at(xi.kind, xi.params, t + 0.5 * step)
                ok = solve(model, rho, step, c)
                f_new = math.nan
                scale_new = scale
                if ok:  # (a): the values of F
                    f_new, scale_new = energy(model)
                    ok = f_new <= f_old + F_REL_TOL * max(abs(f_old), scale)
                if ok and not f_old - f_new > ctl.band * max(abs(f_old), scale):
                    # (b): the exact balance, where the values of F cannot resolve the change
                    ok, quad, dis, breg = balance(model, rho, step, c)
                    ok = ok and quad <= dis + breg + 1e-24 * scale
                if ok:
                    break
                rejected += 1
                retried = True
                dt = 0.5 * step
                if dt <= 1e-15 * max(abs(t), 1.0):
                    restore(model, rho)  # leave the potential consistent with the state
                    return t, steps, rejected, DT_UNDERFLOW, dt, f_old
            accept(model, rho)
            f_old = f_new
            scale = scale_new
            steps += 1
            if land:
                t = t_stop
            else:
                t += step
                dt = step if retried else min(GROWTH * step, dt_max)
        return t, steps, rejected, REACHED, dt, f_old

    return frozen_implicit


def steady_rates(f_prev: float, f_now: float, prev: np.ndarray, now: np.ndarray,
                 span: float) -> tuple[float, float]:
    """The steady-state test, written once (library loop below and the runner's ``--steady``
    tracker): the relative energy decrease per unit time (F_prev − F)/(Δt max(|F|, 1e-300)) and
    the relative L1 change of the state per unit time ‖ρ − ρ_prev‖₁/(Δt ‖ρ‖₁)."""
    rate = (f_prev - f_now) / (span * max(abs(f_now), 1e-300))
    rho_rate = float(np.sum(np.abs(now - prev))) / (span * float(np.sum(np.abs(now))))
    return rate, rho_rate


def is_steady(rate: float | None, rho_rate: float | None, tol: float,
              tol_rho: float | None) -> bool:
    """Both rates of :func:`steady_rates` within their tolerances (``tol_rho`` None: F only)."""
    if rate is None or abs(rate) > tol:
        return False
    return tol_rho is None or (rho_rate is not None and rho_rate <= tol_rho)


@dataclass
class SteadyState:
    """Result of :func:`steady_state_loop`.

    density: the final state; t: time reached; rate: relative free-energy decrease per unit time
    over the last chunk and rho_rate: the relative L1 change per unit time (:func:`steady_rates`);
    converged: both criteria met; steps / rejected: totals; status: last status code of the
    driver; free_energy: F of the final state.
    """

    density: np.ndarray
    t: float
    rate: float
    rho_rate: float
    converged: bool
    steps: int
    rejected: int
    status: int
    free_energy: float


def steady_state_loop(advance: Callable[..., tuple], rho: np.ndarray, f_start: float, *,
                      tol: float, tol_rho: float | None, t_chunk: float, t_max: float,
                      dt_init: float) -> SteadyState:
    """Run ``advance(rho, t, t_stop, dt_init) -> (t, steps, rejected, status, dt_next, F)`` on
    ``rho`` in place, in chunks of length ``t_chunk`` from t = 0, until the relative free-energy
    decrease per unit time is <= ``tol`` (and, if given, the relative L1 rate of change
    ‖Δρ‖₁/(Δt ‖ρ‖₁) <= ``tol_rho``; :func:`steady_rates`), or until ``t_max``.  ``f_start`` = F(ρ).

    The free-energy criterion cannot resolve F − F* below the round-off of F (≈ 1e-16 |F|);
    since β⁻¹ KL(ρ‖ρ*) <= F − F* and ‖ρ − ρ*‖₁ <= sqrt(2 KL), it certifies ρ to about
    sqrt(β · 1e-16) in L1 at best — use ``tol_rho`` to demand more.
    """
    dt = dt_init
    t = 0.0
    steps = rejected = 0
    f_prev = f_start
    rate = rho_rate = math.inf
    status = REACHED
    f_now = f_prev
    while t < t_max:
        prev = rho.copy()
        t_stop = min(t + t_chunk, t_max)
        t_new, s, rej, status, dt, f_now = advance(rho, t, t_stop, dt)
        steps += s
        rejected += rej
        span = t_new - t
        t = t_new
        if status != REACHED or span <= 0.0:
            break
        rate, rho_rate = steady_rates(f_prev, f_now, prev, rho, span)
        f_prev = f_now
        if is_steady(rate, rho_rate, tol, tol_rho):
            return SteadyState(rho, t, rate, rho_rate, True, steps, rejected, status, f_now)
    return SteadyState(rho, t, rate, rho_rate, False, steps, rejected, status, f_now)

"""SSP-RK3 time stepping of the 1-D transport equation with a low-rank potential.

    ∂_t ρ = −∂_r(ρ u),  u = −2 ξ(t) ∂_r Ψ(r; ρ),  Ψ = V + Σ_k λ_k f_k m_k(ρ)

Shu–Osher SSP-RK3:  ρ¹ = ρ + dt L(ρ, t);  ρ² = ¾ρ + ¼(ρ¹ + dt L(ρ¹, t + dt));
ρ^{n+1} = ⅓ρ + ⅔(ρ² + dt L(ρ², t + dt/2)).  Each stage is a convex combination of forward-Euler
steps, so ρ stays >= 0 when every stage satisfies dt max|u| <= h/2.  dt = cfl h / max|u| from the
first stage; a step whose later stages exceed h/2 (or that produces a negative or non-finite value)
is rejected and retried with dt/2.  The loop runs inside Numba until ``t_stop`` (landed on exactly)
or ``max_steps``.
"""

from __future__ import annotations

import math

import numba

from .lowrank import potential
from .transport import transport_rhs
from .xi import xi_at

REACHED, MAX_STEPS, NONFINITE, DT_UNDERFLOW = 0, 1, 2, 3
STATUS_TEXT = {
    REACHED: "reached the stop time",
    MAX_STEPS: "step budget of this call used",
    NONFINITE: "non-finite value in the state",
    DT_UNDERFLOW: "time step underflow",
}


@numba.njit(cache=True)
def rhs(rho, t, h, v, feats, lam, kind, params, theta, psi, moments, out):
    """out = L(ρ, t) = −∂_r(ρ u) discretised; returns max|u| (nan if Ψ is not finite)."""
    potential(rho, h, v, feats, lam, psi, moments)
    xi = xi_at(kind, params, t)
    return transport_rhs(rho, psi, h, 2.0 * xi, theta, out)


@numba.njit(cache=True)
def advance(rho, t, t_stop, max_steps, h, v, feats, lam, kind, params, cfl, theta,
            w1, w2, l0, l1, psi, moments):
    """Advance ``rho`` in place from ``t`` towards ``t_stop``.

    Returns (t, steps, rejected, status, dt_last, umax_last); work arrays w1, w2, l0, l1, psi
    (length n) and moments (length K) are overwritten.
    """
    n = rho.shape[0]
    steps = 0
    rejected = 0
    dt = 0.0
    umax = 0.0
    while t < t_stop:
        if steps >= max_steps:
            return t, steps, rejected, MAX_STEPS, dt, umax
        umax = rhs(rho, t, h, v, feats, lam, kind, params, theta, psi, moments, l0)
        if not math.isfinite(umax):
            return t, steps, rejected, NONFINITE, dt, umax
        dt = cfl * h / umax if umax > 0.0 else t_stop - t
        while True:
            land = dt >= t_stop - t
            if land:
                dt = t_stop - t
            for i in range(n):
                w1[i] = rho[i] + dt * l0[i]
            u1 = rhs(w1, t + dt, h, v, feats, lam, kind, params, theta, psi, moments, l1)
            for i in range(n):
                w2[i] = 0.75 * rho[i] + 0.25 * (w1[i] + dt * l1[i])
            u2 = rhs(w2, t + 0.5 * dt, h, v, feats, lam, kind, params, theta, psi, moments, l1)
            ok = math.isfinite(u1) and math.isfinite(u2)
            ok = ok and dt * max(u1, u2) <= 0.5 * h
            if ok:
                for i in range(n):
                    x = (rho[i] + 2.0 * (w2[i] + dt * l1[i])) / 3.0
                    if not (x >= 0.0):  # negative or nan
                        ok = False
                        break
                    w1[i] = x
            if ok:
                break
            rejected += 1
            dt *= 0.5
            if dt <= 1e-15 * max(abs(t), 1.0):
                return t, steps, rejected, DT_UNDERFLOW, dt, umax
        for i in range(n):
            rho[i] = w1[i]
        t = t_stop if land else t + dt
        steps += 1
    return t, steps, rejected, REACHED, dt, umax

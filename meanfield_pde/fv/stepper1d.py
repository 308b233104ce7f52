"""SSP-RK3 time stepping of the 1-D transport equation with a low-rank potential.

    ∂_t ρ = −∂_r(ρ u),  u = −2 ξ(t) ∂_r Ψ(r; ρ),  Ψ = V + Σ_k λ_k f_k m_k(ρ)

Shu–Osher SSP-RK3:  ρ¹ = ρ + dt L(ρ, t);  ρ² = ¾ρ + ¼(ρ¹ + dt L(ρ¹, t + dt));
ρ^{n+1} = ⅓ρ + ⅔(ρ² + dt L(ρ², t + dt/2)).  Each stage is a convex combination of forward-Euler
steps, so ρ stays >= 0 when every stage satisfies dt max|u| <= h/2.  dt = cfl h / max|u| from the
first stage; a step whose later stages exceed h/2 (or that produces a negative or non-finite value)
is rejected and retried with dt/2.  The loop is the generic driver of :mod:`.rk`; it runs
inside Numba until ``t_stop`` (landed on exactly) or ``max_steps``.
"""

from __future__ import annotations

import numba

from .lowrank import potential
from .rk import (
    DT_UNDERFLOW,
    MAX_STEPS,
    NONFINITE,
    REACHED,
    STATUS_TEXT,
    RK3Control,
    make_ssp_rk3,
    stage,
)
from .transport import transport_rhs
from .xi import xi_at

__all__ = ["DT_UNDERFLOW", "MAX_STEPS", "NONFINITE", "REACHED", "STATUS_TEXT", "rhs", "advance"]


@numba.njit(cache=True)
def rhs(rho, t, h, kern, xi, theta, psi, moments, out):
    """out = L(ρ, t) = −∂_r(ρ u) discretised; returns max|u| (nan if Ψ is not finite).

    ``kern`` is a :class:`.bundles.LowRank`, ``xi`` a :class:`.bundles.Xi`; psi (n) and moments
    (K) are overwritten with Ψ and m_k of ρ.
    """
    potential(rho, h, kern.v, kern.feats, kern.lam, psi, moments)
    c = xi_at(xi.kind, xi.params, t)
    return transport_rhs(rho, psi, h, 2.0 * c, theta, out)


@numba.njit(cache=True)
def _model_rhs(model, rho, t, out):
    h, kern, xi, theta, psi, moments = model
    return rhs(rho, t, h, kern, xi, theta, psi, moments, out)


_ssp_rk3 = make_ssp_rk3(_model_rhs, stage)


@numba.njit(cache=True)
def advance(rho, t, t_stop, max_steps, h, kern, xi, cfl, theta, work):
    """Advance ``rho`` in place from ``t`` towards ``t_stop``.

    ``work`` = (w1, w2, l0, l1, psi, moments): length-n arrays and one of length K, overwritten.
    Returns (t, steps, rejected, status, dt_last, umax_last).
    """
    w1, w2, l0, l1, psi, moments = work
    ctl = RK3Control(cfl, h, 0.5 * h, False)
    return _ssp_rk3((h, kern, xi, theta, psi, moments), rho, t, t_stop, max_steps, ctl,
                    (w1, w2, l0, l1))

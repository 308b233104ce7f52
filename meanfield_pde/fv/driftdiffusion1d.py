"""Scharfetter–Gummel finite volumes for the noisy radial mean-field equation (MATH.md §2, §4).

Density ρ of r on the uniform cell-centred grid r_i = (i + ½) h, i = 0..n−1, of [0, r_max], with
no-flux walls at r = 0 and r = r_max:

    ∂_t ρ = 2ξ(t) ∂_r [ ρ ∂_r( Ψ(r; ρ) + λ r²/2 + β⁻¹ log(ρ / r^m) ) ],
    Ψ = V + Σ_k λ_k f_k m_k(ρ),   m_k = h Σ_i f_k(r_i) ρ_i                    (:mod:`.lowrank`),

with a real weight exponent m >= 0 (m = d − 1 for the radial problem; m = 0 is plain 1-D
diffusion).  Written as a drift–diffusion equation with diffusion coefficient 1/β in the effective
potential (cell centres are > 0, so the log is finite)

    Φ_i = Ψ_i + λ r_i²/2 − (m/β) log r_i,

the Scharfetter–Gummel (exponentially fitted) flux with c = 2ξ and B(x) = x / (eˣ − 1) is

    F_{i+1/2} = (c/(β h)) [ B(β ΔΦ) ρ_i − B(−β ΔΦ) ρ_{i+1} ],   ΔΦ = Φ_{i+1} − Φ_i,
    F_{1/2} = F_{n+1/2} = 0,   dρ_i/dt = −(F_{i+1/2} − F_{i−1/2})/h.

Properties (checked in tests/test_driftdiffusion1d.py):

* mass is conserved (the fluxes telescope);
* B(x)/B(−x) = e^{−x}, so the discrete Gibbs state ρ_i ∝ exp(−β Φ_i) has F_{i+1/2} = 0 at every
  face (for the Ψ it is computed with);
* with μ_i = Φ_i + β⁻¹ log ρ_i, F_{i+1/2} = −(c/(βh)) B(βΔΦ) e^{−βΦ_i} (e^{βμ_{i+1}} − e^{βμ_i}),
  hence the semi-discrete dissipation  h Σ_i μ_i dρ_i/dt = Σ_faces F (μ_{i+1} − μ_i) <= 0;
* forward Euler keeps ρ >= 0 when dt · rate <= 1 with the rate returned by :func:`sg_flux_rhs`,
  rate = max_i (c/(βh²)) (B(βΔΦ_{i+1/2}) + B(−βΔΦ_{i−1/2})) (= 4ξ/(βh²) for flat Φ: the
  parabolic limit dt <= h²β/(4ξ)).

Discrete free energy (the Lyapunov functional of the scheme; ½R is :func:`.lowrank.risk` / 2)

    F(ρ) = ½ R(ρ) + (λ/2) h Σ_i r_i² ρ_i + β⁻¹ h Σ_i ρ_i log(ρ_i / r_i^m),
    R(ρ) = R# + 2h Σ_i V_i ρ_i + Σ_k λ_k m_k²,     (0 log 0 = 0)
    δF/δρ_i = h (Ψ_i + λ r_i²/2 + β⁻¹ (log(ρ_i / r_i^m) + 1)).

Time stepping (:func:`advance_noisy`): the frozen-interaction semi-implicit (linearly implicit
Euler) step — Φ evaluated at ρⁿ, ξ at the midpoint of the step —

    (ρⁿ⁺¹_i − ρⁿ_i)/dt = −(F_{i+1/2}(ρⁿ⁺¹; Φⁿ) − F_{i−1/2}(ρⁿ⁺¹; Φⁿ))/h,

a tridiagonal system whose matrix I + dt A is an M-matrix with unit column sums (every column of
A sums to zero).  Hence ρⁿ⁺¹ >= 0 for every dt and Σ ρⁿ⁺¹ = Σ ρⁿ up to round-off; the Thomas
elimination below is written so that every operation adds non-negative numbers (no cancellation,
exact positivity in floating point).  There is no parabolic time-step limit.  Its fixed points
are exactly the discrete self-consistent Gibbs states (zero flux at every face), whatever dt.

With Ψ frozen the step is a Markov operator that preserves the frozen Gibbs state, so the frozen
free energy h Σ ρ (Φⁿ + β⁻¹ log ρ) does not increase; the true F differs from it by
+½ Σ_k λ_k (m_k(ρⁿ⁺¹) − m_k(ρⁿ))² = O(dt²) (U is positive semidefinite), so F decreases for small
enough dt.  The adaptive loop enforces it: a step is accepted only if F(ρⁿ⁺¹) <= F(ρⁿ) + tolerance
(checked on the values of F and, to relative precision, on the exact balance of
:func:`step_energy_balance`), otherwise dt is halved and the step retried.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .bundles import Grid1, LowRank, Noise, StepSizes, Xi
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
from .semi_implicit import (
    F_REL_TOL,
    GROWTH,
    SemiImplicitControl,
    SemiImplicitOps,
    SteadyState,
    make_frozen_implicit,
    steady_state_loop,
)
from .xi import xi_at

__all__ = [
    "DT_UNDERFLOW", "MAX_STEPS", "NONFINITE", "REACHED", "STATUS_TEXT", "F_REL_TOL", "GROWTH",
    "bernoulli", "sg_flux_rhs", "effective_potential", "free_energy", "semi_implicit_step",
    "noisy_workspace", "step_energy_balance", "advance_noisy", "advance_noisy_rk3",
    "SteadyState", "steady_state", "sg_flux_numpy",
]



# ----------------------------------------------------------------------------------------------
# pointwise pieces


@numba.njit(cache=True)
def bernoulli(x: float) -> float:
    """B(x) = x / (eˣ − 1), B(0) = 1, for all real x without overflow or cancellation.

    |x| < 1e-5: the series 1 − x/2 + x²/12 (truncation error x⁴/720 < 1e-23); otherwise
    x / expm1(x), accurate to a few ulp (expm1 has no cancellation).  For x > 709.78 expm1
    overflows to inf and B = 0 (its true value x e^{−x} underflows); for x → −∞, B(x) → |x|.
    """
    if abs(x) < 1e-5:
        return 1.0 - 0.5 * x + x * x / 12.0
    return x / math.expm1(x)


@numba.njit(cache=True)
def effective_potential(psi, r, lam, beta, m, out):
    """out_i = Φ_i = Ψ_i + λ r_i²/2 − (m/β) log r_i (cell centres r_i > 0; m = 0 skips the log)."""
    n = psi.shape[0]
    if m == 0.0:
        for i in range(n):
            out[i] = psi[i] + 0.5 * lam * r[i] * r[i]
    else:
        mb = m / beta
        for i in range(n):
            out[i] = psi[i] + 0.5 * lam * r[i] * r[i] - mb * math.log(r[i])


@numba.njit(cache=True)
def sg_flux_rhs(rho, phi, h, c, beta, out):
    """out_i = dρ_i/dt = −(F_{i+1/2} − F_{i−1/2})/h with the Scharfetter–Gummel flux (module doc).

    Returns the explicit rate max_i (c/(βh²)) (B(βΔΦ_{i+1/2}) + B(−βΔΦ_{i−1/2})): forward Euler
    with dt · rate <= 1 keeps ρ >= 0.  A non-finite Φ or ρ makes the rate nan.
    """
    n = rho.shape[0]
    a = c / (beta * h)
    inv_h = 1.0 / h
    coef = a * inv_h
    rate = 0.0
    flux_left = 0.0
    bm_left = 0.0  # B(−βΔΦ_{i−1/2}) (0 at the wall)
    for i in range(n - 1):
        x = beta * (phi[i + 1] - phi[i])
        bp = bernoulli(x)
        bm = bernoulli(-x)
        f = a * (bp * rho[i] - bm * rho[i + 1])
        out[i] = -(f - flux_left) * inv_h
        d = coef * (bp + bm_left) + 0.0 * rho[i]  # nan in ρ_i propagates to the rate
        if not d <= rate:
            rate = d
        flux_left = f
        bm_left = bm
    out[n - 1] = flux_left * inv_h
    d = coef * bm_left + 0.0 * rho[n - 1]
    if not d <= rate:
        rate = d
    return rate


def sg_flux_numpy(rho: np.ndarray, phi: np.ndarray, h: float, c: float,
                  beta: float) -> np.ndarray:
    """The n − 1 interior face fluxes F_{i+1/2} in plain numpy (reference for tests)."""
    x = beta * np.diff(phi)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        bp = np.where(np.abs(x) < 1e-5, 1.0 - 0.5 * x + x * x / 12.0, x / np.expm1(x))
        bm = np.where(np.abs(x) < 1e-5, 1.0 + 0.5 * x + x * x / 12.0, -x / np.expm1(-x))
    return (c / (beta * h)) * (bp * rho[:-1] - bm * rho[1:])


# ----------------------------------------------------------------------------------------------
# free energy


@numba.njit(cache=True)
def _potential(rho, h, v, feats, lam_k, psi, moments):
    """Ψ and the moments (:func:`.lowrank.potential`), also for K = 0 (Ψ = V)."""
    if feats.shape[0] == 0:
        for i in range(rho.shape[0]):
            psi[i] = v[i]
    else:
        potential(rho, h, v, feats, lam_k, psi, moments)


@numba.njit(cache=True)
def _neumaier(s, comp, term):
    """One step of Neumaier's compensated sum: (s + term, compensation + its rounding error)."""
    y = s + term
    if abs(s) >= abs(term):
        comp += (s - y) + term
    else:
        comp += (term - y) + s
    return y, comp


@numba.njit(cache=True)
def _interaction_sum(s, w, m):
    """Neumaier sum of s + Σ_q w_q m_q²/2 (the interaction energy of the moments m, started at
    s = R#/2): (sum, compensation, Σ|terms|), the 1-D and 3-D free energies' first part."""
    comp = 0.0
    scale = abs(s)
    for q in range(m.shape[0]):
        term = 0.5 * w[q] * m[q] * m[q]
        s, comp = _neumaier(s, comp, term)
        scale += abs(term)
    return s, comp, scale


@numba.njit(cache=True)
def _free_energy_parts(rho, h, v, half_lr2, log_w, moments, lam_k, r_sharp, beta):
    """(F, |F|-scale) from the moments of ρ; compensated (Neumaier) summation.

    half_lr2_i = λ r_i²/2, log_w_i = m log r_i.  The scale is the sum of the absolute values of
    all terms, the natural unit of the round-off in F.  nan if some ρ_i < 0 or is nan.
    """
    inv_beta = 1.0 / beta
    s, comp, scale = _interaction_sum(0.5 * r_sharp, lam_k, moments)
    for i in range(rho.shape[0]):
        p = rho[i]
        if p > 0.0:
            term = h * p * (v[i] + half_lr2[i] + inv_beta * (math.log(p) - log_w[i]))
        elif p == 0.0:
            term = 0.0
        else:  # negative or nan
            return math.nan, math.nan
        s, comp = _neumaier(s, comp, term)
        scale += abs(term)
    return s + comp, scale


@numba.njit(cache=True)
def _geometry(r, lam, m, half_lr2, log_w):
    for i in range(r.shape[0]):
        half_lr2[i] = 0.5 * lam * r[i] * r[i]
        log_w[i] = m * math.log(r[i]) if m != 0.0 else 0.0


@numba.njit(cache=True)
def free_energy(rho, h, r, v, feats, lam_k, r_sharp, lam, beta, m):
    """F(ρ) = ½R(ρ) + (λ/2) h Σ r_i² ρ_i + β⁻¹ h Σ ρ_i log(ρ_i/r_i^m)  (module doc; 0 log 0 = 0).

    Compensated summation: the round-off is a few ulp of Σ|terms|.  nan if some ρ_i < 0.
    """
    n = rho.shape[0]
    psi = np.empty(n)
    moments = np.empty(feats.shape[0])
    half_lr2 = np.empty(n)
    log_w = np.empty(n)
    _geometry(r, lam, m, half_lr2, log_w)
    _potential(rho, h, v, feats, lam_k, psi, moments)
    return _free_energy_parts(rho, h, v, half_lr2, log_w, moments, lam_k, r_sharp, beta)[0]


# ----------------------------------------------------------------------------------------------
# the semi-implicit step


@numba.njit(cache=True)
def _face_bernoulli(phi, beta, bp, bm):
    """bp_i = B(βΔΦ_{i+1/2}), bm_i = B(−βΔΦ_{i+1/2}) for the n − 1 interior faces."""
    for i in range(phi.shape[0] - 1):
        x = beta * (phi[i + 1] - phi[i])
        bp[i] = bernoulli(x)
        bm[i] = bernoulli(-x)


@numba.njit(cache=True)
def _solve_implicit(rho, kappa, bp, bm, piv, out):
    """Solve (I + dt A) out = rho for the SG operator, κ = dt c/(βh²) (Thomas, no cancellation).

    Row i:  −κ bp_{i−1} x_{i−1} + (1 + κ bp_i + κ bm_{i−1}) x_i − κ bm_i x_{i+1} = ρ_i
    (bp_{−1} = bm_{−1} = bp_{n−1} = bm_{n−1} = 0).  Pivots p_i = q_i + κ bp_i with
    q_0 = 1, q_i = 1 + κ bm_{i−1} q_{i−1}/p_{i−1} (the usual pivot
    p_i = d_i − κ² bp_{i−1} bm_{i−1}/p_{i−1} rewritten with positive terms only); forward values
    y_i = (ρ_i + κ bp_{i−1} y_{i−1})/p_i, back substitution x_i = y_i + (κ bm_i/p_i) x_{i+1}.
    All terms are >= 0 when ρ >= 0.
    """
    n = rho.shape[0]
    q = 1.0
    p = q + (kappa * bp[0] if n > 1 else 0.0)
    piv[0] = p
    y = rho[0] / p
    out[0] = y
    for i in range(1, n):
        q = 1.0 + kappa * bm[i - 1] * (q / p)
        p = q + (kappa * bp[i] if i < n - 1 else 0.0)
        piv[i] = p
        y = (rho[i] + kappa * bp[i - 1] * y) / p
        out[i] = y
    for i in range(n - 2, -1, -1):
        out[i] += (kappa * bm[i] / piv[i]) * out[i + 1]


@numba.njit(cache=True)
def semi_implicit_step(rho, phi, h, c, beta, dt, out, bp, bm, piv):
    """out = ρⁿ⁺¹ of one linearly implicit SG step with the frozen potential Φ (module doc).

    c = 2ξ; bp, bm, piv are work arrays of length n.  out >= 0 and Σ out = Σ ρ for any dt > 0.
    """
    _face_bernoulli(phi, beta, bp, bm)
    _solve_implicit(rho, dt * c / (beta * h * h), bp, bm, piv, out)


def noisy_workspace(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Work arrays of :func:`advance_noisy` and :func:`advance_noisy_rk3`: ((10, n), (1, k))."""
    return np.empty((10, n)), np.empty((1, max(k, 0)))


@numba.njit(cache=True)
def _excess_series(u):
    """(1 + u) log(1 + u) − u >= 0 without cancellation (series Σ_{j>=2} (−u)^j / (j(j−1)))."""
    if abs(u) < 1e-2:
        acc = 0.0
        p = -u
        for j in range(2, 10):  # p = (−u)^j
            p *= -u
            acc += p / (j * (j - 1))
        return acc
    if u <= -1.0:  # ρ_i = 0: 0 log 0 − u
        return 1.0
    return (1.0 + u) * math.log1p(u) - u


@numba.njit(cache=True)
def step_energy_balance(old, new, log_new, phi, faces, h, sg, kern, diff):
    """Terms of the exact free-energy change of one frozen-interaction implicit step.

    With ρ' = ``new`` solving the step from ρ = ``old`` (Φ frozen, a = c/(βh)), μ'_i = Φ_i +
    β⁻¹ log ρ'_i, and F_fr(ρ) = h Σ ρ (Φ + β⁻¹ log ρ) the frozen free energy (convex):

        F(ρ') − F(ρ) = ½ Σ_k λ_k (m_k(ρ') − m_k(ρ))²  −  dt D(ρ')  −  Breg(ρ, ρ'),
        D(ρ')        = −Σ_faces F_{i+1/2}(ρ') (μ'_{i+1} − μ'_i) >= 0,
        Breg(ρ, ρ')  = β⁻¹ h Σ_i [ρ_i log(ρ_i/ρ'_i) − ρ_i + ρ'_i] >= 0,

    (convexity of F_fr at ρ' plus ⟨∇F_fr(ρ'), ρ − ρ'⟩ = dt D(ρ') from the step equation, and the
    quadratic interaction term of MATH.md).  Every term is a sum of non-negative products computed
    without cancellation (F = −a B(βΔΦ) ρ_i expm1(βΔμ'), (1+u)log(1+u) − u by its series), so the
    balance is resolved to relative precision even when the change is far below the round-off of
    F itself.  ``log_new`` = log ρ'; faces = (bp, bm), the Bernoulli factors of Φ; sg = (a, dt, β);
    ``kern`` a :class:`.bundles.LowRank` (its feats and λ_k); ``diff`` is a work array.  Returns
    (quad, dt·D, Breg).  Cells with ρ' = 0 are skipped (a lower bound on D and Breg:
    conservative).
    """
    bp, bm = faces
    a, dt, beta = sg
    feats, lam_k = kern.feats, kern.lam
    n = old.shape[0]
    inv_beta = 1.0 / beta
    for i in range(n):
        diff[i] = new[i] - old[i]
    quad = 0.0
    if feats.shape[0] > 0:
        dm = np.dot(feats, diff)
        for k in range(dm.shape[0]):
            quad += 0.5 * lam_k[k] * (h * dm[k]) ** 2
    dis = 0.0
    for i in range(n - 1):
        if new[i] > 0.0 and new[i + 1] > 0.0:
            x = beta * (phi[i + 1] - phi[i])
            bdm = x + (log_new[i + 1] - log_new[i])  # β Δμ'
            if x <= 0.0:
                dis += a * bp[i] * new[i] * math.expm1(bdm) * bdm
            else:
                dis -= a * bm[i] * new[i + 1] * math.expm1(-bdm) * bdm
    breg = 0.0
    for i in range(n):
        if new[i] > 0.0:
            breg += new[i] * _excess_series(-diff[i] / new[i])
    return quad, dt * dis * inv_beta, h * inv_beta * breg


# The semi-implicit scheme as :class:`.semi_implicit.SemiImplicitOps` on the model
# (grid, kern, noise, work, kwork); rows of ``work``: new, ψ, Φ, bp, bm, piv, λr²/2, m log r,
# log new, diff; kwork[0]: the moments.


@numba.njit(cache=True)
def _si_init(model, rho):
    grid, kern, noise, work, kwork = model
    _geometry(grid.r, noise.lam, noise.m, work[6], work[7])
    _potential(rho, grid.h, kern.v, kern.feats, kern.lam, work[1], kwork[0])
    return _free_energy_parts(rho, grid.h, kern.v, work[6], work[7], kwork[0], kern.lam,
                              noise.r_sharp, noise.beta)


@numba.njit(cache=True)
def _si_freeze(model):
    grid, kern, noise, work, kwork = model
    psi, phi, half_lr2, log_w = work[1], work[2], work[6], work[7]
    inv_beta = 1.0 / noise.beta
    for i in range(phi.shape[0]):
        phi[i] = psi[i] + half_lr2[i] - inv_beta * log_w[i]
    _face_bernoulli(phi, noise.beta, work[3], work[4])


@numba.njit(cache=True)
def _si_solve(model, rho, step, c):
    grid, kern, noise, work, kwork = model
    new = work[0]
    h, beta = grid.h, noise.beta
    _solve_implicit(rho, step * c / (beta * h * h), work[3], work[4], work[5], new)
    for i in range(new.shape[0]):
        if not (new[i] >= 0.0 and new[i] < math.inf):
            return False
    return True


@numba.njit(cache=True)
def _si_energy(model):
    grid, kern, noise, work, kwork = model
    new = work[0]
    _potential(new, grid.h, kern.v, kern.feats, kern.lam, work[1], kwork[0])
    return _free_energy_parts(new, grid.h, kern.v, work[6], work[7], kwork[0], kern.lam,
                              noise.r_sharp, noise.beta)


@numba.njit(cache=True)
def _si_balance(model, rho, step, c):
    grid, kern, noise, work, kwork = model
    new, log_new = work[0], work[8]
    for i in range(new.shape[0]):
        log_new[i] = math.log(new[i]) if new[i] > 0.0 else -math.inf
    h, beta = grid.h, noise.beta
    quad, dis, breg = step_energy_balance(rho, new, log_new, work[2], (work[3], work[4]), h,
                                          (c / (beta * h), step, beta), kern, work[9])
    return True, quad, dis, breg


@numba.njit(cache=True)
def _si_accept(model, rho):
    new = model[3][0]
    for i in range(rho.shape[0]):
        rho[i] = new[i]


@numba.njit(cache=True)
def _si_restore(model, rho):
    grid, kern, noise, work, kwork = model
    _potential(rho, grid.h, kern.v, kern.feats, kern.lam, work[1], kwork[0])


_frozen_implicit = make_frozen_implicit(SemiImplicitOps(
    _si_init, _si_freeze, _si_solve, _si_energy, _si_balance, _si_accept, _si_restore))


@numba.njit(cache=True)
def advance_noisy(rho, t, t_stop, max_steps, grid, kern, noise, xi, dt, work):
    """Advance ``rho`` in place from ``t`` to ``t_stop`` by semi-implicit SG steps (module doc).

    Step:  (ρⁿ⁺¹ − ρⁿ)/dt = −(F_{i+1/2} − F_{i−1/2})(ρⁿ⁺¹)/h  with Φ = Φ(ρⁿ) frozen and
    ξ = ξ(t + dt/2); the adaptive loop and its acceptance test (the values of F and the exact
    balance of :func:`step_energy_balance`, evaluated at every step) are those of
    :func:`.semi_implicit.make_frozen_implicit`.  Bundles: ``grid`` :class:`.bundles.Grid1`,
    ``kern`` :class:`.bundles.LowRank`, ``noise`` :class:`.bundles.Noise`, ``xi``
    :class:`.bundles.Xi`, ``dt`` :class:`.bundles.StepSizes` (dt_init <= 0: start at dt_max).

    Guarantees: ρ >= 0 and mass conserved to round-off for every dt (M-matrix with unit column
    sums); the free energy F is non-increasing at every accepted step by construction; no
    parabolic limit dt <= h²β/(4ξ).  Accuracy: first order in time (a linearly implicit Euler
    step, global error O(dt_max) on a smooth solution) and second order in h; the long-time limit
    is the discrete Gibbs fixed point exactly, whatever dt.  For a piecewise ξ the caller lands
    on its breakpoints (ξ is evaluated inside each step).

    ``work`` = :func:`noisy_workspace`.  Returns (t, steps, rejected, status, dt_next, F_last):
    dt_next is the step size to pass as dt_init to the next call (not shortened by the
    landing), F_last the free energy of the returned state.
    """
    wk, kw = work
    ctl = SemiImplicitControl(dt.dt_init, dt.dt_max, math.inf)
    return _frozen_implicit((grid, kern, noise, wk, kw), xi, rho, t, t_stop, max_steps, ctl)


# ----------------------------------------------------------------------------------------------
# explicit SSP-RK3 (reference, limited by the parabolic bound)


@numba.njit(cache=True)
def _rhs_full(model, rho, t, out):
    grid, kern, noise, xi, psi, phi, moments = model
    _potential(rho, grid.h, kern.v, kern.feats, kern.lam, psi, moments)
    effective_potential(psi, grid.r, noise.lam, noise.beta, noise.m, phi)
    return sg_flux_rhs(rho, phi, grid.h, 2.0 * xi_at(xi.kind, xi.params, t), noise.beta, out)


_ssp_rk3 = make_ssp_rk3(_rhs_full, stage)


@numba.njit(cache=True)
def advance_noisy_rk3(rho, t, t_stop, max_steps, grid, kern, noise, xi, cfl, work):
    """Explicit Shu–Osher SSP-RK3 with the SG right-hand side (Ψ re-evaluated at every stage).

    The driver of :mod:`.rk` with dt = cfl / rate(ρⁿ) and the forward-Euler positivity
    rate of :func:`sg_flux_rhs` (cfl <= 1; the parabolic bound dt <= h²β/(4ξ) for flat Φ); a
    step whose later stages exceed dt · rate <= 1, or whose result is negative or non-finite, is
    retried with dt/2.  Third order in time, mass conserved, ρ >= 0.  A reference for the
    semi-implicit scheme, not a replacement: its cost grows like n².  Bundles as in
    :func:`advance_noisy`; ``work`` = :func:`noisy_workspace`.
    Returns (t, steps, rejected, status, dt_last, rate_last).
    """
    wk, kw = work
    model = (grid, kern, noise, xi, wk[4], wk[5], kw[0])
    return _ssp_rk3(model, rho, t, t_stop, max_steps, RK3Control(cfl, 1.0, 1.0, False),
                    (wk[0], wk[1], wk[2], wk[3]))


# ----------------------------------------------------------------------------------------------
# steady state


def steady_state(rho: np.ndarray, h: float, r: np.ndarray, v: np.ndarray, feats: np.ndarray,
                 lam_k: np.ndarray, r_sharp: float, lam: float, beta: float, m: float, *,
                 kind: int = 0, params: np.ndarray | None = None, tol: float = 1e-12,
                 tol_rho: float | None = None, t_chunk: float = 1.0, t_max: float = 1e4,
                 dt_init: float = 0.0, dt_max: float | None = None,
                 max_steps: int = 10**7) -> SteadyState:
    """Run :func:`advance_noisy` (on a copy of ``rho``) in chunks of length ``t_chunk`` from t = 0
    until the relative free-energy decrease per unit time is <= ``tol`` (and, if given, the L1 rate
    of change h Σ|Δρ|/Δt <= ``tol_rho``), or until ``t_max``
    (:func:`.semi_implicit.steady_state_loop`).  dt_max defaults to t_chunk (the fixed point does
    not depend on dt, so large steps are fine for a steady state).
    """
    xi = Xi.make(kind, np.array([1.0]) if params is None else params)
    rho = np.array(rho, dtype=np.float64)
    grid, kern = Grid1.make(h, r), LowRank.make(v, feats, lam_k)
    noise = Noise.make(r_sharp, lam, beta, m)
    work = noisy_workspace(rho.shape[0], feats.shape[0])
    dmax = t_chunk if dt_max is None else dt_max

    def advance(rho, t, t_stop, dt):
        return advance_noisy(rho, t, t_stop, max_steps, grid, kern, noise, xi,
                             StepSizes.make(dt, dmax), work)

    f_start = free_energy(rho, h, r, v, feats, lam_k, r_sharp, lam, beta, m)
    return steady_state_loop(advance, rho, f_start, tol=tol, tol_rho=tol_rho,
                             t_chunk=t_chunk, t_max=t_max, dt_init=dt_init)

"""The self-consistent Gibbs state of the noisy dynamics, solved directly in moment space.

For a low-rank interaction the stationary state ρ* ∝ w exp(−β(Ψ(·; ρ*) + λ|θ|²/2)) (MATH.md §1, §2)
depends on ρ* only through the K moments m_k = vol Σ_i f_k,i ρ*_i.  On a grid of N cells of equal
volume ``vol`` (any shape, flattened), with a per-cell external potential E_i (V_i + λ|θ_i|²/2),
log weight log w_i (m log r_i for the radial density) and features f_k,i,

    ρ_μ,i = M exp(log w_i − β(E_i + Σ_k λ_k f_k,i μ_k)) / Z(μ),   Z(μ) = vol Σ_i exp(·),
    G_k(μ) = vol Σ_i f_k,i ρ_μ,i,     fixed point:  G(μ) = μ,

with total mass M (1 for a probability density).  This is the DISCRETE Gibbs state on the cell
centres, so for the radial problem it is exactly the zero-flux state of the Scharfetter–Gummel
scheme of :mod:`.fv.driftdiffusion1d`.

Newton on μ:  ∂G_k/∂μ_l = −β λ_l C_kl,  C_kl = vol Σ_i ρ_i (f_k,i − f̄_k)(f_l,i − f̄_l),
f̄ = G/M (the covariance under ρ_μ, times M), so the step δ solves (I + β C Λ) δ = G(μ) − μ.

Variational structure (why it converges and why the solution is unique).  The discrete free energy

    F(ρ) = ½R# + vol Σ_i ρ_i E_i + ½ Σ_k λ_k m_k(ρ)² + β⁻¹ vol Σ_i ρ_i (log ρ_i − log w_i)

is strictly convex on {ρ >= 0, vol Σρ = M} when every λ_k >= 0 (U positive semidefinite: the
quadratic part is convex, the entropy strictly convex), so it has exactly one minimiser, and the
minimisers are the fixed points ρ_μ with G(μ) = μ (restricted to the λ_k > 0 components; the
others do not enter ρ).  Writing ½λ_k m_k² = max_μ (λ_k μ_k m_k − ½λ_k μ_k²) and exchanging min and
max gives the concave dual

    D(μ) = ½R# + β⁻¹ M (log M − log Z(μ)) − ½ Σ_k λ_k μ_k²,   ∇D = Λ (G(μ) − μ),
    ∇²D = −Λ^{1/2} (I + β Λ^{1/2} C Λ^{1/2}) Λ^{1/2}   (negative definite),

whose maximiser is the fixed point, with D(μ*) = F(ρ*) (and D(μ) <= F(ρ) for all μ, ρ).  The Newton
step above is Newton's method for max D; it is solved in the symmetric form
(I + β Λ^{1/2} C Λ^{1/2}) y = Λ^{1/2}(G − μ), δ = Λ^{−1/2} y, whose matrix has eigenvalues >= 1.
A backtracking line search on D (Armijo, and once the predicted increase of D is below its
round-off, on the residual |G − μ|) makes the iteration globally convergent; near the solution it
takes full steps and converges quadratically.  Everything is evaluated in log space (the largest
exponent is subtracted before exponentiating), so nothing overflows.

Cost per iteration O(N K²).  The features are a dense (K, N) array; a 3-D problem with Ψ = a φ(s, r)
passes features that include the factor a_i per cell, E = V + λ|z|²/2 and log w = (d − 2) log r.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["GibbsResult", "gibbs_core", "gibbs_fixed_point", "radial_gibbs_inputs"]

_EPS = np.finfo(np.float64).eps


@dataclass
class GibbsResult:
    """Self-consistent Gibbs state.

    density: ρ* per cell (shape of the input cells); moments: m_k = vol Σ f_k ρ* (moments of the
    returned density, for every k); free_energy: F(ρ*) (module doc); iterations: Newton steps;
    residual: max_k |G_k(μ) − μ_k| over the λ_k > 0 components at the returned iterate, relative
    to the moment scale max_k vol Σ |f_k| ρ*; converged: residual <= max(tol, floor); history: the
    relative residual before each Newton step and at the end; dual: D(μ) (equals F(ρ*) at the
    fixed point); floor: the residual round-off alone leaves (:func:`residual_floor`).
    """

    density: np.ndarray
    moments: np.ndarray
    free_energy: float
    iterations: int
    residual: float
    converged: bool = True
    history: list[float] = field(default_factory=list)
    dual: float = math.nan
    floor: float = 0.0


class _Model:
    """Evaluations of ρ_μ, G, C, D for the active (λ_k > 0) features."""

    def __init__(self, ext, log_w, feats, lam, beta, vol, mass):
        self.ext, self.log_w, self.feats, self.lam = ext, log_w, feats, lam
        self.beta, self.vol, self.mass = beta, vol, mass
        self.base = log_w - beta * ext

    def evaluate(self, mu):
        """(expo, log Z, ρ, G) at μ (active components only)."""
        expo = self.base - self.beta * ((self.lam * mu) @ self.feats) if mu.size else self.base
        emax = float(np.max(expo))
        if not math.isfinite(emax):
            raise FloatingPointError("non-finite Gibbs exponent (check E, log w and features)")
        e = np.exp(expo - emax)
        s = float(np.sum(e))
        log_z = emax + math.log(self.vol * s)
        rho = e * (self.mass / (self.vol * s))
        g = self.vol * (self.feats @ rho)
        return expo, log_z, rho, g

    def dual(self, mu, log_z, r_sharp):
        m = self.mass
        return (0.5 * r_sharp + (m * (math.log(m) - log_z)) / self.beta
                - 0.5 * float(np.sum(self.lam * mu * mu)))


def _free_energy(model, rho, expo, log_z, moments, lam_all, r_sharp):
    """F(ρ) with log ρ_i = expo_i − log Z + log M taken from the exponent (no log of 0)."""
    mass, ext, log_w = model.mass, model.ext, model.log_w
    beta, vol = model.beta, model.vol
    pos = rho > 0.0
    log_rho = expo[pos] - log_z + math.log(mass)
    ent = vol * float(np.sum(rho[pos] * (log_rho - log_w[pos])))
    return (0.5 * r_sharp + vol * float(np.dot(rho, ext))
            + 0.5 * float(np.sum(lam_all * moments * moments)) + ent / beta)


def gibbs_core(ext: np.ndarray, log_w: np.ndarray, feats: np.ndarray, lam_k: np.ndarray,
               beta: float, vol: float, *, r_sharp: float = 0.0, mass: float = 1.0,
               m0: np.ndarray | None = None, tol: float = 1e-14,
               max_iter: int = 100) -> GibbsResult:
    """Solve G(μ) = μ (module doc) for cells of any shape.

    ext, log_w: per-cell arrays (any shape, same shape; log_w may be −inf where w = 0);
    feats: (K, *cells) or (K, N); lam_k: (K,) with λ_k >= 0 (ValueError otherwise: the uniqueness
    and the convergence proof need U positive semidefinite); beta > 0; vol: cell volume; mass: total
    mass vol Σ ρ; m0: initial moments (default 0, i.e. start from the Gibbs state of E alone).
    Stops when max_k |G_k − μ_k| <= tol · max_k vol Σ|f_k| ρ (λ_k > 0 components).
    """
    shape = np.shape(ext)
    ext = np.ascontiguousarray(ext, dtype=np.float64).ravel()
    log_w = np.ascontiguousarray(log_w, dtype=np.float64).ravel()
    n = ext.size
    lam_k = np.asarray(lam_k, dtype=np.float64).ravel()
    k = lam_k.size
    feats = np.ascontiguousarray(feats, dtype=np.float64).reshape(k, n)
    if log_w.size != n:
        raise ValueError("ext and log_w must have the same number of cells")
    if np.any(lam_k < 0.0) or not np.all(np.isfinite(lam_k)):
        raise ValueError("λ_k must be finite and >= 0 (positive semidefinite interaction)")
    if not (beta > 0.0 and vol > 0.0 and mass > 0.0):
        raise ValueError("beta, vol and mass must be positive")
    active = lam_k > 0.0
    model = _Model(ext, log_w, feats[active], lam_k[active], beta, vol, mass)
    mu = np.zeros(int(active.sum())) if m0 is None else np.asarray(m0, float).ravel()[active]
    sqrt_lam = np.sqrt(model.lam)

    def scaled_residual(mu, rho, g):
        res = float(np.max(np.abs(g - mu))) if mu.size else 0.0
        scale = float(np.max(vol * (np.abs(model.feats) @ rho))) if mu.size else 1.0
        return res / scale if scale > 0.0 else res

    expo, log_z, rho, g = model.evaluate(mu)
    d_val = model.dual(mu, log_z, r_sharp)
    history = [scaled_residual(mu, rho, g)]
    it = 0
    while history[-1] > tol and it < max_iter:
        # Newton direction from the symmetric system (I + β Λ^½ C Λ^½) y = Λ^½ (G − μ)
        fc = model.feats - (g / mass)[:, None]
        cov = vol * ((fc * rho) @ fc.T)
        a = np.eye(mu.size) + beta * (sqrt_lam[:, None] * cov * sqrt_lam[None, :])
        rhs = sqrt_lam * (g - mu)
        if not np.all(np.isfinite(a)):
            break  # β C overflows: the state is a point mass the iteration cannot refine
        try:
            y = np.linalg.solve(a, rhs)
        except np.linalg.LinAlgError:
            break  # numerically singular: no Newton step; report the current iterate
        delta = y / sqrt_lam
        slope = float(rhs @ y)  # ∇D·δ >= 0
        d_round = 1e3 * _EPS * (abs(d_val) + abs(log_z) * mass / beta + 1.0)
        alpha = 1.0
        while True:
            trial = mu + alpha * delta
            t_expo, t_log_z, t_rho, t_g = model.evaluate(trial)
            t_d = model.dual(trial, t_log_z, r_sharp)
            if slope * alpha > d_round:
                ok = t_d >= d_val + 1e-4 * alpha * slope
            else:  # D no longer resolves the progress: ask for a smaller residual
                ok = scaled_residual(trial, t_rho, t_g) < history[-1]
            if ok or alpha < 1e-10:
                break
            alpha *= 0.5
        it += 1
        if not ok:
            break  # no progress possible (round-off floor); report the current iterate
        mu = trial
        expo, log_z, rho, g, d_val = t_expo, t_log_z, t_rho, t_g, t_d
        history.append(scaled_residual(mu, rho, g))
    residual = history[-1]
    moments = vol * (feats @ rho)
    fe = _free_energy(model, rho, expo, log_z, moments, lam_k, r_sharp)
    floor = residual_floor(model, mu, rho)
    return GibbsResult(rho.reshape(shape), moments, fe, it, residual, residual <= max(tol, floor),
                       history, d_val, floor)


def residual_floor(model: _Model, mu: np.ndarray, rho: np.ndarray) -> float:
    """The scaled residual that round-off alone leaves (what ``tol`` can ask for at best).

    ρ_i = w_i exp(a_i)/Z with a_i = log w_i − β E_i − β Σ_k λ_k μ_k f_k(i) − max: an absolute error
    u·A_i in the exponent, A_i = |log w_i| + β|E_i| + β Σ_k |λ_k μ_k f_k(i)| + |max| + 2, is a
    relative error u·A_i of ρ_i, so G_k = vol Σ_i f_k(i) ρ_i carries about
    u vol Σ_i |f_k(i)| ρ_i (A_i + log₂ n) (the log₂ n for the sums).  Relative to the moment scale
    max_k vol Σ|f_k| ρ, with a factor 4 for the operations not counted.  A worst-case bound: for
    the gaussians defaults with λ = 0.01 it is 2.6e-13 at β = 20 (where Newton reaches 5e-16) and
    7.7e-13 at β = 200 (where Newton stalls at 1.5e-14, above the default tol = 1e-14).
    """
    if not mu.size:
        return 0.0
    pos = rho > 0.0
    expo = model.base[pos] - model.beta * ((model.lam * mu) @ model.feats[:, pos])
    amp = (np.abs(model.log_w[pos]) + model.beta * np.abs(model.ext[pos])
           + model.beta * (np.abs(model.lam * mu) @ np.abs(model.feats[:, pos]))
           + float(np.max(np.abs(expo))) + 2.0 + math.log2(rho.size))
    weighted = model.vol * (np.abs(model.feats[:, pos]) @ (rho[pos] * amp))
    scale = float(np.max(model.vol * (np.abs(model.feats) @ rho)))
    return 4.0 * _EPS * float(np.max(weighted)) / scale if scale > 0.0 else 0.0


def radial_gibbs_inputs(r: np.ndarray, v: np.ndarray, lam: float,
                        m: float) -> tuple[np.ndarray, np.ndarray]:
    """(E, log w) of the radial problem: E_i = V_i + λ r_i²/2, log w_i = m log r_i (0 if m = 0)."""
    r = np.asarray(r, dtype=np.float64)
    ext = np.asarray(v, dtype=np.float64) + 0.5 * lam * r * r
    log_w = m * np.log(r) if m != 0.0 else np.zeros_like(r)
    return ext, log_w


def gibbs_fixed_point(r: np.ndarray, h: float, v: np.ndarray, feats: np.ndarray,
                      lam_k: np.ndarray, r_sharp: float, lam: float, beta: float, m: float, *,
                      m0: np.ndarray | None = None, tol: float = 1e-14,
                      max_iter: int = 100, mass: float = 1.0) -> GibbsResult:
    """Discrete self-consistent Gibbs state of the radial equation (MATH.md §2) on cell centres r_i:

        ρ*_i = r_i^m exp(−β(V_i + Σ_k λ_k f_k(r_i) m_k + λ r_i²/2)) / Z,
        m_k = h Σ_i f_k(r_i) ρ*_i,

    normalised to h Σ ρ* = mass.  It is exactly the zero-flux state of the SG scheme of
    :mod:`.fv.driftdiffusion1d` and the minimiser of its discrete free energy (unique, since
    λ_k >= 0).  A thin wrapper of :func:`gibbs_core` (see there and the module doc).
    """
    ext, log_w = radial_gibbs_inputs(r, v, lam, m)
    return gibbs_core(ext, log_w, feats, lam_k, beta, h, r_sharp=r_sharp, mass=mass, m0=m0,
                      tol=tol, max_iter=max_iter)

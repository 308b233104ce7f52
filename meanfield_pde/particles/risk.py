"""The population risk R_N(θ) of the finite network without a test set (MATH.md §1, §5).

R_N(θ) = R# + (2/N) Σ_i V(θ_i) + (1/N²) Σ_{i,j} U(θ_i, θ_j) with
U(θ_i, θ_j) = a_i a_j Σ_s π_s E[σ(τ_s⟨w_i, g⟩) σ(τ_s⟨w_j, g⟩)]; R#, V and the data scales τ_s
with weights π_s are declared by the problem's :class:`~meanfield_pde.particles.model.ParticleModel`
(e.g. two scales τ_± = 1 ± Δ with π = ½, or the one scale τ = 1).  With the actual pairwise angles
c_ij = cos∠(w_i, w_j) and radii ρ_i = |w_i|: for a pair of neurons and a data scale τ,

    E[σ(τ⟨w_i, g⟩) σ(τ⟨w_j, g⟩)] = Σ_k c_ij^k α_k(τρ_i) α_k(τρ_j)         (Mehler)

How each pair is evaluated (:class:`PopulationRisk`):

* |c| <= 0.75: the Mehler series to the first K <= 129 with |c|^(K+1) <= 0.75^130, so that its
  tail is below 0.75^130 sqrt(U_ii U_jj) < 1e-16 sqrt(U_ii U_jj) (K from a table on |c|
  quantised upwards to 1/4096; in d = 40 most pairs need K ≈ 10–25 rather than 129);
* |c| > 0.75, piecewise-linear σ (ramp, relu): the exact closed form of E[σ(X)σ(Y)] for a
  bivariate normal (Stein's lemma for the linear parts; for the products of hinges the truncated
  bivariate moments of Rosenbaum (1961) with the bivariate normal tail of Genz (2004), accurate to
  ~1e-15 for every correlation, including |c| -> 1);
* erf: E[erf(X)erf(Y)] = (2/π) arcsin(2 Cov / sqrt((1 + 2 Var X)(1 + 2 Var Y))), every pair;
* |c| > 0.75, tanh / sigmoid / softplus: the Mehler series continued to K_near terms, K_near
  doubling (from 128, at most 4096) until the tail Σ_{k>K} α_k(t_i)² = E σ(t_i G)² − Σ_{k<=K}
  α_k(t_i)² is below 1e-13 of the largest diagonal for every neuron (the analytic σ's coefficients
  decay like exp(−(pole/t) sqrt(2k)), so this converges even at c = 1); the bound is reported as
  :attr:`PopulationRisk.truncation_error`;
* i = j: the exact diagonal E σ(tG)² (closed form for piecewise-linear σ and erf, graded composite
  Gauss–Legendre quadrature otherwise).

Cost O(N² (d + K̄)) per evaluation, K̄ the mean series length, in one serial Numba pass over the
pairs i < j for all data scales at once (:func:`~meanfield_pde.particles.mehler._pair_sums`: the
inner products row by row, no stored Gram matrix; no thread pool, so neither the value nor the time
depends on how many threads the machine can spare).  :meth:`PopulationRisk.reference` keeps the
previous evaluation (BLAS Gram matrix, every far pair to k = 129, a parallel pass per scale) as a
check; the two agree to round-off.
"""

from __future__ import annotations

import time

import numpy as np

from ..config import Config
from ..errors import ConfigError, DataError
from .activation_codes import ACT_ERF, ACT_PL, encode_activation
from .gaussian_integrals import _pl_diag, _smooth_diag
from .mehler import (
    _K_RES,
    _K_TAB,
    C_SWITCH,
    K_FAR,
    K_NEAR_MAX,
    K_NEAR_START,
    NEAR_TOL,
    GramInput,
    PairInput,
    SeriesRule,
    _pair_row,
    _pair_rows,
    _pair_sums,
)
from .model import ParticleModel, particle_model


class PopulationRisk:
    """R_N(θ) of the finite network without a test set (module docstring, MATH.md §1, §5).

    ``risk(theta)`` for theta (N, D) as in :class:`~meanfield_pde.particles.sgd.SGDState`.
    After each call, :attr:`truncation_error` bounds the neglected Mehler tails (absolute, on
    R_N; 0 for exact closed forms) and :attr:`k_near` is the number of terms used for near pairs
    (smooth σ).
    """

    def __init__(self, cfg: Config) -> None:
        self.model: ParticleModel = particle_model(cfg.problem)(cfg)
        self.d = self.model.d
        self.sigma = self.model.sigma
        self.mode, self.p = encode_activation(self.sigma)
        self.scales, self.scale_weights = self.model.scales()
        self.r_sharp = float(self.model.r_sharp())
        self.truncation_error = 0.0
        self.k_near = K_FAR
        self.seconds = 0.0

    # ------------------------------------------------------------------ pieces
    def _split(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        outer = self.model.train_outer_weight
        if theta.ndim != 2 or theta.shape[1] != self.d + outer:
            raise DataError(f"theta must have shape (N, {self.d + outer}), got {theta.shape}")
        if not np.all(np.isfinite(theta)):
            raise DataError("theta contains non-finite values (the SGD run diverged?)")
        if outer:
            return theta[:, 0].copy(), np.ascontiguousarray(theta[:, 1:])
        return np.ones(theta.shape[0]), theta

    def _diag(self, t: np.ndarray) -> np.ndarray:
        """E σ(tG)², exact."""
        if self.mode == ACT_PL:
            return _pl_diag(self.p, np.ascontiguousarray(t, dtype=np.float64),
                            float(self.sigma.value(0.0)) ** 2)
        if self.mode == ACT_ERF:
            return 2.0 / np.pi * np.arcsin(2.0 * t * t / (1.0 + 2.0 * t * t))
        return _smooth_diag(self.sigma, t)

    def _tables(self, t: np.ndarray, diag: np.ndarray) -> tuple[np.ndarray, int, float]:
        """(alpha (K+1, N), k_near, tail bound) for the scaled radii t."""
        if self.mode == ACT_ERF:
            return np.zeros((1, t.size)), 0, 0.0
        if self.mode == ACT_PL:
            return np.ascontiguousarray(self.sigma.hermite(t, K_FAR)), K_FAR, 0.0
        scale = max(float(np.max(diag)), 1e-300) if diag.size else 1.0
        k = K_NEAR_START
        while True:
            alpha = np.ascontiguousarray(self.sigma.hermite(t, k))
            tail = float(np.max(diag - np.sum(alpha * alpha, axis=0))) if t.size else 0.0
            if tail <= NEAR_TOL * scale or k >= K_NEAR_MAX:
                return alpha, k, max(tail, 0.0)
            k *= 2

    def _rule(self, alpha: np.ndarray, k_near: int) -> SeriesRule:
        return SeriesRule(self.mode, self.p, _K_TAB, _K_RES, min(K_FAR, alpha.shape[0] - 1),
                          k_near)

    def _scale_tables(self, rad: np.ndarray, wsum: float,
                      n: int) -> tuple[list[np.ndarray], list[np.ndarray], list[int], float]:
        """Per data scale τ_s: the Hermite table α_k(τ_s ρ_i), the diagonal E σ(τ_s ρ_i G)²,
        the near-pair length; and the bound on the neglected tails, summed over the scales with
        their weights (``wsum`` = Σ|a_i|)."""
        alphas, diags, k_nears, trunc = [], [], [], 0.0
        for scale, sw in zip(self.scales, self.scale_weights, strict=True):
            t = scale * rad
            diag = self._diag(t)
            alpha, k_near, tail = self._tables(t, diag)
            alphas.append(alpha)
            diags.append(diag)
            k_nears.append(k_near)
            far = C_SWITCH ** (K_FAR + 1) * float(np.max(diag, initial=0.0))
            trunc += sw * (wsum / n) ** 2 * (tail + (far if self.mode != ACT_ERF else 0.0))
        return alphas, diags, k_nears, trunc

    def potential(self, theta: np.ndarray) -> np.ndarray:
        """V(θ_i) for every particle (MATH.md §2, §3; the problem's model)."""
        a, w = self._split(theta)
        rad = np.sqrt(np.einsum("ij,ij->i", w, w))
        return self.model.potential(a, w, rad, None)

    def pair(self, t1: float, t2: float, c: float) -> float:
        """E[σ(t1 X) σ(t2 Y)] for standard normals X, Y with correlation c, by the same rule as
        the risk (``c = 1`` with ``t1 = t2`` gives the diagonal)."""
        t = np.array([float(t1), float(t2)])
        if not (np.all(t >= 0) and np.all(np.isfinite(t)) and -1.0 <= c <= 1.0):
            raise ConfigError("pair(t1, t2, c) needs t1, t2 >= 0 and -1 <= c <= 1")
        diag = self._diag(t)
        alpha, k_near, _ = self._tables(t, diag)
        gram = np.array([[t[0] * t[0], c * t[0] * t[1]], [c * t[0] * t[1], t[1] * t[1]]])
        row = _pair_row(0, GramInput(gram, t, np.array([1.0, 0.5]), 1.0, alpha, diag),
                        self._rule(alpha, k_near))
        return float(row - diag[0])  # row = diag_0 + 2 · 0.5 · E_01

    # ------------------------------------------------------------------ the risk
    def __call__(self, theta: np.ndarray) -> float:
        """R_N(θ) = R# + (2/N) Σ V(θ_i) + (1/N²) Σ_{i,j} U(θ_i, θ_j).

        One serial :func:`_pair_sums` pass for all data scales (per-pair series lengths, no
        stored Gram matrix); V from the model, which may reuse the same Hermite tables.  Equal
        to :meth:`reference` up to round-off.
        """
        t0 = time.perf_counter()
        a, w = self._split(theta)
        n = w.shape[0]
        rad = np.sqrt(np.einsum("ij,ij->i", w, w))
        alphas, diags, k_nears, trunc = self._scale_tables(rad, float(np.sum(np.abs(a))), n)
        self.k_near = max(k_nears)
        wt = np.ascontiguousarray(w.T)
        scales = np.asarray(self.scales, dtype=np.float64)
        sums = np.empty(len(self.scales))
        groups = ([list(range(len(self.scales)))]
                  if len({al.shape for al in alphas}) == 1 and len(set(k_nears)) == 1
                  else [[s] for s in range(len(self.scales))])
        for grp in groups:  # smooth σ may need different table lengths per scale
            part = np.empty(len(grp))
            alpha = tuple(alphas[s] for s in grp)  # C-contiguous (K+1, N) tables, not copied
            inp = PairInput(wt, rad, a, np.ascontiguousarray(scales[grp]), alpha,
                            np.ascontiguousarray(np.stack([diags[s] for s in grp])))
            _pair_sums(inp, self._rule(alpha[0], k_nears[grp[0]]), part)
            sums[grp] = part
        total_u = float(sum(sw * u for sw, u in zip(self.scale_weights, sums, strict=True)))
        v = self.model.potential(a, w, rad, (alphas, diags))
        self.truncation_error = trunc
        self.seconds = time.perf_counter() - t0
        return float(self.r_sharp + 2.0 * np.sum(v) / n + total_u / (n * n))

    def reference(self, theta: np.ndarray) -> float:
        """R_N(θ) by the previous evaluation (kept as an independent check for the tests and
        the benchmarks): the Gram matrix W Wᵀ from BLAS, every far pair summed to k = K_FAR,
        one parallel :func:`_pair_rows` pass per data scale."""
        t0 = time.perf_counter()
        a, w = self._split(theta)
        n = w.shape[0]
        rad = np.sqrt(np.einsum("ij,ij->i", w, w))
        gram = np.ascontiguousarray(w @ w.T)
        alphas, diags, k_nears, trunc = self._scale_tables(rad, float(np.sum(np.abs(a))), n)
        self.k_near = k_nears[-1]
        total_u = 0.0
        out = np.empty(n)
        for s, (scale, sw) in enumerate(zip(self.scales, self.scale_weights, strict=True)):
            _pair_rows(GramInput(gram, rad, a, float(scale), alphas[s], diags[s]),
                       self._rule(alphas[s], k_nears[s]), out)
            total_u += sw * float(np.sum(out))
        v = self.model.potential(a, w, rad, (alphas, diags))
        self.truncation_error = trunc
        self.seconds = time.perf_counter() - t0
        return float(self.r_sharp + 2.0 * np.sum(v) / n + total_u / (n * n))


def population_risk(cfg: Config, theta: np.ndarray) -> float:
    """R_N(θ) of the network with parameters ``theta`` (N, D) (see :class:`PopulationRisk`)."""
    return PopulationRisk(cfg)(theta)

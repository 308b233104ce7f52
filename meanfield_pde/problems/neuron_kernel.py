"""Problem B of MATH.md §3: the reduced potential of a single neuron ``a σ(<w, x>)``.

Data ``x ~ N(0, I_d)``, ``y = f_*(<w_*, x>) + ζ`` (``Var ζ = ν²``), reduced variables
``z = (a, s, r)``, ``s = <w, w_*>``, ``r = |P_⊥ w|``.  With ``G1, Z ~ N(0, 1)`` independent,

    m_j(s, r; g) = E_Z[ σ(s g + r Z) He_j(Z) ] / sqrt(j!)            (= σ.hermite(r, j, b = s g))
    V(z)         = −a v(s, r),      v(s, r) = E[f_*(G1) m_0(s, r; G1)] = E[f_*(G1) σ(s G1 + r Z)]
    U(z, z')     = a a' Σ_j μ_2j(d−1) E_{G1}[ m_2j(s, r; G1) m_2j(s', r'; G1) ]
    Ψ(z; ρ)      = a φ(s, r),       φ = −v + Σ_q w_q F_q(s, r) M_q,  M_q = ∫ a' F_q(s', r') ρ(dz')
    R(ρ)         = R# + 2 ∫ V dρ + Σ_q w_q M_q²,                    R# = E f_*(G)² + ν²

where ``q = (j, ℓ, parity)`` runs over the retained features ``F_q`` with weights ``w_q`` of the
Gauss–Hermite rule ``(g_ℓ, ω_ℓ)`` for G1 (see below).  ``d = math.inf`` keeps only j = 0.

How each piece is computed
--------------------------
* **Features.**  ``m_2j(s, r; g)`` at the G1 nodes.  For piecewise-linear σ and erf the closed forms
  of :meth:`Activation.hermite`; for tanh / sigmoid / softplus a Gauss–Hermite rule in Z with
  ``n >= 24 + 0.75 kmax + 450 (r / pole)²`` nodes (rounded up to a level; nodes whose weight times
  the Cramér bound ``exp(z²/4)`` is below 1e-21 are dropped), vectorised as one matrix product per
  r.  Calibrated against :meth:`Activation.hermite` for t ≤ 3, |b| ≤ 15, kmax ≤ 200: error
  ≤ 2e-14 (1 + max_k |α_k|) with a margin of ≥ 1.1× in n (tests check it).
* **G1 rule and parity folding.**  The nodes of the L-point Gauss–Hermite rule come in pairs ±g.
  Since ``m_2j(s, r; −g) = m_2j(−s, r; g)``, the pair contributes
  ``2ω (E E' + O O')`` with the even / odd parts ``E, O = (m(s; g) ± m(−s; g)) / 2``; the
  features are these parts at the nodes ``g_ℓ >= 0`` with weight ``w_q = 2 μ_2j ω_ℓ`` (``μ_2j ω_ℓ``
  for the node g = 0, whose odd part vanishes).  A parity block that vanishes to rounding on the
  probe points (all even parts when σ is odd, e.g. tanh: there ``F_q = m_2j(s, r; g_ℓ)``) is not
  stored, nor are rows of negligible size (``w_q max |F_q|²`` summed over the dropped rows stays
  below ``0.05 tol`` times the largest diagonal: the far Gauss–Hermite nodes).  Exact up to that
  budget: ``Σ_q w_q F_q(z) F_q(z') = Σ_j μ_2j Σ_ℓ ω_ℓ m_2j(z; g_ℓ) m_2j(z'; g_ℓ)``.
* **Number of terms J** (as :func:`~meanfield_pde.problems.gaussians.radial_kernel`):
  ``term_j = μ_2j(d−1) max_z E_L[m_2j(z; G1)²]``, scale = the largest diagonal ``max_z U(z,z)``;
  keep j ≤ J for the smallest J with ``(J + 1) max(term_{J+1..J+4}) <= tol · scale``, doubling the
  candidate range up to ``max_terms``.  Chosen on probe points (extreme and quartile s, small,
  middle and largest r), then checked on the whole grid.
* **Number of G1 nodes L.**  On the probe points the truncated kernel matrix
  ``K_L(z, z') = Σ_{j<=J} μ_2j Σ_ℓ ω_ℓ m_2j(z; g_ℓ) m_2j(z'; g_ℓ)`` is computed for increasing L
  (16, 20, 24, 32, ..., ``max_nodes``); the first L whose matrix differs from the previous level by
  at most ``tol · scale`` is used, and that difference is reported as ``node_error`` (an
  over-estimate of the error at L for the spectral convergence seen with analytic σ).
  *Accuracy reached:* ``m_2j(s, r; ·)`` is analytic in the strip ``|Im g| < pole / |s|`` whatever r
  (tanh: pole = π/2), so Gauss–Hermite converges like ``exp(−c (pole/|s|) sqrt(L))``: for tanh and
  |s| <= 1.5 the rule meets tol = 1e-12 with L = 320, of which 46 nodes g > 0 are stored
  (measured against brute force: |ΔU| <= 3e-14 for d = 3, 10, 100, inf).  For a kinked σ the
  transition of ``m_2j(s, r; ·)`` has width ``r / |s|`` and higher j oscillate inside it: relu,
  d = 100, |s|/r <= 3 needs L = 256 (|ΔU| <= 3e-14), but with many terms (d = 10: J + 1 = 106)
  even L = 400 leaves ~3e-11; as r -> 0 the convergence is only algebraic (relu on the default
  grid: ~6e-5 at L = 400).  Such errors are reported (``nodes_converged`` / ``converged`` False).
* **Reported errors.**  ``series_error`` (J rule on the grid), ``node_error`` (L rule on the
  probe), ``drop_error`` (dropped rows) are relative to the largest diagonal;
  ``truncation_error`` is their sum (<= ~2 tol when both rules met tol, i.e. ``converged``).
* **v(s, r)** is not computed with the G1 rule.  Writing ``sG1 + rZ = ϱ Y`` with
  ``ϱ = sqrt(s² + r²)``, ``c = s / ϱ`` = corr(G1, Y):
  both activations analytic (tanh, sigmoid, softplus, erf): the Mehler series
  ``v = Σ_k c^k f̂_k α_k(ϱ)``, which converges even at |c| = 1 (r = 0) because both coefficient
  sequences decay like ``exp(−pole sqrt(2k))``; the number of terms doubles until the last 8
  terms are below 1e-16 (1 + |v|).  Otherwise (a piecewise-linear activation): one Gaussian
  variable is integrated in closed form (``f_*.hermite(r/ϱ, 0, cY)`` when f_* is piecewise linear or
  erf, else ``σ.hermite(r, 0, s G1)``) and the other by composite 20-point Gauss–Legendre on
  [−14, 14] with panels graded geometrically (ratio 2, widths up to 1) towards every kink and
  every smoothed kink (smallest panel = its width ``r/|s|`` resp. ``t/|c|``, at least 1e-7) and
  towards the nearest complex singularity of the analytic factor.  Both reach ~1e-14 for every
  r >= 0 (tests: closed forms for relu, 2-D quadrature for tanh).
* **R#** = ``v(1, 0)`` with σ = f_* (i.e. ``E f_*(G)²``, same machinery) plus ν².
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass

import numpy as np

from ..activations import Activation
from ..errors import ConfigError
from ..quadrature import gauss_hermite, sphere_moments
from .neuron_potential import _hermite_coeffs, _v_points, r_sharp

__all__ = [
    "NeuronKernel",
    "interaction_U",
    "neuron_kernel",
    "potential_V",
    "r_sharp",
]

# ----------------------------------------------------------------------------- constants

# G1 rule
_G1_LEVELS = (16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 320, 400, 512, 640, 800,
              1024)
G1_WEIGHT_FLOOR = 1e-22  # G1 nodes with omega below this are never stored (|g| > ~9.8)
J_WINDOW = 4  # terms beyond J inspected by the truncation rule (as radial_kernel)
DROP_FRACTION = 0.05  # share of tol * scale spent on dropping negligible feature rows
PARITY_ZERO = 1e-13  # a parity block below this (relative to max |m|) on the probe is exactly 0
NODE_SAFETY = 10.0  # G1 nodes are skipped on the probe's evidence only with this margin


# ----------------------------------------------------------------------------- validation


def _check_d(d: int | float) -> float:
    if isinstance(d, bool) or not isinstance(d, numbers.Real):
        raise ConfigError(f"d must be an integer >= 3 or math.inf, got {d!r}")
    if math.isinf(d) and d > 0:
        return math.inf
    if not (d >= 3 and float(d) == int(d)):
        raise ConfigError(f"d must be an integer >= 3 or math.inf, got {d!r}")
    return float(d)


def _check_positive_int(x: int, what: str) -> int:
    if isinstance(x, bool) or not isinstance(x, numbers.Integral) or x < 1:
        raise ConfigError(f"{what} must be an integer >= 1, got {x!r}")
    return int(x)


def _mu(d: float, jmax: int) -> np.ndarray:
    """μ_2j(d − 1), j = 0..jmax (``[1, 0, 0, ...]`` for d = inf)."""
    return sphere_moments(d - 1.0 if math.isfinite(d) else math.inf, jmax)


# ----------------------------------------------------------------------------- G1 rule


@functools.lru_cache(maxsize=32)
def _g1_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``g >= 0`` of the n-point Gauss–Hermite rule with folded weights.

    Returns ``(g, w)`` with ``w = 2ω`` for ``g > 0`` and ``w = ω`` for the node 0 (odd n); nodes
    with ``ω <= G1_WEIGHT_FLOOR`` are dropped.  Then for any f,
    ``Σ_ℓ ω_ℓ f(g_ℓ) = Σ_{g >= 0} w (f(g) + f(−g)) / 2`` up to the dropped nodes.
    """
    g, om = gauss_hermite(n)
    keep = (g >= 0.0) & (om > G1_WEIGHT_FLOOR)
    g, om = g[keep], om[keep]
    w = np.where(g > 0.0, 2.0 * om, om)
    g.setflags(write=False)
    w.setflags(write=False)
    return g, w


def _merge_mirror(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Representatives S of ``s ∪ −s`` (values within 1e-14 (1 + |s|) merged) and the indices of
    ``s`` and ``−s`` in S."""
    both = np.concatenate([s, -s])
    order = np.argsort(both, kind="stable")
    srt = both[order]
    new = np.ones(srt.size, dtype=bool)
    new[1:] = np.diff(srt) > 1e-14 * (1.0 + np.abs(srt[1:]))
    group = np.cumsum(new) - 1
    rep = srt[new]
    inv = np.empty(both.size, dtype=np.int64)
    inv[order] = group
    return rep, inv[: s.size], inv[s.size:]


def _node_values(sigma: Activation, s: np.ndarray, r: np.ndarray, kmax: int,
                 g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``m_2j(±s_p, r_p; g_ℓ)`` for 2j <= kmax: two arrays of shape (J+1, len(g), P)."""
    nj = kmax // 2 + 1
    fp = np.empty((nj, g.size, s.size))
    fm = np.empty((nj, g.size, s.size))
    for rv in np.unique(r):
        pts = np.flatnonzero(r == rv)
        rep, ip, im = _merge_mirror(s[pts])
        vals = _hermite_coeffs(sigma, rv, (rep[:, None] * g[None, :]).ravel(), 2 * (nj - 1), 2)
        vals = vals.reshape(nj, rep.size, g.size)
        fp[:, :, pts] = vals[:, ip, :].transpose(0, 2, 1)
        fm[:, :, pts] = vals[:, im, :].transpose(0, 2, 1)
    return fp, fm


def _diag_terms(fp: np.ndarray, fm: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``D_j(p) = Σ_ℓ ω_ℓ m_2j(z_p; g_ℓ)²`` over the full rule, shape (J+1, P)."""
    return np.einsum("l,jlp->jp", 0.5 * w, fp * fp + fm * fm)


def _series_rule(terms: np.ndarray, scale: float, tol: float,
                 jcap: int) -> tuple[int | None, float]:
    """Smallest J <= jcap with ``(J+1) max(term_{J+1..J+4}) <= tol · scale`` and that tail / scale;
    (None, tail at jcap / scale) when there is none.  ``terms`` has at least jcap + 5 entries."""
    scale = scale if scale > 0.0 else 1.0
    tails = np.array([(j + 1) * terms[j + 1:j + 1 + J_WINDOW].max() for j in range(jcap + 1)])
    ok = np.flatnonzero(tails <= tol * scale)
    if ok.size:
        return int(ok[0]), float(tails[ok[0]] / scale)
    return None, float(tails[jcap] / scale)


def _probe_indices(n: int) -> np.ndarray:
    """Indices of a few representative points of a 1-D grid of n points: both ends, the first
    three, the quartiles."""
    if n <= 8:
        return np.arange(n)
    idx = {0, 1, 2, n // 4, n // 2, (3 * n) // 4, n - 2, n - 1}
    return np.array(sorted(idx))


@dataclass
class _Rules:
    J: int
    L: int
    series_error: float
    node_error: float
    series_converged: bool
    nodes_converged: bool
    even_zero: np.ndarray  # (J+1,) bool: the even parts vanish (to rounding) for this j
    odd_zero: np.ndarray
    nodes: np.ndarray  # indices into _g1_rule(L) of the nodes that are computed


def _select_rules(sigma: Activation, d: float, s: np.ndarray, r: np.ndarray, tol: float,
                  max_terms: int, max_nodes: int, jmin: int = 0) -> _Rules:
    """Choose J (at least ``jmin``) and L on the probe points (s_p, r_p) (module docstring)."""
    levels = [n for n in _G1_LEVELS if n < max_nodes] + [max_nodes]
    finite = math.isfinite(d)
    jmin = min(jmin, max_terms - 1) if finite else 0
    # J on a moderate rule (only the size of the terms matters)
    g, w = _g1_rule(min(96, max_nodes))
    J, serr, sconv = 0, 0.0, True
    jcap = max(16, jmin)
    while finite:
        jc = min(jcap, max_terms - 1)
        fp, fm = _node_values(sigma, s, r, 2 * (jc + J_WINDOW), g)
        diag = _mu(d, jc + J_WINDOW)[:, None] * _diag_terms(fp, fm, w)
        found, serr = _series_rule(diag.max(axis=1), float(diag.sum(axis=0).max()), tol, jc)
        if found is not None:
            J = max(found, jmin)
            break
        if jc >= max_terms - 1:
            J, sconv = jc, False
            break
        jcap *= 2
    jtop = J + J_WINDOW if finite else 0
    mu = _mu(d, jtop)[: J + 1]
    # L: successive levels until the probe kernel matrix settles
    prev = None
    node_err, nconv = math.inf, False
    for n in levels:
        g, w = _g1_rule(n)
        fp, fm = _node_values(sigma, s, r, 2 * jtop, g)
        root = np.sqrt(0.5 * mu[:, None, None] * w[None, :, None])
        x = np.concatenate([(root * fp[: J + 1]).reshape(-1, s.size),
                            (root * fm[: J + 1]).reshape(-1, s.size)])
        kern = x.T @ x
        if prev is not None:
            node_err = float(np.max(np.abs(kern - prev)) / (float(np.max(np.diag(kern))) or 1.0))
            if node_err <= tol:
                nconv = True
                break
        prev = kern
    L = n
    if finite:  # the series rule again with the final G1 rule
        diag = _mu(d, jtop)[:, None] * _diag_terms(fp, fm, w)
        found, err = _series_rule(diag.max(axis=1), float(diag.sum(axis=0).max()), tol, J)
        if found is not None:
            J, serr = max(found, jmin), err
    fp, fm = fp[: J + 1], fm[: J + 1]
    big = max(float(np.max(np.abs(fp))), float(np.max(np.abs(fm))), 1e-300)
    even = np.max(np.abs(fp + fm), axis=(1, 2)) <= 2 * PARITY_ZERO * big
    odd = np.max(np.abs(fp - fm), axis=(1, 2)) <= 2 * PARITY_ZERO * big
    # G1 nodes whose contribution is negligible on every probe point are never computed
    mu = _mu(d, J)
    size = NODE_SAFETY * np.max(mu[:, None, None] * w[None, :, None]
                                * np.maximum(fp * fp, fm * fm), axis=(0, 2))
    scale = float(np.max(np.sum(mu[:, None] * _diag_terms(fp, fm, w), axis=0))) or 1.0
    order = np.argsort(size, kind="stable")
    ndrop = int(np.searchsorted(np.cumsum(size[order]), 0.5 * DROP_FRACTION * tol * scale,
                                side="right"))
    nodes = np.sort(order[ndrop:])
    return _Rules(J, L, serr, node_err, sconv, nconv, even, odd, nodes)


def _feature_rows(sigma: Activation, d: float, s: np.ndarray, r: np.ndarray, rules: _Rules,
                  tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float, int]:
    """Feature rows over the points (s_p, r_p) with the chosen rules.

    Returns ``(feats (Q, P), weights (Q,), rows (Q, 3) = [j, g_ℓ, parity], drop_error,
    series_error, J)``; parity 0 = even part, 1 = odd part; errors relative to max_p U(z_p, z_p).
    """
    finite = math.isfinite(d)
    J = rules.J
    jtop = J + J_WINDOW if finite else 0
    mu = _mu(d, jtop)
    g, w = _g1_rule(rules.L)
    g, w = g[rules.nodes], w[rules.nodes]
    jj, ll, pp = np.meshgrid(np.arange(J + 1), np.arange(g.size), np.arange(2), indexing="ij")
    jj, ll, pp = jj.ravel(), ll.ravel(), pp.ravel()
    zero = np.where(pp == 0, rules.even_zero[jj], rules.odd_zero[jj]) | ((pp == 1) & (g[ll] == 0))
    jj, ll, pp = jj[~zero], ll[~zero], pp[~zero]
    feats = np.empty((jj.size, s.size))
    diag = np.zeros((jtop + 1, s.size))
    for rv in np.unique(r):  # by r-groups, to keep the temporaries small
        pts = np.flatnonzero(r == rv)
        fp, fm = _node_values(sigma, s[pts], r[pts], 2 * jtop, g)
        diag[:, pts] = _diag_terms(fp, fm, w)
        parts = np.stack([0.5 * (fp[: J + 1] + fm[: J + 1]), 0.5 * (fp[: J + 1] - fm[: J + 1])])
        feats[:, pts] = parts[pp, jj, ll]
    weights = mu[jj] * w[ll]
    diag *= mu[:, None]
    scale = float(diag.sum(axis=0).max()) or 1.0
    serr = (J + 1) * float(diag.max(axis=1)[J + 1:].max()) / scale if finite else 0.0
    # drop rows of negligible weight * size (far G1 nodes)
    size = weights * np.max(feats * feats, axis=1)
    order = np.argsort(size, kind="stable")
    cum = np.cumsum(size[order])
    ndrop = int(np.searchsorted(cum, 0.5 * DROP_FRACTION * tol * scale, side="right"))
    # what the probe skipped is bounded by half the budget; report the budget actually used
    drop_err = (float(cum[ndrop - 1]) if ndrop else 0.0) / scale
    drop_err += 0.5 * DROP_FRACTION * tol if rules.nodes.size < _g1_rule(rules.L)[0].size else 0.0
    keep = np.sort(order[ndrop:])
    rows = np.column_stack([jj[keep], g[ll[keep]], pp[keep]])
    return np.ascontiguousarray(feats[keep]), weights[keep], rows, drop_err, serr, J


# ----------------------------------------------------------------------------- the kernel


@dataclass
class NeuronKernel:
    """v(s, r) and the separable interaction on the (s, r) grid of cell centres (MATH.md §3).

    ``U(z, z') = a a' Σ_q weights_q F_q(s, r) F_q(s', r')`` with ``feats[q, i * n_r + k] =
    F_q(s_i, r_k)``: the even / odd parts ``(m_2j(s, r; g) ± m_2j(−s, r; g)) / 2`` at the retained
    Gauss–Hermite nodes ``g_ℓ >= 0`` (for odd σ only the odd parts, i.e. ``m_2j(s, r; g_ℓ)``
    itself), ``weights_q = 2 μ_2j(d−1) ω_ℓ`` (``μ_2j ω_ℓ`` at g = 0).  ``rows[q] = (j, g_ℓ,
    parity)``.  Errors are relative to the largest diagonal ``max U(z, z) / a²`` on the grid.
    """

    s: np.ndarray
    r: np.ndarray
    v: np.ndarray
    feats: np.ndarray
    weights: np.ndarray
    r_sharp: float
    n_terms: int  # J + 1
    n_nodes: int  # L of the Gauss-Hermite rule for G1
    truncation_error: float  # series + G1 rule + dropped rows (relative estimate)
    converged: bool  # series and G1 rule both met tol
    series_error: float = 0.0
    node_error: float = 0.0
    drop_error: float = 0.0
    series_converged: bool = True
    nodes_converged: bool = True
    rows: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(n_s, n_r)."""
        return (self.s.size, self.r.size)

    def moments(self, A: np.ndarray, cell_volume: float) -> np.ndarray:
        """``M_q = cell_volume Σ_{i,k} A_ik F_q(s_i, r_k)`` (midpoint rule for ∫ a' F_q dρ).

        ``A`` (n_s, n_r) is the a-moment of the cell-average density,
        ``A_ik = h_a Σ_a a ρ_{a,i,k}``, and ``cell_volume = h_s h_r`` (the (s, r) cell area); then
        ``M_q = Σ_{a,i,k} a F_q(s_i, r_k) ρ_{a,i,k} h_a h_s h_r``.
        """
        return self.feats @ (np.ascontiguousarray(A, dtype=np.float64).ravel() * cell_volume)

    def phi(self, A: np.ndarray, cell_volume: float) -> np.ndarray:
        """``φ(s_i, r_k) = −v + Σ_q weights_q M_q F_q(s_i, r_k)``, shape (n_s, n_r); Ψ = a φ.

        ``A`` and ``cell_volume`` as in :meth:`moments` (``A = h_a Σ_a a ρ``, ``h_s h_r``).
        """
        m = self.moments(A, cell_volume)
        return ((self.weights * m) @ self.feats).reshape(self.shape) - self.v

    def risk(self, rho: np.ndarray, a_centers: np.ndarray, h_a: float, h_s: float,
             h_r: float) -> float:
        """``R = R# − 2 Σ a ρ v h_a h_s h_r + Σ_q weights_q M_q²`` (midpoint rule), where ``rho`` is
        the cell-average density of shape (n_a, n_s, n_r) and ``M = moments(h_a Σ_a a ρ, h_s h_r)``.
        """
        A = h_a * np.tensordot(np.asarray(a_centers, dtype=np.float64), rho, axes=(0, 0))
        m = self.moments(A, h_s * h_r)
        return float(self.r_sharp - 2.0 * h_s * h_r * np.sum(A * self.v)
                     + np.dot(self.weights, m * m))

    def u(self, p: np.ndarray | int, p2: np.ndarray | int) -> np.ndarray:
        """``U(z, z') / (a a')`` between flat grid indices ``p = i n_r + k`` (diagnostics)."""
        return np.einsum("q,q...,q...->...", self.weights, self.feats[:, p], self.feats[:, p2])


def neuron_kernel(sigma: Activation, target: Activation, label_noise: float, d: int | float,
                  s: np.ndarray, r: np.ndarray, tol: float = 1e-12, max_terms: int = 512,
                  max_nodes: int = 400) -> NeuronKernel:
    """Build v, the separable interaction and R# on the tensor grid ``s × r`` (MATH.md §3).

    ``s`` (n_s,) and ``r`` (n_r,) are 1-D arrays of cell centres (``r >= 0``); ``d`` an integer
    >= 3 or ``math.inf``.  J and L are chosen from ``tol`` (module docstring), capped by
    ``max_terms`` (J + 1) and ``max_nodes`` (L); the estimates are reported in the result.
    """
    d = _check_d(d)
    if not (isinstance(tol, numbers.Real) and 0 < tol < 1):
        raise ConfigError(f"tol must be a number in (0, 1), got {tol!r}")
    max_terms = _check_positive_int(max_terms, "max_terms")
    max_nodes = _check_positive_int(max_nodes, "max_nodes")
    s = np.ascontiguousarray(s, dtype=np.float64).ravel()
    r = np.ascontiguousarray(r, dtype=np.float64).ravel()
    if s.size == 0 or r.size == 0 or not (np.all(np.isfinite(s)) and np.all(np.isfinite(r))):
        raise ConfigError("neuron_kernel needs non-empty finite grids s and r")
    if np.any(r < 0):
        raise ConfigError("neuron_kernel needs r >= 0")
    ss, rr = np.meshgrid(s, r, indexing="ij")
    ss, rr = ss.ravel(), rr.ravel()
    ps, pr = np.meshgrid(s[_probe_indices(s.size)], r[_probe_indices(r.size)], indexing="ij")
    ps, pr = ps.ravel(), pr.ravel()
    rules = _select_rules(sigma, d, ps, pr, tol, max_terms, max_nodes)
    while True:
        feats, weights, info, drop_err, serr, J = _feature_rows(sigma, d, ss, rr, rules, tol)
        if serr <= tol or not rules.series_converged or J + 1 >= max_terms:
            break
        # the whole grid needs more terms than the probe points: widen and rebuild
        rules = _select_rules(sigma, d, ps, pr, tol, max_terms, max_nodes, jmin=2 * (J + 1))
    series_ok = rules.series_converged and serr <= tol
    v = _v_points(sigma, target, ss, rr).reshape(s.size, r.size)
    return NeuronKernel(
        s=s, r=r, v=v, feats=feats, weights=weights, r_sharp=r_sharp(target, label_noise),
        n_terms=J + 1, n_nodes=rules.L,
        truncation_error=float(serr + rules.node_error + drop_err),
        converged=bool(series_ok and rules.nodes_converged),
        series_error=float(serr), node_error=float(rules.node_error), drop_error=float(drop_err),
        series_converged=bool(series_ok), nodes_converged=bool(rules.nodes_converged), rows=info)


# ----------------------------------------------------------------------------- point-wise


def potential_V(sigma: Activation, target: Activation, s: float, r: float) -> float:
    """``v(s, r) = E[f_*(G1) σ(s G1 + r Z)]`` (so ``V(a, s, r) = −a v``), accurate to ~1e-14."""
    return float(_v_points(sigma, target, np.array([float(s)]), np.array([float(r)]))[0])


def interaction_U(sigma: Activation, d: int | float, z1: tuple[float, float, float],
                  z2: tuple[float, float, float], tol: float = 1e-12, max_terms: int = 512,
                  max_nodes: int = 400) -> float:
    """``U(z, z') = a a' Σ_j μ_2j(d−1) Σ_ℓ ω_ℓ m_2j(s, r; g_ℓ) m_2j(s', r'; g_ℓ)`` for
    ``z = (a, s, r)``, with J and L chosen for these two points as in :func:`neuron_kernel`."""
    d = _check_d(d)
    s = np.array([float(z1[1]), float(z2[1])])
    r = np.array([float(z1[2]), float(z2[2])])
    if np.any(r < 0):
        raise ConfigError("interaction_U needs r >= 0")
    rules = _select_rules(sigma, d, s, r, tol, _check_positive_int(max_terms, "max_terms"),
                          _check_positive_int(max_nodes, "max_nodes"))
    feats, weights, *_ = _feature_rows(sigma, d, s, r, rules, tol)
    return float(z1[0]) * float(z2[0]) * float(np.dot(weights, feats[:, 0] * feats[:, 1]))

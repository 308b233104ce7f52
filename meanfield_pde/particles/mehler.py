"""Sums over pairs of neurons of E[σ(τ⟨w_i, g⟩) σ(τ⟨w_j, g⟩)] by the Mehler series.

For a pair with cosine c = cos∠(w_i, w_j), radii ρ_i, ρ_j and a data scale τ (t = τρ),

    E[σ(t_i X) σ(t_j Y)] = Σ_k c^k α_k(t_i) α_k(t_j),      corr(X, Y) = c          (Mehler)

with α_k the normalised Hermite coefficients of σ (:meth:`Activation.hermite`).  Pairs with
|c| <= C_SWITCH stop at the first K with |c|^(K+1) <= C_SWITCH^(K_FAR+1) (tail below 1e-16 of
sqrt(U_ii U_jj)); near pairs (|c| > C_SWITCH) use the closed forms of
:mod:`~meanfield_pde.particles.gaussian_integrals` (piecewise-linear σ) or the series continued to
``k_near`` terms (smooth σ); erf uses its closed form for every pair.

* :func:`_pair_sums` — the serial pass of :class:`~meanfield_pde.particles.risk.PopulationRisk`:
  inner products row by row (no stored Gram matrix), per-pair series lengths, Horner.
* :func:`_pair_rows` — the previous evaluation (BLAS Gram matrix, every far pair to K_FAR, a
  parallel pass per scale), kept as an independent check (:meth:`PopulationRisk.reference`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np
from numba import prange

from .activation_codes import ACT_ERF, ACT_PL
from .gaussian_integrals import T_MIN, _erf_pair, _pl_pair

C_SWITCH = 0.75  # pairs with |c| above this leave the short Mehler series
K_FAR = 129  # 0.75^130 < 1e-16
K_NEAR_START = 128
K_NEAR_MAX = 4096
NEAR_TOL = 1e-13  # smooth sigma: per-neuron Mehler tail / largest diagonal


class SeriesRule(NamedTuple):
    """How each pair is summed: activation ``mode`` and parameters ``p``
    (:mod:`~meanfield_pde.particles.activation_codes`); series lengths ``k_tab[q]`` for
    |c| in [q, q + 1)/``k_res``; ``k_far`` the far-pair length, ``k_near`` the near-pair length
    (smooth σ)."""

    mode: int
    p: np.ndarray
    k_tab: np.ndarray
    k_res: int
    k_far: int
    k_near: int


class PairInput(NamedTuple):
    """The network seen by :func:`_pair_sums`: ``wt`` (d, N) = Wᵀ, ``rad`` = |w_i|, ``wts`` the
    outer weights a_i, ``tsc`` (S,) the data scales, ``alpha[s][k, j] = α_k(tsc_s rad_j)`` (a tuple
    of S C-contiguous tables, never stacked), ``diag[s, j] = E σ(tsc_s rad_j G)²``."""

    wt: np.ndarray
    rad: np.ndarray
    wts: np.ndarray
    tsc: np.ndarray
    alpha: tuple
    diag: np.ndarray


class GramInput(NamedTuple):
    """The network seen by :func:`_pair_rows` for one data scale: ``gram`` = W Wᵀ, ``rad``,
    ``wts``, ``scale``, ``alpha[k, j] = α_k(scale rad_j)``, ``diag[j] = E σ(scale rad_j G)²``."""

    gram: np.ndarray
    rad: np.ndarray
    wts: np.ndarray
    scale: float
    alpha: np.ndarray
    diag: np.ndarray


class PairWork(NamedTuple):
    """Work arrays of :func:`_pair_sums` (allocated once per call)."""

    g: np.ndarray  # (N,) inner products of row i
    cc: np.ndarray  # (N,) cosines of row i
    kk: np.ndarray  # (N,) series length of each pair (−1: closed form)
    near: np.ndarray  # (N,) near pairs (piecewise-linear σ)
    cs: np.ndarray  # (N,) cosines of the long pairs, sorted by length
    idx: np.ndarray  # (N,) their positions
    acc: np.ndarray  # (S, N) their long terms
    hi: np.ndarray  # (S, N) E^s_ij of row i
    col: np.ndarray  # (S, N) column sums
    counts: np.ndarray  # (ktop + 2,) pairs per length
    start: np.ndarray  # (ktop + 2,) first slot per length


# ============================================================================ the reference
@numba.njit(cache=True)
def _pair_row(i: int, inp: GramInput, rule: SeriesRule) -> float:
    """wts_i [wts_i E_ii + 2 Σ_{j>i} wts_j E_ij], E_ij = E[σ(scale⟨w_i, g⟩) σ(scale⟨w_j, g⟩)].

    E_ii = ``diag[i]``.  For j > i: the Mehler series to k_far (k outer, j inner: vectorised),
    then for the near pairs (|c| > C_SWITCH, both scaled radii > T_MIN) the closed form
    (piecewise-linear σ) or the series continued to k_near on the compacted list of near j
    (smooth σ); erf: the closed form for every pair.
    """
    gram, rad, wts, scale, alpha, diag = inp
    mode, p, k_far, k_near = rule.mode, rule.p, rule.k_far, rule.k_near
    n = rad.size
    m_ = n - i - 1
    acc = np.zeros(m_)
    pw = np.ones(m_)
    cc = np.empty(m_)
    near = np.empty(m_, dtype=np.int64)
    for jj in range(m_):
        j = i + 1 + jj
        if rad[i] > 0.0 and rad[j] > 0.0:
            c = gram[i, j] / (rad[i] * rad[j])
            cc[jj] = min(1.0, max(-1.0, c))
        else:
            cc[jj] = 0.0
    ti = scale * rad[i]
    if mode == ACT_ERF:
        for jj in range(m_):
            acc[jj] = _erf_pair(ti, scale * rad[i + 1 + jj], cc[jj])
    else:
        for k in range(k_far + 1):
            aik = alpha[k, i]
            row = alpha[k, i + 1:]
            for jj in range(m_):
                acc[jj] += pw[jj] * aik * row[jj]
                pw[jj] *= cc[jj]
        n_near = 0
        if ti > T_MIN:
            for jj in range(m_):
                if abs(cc[jj]) > C_SWITCH and scale * rad[i + 1 + jj] > T_MIN:
                    near[n_near] = jj
                    n_near += 1
        if mode == ACT_PL:
            for m in range(n_near):
                jj = near[m]
                acc[jj] = _pl_pair(p, ti, scale * rad[i + 1 + jj], cc[jj])
        else:
            for k in range(k_far + 1, k_near + 1):
                aik = alpha[k, i]
                for m in range(n_near):
                    jj = near[m]
                    acc[jj] += pw[jj] * aik * alpha[k, i + 1 + jj]
                    pw[jj] *= cc[jj]
    tot = 0.0
    for jj in range(m_):
        tot += wts[i + 1 + jj] * acc[jj]
    return wts[i] * (wts[i] * diag[i] + 2.0 * tot)


@numba.njit(cache=True, parallel=True)
def _pair_rows(inp: GramInput, rule: SeriesRule, out: np.ndarray) -> None:
    """``out[i]`` = :func:`_pair_row` (i), so that ``Σ_i out[i] = Σ_{i,j} wts_i wts_j E_ij``.

    ``alpha`` has the rows k <= max(k_far, k_near).  Rows i and n − 1 − i go to the same task
    (equal work per task under the static schedule); each row is summed serially, so the result
    does not depend on the number of threads.
    """
    n = inp.rad.size
    for q in prange((n + 1) // 2):
        out[q] = _pair_row(q, inp, rule)
        i2 = n - 1 - q
        if i2 != q:
            out[i2] = _pair_row(i2, inp, rule)


# ============================================================================ series lengths
# k <= _K_TAB[q] for its tail to be below the bound C_SWITCH^(K_FAR+1) sqrt(U_ii U_jj) of the
# far pairs, since |c|^(K+1) <= C_SWITCH^(K_FAR+1) for K + 1 >= (K_FAR+1) ln C_SWITCH / ln |c|
_K_RES = 4096


def _series_lengths() -> np.ndarray:
    q = np.arange(int(C_SWITCH * _K_RES) + 1)
    upper = (q + 1.0) / _K_RES
    with np.errstate(divide="ignore"):
        need = np.ceil((K_FAR + 1) * math.log(C_SWITCH) / np.log(upper)) - 1.0
    need = np.where(upper < 1.0, need, K_FAR)  # the last cell reaches |c| = C_SWITCH itself
    return np.clip(need, 0, K_FAR).astype(np.int64)


_K_TAB = _series_lengths()
_GATHER_SHARE = 0.1  # a gathered term costs several contiguous ones (serial, no FMA; measured)


@numba.njit(cache=True)
def _horner_rows(al0: np.ndarray, al1: np.ndarray, i: int, j0: int, m_: int, k0: int,
                 cc: np.ndarray, h0: np.ndarray, h1: np.ndarray) -> None:
    """h[jj] <- Horner steps k = k0 … 0 of Σ_k c^k α_k(i) α_k(j0 + jj) for two tables at once
    (``al[k, j]``), four k per pass over h: the same operations in the same order as one step
    per pass, with a quarter of the loads and stores of h."""
    k = k0
    while k >= 3:
        a0, b0, e0, f0 = al0[k, i], al0[k - 1, i], al0[k - 2, i], al0[k - 3, i]
        a1, b1, e1, f1 = al1[k, i], al1[k - 1, i], al1[k - 2, i], al1[k - 3, i]
        r0, s0, u0, v0 = al0[k, j0:], al0[k - 1, j0:], al0[k - 2, j0:], al0[k - 3, j0:]
        r1, s1, u1, v1 = al1[k, j0:], al1[k - 1, j0:], al1[k - 2, j0:], al1[k - 3, j0:]
        for jj in range(m_):
            c = cc[jj]
            h0[jj] = (((h0[jj] * c + a0 * r0[jj]) * c + b0 * s0[jj]) * c + e0 * u0[jj]) * c \
                + f0 * v0[jj]
            h1[jj] = (((h1[jj] * c + a1 * r1[jj]) * c + b1 * s1[jj]) * c + e1 * u1[jj]) * c \
                + f1 * v1[jj]
        k -= 4
    while k >= 0:
        a0, a1 = al0[k, i], al1[k, i]
        r0, r1 = al0[k, j0:], al1[k, j0:]
        for jj in range(m_):
            c = cc[jj]
            h0[jj] = h0[jj] * c + a0 * r0[jj]
            h1[jj] = h1[jj] * c + a1 * r1[jj]
        k -= 1


@numba.njit(cache=True)
def _horner_row(al: np.ndarray, i: int, j0: int, m_: int, k0: int, cc: np.ndarray,
                h: np.ndarray) -> None:
    """:func:`_horner_rows` for one table."""
    k = k0
    while k >= 3:
        a0, b0, e0, f0 = al[k, i], al[k - 1, i], al[k - 2, i], al[k - 3, i]
        r0, s0, u0, v0 = al[k, j0:], al[k - 1, j0:], al[k - 2, j0:], al[k - 3, j0:]
        for jj in range(m_):
            c = cc[jj]
            h[jj] = (((h[jj] * c + a0 * r0[jj]) * c + b0 * s0[jj]) * c + e0 * u0[jj]) * c \
                + f0 * v0[jj]
        k -= 4
    while k >= 0:
        a0 = al[k, i]
        r0 = al[k, j0:]
        for jj in range(m_):
            h[jj] = h[jj] * cc[jj] + a0 * r0[jj]
        k -= 1



# ============================================================================ the pair sums
@numba.njit(cache=True, inline="always")
def _cosines(wt: np.ndarray, rad: np.ndarray, i: int, g: np.ndarray, cc: np.ndarray) -> None:
    """``cc[jj]`` = cos∠(w_i, w_j), j = i + 1 + jj (0 if a radius is 0): the inner products
    ⟨w_i, w_j⟩ as axpys over the d coordinates of ``wt`` = Wᵀ, four coordinates per pass."""
    d, n = wt.shape
    j0 = i + 1
    m_ = n - j0
    ri = rad[i]
    for jj in range(m_):
        g[jj] = 0.0
    q = 0
    while q + 4 <= d:  # four coordinates per pass over g
        w0, w1, w2, w3 = wt[q, i], wt[q + 1, i], wt[q + 2, i], wt[q + 3, i]
        x0, x1, x2, x3 = wt[q, j0:], wt[q + 1, j0:], wt[q + 2, j0:], wt[q + 3, j0:]
        for jj in range(m_):
            g[jj] += w0 * x0[jj] + w1 * x1[jj] + w2 * x2[jj] + w3 * x3[jj]
        q += 4
    while q < d:
        wq = wt[q, i]
        row = wt[q, j0:]
        for jj in range(m_):
            g[jj] += wq * row[jj]
        q += 1
    for jj in range(m_):
        rj = rad[j0 + jj]
        if ri > 0.0 and rj > 0.0:
            cc[jj] = min(1.0, max(-1.0, g[jj] / (ri * rj)))
        else:
            cc[jj] = 0.0


@numba.njit(cache=True, inline="always")
def _order_by_length(rule: SeriesRule, m_: int, kt: int, ktop: int, w: PairWork) -> tuple:
    """Series length ``kk[jj]`` of each pair of the row and ``counts[k]`` of each length (|c| <=
    C_SWITCH from ``k_tab``; near pairs ``k_near`` for smooth σ, or the closed form for
    piecewise-linear σ: listed in ``near``, length −1); the split point k0 (the terms k <= k0 for
    every pair, contiguous in j, vectorised; the terms k > k0 only for the pairs that need them,
    gathered; k0 the smallest length with at most a fraction _GATHER_SHARE of the pairs longer);
    and the counting sort of the pairs longer than k0, longest first, into ``cs`` (cosines) and
    ``idx`` (positions), after which ``start[k]`` (k > k0) is the number of pairs of length >= k,
    those active at step k.  Returns (number of near pairs, k0, number of long pairs)."""
    cc, kk, near, counts, start, cs, idx = w.cc, w.kk, w.near, w.counts, w.start, w.cs, w.idx
    for k in range(ktop + 2):
        counts[k] = 0
    n_near = 0
    for jj in range(m_):
        ac = abs(cc[jj])
        if ac > C_SWITCH:
            if rule.mode == ACT_PL:
                near[n_near] = jj
                n_near += 1
                kk[jj] = -1
                continue
            k = rule.k_near
        else:
            k = rule.k_tab[int(ac * rule.k_res)]
        k = min(k, kt)
        kk[jj] = k
        counts[k] += 1
    n_ser = 0
    for k in range(ktop + 1):
        n_ser += counts[k]
    k0 = min(ktop, kt)
    above = 0
    for k in range(min(ktop, kt), -1, -1):
        if above > _GATHER_SHARE * n_ser:
            break
        k0 = k
        above += counts[k]
    pos = 0
    for k in range(ktop, k0, -1):  # start[k]: first slot of the pairs of length k
        start[k] = pos
        pos += counts[k]
    for jj in range(m_):
        k = kk[jj]
        if k > k0:
            m = start[k]
            start[k] = m + 1
            cs[m] = cc[jj]
            idx[m] = jj
    return n_near, k0, pos


@numba.njit(cache=True, inline="always")
def _long_terms(alpha: tuple, i: int, k0: int, kfirst: int, pos: int, w: PairWork) -> None:
    """Horner steps k = kfirst … k0 + 1 for the long pairs only (gathered), all scales; the sums
    are then scattered into ``hi`` (zero for the other pairs)."""
    j0 = i + 1
    ns = w.acc.shape[0]
    m_ = w.cc.size - j0
    acc, start, cs, idx, hi = w.acc, w.start, w.cs, w.idx, w.hi
    for s in range(ns):
        a_s = acc[s]
        for m in range(pos):
            a_s[m] = 0.0
    for k in range(kfirst, k0, -1):
        na = start[k]
        if na == 0:
            continue
        if ns == 2:  # both data scales in one pass
            a0 = alpha[0][k, i]
            a1 = alpha[ns - 1][k, i]  # = alpha[1]; a runtime index types for 1-tuples
            r0 = alpha[0][k, j0:]
            r1 = alpha[ns - 1][k, j0:]
            acc0 = acc[0]
            acc1 = acc[1]
            for m in range(na):
                c = cs[m]
                j = idx[m]
                acc0[m] = acc0[m] * c + a0 * r0[j]
                acc1[m] = acc1[m] * c + a1 * r1[j]
        else:
            for s in range(ns):
                a0 = alpha[s][k, i]
                r0 = alpha[s][k, j0:]
                acc0 = acc[s]
                for m in range(na):
                    acc0[m] = acc0[m] * cs[m] + a0 * r0[idx[m]]
    for s in range(ns):
        a_s = acc[s]
        h_s = hi[s]
        for jj in range(m_):
            h_s[jj] = 0.0
        for m in range(pos):
            h_s[idx[m]] = a_s[m]


@numba.njit(cache=True, inline="always")
def _near_closed_forms(inp: PairInput, rule: SeriesRule, i: int, n_near: int, kt: int,
                       w: PairWork) -> None:
    """Piecewise-linear σ, |c| > C_SWITCH: replace the series by the closed form (the series to
    k_far when a scaled radius is <= T_MIN)."""
    rad, tsc, alpha = inp.rad, inp.tsc, inp.alpha
    j0 = i + 1
    ri = rad[i]
    for m in range(n_near):
        jj = w.near[m]
        j = j0 + jj
        c = w.cc[jj]
        for s in range(tsc.size):
            ti = tsc[s] * ri
            tj = tsc[s] * rad[j]
            if ti > T_MIN and tj > T_MIN:
                e = _pl_pair(rule.p, ti, tj, c)
            else:
                e = 0.0
                for k in range(min(rule.k_far, kt), -1, -1):
                    e = e * c + alpha[s][k, i] * alpha[s][k, j]
            w.hi[s, jj] = e


@numba.njit(cache=True)
def _pair_sums(inp: PairInput, rule: SeriesRule, out: np.ndarray) -> None:
    """``out[s]`` = Σ_{i,j} wts_i wts_j E^s_ij, E^s_ij = E[σ(tsc_s⟨w_i, g⟩) σ(tsc_s⟨w_j, g⟩)],
    for every data scale s at once, serially (the value does not depend on the machine's threads).

    ``diag[s, j]`` is the exact E^s_jj.  Row i: the cosines c_ij, j > i (:func:`_cosines`, the
    Gram matrix is never stored), and for each pair its series length: pairs with |c| <= C_SWITCH
    stop at the first K with |c|^(K+1) <= C_SWITCH^(k_far+1) (``k_tab`` on |c| quantised to
    1/k_res), the same tail bound as the full far series of :func:`_pair_row`; near pairs
    (|c| > C_SWITCH) as there: smooth σ the series to ``k_near``, piecewise-linear σ the closed
    form (the series to k_far when a scaled radius is <= T_MIN), erf the closed form for every
    pair.  Horner from the top k down: the terms k > k0 only for the pairs that need them
    (counting-sorted by length, longest first, gathered), k0 the smallest length with at most a
    share _GATHER_SHARE of the pairs longer; then the terms k <= k0 for every pair, contiguous in
    j (vectorised).  Row i adds wts_i E^s_ij to column sums, which give the total at the end (no
    serial reduction per row).
    """
    rad, tsc, wts, alpha = inp.rad, inp.tsc, inp.wts, inp.alpha
    n = rad.size
    ns = tsc.size
    kt = alpha[0].shape[0] - 1
    ktop = max(rule.k_far, rule.k_near)
    w = PairWork(np.empty(n), np.empty(n), np.empty(n, dtype=np.int64),
                 np.empty(n, dtype=np.int64), np.empty(n), np.empty(n, dtype=np.int64),
                 np.zeros((ns, n)), np.zeros((ns, n)), np.zeros((ns, n)),
                 np.zeros(ktop + 2, dtype=np.int64), np.zeros(ktop + 2, dtype=np.int64))
    col = w.col
    for i in range(n):
        j0 = i + 1
        m_ = n - j0
        _cosines(inp.wt, inp.rad, i, w.g, w.cc)
        if rule.mode == ACT_ERF:  # the closed form for every pair
            for jj in range(m_):
                for s in range(ns):
                    w.hi[s, jj] = _erf_pair(tsc[s] * rad[i], tsc[s] * rad[j0 + jj], w.cc[jj])
        else:  # the long terms gathered, Horner over every pair for k <= k0, near closed forms
            n_near, k0, pos = _order_by_length(rule, m_, kt, ktop, w)
            _long_terms(alpha, i, k0, min(ktop, kt), pos, w)
            for s in range(0, ns - 1, 2):  # Horner, two scales and four terms per pass
                _horner_rows(alpha[s], alpha[s + 1], i, j0, m_, k0, w.cc, w.hi[s], w.hi[s + 1])
            if ns % 2:
                _horner_row(alpha[ns - 1], i, j0, m_, k0, w.cc, w.hi[ns - 1])
            _near_closed_forms(inp, rule, i, n_near, kt, w)
        wi = wts[i]  # column sums col[s, j] = Σ_{i<j} wts_i E^s_ij (vectorised, no reduction)
        for s in range(ns):
            h_s = w.hi[s]
            col_s = col[s, j0:]
            for jj in range(m_):
                col_s[jj] += wi * h_s[jj]
    for s in range(ns):
        t_ = 0.0
        for j in range(n):
            t_ += wts[j] * (wts[j] * inp.diag[s, j] + 2.0 * col[s, j])
        out[s] = t_


@numba.njit(cache=True)
def _mehler_v(fhat: np.ndarray, alpha: np.ndarray, c: np.ndarray) -> np.ndarray:
    """v_i = Σ_k c_i^k f̂_k α_k(i): E[f(G1) σ(ρ_i (c_i G1 + sqrt(1 − c_i²) Z))] for the Hermite
    coefficients f̂ of f and the table ``alpha[k, i] = α_k(ρ_i)``."""
    n = c.size
    out = np.zeros(n)
    for i in range(n):
        pw = 1.0
        acc = 0.0
        for k in range(fhat.size):
            acc += pw * fhat[k] * alpha[k, i]
            pw *= c[i]
        out[i] = acc
    return out

"""The radial potential at arbitrary points: ψ_λ, ∂_rψ_λ and the risk from weighted points.

With α_k(t) = E[σ(tG) He_k(G)]/√k! (MATH.md §1) and the kernel of MATH.md §2 truncated at J,

    f_{±,j}(r) = α_2j(τ_± r),   λ_{±,j} = ½ μ_2j(d),   v(r) = −½ [α_0(τ_+ r) − α_0(τ_− r)],
    ψ_λ(r; ρ̂)  = v(r) + Σ_k λ_k f_k(r) M_k + λ r²/2,     M_k = Σ_p w_p f_k(X_p),
    R(ρ̂)       = 1 + 2 Σ_p w_p v(X_p) + Σ_k λ_k M_k²,

for the weighted points ρ̂ = Σ_p w_p δ_{X_p}: O(points × rank) per evaluation.  The derivative
uses Stein's identity E[σ'(tG) He_n(G)] = E[σ(tG) He_{n+1}(G)]/t and G He_k = He_{k+1} + k He_{k−1}:

    α_k'(t) = ( √((k+1)(k+2)) α_{k+2}(t) + k α_k(t) ) / t,

so ∂_r f_{±,j}(r) = τ_± α_2j'(τ_± r) needs α up to index 2J + 2, evaluated exactly by
:meth:`~meanfield_pde.activations.Activation.hermite` (closed forms for the piecewise-linear
activations and erf, quadrature to ~1e-14 for the smooth ones).  At r = 0 every even-index α_2j
is an even function of t, so ∂_r f(0) = 0 exactly (and ∂_rψ_λ(0) = 0: X = 0 is a fixed point).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..activations import Activation, PiecewiseLinearActivation
from ..hermite_kernels import pl_all_kinks_near, pl_alphas_centred

__all__ = ["RadialFeatures"]


@numba.njit(cache=True, nogil=True)
def _moments(alpha, off, w, n_terms, out, offset):
    """out[offset + j] = Σ_p w_p α_2j(t_p) for j < n_terms; α_2j(t_p) = alpha[j, off + p]."""
    n = w.size
    for j in range(n_terms):
        row = alpha[j]
        s = 0.0
        for p in range(n):
            s += w[p] * row[off + p]
        out[offset + j] = s


@numba.njit(cache=True, nogil=True)
def _add_slope(alpha, off, t, tau, coef, sign_v, n_terms, out):
    """out[p] += τ [ sign_v α_0'(t_p) + Σ_j coef_j α_2j'(t_p) ] for the points p < out.size
    whose α_2j(t_p) are alpha[j, off + p]; α_k' from the Stein identity (module docstring),
    0 at t = 0 (every α_2j is stationary there)."""
    n = out.size
    acc = np.zeros(n)
    for j in range(n_terms):
        k = 2 * j
        c = coef[j] + (sign_v if j == 0 else 0.0)
        if c == 0.0:
            continue
        c2 = c * math.sqrt((k + 1.0) * (k + 2.0))
        ck = c * k
        hi, lo = alpha[j + 1], alpha[j]
        for p in range(n):
            acc[p] += c2 * hi[off + p] + ck * lo[off + p]
    for p in range(n):
        if t[p] != 0.0:
            out[p] += tau * acc[p] / t[p]


@numba.njit(cache=True, nogil=True)
def _dot_v(alpha, w):
    """Σ_p w_p v(X_p), v = −½ (α_0(τ_+ X) − α_0(τ_− X)), alpha[0] = α_0 at (τ_+ X, τ_− X)."""
    s = 0.0
    n = w.size
    for p in range(n):
        s += w[p] * (alpha[0, p] - alpha[0, n + p])
    return -0.5 * s


_BLOCK = 256  # t values per cache block of the piecewise-linear kernel
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@numba.njit(cache=True, nogil=True)
def _pl_even_alphas(t, pl, kinks, jumps, kmax, out):
    """out[j, i] = α_2j(t_i), 2j <= kmax, of σ(u) = A + B u + Σ_m D_m (u − κ_m)_+ at t_i >= 0
    (pl = [A, B, σ(0)]): the closed form of :mod:`meanfield_pde.hermite_kernels` (b = 0) —
    α_0 = A + t Σ_m D_m (φ(x_m) − x_m Q(x_m)), α_k = t Σ_m D_m φ(x_m) h_{k−2}(x_m)/√(k(k−1)),
    x_m = κ_m/t, the recurrence run on exp(−x²/4) h_n(x) over blocks of t (vectorised) —
    storing only the even rows; t far beyond every kink by the cancellation-free
    :func:`~meanfield_pde.hermite_kernels.pl_alphas_centred`."""
    n = t.size
    nk = kinks.size
    x = np.empty((nk, _BLOCK))
    ge = np.empty((nk, _BLOCK))  # exp(−x²/4) h_n(x) of the latest even n
    go = np.empty((nk, _BLOCK))  # ... and of the latest odd n
    f = np.empty((nk, _BLOCK))
    for i0 in range(0, n, _BLOCK):
        nb = min(_BLOCK, n - i0)
        for j in range(out.shape[0]):
            for ii in range(nb):
                out[j, i0 + ii] = 0.0
        for ii in range(nb):
            out[0, i0 + ii] = pl[0]
        for m in range(nk):
            for ii in range(nb):
                ti = t[i0 + ii]
                xm = kinks[m] / ti if ti > 0.0 else 100.0
                e = 0.0 if abs(xm) > 50.0 else math.exp(-0.25 * xm * xm)
                if abs(xm) <= 40.0:
                    tail = 0.5 * math.erfc(xm * 0.7071067811865476)
                    out[0, i0 + ii] += jumps[m] * ti * (_INV_SQRT_2PI * e * e - xm * tail)
                elif xm < 0.0:
                    out[0, i0 + ii] -= jumps[m] * kinks[m]
                if abs(xm) > 50.0:  # |φ h_n| < 1e-271: no contribution (and no inf * 0)
                    xm = 0.0
                x[m, ii] = xm
                ge[m, ii] = e
                go[m, ii] = xm * e
                f[m, ii] = ti * jumps[m] * e * _INV_SQRT_2PI
        for k in range(2, kmax + 1):
            deg = k - 2  # α_k needs h_deg: ge holds it for even deg, go for odd
            if deg >= 2:
                a = math.sqrt(deg - 1.0)
                ij = 1.0 / math.sqrt(float(deg))
                for m in range(nk):
                    xm_ = x[m]
                    new, prev = (ge[m], go[m]) if deg % 2 == 0 else (go[m], ge[m])
                    for ii in range(nb):  # h_deg = (x h_{deg−1} − √(deg−1) h_{deg−2})/√deg
                        new[ii] = (xm_[ii] * prev[ii] - a * new[ii]) * ij
            if k % 2 == 1:
                continue
            c = 1.0 / math.sqrt(k * (k - 1.0))
            row = out[k // 2]
            for m in range(nk):
                gj = ge[m]
                fm = f[m]
                for ii in range(nb):
                    row[i0 + ii] += c * fm[ii] * gj[ii]
        for ii in range(nb):
            ti = t[i0 + ii]
            if ti == 0.0:
                out[0, i0 + ii] = pl[2]
            elif pl_all_kinks_near(ti, 0.0, kinks):  # the cancellation-free form
                pl_alphas_centred(ti, 0.0, pl[0], pl[1], kinks, jumps, kmax, out, i0 + ii, 2)


@numba.njit(cache=True, nogil=True)
def _slope_risk(alpha, x, w, taus, lam, n_terms, l2, out, moments):
    """out[p] = ∂_rψ_λ(X_p; ρ̂) and the returned R(ρ̂), from alpha[j, s P + p] = α_2j(τ_s |X_p|)."""
    n = x.size
    for s in range(2):
        _moments(alpha, s * n, w, n_terms, moments, s * n_terms)
    tmp = np.zeros(n)
    t = np.empty(n)
    coef = np.empty(n_terms)
    for s in range(2):
        for j in range(n_terms):
            coef[j] = lam[s * n_terms + j] * moments[s * n_terms + j]
        for p in range(n):
            t[p] = taus[s] * abs(x[p])
        _add_slope(alpha, s * n, t, taus[s], coef, -0.5 if s == 0 else 0.5, n_terms, tmp)
    for p in range(n):
        out[p] = l2 * x[p] + (tmp[p] if x[p] >= 0.0 else -tmp[p])
    risk = 1.0 + 2.0 * _dot_v(alpha, w)
    for k in range(2 * n_terms):
        risk += lam[k] * moments[k] * moments[k]
    return risk


@numba.njit(cache=True, nogil=True)
def _pl_slope_risk(x, w, kernel, closed, alpha, out, moments):
    """:func:`_slope_risk` with the α of a piecewise-linear σ from :func:`_pl_even_alphas` (one
    compiled call per evaluation): kernel = (taus, lam, n_terms, l2), closed = (pl, kinks,
    jumps, kmax); alpha (n_terms + 1, 2P) is scratch."""
    taus, lam, n_terms, l2 = kernel
    pl, kinks, jumps, kmax = closed
    n = x.size
    t = np.empty(2 * n)
    for p in range(n):
        ax = abs(x[p])
        t[p] = taus[0] * ax
        t[n + p] = taus[1] * ax
    _pl_even_alphas(t, pl, kinks, jumps, kmax, alpha)
    return _slope_risk(alpha, x, w, taus, lam, n_terms, l2, out, moments)


class RadialFeatures:
    """The features of the truncated kernel at moving points (module docstring).

    ``n_terms`` = J + 1 even Hermite terms per data scale, ``lam`` (2(J+1),) = the kernel's
    coefficients (τ_+ block first), ``l2`` = the ℓ2 coefficient λ of ψ_λ."""

    def __init__(self, act: Activation, delta: float, n_terms: int, lam: np.ndarray,
                 l2: float = 0.0):
        self.act, self.n_terms = act, int(n_terms)
        self.taus = (1.0 + delta, 1.0 - delta)
        self.lam = np.ascontiguousarray(lam, dtype=np.float64)
        self.l2 = float(l2)
        self.kmax = 2 * self.n_terms  # α_2J' needs α_{2J+2}
        self.moments = np.empty(2 * self.n_terms)
        self._taus = np.array(self.taus)
        self._buf: np.ndarray | None = None
        self._closed = None
        if isinstance(act, PiecewiseLinearActivation):
            a, b, kinks, jumps = act.pieces
            sigma0 = float(act.value(np.zeros(1))[0])
            self._closed = (np.array([a, b, sigma0]), kinks, jumps)

    def alphas(self, x: np.ndarray) -> np.ndarray:
        """α_2j(τ_s |x_p|), j = 0..J+1, as alpha[j, s P + p] (τ_+ block first): compiled
        closed forms when the activation has them, else :meth:`Activation.hermite`."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        t = np.concatenate([self.taus[0] * np.abs(x), self.taus[1] * np.abs(x)])
        if self._closed is not None:
            if self._buf is None or self._buf.shape[1] != t.size:
                self._buf = np.empty((self.n_terms + 1, t.size))
            _pl_even_alphas(t, *self._closed, self.kmax, self._buf)
            return self._buf
        return np.ascontiguousarray(self.act.hermite(t, self.kmax)[0::2])

    def slope_and_risk(self, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
        """(∂_rψ_λ(X_p; ρ̂) for every point, R(ρ̂)) for the weighted points ρ̂ = Σ w_p δ_{X_p}
        (ψ is even in r: a negative X_p gets −∂_rψ_λ(|X_p|))."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        out = np.empty(x.size)
        if self._closed is not None:
            if self._buf is None or self._buf.shape[1] != 2 * x.size:
                self._buf = np.empty((self.n_terms + 1, 2 * x.size))
            risk = _pl_slope_risk(x, w, (self._taus, self.lam, self.n_terms, self.l2),
                                  (*self._closed, self.kmax), self._buf, out, self.moments)
        else:
            risk = _slope_risk(self.alphas(x), x, w, self._taus, self.lam, self.n_terms,
                               self.l2, out, self.moments)
        return out, float(risk)

    def risk(self, x: np.ndarray, w: np.ndarray) -> float:
        """R(ρ̂) = 1 + 2 Σ w_p v(X_p) + Σ_k λ_k M_k² (MATH.md §2)."""
        return self.slope_and_risk(x, w)[1]

    def potential(self, r: np.ndarray, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """ψ_λ(r; ρ̂) at the points r (diagnostics)."""
        a, n = self.alphas(x), len(x)
        J, m = self.n_terms, self.moments
        _moments(a, 0, w, J, m, 0)
        _moments(a, n, w, J, m, J)
        r = np.asarray(r, dtype=np.float64).ravel()
        b = self.alphas(r).copy()
        b_p, b_m = b[:, : r.size], b[:, r.size :]
        out = -0.5 * (b_p[0] - b_m[0]) + 0.5 * self.l2 * r**2
        out += (self.lam[:J] * m[:J]) @ b_p[:J]
        out += (self.lam[J:] * m[J:]) @ b_m[:J]
        return out

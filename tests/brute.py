"""Independent brute-force evaluation of the radial kernel u_d (no Hermite series)."""

import numpy as np
from numpy.polynomial.legendre import leggauss
from scipy import integrate, special

GL_X, GL_W = leggauss(24)


def _ramp(x, s1, s2, t1, t2):
    return np.clip(s1 + (s2 - s1) * (x - t1) / (t2 - t1), min(s1, s2), max(s1, s2))


def _ramp_gauss(m, s, s1, s2, t1, t2):
    """E σ(m + sZ) for the ramp, in closed form: σ = s1 + S[(x−t1)+ − (x−t2)+]."""
    slope = (s2 - s1) / (t2 - t1)

    def call(k):  # E (m + sZ − k)_+
        if s == 0.0:
            return np.maximum(m - k, 0.0)
        z = (m - k) / s
        return (m - k) * special.ndtr(z) + s * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)

    return s1 + slope * (call(t1) - call(t2))


def _panels(breaks, lo=-13.0, hi=13.0, width=0.25):
    pts = np.unique(np.clip(np.concatenate([[lo, hi], breaks]), lo, hi))
    xs, ws = [], []
    for a, b in zip(pts[:-1], pts[1:], strict=True):
        m = max(1, int(np.ceil((b - a) / width)))
        e = np.linspace(a, b, m + 1)
        for p, q in zip(e[:-1], e[1:], strict=True):
            xs.append(0.5 * (q - p) * GL_X + 0.5 * (p + q))
            ws.append(0.5 * (q - p) * GL_W)
    return np.concatenate(xs), np.concatenate(ws)


def pair_expectation(a, b, c, p):
    """E[σ(aX) σ(bY)] for standard normals with correlation c, σ the ramp with params p."""
    s = np.sqrt(max(0.0, 1.0 - c * c))
    kinks = [p["t1"] / a, p["t2"] / a]
    if abs(b * c) > 0:
        kinks += [p["t1"] / (b * c), p["t2"] / (b * c)]
    x, w = _panels(np.array(kinks))
    g = _ramp_gauss(b * c * x, b * s, **p)
    f = _ramp(a * x, **p)
    return float(np.sum(w * f * g * np.exp(-0.5 * x * x)) / np.sqrt(2 * np.pi))


def u_brute(r1, r2, d, delta, p, epsabs=1e-12):
    """u_d(r, r') = ½ Σ_± ∫ E[σ(τr X) σ(τr' Y) | corr c] p_d(c) dc, p_d ∝ (1 − c²)^((d−3)/2)."""
    alpha = (d - 3) / 2
    norm = np.sqrt(np.pi) * np.exp(special.gammaln(alpha + 1) - special.gammaln(alpha + 1.5))
    total = 0.0
    if d >= 20:  # sharply peaked weight, smooth integrand: Gauss–Jacobi for (1 − c)^α (1 + c)^α
        c, w = special.roots_jacobi(96, alpha, alpha)
        for tau in (1 + delta, 1 - delta):
            vals = [pair_expectation(tau * r1, tau * r2, ci, p) for ci in c]
            total += 0.5 * np.dot(w, vals) / norm
        return total
    for tau in (1 + delta, 1 - delta):
        val, _ = integrate.quad(lambda c, tau=tau: pair_expectation(tau * r1, tau * r2, c, p),
                                -1, 1, weight="alg", wvar=(alpha, alpha), epsabs=epsabs,
                                epsrel=1e-13, limit=400)
        total += 0.5 * val / norm
    return total

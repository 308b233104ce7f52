"""Independent brute-force v, U and R# of the single-neuron problem (MATH.md §3).

No Hermite series and no G1 rule: with ``u = s G1 + r X`` and ``u' = s' G1 + r' Y`` (X, Y
standard normals with correlation c, independent of G1) the pair ``(u, u')`` is bivariate normal
with variances ``ϱ², ϱ'²`` (``ϱ = sqrt(s² + r²)``) and correlation
``κ(c) = (s s' + r r' c) / (ϱ ϱ')``, so

    U(z, z') / (a a') = ∫ p_d(c) E[σ(ϱ A) σ(ϱ' B)] dc,   corr(A, B) = κ(c),
    p_d(c) ∝ (1 − c²)^((d − 4)/2) on [−1, 1]   (a coordinate of a uniform point on S^{d−2}),

and d = inf means c = 0.  The Gaussian pair expectation is a tensor Gauss–Hermite rule (numpy's
``hermegauss``, conditioning on A) for tanh, and the arc-cosine kernel in closed form for relu:
``E[relu(ϱA) relu(ϱ'B)] = ϱ ϱ' (sqrt(1 − κ²) + (π − arccos κ) κ) / (2π)``.  The c-integral is
scipy's ``quad`` with the algebraic weight (QAWS) for d < 20 and Gauss–Jacobi for larger d.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy import integrate, special


def gauss_normal(n: int) -> tuple[np.ndarray, np.ndarray]:
    """n-point rule for E f(G), G ~ N(0, 1), nodes of negligible weight (< 1e-25) dropped."""
    x, w = hermegauss(n)
    w = w / math.sqrt(2.0 * math.pi)
    keep = w > 1e-25
    return x[keep], w[keep]


X300, W300 = gauss_normal(300)


def pair_tanh(rho1: float, rho2: float, kappa: float) -> float:
    """E[tanh(ϱ A) tanh(ϱ' B)], corr(A, B) = κ: B = κ A + sqrt(1 − κ²) W, 300 × 300 nodes."""
    kappa = min(1.0, max(-1.0, kappa))
    a = X300[:, None]
    b = kappa * a + math.sqrt(1.0 - kappa * kappa) * X300[None, :]
    vals = np.tanh(rho1 * a) * np.tanh(rho2 * b)
    return float(W300 @ vals @ W300)


def pair_relu(rho1: float, rho2: float, kappa: float) -> float:
    """E[relu(ϱ A) relu(ϱ' B)] (arc-cosine kernel of degree 1)."""
    kappa = min(1.0, max(-1.0, kappa))
    return rho1 * rho2 * (math.sqrt(1.0 - kappa * kappa)
                          + (math.pi - math.acos(kappa)) * kappa) / (2.0 * math.pi)


PAIRS = {"tanh": pair_tanh, "relu": pair_relu}


def v_brute(name: str, s: float, r: float) -> float:
    """v(s, r) = E[f_*(G1) σ(s G1 + r Z)] with σ = f_* = ``name``: corr(G1, (sG1 + rZ)/ϱ) = s/ϱ."""
    rho = math.hypot(s, r)
    return PAIRS[name](1.0, rho, s / rho)


def v_tanh_tensor(s: float, r: float) -> float:
    """The same for tanh by a plain 300 × 300 tensor rule over (G1, Z) (second, unrotated check)."""
    g = X300[:, None]
    z = X300[None, :]
    return float(W300 @ (np.tanh(g) * np.tanh(s * g + r * z)) @ W300)


def r_sharp_brute(name: str, noise_variance: float = 0.0) -> float:
    """E f_*(G)² + ν² (the argument is the variance ν², like ``model.label_noise``)."""
    return PAIRS[name](1.0, 1.0, 1.0) + noise_variance


def u_brute(name: str, d: float, z1: tuple[float, float, float],
            z2: tuple[float, float, float]) -> float:
    """U(z, z') = a a' ∫ p_d(c) E[σ(ϱ A) σ(ϱ' B)] dc (module docstring)."""
    (a1, s1, r1), (a2, s2, r2) = z1, z2
    rho1, rho2 = math.hypot(s1, r1), math.hypot(s2, r2)
    pair = PAIRS[name]

    def f(c: float) -> float:
        return pair(rho1, rho2, (s1 * s2 + r1 * r2 * c) / (rho1 * rho2))

    if math.isinf(d):
        return a1 * a2 * f(0.0)
    alpha = (d - 4.0) / 2.0
    norm = math.sqrt(math.pi) * math.exp(special.gammaln(alpha + 1) - special.gammaln(alpha + 1.5))
    if d >= 20:
        c, w = special.roots_jacobi(80, alpha, alpha)
        return a1 * a2 * float(np.dot(w, [f(ci) for ci in c])) / norm
    val, _ = integrate.quad(f, -1.0, 1.0, weight="alg", wvar=(alpha, alpha), epsabs=1e-14,
                            epsrel=1e-13, limit=200)
    return a1 * a2 * val / norm

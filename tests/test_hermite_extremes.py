"""Hermite coefficients of the closed-form activations over their whole range of t = scale,
against high-precision values (mpmath).

α_k(t; b) = E[σ(b + tZ) He_k(Z)]/√k!.  For σ = A + B u + Σ_m D_m (u − κ_m)_+ (ramp, relu) and
x_m = (κ_m − b)/t, Stein's lemma gives

    α_0 = A + B b + Σ_m D_m (t φ(x_m) − (κ_m − b) Q(x_m)),   α_1 = t (B + Σ_m D_m Q(x_m)),
    α_k = t Σ_m D_m φ(x_m) h_{k−2}(x_m) / √(k(k−1))   (k >= 2, h_j = He_j/√j!),

evaluated here in mpmath with enough digits to absorb the cancellation between kinks (the
working precision grows with log10 t); for erf, α_k from the Gaussian integral in closed form
(MATH.md §1).  In double precision the plain sum loses eps × t absolutely (the ramp's α_0 at
t = 1e17 was 0 instead of 2.5); the kernels switch to a cancellation-free form there.

Tolerance: 1e-13 × (1 + max_k |α_k|) — the round-off of a few terms of the size of the largest
coefficient (the recurrence for h_j is stable; kmax = 12 terms).
"""

import math

import numpy as np
import pytest

from meanfield_pde.activations import get_activation

mpmath = pytest.importorskip("mpmath")

KMAX = 12
TS = [1e-3, 0.3, 1.0, 7.0, 60.0, 70.0, 1e3, 1e6, 1e12, 1e17, 1e20, 1e100, 1e300]
BS = [0.0, 0.7, -3.0]


def _h(j: int, x):
    """Normalised Hermite h_j(x) = He_j(x)/√j! by the three-term recurrence, in mpmath."""
    h0, h1 = mpmath.mpf(1), x
    if j == 0:
        return h0
    for n in range(2, j + 1):
        h0, h1 = h1, (x * h1 - mpmath.sqrt(n - 1) * h0) / mpmath.sqrt(n)
    return h1


def _pl_reference(pieces, t: float, b: float) -> np.ndarray:
    a, slope, kinks, jumps = pieces
    with mpmath.workdps(40 + int(max(0.0, math.log10(t)))):
        t_, b_ = mpmath.mpf(t), mpmath.mpf(b)
        phi = lambda x: mpmath.exp(-x * x / 2) / mpmath.sqrt(2 * mpmath.pi)  # noqa: E731
        q = lambda x: mpmath.erfc(x / mpmath.sqrt(2)) / 2  # noqa: E731
        out = [a + slope * b_, t_ * slope] + [mpmath.mpf(0)] * (KMAX - 1)
        for kappa, d in zip(kinks, jumps, strict=True):
            x = (mpmath.mpf(kappa) - b_) / t_
            out[0] += d * (t_ * phi(x) - (kappa - b_) * q(x))
            out[1] += t_ * d * q(x)
            for k in range(2, KMAX + 1):
                out[k] += t_ * d * phi(x) * _h(k - 2, x) / mpmath.sqrt(k * (k - 1))
        return np.array([float(v) for v in out])


def _erf_reference(t: float, b: float) -> np.ndarray:
    """E[erf(b + tZ) He_k(Z)]/√k!: α_0 = erf(b s), α_k = (2/√π) t s e^{−b²s²} a^{k−1}
    h_{k−1}(y)/√k for k >= 1, s = 1/√(1 + 2t²), a = √2 t s, y = −√2 b s (Stein's lemma on
    the Gaussian derivative of erf)."""
    with mpmath.workdps(40):
        t_, b_ = mpmath.mpf(t), mpmath.mpf(b)
        s = 1 / mpmath.sqrt(1 + 2 * t_ * t_)
        a, y = mpmath.sqrt(2) * t_ * s, -mpmath.sqrt(2) * b_ * s
        f = 2 / mpmath.sqrt(mpmath.pi) * t_ * s * mpmath.exp(-b_ * b_ * s * s)
        out = [mpmath.erf(b_ * s)]
        out += [f * a ** (k - 1) * _h(k - 1, y) / mpmath.sqrt(k) for k in range(1, KMAX + 1)]
        return np.array([float(v) for v in out])


@pytest.mark.parametrize("name,params", [("ramp", {}), ("ramp", {"t1": -0.2, "t2": 1.5}),
                                         ("relu", {}), ("erf", {})])
def test_closed_forms_match_high_precision_at_every_scale(name, params):
    act = get_activation(name, params)
    t = np.repeat(TS, len(BS))
    b = np.tile(BS, len(TS))
    got = act.hermite(t, KMAX, b)
    for i in range(t.size):
        ref = (_erf_reference(t[i], b[i]) if name == "erf"
               else _pl_reference(act.pieces, t[i], b[i]))
        tol = 1e-13 * (1.0 + np.max(np.abs(ref)))
        assert np.max(np.abs(got[:, i] - ref)) <= tol, (t[i], b[i], got[:, i], ref)


def test_the_radial_even_rows_agree_at_large_scales():
    """The radial Lagrangian solver's compiled even rows (b = 0) use the same centred form."""
    from meanfield_pde.lagrangian.radial_features import _pl_even_alphas

    act = get_activation("ramp", {})
    a, slope, kinks, jumps = act.pieces
    t = np.array(TS)
    out = np.empty((KMAX // 2 + 1, t.size))
    _pl_even_alphas(t, np.array([a, slope, float(act.value(np.zeros(1))[0])]), kinks, jumps,
                    KMAX, out)
    for i, ti in enumerate(TS):
        ref = _pl_reference(act.pieces, ti, 0.0)[0::2]
        assert np.max(np.abs(out[:, i] - ref)) <= 1e-13 * (1.0 + np.max(np.abs(ref))), ti

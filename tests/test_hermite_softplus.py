"""Hermite coefficients of softplus over its whole range of scales t, against mpmath (issue 18
item 9, softplus at large arguments).

α_k(t; b) = E[softplus(b + tZ) h_k(Z)], softplus(u) = max(u, 0) + log1p(exp(−|u|)): the reference
takes the relu part in closed form (test_hermite_extremes._pl_reference, enough digits for any t)
and the bounded remainder by mpmath quadrature in u = b + tz (it decays like e^{−|u|}, so
|u| <= 110 holds it to 1e-48).

Tolerance per coefficient, from double precision and the conditioning of each part:
16 eps (|α_k| + 1 + min(t, SOFTPLUS_SPLIT_T)) — the closed-form relu part carries a few eps of
|α_k| (each coefficient is a product, no cancellation: the centred form), the quadrature of the
bounded remainder (values <= log 2) a few eps absolutely, and below the split the quadrature of
softplus itself, an integrand of size t, eps t.  Before the split the odd coefficients at large t
(of size |b|, where the even ones are of size t) were off by eps t: α_3 at t = 1e17, b = 0.7 was
off by 9 against 0.11.
"""

import math

import numpy as np
import pytest
from test_hermite_extremes import BS, KMAX, TS, _h, _pl_reference

from meanfield_pde.activations import SOFTPLUS_SPLIT_T, get_activation

mpmath = pytest.importorskip("mpmath")
EPS = np.finfo(float).eps
RELU = (0.0, 0.0, np.array([0.0]), np.array([1.0]))


def _remainder(t: float, b: float) -> list:
    """E[log1p(exp(−|b + tZ|)) h_k(Z)], k = 0..KMAX, in mpmath (as mpf)."""
    with mpmath.workdps(25):  # the remainder is added to doubles: 25 digits are plenty
        t_, b_ = mpmath.mpf(t), mpmath.mpf(b)
        lo, hi = max(-110.0, b - 40.0 * t), min(110.0, b + 40.0 * t)
        cuts = sorted({lo, hi, *(x for x in (0.0, b - 3 * t, b, b + 3 * t) if lo < x < hi)})
        pts = [mpmath.mpf(c) for c in cuts]

        def term(k):
            def f(u):
                z = (u - b_) / t_
                return (mpmath.exp(-z * z / 2) / mpmath.sqrt(2 * mpmath.pi)
                        * mpmath.log1p(mpmath.exp(-abs(u))) * _h(k, z) / t_)
            return mpmath.quad(f, pts, maxdegree=10)

        return [term(k) for k in range(KMAX + 1)]


def _reference(t: float, b: float) -> np.ndarray:
    """α_k of softplus: the relu closed form plus the remainder, summed in mpmath."""
    relu = _pl_reference(RELU, t, b)  # doubles, each correct to its last bit
    with mpmath.workdps(40):
        return np.array([float(mpmath.mpf(r) + q) for r, q in zip(relu, _remainder(t, b),
                                                                    strict=True)])


@pytest.mark.parametrize("t", [t for t in TS if t > SOFTPLUS_SPLIT_T])
def test_softplus_matches_high_precision_at_every_scale(t):
    """Every scale of TS above the split (below it the quadrature of softplus is unchanged)."""
    act = get_activation("softplus", {})
    got = act.hermite(np.full(len(BS), t), KMAX, np.array(BS))
    for i, b in enumerate(BS):
        ref = _reference(t, b)
        tol = 16 * EPS * (np.abs(ref) + 1.0 + min(t, SOFTPLUS_SPLIT_T))
        bad = np.abs(got[:, i] - ref) > tol
        assert not bad.any(), (t, b, np.flatnonzero(bad), got[:, i], ref)


def test_the_split_is_continuous():
    """Just below and above SOFTPLUS_SPLIT_T the two forms agree to the round-off of the
    quadrature of softplus there (eps t)."""
    act = get_activation("softplus", {})
    t = np.array([SOFTPLUS_SPLIT_T, math.nextafter(SOFTPLUS_SPLIT_T, math.inf)])
    for b in BS:
        two = act.hermite(t, KMAX, np.full(2, b))
        scale = np.abs(two[:, 0]) + 1.0 + SOFTPLUS_SPLIT_T
        assert np.all(np.abs(two[:, 0] - two[:, 1]) <= 32 * EPS * scale), b

"""The tensor Gauss rules of the single-neuron initial law and the Chebyshev feature table."""

import math

import numpy as np
import pytest
from scipy import special

from meanfield_pde.activations import get_activation
from meanfield_pde.lagrangian import neuron_field as nf
from meanfield_pde.lagrangian import tensor_quadrature as tq
from meanfield_pde.lagrangian.neuron import deposit
from meanfield_pde.problems.neuron_kernel import neuron_kernel

EPS = np.finfo(float).eps


@pytest.mark.parametrize("dof", [3, 10, 30, 1000])
def test_chi_rule_has_the_exact_even_moments(dof):
    """E r^{2k} = (κ²/dof)^k 2^k Γ((dof−1)/2 + k)/Γ((dof−1)/2), exact for k <= 2n − 1."""
    kappa, n = 0.7, 8
    r, w = tq.rule_r(kappa, dof, n)
    assert np.all(r > 0) and np.all(w > 0)
    half = 0.5 * (dof - 1)
    for k in range(2 * n):
        exact = math.exp(k * math.log(2 * kappa**2 / dof) + special.gammaln(half + k)
                         - special.gammaln(half))
        # Gauss weights and nodes carry relative round-off ~ n eps per power of r²
        assert np.dot(w, r ** (2 * k)) == pytest.approx(exact, rel=(k + 1) * 50 * EPS)


def test_normal_and_uniform_rules_have_exact_moments():
    n = 7
    s, w = tq.rule_s(0.3, 0.5, 30, n)
    sd = 0.5 / math.sqrt(30)
    assert np.dot(w, s) == pytest.approx(0.3, abs=1e-15)
    assert np.dot(w, (s - 0.3) ** 2) == pytest.approx(sd**2, rel=1e-13)
    assert np.dot(w, (s - 0.3) ** 4) == pytest.approx(3 * sd**4, rel=1e-13)
    a, w = tq.rule_a("uniform", 1.0, 0.0, 0.2, n)
    assert np.dot(w, (a - 1) ** 2) == pytest.approx(0.2**2 / 3, rel=1e-13)
    a, w = tq.rule_a("gaussian", 1.0, 0.1, 0.0, n)
    assert np.dot(w, (a - 1) ** 2) == pytest.approx(0.01, rel=1e-13)
    assert tq.rule_a("point", 1.5, 0.1, 0.1, n)[0].tolist() == [1.5]
    assert tq.rule_a("gaussian", 1.5, 0.0, 0.1, n)[0].size == 1  # zero width: a point mass


def test_product_rule_mass_is_one_and_the_deposit_conserves_it():
    rules = (tq.rule_a("gaussian", 1.0, 0.1, 0.0, 6), tq.rule_s(0.0, 0.5, 30, 24),
             tq.rule_r(0.5, 30, 24))
    z, w = tq.product_rule(rules)
    assert z.shape == (w.size, 3) and w.size < 6 * 24 * 24  # far tails dropped
    assert abs(math.fsum(w) - 1.0) <= 1e-14 and np.all(w > 0)
    edges = (np.linspace(0.5, 1.5, 9), np.linspace(-0.4, 0.4, 17), np.linspace(0, 0.3, 13))
    m = deposit(z, w, edges)  # some particles lie beyond the walls: they go to the wall cells
    assert m.shape == (8, 16, 12) and m.min() >= 0.0
    assert abs(m.sum() - math.fsum(w)) <= 1e-14
    # a particle exactly on an interior edge goes to the cell on its right
    one = deposit(np.array([[1.0, 0.0, 0.1]]), np.array([1.0]), edges)
    assert one[4, 8, 4] == 1.0


@pytest.mark.parametrize("act,d,bound", [("tanh", 30, 1e-8), ("erf", 10, 1e-10)])
def test_chebyshev_table_reproduces_v_and_the_kernel(act, d, bound):
    """The 48 × 24 table against the kernel computed directly at scattered points (spectral
    convergence for analytic σ: measured 5e-10 (tanh), 2e-12 (erf) on this box)."""
    sig = get_activation(act, {})

    def kf(s, r):
        return neuron_kernel(sig, sig, 0.0, d, s, r, 1e-12, 512, 1200)

    lo, hi, rmax = -1.0, 1.85, 1.1
    table = nf.ChebTable.build(kf, lo, hi, rmax, 48, 24)
    rng = np.random.default_rng(1)
    sp = np.sort(rng.uniform(lo, hi, 7))
    rp = np.sort(np.concatenate([[0.0, 1e-3], rng.uniform(0, rmax, 5)]))
    ex = kf(sp, rp)
    S, R = (x.ravel() for x in np.meshgrid(sp, rp, indexing="ij"))
    assert np.max(np.abs(nf.phi_at(table, table.cv, S, R) - ex.v.ravel())) <= bound
    ns, nr = table.shape
    x = (S - 0.5 * (lo + hi)) / (0.5 * (hi - lo))
    y = 2 * (R / rmax) ** 2 - 1
    basis = np.einsum("pi,pk->pik", np.polynomial.chebyshev.chebvander(x, ns - 1),
                      np.polynomial.chebyshev.chebvander(y, nr - 1)).reshape(S.size, -1)
    g = basis @ table.E
    k_exact = (ex.feats * ex.weights[:, None]).T @ ex.feats
    assert np.max(np.abs(g @ g.T - k_exact)) <= 2 * bound

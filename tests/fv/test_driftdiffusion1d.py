"""Scharfetter–Gummel kernels of the noisy radial equation: exact Gibbs states, conservation,
positivity beyond the parabolic limit, free-energy decay, convergence to the Gibbs fixed point."""

import math

import numpy as np
import pytest
from helpers import radial_cells
from roundoff import U, free_energy_scale_1d

from meanfield_pde.fv import driftdiffusion1d as dd
from meanfield_pde.fv.bundles import Grid1, LowRank, Noise, StepSizes, Xi
from meanfield_pde.fv.gibbs import gibbs_fixed_point

ONE = np.array([1.0])  # constant schedule ξ ≡ 1
XI1 = Xi.make(0, ONE)


def _tables(h, r, v, feats, lam_k, r_sharp, lam, beta, m):
    """(Grid1, LowRank, Noise) bundles of the compiled drivers."""
    return Grid1.make(h, r), LowRank.make(v, feats, lam_k), Noise.make(r_sharp, lam, beta, m)


def _problem(n=200, r_max=8.0, k=3, scale=1.0, seed=0):
    """Synthetic low-rank problem: smooth features with λ_k > 0, smooth V."""
    rng = np.random.default_rng(seed)
    h, r = radial_cells(n, r_max)
    feats = np.ascontiguousarray(np.array(
        [np.cos(0.5 * (j + 1) * r + rng.random()) * np.exp(-0.1 * r * r) for j in range(k)]))
    lam_k = scale * (0.2 + rng.random(k))
    v = 0.3 * np.sin(r) - np.exp(-((r - 3.0) ** 2))
    return h, r, v, feats, lam_k


def _free_energy_numpy(rho, h, r, v, feats, lam_k, r_sharp, lam, beta, m):
    mom = h * feats @ rho
    ent = np.where(rho > 0, rho * np.log(np.where(rho > 0, rho, 1.0) / r**m), 0.0)
    return (0.5 * (r_sharp + 2 * h * v @ rho + lam_k @ mom**2) + 0.5 * lam * h * (r * r) @ rho
            + h * ent.sum() / beta)


def _phi(rho, h, r, v, feats, lam_k, lam, beta, m):
    psi = v + (lam_k * (h * feats @ rho)) @ feats
    out = np.empty_like(rho)
    dd.effective_potential(psi, r, lam, beta, m, out)
    return out


def test_bernoulli_is_stable_and_satisfies_its_identities():
    xs = np.concatenate([[0.0, 1e-12, -1e-12, 9.9e-6, -9.9e-6, 1.01e-5, -1.01e-5],
                         np.linspace(-40, 40, 801), [300.0, -300.0, 709.0, -709.0]])
    for x in xs:
        bp, bm = dd.bernoulli(x), dd.bernoulli(-x)
        assert bp >= 0.0 and bm >= 0.0
        # B(−x) = B(x) + x, and B(x)/B(−x) = e^{−x}: both to a few ulp.  B = x / expm1(x) is
        # within (2 + 1) u (any libm's expm1 within 2 ulp, the division), so bm − bp − x is
        # within (3 + 3 + 2) u of 0 (the two subtractions round at most u max(bm, bp) each)
        assert abs(bm - bp - x) <= 8 * U * max(bm, bp, 1.0)
        if abs(x) < 700:
            assert bp == pytest.approx(bm * math.exp(-x), rel=1e-14, abs=1e-300)
    # continuity across the series/expm1 switch and the limits
    assert dd.bernoulli(1e-5 * (1 - 1e-12)) == pytest.approx(dd.bernoulli(1e-5), rel=1e-15)
    assert dd.bernoulli(0.0) == 1.0 and dd.bernoulli(800.0) == 0.0
    assert dd.bernoulli(-800.0) == pytest.approx(800.0, rel=1e-15)


def test_flux_matches_numpy_conserves_and_rate_is_the_parabolic_bound():
    rng = np.random.default_rng(1)
    h, r = radial_cells(150, 6.0)
    for m in (0.0, 2.5, 5.0):
        rho = rng.random(150)
        rho[rng.random(150) < 0.1] = 0.0
        phi = np.cumsum(rng.normal(size=150)) * 0.05 - (m / 10) * np.log(r)
        out = np.empty(150)
        rate = dd.sg_flux_rhs(rho, phi, h, 2.0, 10.0, out)
        f = dd.sg_flux_numpy(rho, phi, h, 2.0, 10.0)
        ref = -np.diff(np.concatenate([[0.0], f, [0.0]])) / h
        assert np.max(np.abs(out - ref)) <= 1e-13 * np.max(np.abs(ref))
        assert abs(out.sum()) <= 1e-14 * np.abs(out).sum()
        # forward Euler at dt = 1/rate keeps ρ >= 0 (each cell keeps a non-negative fraction)
        assert (rho + out / rate).min() >= -1e-15 * rho.max()
    # flat Φ: rate = 2c/(βh²) = 4ξ/(βh²), the parabolic limit dt <= h²β/(4ξ)
    rate = dd.sg_flux_rhs(np.ones(150), np.zeros(150), h, 2.0, 10.0, np.empty(150))
    assert rate == pytest.approx(4.0 / (10.0 * h * h), rel=1e-15)


@pytest.mark.parametrize("m", [0.0, 2.5, 5.0])
def test_discrete_gibbs_state_of_a_frozen_potential_is_zero_flux(m):
    rng = np.random.default_rng(2)
    n, beta, lam = 200, 10.0, 0.1
    h, r = radial_cells(n, 8.0)
    psi = np.sin(2 * r) + 0.01 * rng.normal(size=n)  # any fixed Ψ, even a rough one
    phi = np.empty(n)
    dd.effective_potential(psi, r, lam, beta, m, phi)
    assert np.allclose(phi, psi + lam * r * r / 2 - m / beta * np.log(r), rtol=0, atol=1e-14)
    e = -beta * phi
    rho = np.exp(e - e.max())
    rho /= h * rho.sum()
    c = 2.0
    f = dd.sg_flux_numpy(rho, phi, h, c, beta)
    x = beta * np.diff(phi)
    scale = c / (beta * h) * np.max(x / np.expm1(x) * rho[:-1])
    assert np.max(np.abs(f)) <= 1e-12 * scale
    out = np.empty(n)
    dd.sg_flux_rhs(rho, phi, h, c, beta, out)
    assert np.max(np.abs(out)) <= 1e-12 * scale / h
    work = [np.empty(n) for _ in range(4)]
    for dt in (1e-4, 1e-1, 1e2, 1e6):
        dd.semi_implicit_step(rho, phi, h, c, beta, dt, *work)
        assert np.max(np.abs(work[0] - rho)) <= 1e-12 * rho.max()


def test_semi_discrete_dissipation_on_random_states():
    rng = np.random.default_rng(3)
    beta = 7.0
    h, r = radial_cells(120, 5.0)
    out = np.empty(120)
    for _ in range(200):
        rho = rng.random(120) * np.exp(rng.normal(size=120) * 3)  # spans many decades
        phi = rng.normal(size=120) * rng.choice([0.01, 1.0, 30.0])
        dd.sg_flux_rhs(rho, phi, h, 2.0, beta, out)
        mu = phi + np.log(rho) / beta
        terms = h * mu * out
        assert terms.sum() <= 1e-13 * np.abs(terms).sum()


def test_free_energy_matches_numpy_with_zero_cells():
    h, r, v, feats, lam_k = _problem(n=100, k=4)
    rho = np.exp(-((r - 3) ** 2))
    rho[::7] = 0.0
    for m in (0.0, 5.0):
        got = dd.free_energy(rho, h, r, v, feats, lam_k, 1.0, 0.1, 10.0, m)
        ref = _free_energy_numpy(rho, h, r, v, feats, lam_k, 1.0, 0.1, 10.0, m)
        # compensated numba sum (a few u) vs plain numpy/BLAS sums ((n + 8) u) of the same terms
        fs = free_energy_scale_1d(rho, h, r, v, feats, lam_k, 1.0, 0.1, 10.0, m)
        assert abs(got - ref) <= (rho.size + 16) * U * fs
    rho[3] = -1e-3
    assert math.isnan(dd.free_energy(rho, h, r, v, feats, lam_k, 1.0, 0.1, 10.0, 5.0))


def test_step_energy_balance_is_the_exact_free_energy_change():
    h, r, v, feats, lam_k = _problem(n=300, k=5, scale=10.0)
    beta, lam, m, c = 10.0, 0.1, 5.0, 2.0
    rho = np.exp(-((r - 2) ** 2))
    rho /= h * rho.sum()
    phi = _phi(rho, h, r, v, feats, lam_k, lam, beta, m)
    new, bp, bm, piv = (np.empty(300) for _ in range(4))
    f0 = dd.free_energy(rho, h, r, v, feats, lam_k, 1.0, lam, beta, m)
    for dt in (1e-4, 1e-2, 1.0, 100.0):
        dd.semi_implicit_step(rho, phi, h, c, beta, dt, new, bp, bm, piv)
        quad, dis, breg = dd.step_energy_balance(rho, new, np.log(new), phi, (bp, bm), h,
                                                 (c / (beta * h), dt, beta),
                                                 LowRank.make(v, feats, lam_k), np.empty(300))
        df = dd.free_energy(new, h, r, v, feats, lam_k, 1.0, lam, beta, m) - f0
        assert min(quad, dis, breg) >= 0.0
        assert quad - dis - breg == pytest.approx(df, rel=1e-10, abs=1e-14)
    # the large step of a strong interaction raises F: the loop must reject it
    assert df > 0.0


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_large_steps_conserve_mass_stay_positive_and_decrease_free_energy(scale):
    """dt = 100 × the parabolic limit h²β/(4ξ), one step per call; with a strong interaction
    (scale 30) such steps raise F and must be rejected and retried with dt/2."""
    n = 200
    h, r, v, feats, lam_k = _problem(n=n, k=3, scale=scale)
    beta, lam, m = 10.0, 0.1, 5.0
    rng = np.random.default_rng(4)
    rho = rng.random(n) * np.exp(-((r - 4) ** 2))  # rough, with empty cells
    rho[rng.random(n) < 0.2] = 0.0
    rho /= h * rho.sum()
    mass0 = h * rho.sum()
    dt_par = h * h * beta / 4.0  # explicit parabolic limit for ξ = 1
    work = dd.noisy_workspace(n, 3)
    tables = _tables(h, r, v, feats, lam_k, 1.0, lam, beta, m)
    t, dt = 0.0, 100 * dt_par
    f_prev = _free_energy_numpy(rho, h, r, v, feats, lam_k, 1.0, lam, beta, m)
    fs_prev = free_energy_scale_1d(rho, h, r, v, feats, lam_k, 1.0, lam, beta, m)
    max_increase, max_drift, full, rejected, excess = -np.inf, 0.0, 0, 0, -np.inf
    for _ in range(300):
        t, steps, rej, status, dt_next, f_last = dd.advance_noisy(
            rho, t, 1e9, 1, *tables, XI1, StepSizes.make(dt, 100 * dt_par), work)
        assert status == dd.MAX_STEPS and steps == 1
        rejected += rej
        full += rej == 0 and dt == 100 * dt_par
        assert rho.min() >= 0.0
        max_drift = max(max_drift, abs(h * rho.sum() - mass0) / mass0)
        f_now = _free_energy_numpy(rho, h, r, v, feats, lam_k, 1.0, lam, beta, m)
        fs = free_energy_scale_1d(rho, h, r, v, feats, lam_k, 1.0, lam, beta, m)
        # compensated numba sum (a few u) vs plain numpy/BLAS sums ((n + 8) u) of the same terms
        assert abs(f_last - f_now) <= (n + 16) * U * fs
        max_increase = max(max_increase, f_now - f_prev)
        # F decreases exactly; the numpy F of each state carries <= (n + 8) u fs of round-off
        # (a relative 1e-14 |F| was below that when the terms cancel)
        excess = max(excess, (f_now - f_prev) / ((n + 8) * U * (fs + fs_prev)))
        f_prev, fs_prev = f_now, fs
        dt = dt_next
    print(f"scale {scale}: mass drift {max_drift:.1e}, max F increase {max_increase:.1e}, "
          f"{full}/300 steps at 100x the parabolic limit, {rejected} rejected, t = {t:.3g}")
    assert max_drift <= 1e-13  # round-off of the conservative step: ~3u per step, 300 steps
    # ~1e-13; an unrejected large step raises F by O(1) (the balance test: +1.4 at dt = 100)
    assert excess <= 1.0
    if scale == 1.0:
        assert full == 300 and rejected == 0
    else:
        assert rejected > 0


def test_stop_time_budget_and_nonfinite_status():
    n = 80
    h, r, v, feats, lam_k = _problem(n=n, r_max=6.0, k=2)
    rho = np.exp(-((r - 2) ** 2))
    work = dd.noisy_workspace(n, 2)
    args = (*_tables(h, r, v, feats, lam_k, 1.0, 0.1, 10.0, 5.0), XI1)
    t, steps, rej, status, dt, f = dd.advance_noisy(rho, 0.0, 0.7, 10**6, *args,
                                                    StepSizes.make(0.05, 0.2), work)
    assert status == dd.REACHED and t == 0.7 and steps >= 4
    t, steps, rej, status, dt, f = dd.advance_noisy(rho, 0.7, 100.0, 3, *args,
                                                    StepSizes.make(dt, 0.2), work)
    assert status == dd.MAX_STEPS and steps == 3 and 0.7 < t < 100.0
    rho[5] = np.nan
    sizes = StepSizes.make(dt, 0.2)
    assert dd.advance_noisy(rho, t, 100.0, 3, *args, sizes, work)[3] == dd.NONFINITE


def test_first_order_in_time_against_rk3():
    """Semi-implicit error at t = 0.5 halves with dt (RK3 with the parabolic dt as reference)."""
    n = 100
    h, r, v, feats, lam_k = _problem(n=n, r_max=6.0, k=3, scale=2.0)
    beta, lam, m = 5.0, 0.1, 2.0
    rho0 = np.exp(-((r - 2.5) ** 2) * 4)
    rho0 /= h * rho0.sum()
    work = dd.noisy_workspace(n, 3)
    tables = _tables(h, r, v, feats, lam_k, 1.0, lam, beta, m)
    ref = rho0.copy()
    out = dd.advance_noisy_rk3(ref, 0.0, 0.5, 10**6, *tables, XI1, 0.5, work)
    assert out[3] == dd.REACHED and ref.min() >= 0.0
    assert abs(h * ref.sum() - 1.0) <= 1e-13
    errs = []
    for dt in (0.02, 0.01, 0.005):
        rho = rho0.copy()
        out = dd.advance_noisy(rho, 0.0, 0.5, 10**6, *tables, XI1, StepSizes.make(dt, dt),
                               work)
        assert out[3] == dd.REACHED and out[2] == 0  # no rejection: fixed dt
        errs.append(h * np.abs(rho - ref).sum())
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    print("L1 errors", errs, "orders", orders)
    assert np.all(np.abs(orders - 1.0) <= 0.1)


def test_long_time_limit_is_the_gibbs_fixed_point():
    n = 200
    h, r, v, feats, lam_k = _problem(n=n, k=3)
    beta, lam, m = 10.0, 0.1, 5.0
    g = gibbs_fixed_point(r, h, v, feats, lam_k, 1.0, lam, beta, m)
    rho0 = np.exp(-((r - 1.0) ** 2))
    rho0 /= h * rho0.sum()
    res = dd.steady_state(rho0, h, r, v, feats, lam_k, 1.0, lam, beta, m, tol=1e-13,
                          tol_rho=1e-12, t_chunk=5.0, t_max=2000.0, dt_max=5.0)
    l1 = h * np.abs(res.density - g.density).sum()
    print(f"t = {res.t}, steps {res.steps}, rejected {res.rejected}, L1 to Gibbs {l1:.1e}, "
          f"F - F* = {res.free_energy - g.free_energy:.1e}")
    assert res.converged and res.status == dd.REACHED
    assert l1 <= 1e-8
    assert res.free_energy == pytest.approx(g.free_energy, abs=1e-13)


def test_linear_problem_relaxes_to_the_chi_law():
    """K = 0, V = 0: the limit is ρ_i ∝ r_i^m exp(−βλ r_i²/2) and F = −β⁻¹ log Z_h."""
    n, beta, lam, m = 240, 4.0, 0.25, 3.0
    h, r = radial_cells(n, 12.0)
    feats, lam_k, v = np.zeros((0, n)), np.zeros(0), np.zeros(n)
    rho = np.exp(-((r - 6.0) ** 2))
    rho /= h * rho.sum()
    res = dd.steady_state(rho, h, r, v, feats, lam_k, 0.0, lam, beta, m, tol=1e-14,
                          tol_rho=1e-13, t_chunk=20.0, t_max=5000.0, dt_max=20.0)
    w = r**m * np.exp(-beta * lam * r * r / 2)
    z_h = h * w.sum()
    assert res.converged
    assert h * np.abs(res.density - w / z_h).sum() <= 1e-11
    assert res.free_energy == pytest.approx(-math.log(z_h) / beta, rel=1e-13)
    # and the grid values are the chi law: Z = 2^{(m−1)/2} Γ((m+1)/2) (βλ)^{−(m+1)/2}, up to the
    # midpoint error h^4 B_4(½)/4! f'''(0) (f = r³ e^{−ar²/2}: f'(0) = 0, f'''(0) = 6)
    z = 2 ** ((m - 1) / 2) * math.gamma((m + 1) / 2) * (beta * lam) ** (-(m + 1) / 2)
    em = -(h**4) * (7 / 240) / 24 * 6.0  # M − ∫ = −Σ_k h^{2k} B_{2k}(½)/(2k)! f^{(2k−1)}(0)
    assert z_h - z == pytest.approx(em, rel=1e-2)

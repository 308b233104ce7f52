"""Scharfetter–Gummel kernels of the noisy 3-D (a, s, r) equation (fv.driftdiffusion3d).

Exact discrete Gibbs states (frozen and self-consistent), agreement of each split factor with the
1-D solver, conservation and positivity far beyond the parabolic limit, monotone free energy and
its exact step balance, the semi-discrete dissipation, first order in time, serial = parallel bit
for bit, and convergence to the Gibbs fixed point (synthetic problem and a real tanh neuron).
"""

import math

import numpy as np
import pytest
from helpers import cell_centres
from roundoff import U, free_energy_roundoff_3d

from meanfield_pde.activations import get_activation
from meanfield_pde.fv import driftdiffusion1d as dd
from meanfield_pde.fv import driftdiffusion3d as D
from meanfield_pde.fv import energy3d as E
from meanfield_pde.fv import splitstep3d as SP
from meanfield_pde.fv.bundles import Grid3, Kernel3, Noise, StepSizes, Xi
from meanfield_pde.fv.stepper3d import field3d, potential3d
from meanfield_pde.problems.neuron_kernel import neuron_kernel

ONE = np.array([1.0])  # constant schedule ξ ≡ 1
XI = 0.7
CONST = np.array([XI])
XI_CONST = Xi.make(0, CONST)


def _tables(a_c, s_c, r_c, h_a, h_s, h_r, phi0, feats, w, r_sharp, lam, beta, m):
    """(Grid3, Kernel3, Noise) bundles from the flat arguments."""
    return (Grid3.make(a_c, s_c, r_c, h_a, h_s, h_r), Kernel3.make(phi0, feats, w),
            Noise.make(r_sharp, lam, beta, m))


def _synthetic(shape=(8, 12, 12), q=4, seed=3, amp=0.3, wsc=0.5):
    """Smooth φ0 (non-convex in (a, s)), smooth features with w_q > 0, a box around 0."""
    rng = np.random.default_rng(seed)
    na, ns, nr = shape
    a_c, h_a = cell_centres(-2.5, 2.5, na)
    s_c, h_s = cell_centres(-1.5, 1.5, ns)
    r_c, h_r = cell_centres(0.0, 2.0, nr)
    S, R = np.meshgrid(s_c, r_c, indexing="ij")
    phi0 = np.ascontiguousarray(amp * (np.sin(1.7 * S + 0.4) * np.cos(1.1 * R) - 0.5 * S))
    feats = np.ascontiguousarray(np.array(
        [(np.cos((p + 1) * 0.8 * S + 0.6 * (p + 1) * R + rng.random())
          * np.exp(-0.2 * R * R)).ravel() for p in range(q)]).reshape(q, ns * nr))
    w = wsc * (0.3 + rng.random(q))
    return a_c, s_c, r_c, h_a, h_s, h_r, phi0, feats, w


def _blob(a_c, s_c, r_c, h_a, h_s, h_r, centre=(0.8, -0.3, 0.9)):
    a, s, r = np.meshgrid(a_c, s_c, r_c, indexing="ij")
    rho = np.exp(-(a - centre[0]) ** 2 / 0.3 - (s - centre[1]) ** 2 / 0.2
                 - (r - centre[2]) ** 2 / 0.1)
    return rho / (rho.sum() * h_a * h_s * h_r)


def _rough(rng, shape, h3):
    rho = rng.random(shape)
    rho[rng.random(shape) < 0.15] = 0.0
    return rho / (rho.sum() * h3)


def _phi_numpy(rho, a_c, s_c, r_c, h_a, h_s, h_r, phi0, feats, w, lam, beta, m):
    phi, _ = potential3d(rho, a_c, h_a, h_s, h_r, phi0, feats, w)
    a, s, r = np.meshgrid(a_c, s_c, r_c, indexing="ij")
    return a * phi[None] + 0.5 * lam * (a * a + s * s + r * r) - (m / beta) * np.log(r)


def _bern(x):
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return np.where(np.abs(x) < 1e-5, 1.0 - 0.5 * x + x * x / 12.0, x / np.expm1(x))


def _rhs_numpy(rho, Phi, hs, c, beta):
    """dρ/dt and the largest face-flux magnitude, axis by axis in numpy."""
    out = np.zeros_like(rho)
    fmax = 0.0
    for ax, h in enumerate(hs):
        x = beta * np.diff(Phi, axis=ax)
        r0 = np.moveaxis(rho, ax, 0)
        xm = np.moveaxis(x, ax, 0)
        flux_p = (c / (beta * h)) * _bern(xm) * r0[:-1]
        flux_m = (c / (beta * h)) * _bern(-xm) * r0[1:]
        f = flux_p - flux_m
        fmax = max(fmax, float(np.max(np.abs(flux_p))), float(np.max(np.abs(flux_m))))
        wall = np.zeros((1,) + f.shape[1:])
        out += np.moveaxis(-np.diff(np.concatenate([wall, f, wall]), axis=0) / h, 0, ax)
    return out, fmax


def _free_energy_numpy(rho, a_c, s_c, r_c, h_a, h_s, h_r, phi0, feats, w, r_sharp, lam, beta,
                       m):
    h3 = h_a * h_s * h_r
    _, M = potential3d(rho, a_c, h_a, h_s, h_r, phi0, feats, w)
    a, s, r = np.meshgrid(a_c, s_c, r_c, indexing="ij")
    pos = rho > 0
    ent = np.where(pos, rho * (np.log(np.where(pos, rho, 1.0)) - m * np.log(r)), 0.0)
    return (0.5 * (r_sharp + 2 * h3 * np.sum(a * phi0[None] * rho) + w @ M**2)
            + 0.5 * lam * h3 * np.sum((a * a + s * s + r * r) * rho) + h3 * ent.sum() / beta)


def _advance(rho, t, t_stop, prob, lam, beta, m, *, dt_init=0.0, dt_max=1.0, max_steps=10**6,
             parallel=False, params=ONE, r_sharp=1.0, work=None):
    if work is None:
        work = D.make_noisy3d_work(*rho.shape, prob[7].shape[0])
    return D.advance_noisy3d(rho, t, t_stop, max_steps, *_tables(*prob, r_sharp, lam, beta, m),
                             Xi.make(0, params), StepSizes.make(dt_init, dt_max), work,
                             parallel=parallel)


# ----------------------------------------------------------------------------------------------
# right-hand side, free energy, dissipation


@pytest.mark.parametrize("m", [0.0, 3.0, 8.5])
def test_rhs_matches_numpy_conserves_and_rate_keeps_euler_positive(m):
    rng = np.random.default_rng(1)
    prob = _synthetic((7, 9, 11), q=3, amp=0.8, wsc=2.0)
    a_c, s_c, r_c, h_a, h_s, h_r, phi0, feats, w = prob
    rho = _rough(rng, (7, 9, 11), h_a * h_s * h_r)
    lam, beta = 0.4, 8.0
    out = np.empty_like(rho)
    rate = D.sg_rhs3d(rho, 0.0, *_tables(*prob, 1.0, lam, beta, m), XI_CONST, out)
    Phi = _phi_numpy(rho, a_c, s_c, r_c, h_a, h_s, h_r, phi0, feats, w, lam, beta, m)
    ref, fmax = _rhs_numpy(rho, Phi, (h_a, h_s, h_r), 2 * XI, beta)
    scale = fmax / min(h_a, h_s, h_r)
    assert np.max(np.abs(out - ref)) <= 1e-12 * scale
    Phi_k = D.effective_potential3d(rho, *_tables(*prob, 1.0, lam, beta, m))
    assert np.allclose(Phi_k, Phi, rtol=0, atol=1e-13 * np.abs(Phi).max())
    assert abs(out.sum()) <= 1e-14 * np.abs(out).sum()  # the fluxes telescope
    # forward Euler with dt = 1/rate keeps every cell >= 0
    assert (rho + out / rate).min() >= -1e-14 * rho.max()
    # flat Φ: rate = (4ξ/β) Σ_x 1/h_x² (interior cells), the explicit parabolic limit
    q0 = np.zeros((0, 9 * 11))
    flat = _tables(a_c, s_c, r_c, h_a, h_s, h_r, np.zeros((9, 11)), q0, np.zeros(0), 1.0, 0.0,
                   beta, 0.0)
    rate0 = D.sg_rhs3d(np.ones((7, 9, 11)), 0.0, *flat, XI_CONST, out)
    assert rate0 == pytest.approx(4 * XI / beta * (h_a**-2 + h_s**-2 + h_r**-2), rel=1e-14)
    assert np.max(np.abs(out)) == 0.0


def test_free_energy_matches_numpy_and_its_gradient_is_the_chemical_potential():
    rng = np.random.default_rng(2)
    prob = _synthetic((6, 8, 10), q=3)
    a_c, s_c, r_c, h_a, h_s, h_r, phi0, feats, w = prob
    h3 = h_a * h_s * h_r
    lam, beta, m, r_sharp = 0.3, 7.0, 3.0, 0.8
    args = (a_c, s_c, r_c, h_a, h_s, h_r, phi0, feats, w, r_sharp, lam, beta, m)
    rho = _rough(rng, (6, 8, 10), h3)
    f = D.free_energy3d(rho, *_tables(*args))
    assert f == pytest.approx(_free_energy_numpy(rho, *args), rel=1e-13)
    bad = rho.copy()
    bad[1, 2, 3] = -1e-300
    assert math.isnan(D.free_energy3d(bad, *_tables(*args)))
    # δF/δρ_ijk = h³ (Ψ + λ|z|²/2 + β⁻¹ (log(ρ/r^m) + 1)), central differences
    rho = rng.random((6, 8, 10)) + 0.2
    Phi = _phi_numpy(rho, a_c, s_c, r_c, h_a, h_s, h_r, phi0, feats, w, lam, beta, m)
    grad = h3 * (Phi + (np.log(rho) + 1.0) / beta)
    for idx in [(0, 0, 0), (5, 7, 9), (2, 3, 4), (4, 1, 8), (3, 6, 0)]:
        eps = 1e-5 * rho[idx]
        up, dn = rho.copy(), rho.copy()
        up[idx] += eps
        dn[idx] -= eps
        tables = _tables(*args)
        fd = (D.free_energy3d(up, *tables) - D.free_energy3d(dn, *tables)) / (2 * eps)
        assert fd == pytest.approx(grad[idx], rel=1e-6, abs=1e-8 * h3)


@pytest.mark.parametrize("m", [0.0, 3.0])
def test_semi_discrete_dissipation_on_random_states(m):
    """h³ Σ μ dρ/dt = −Σ_x (h³ c/(β² h_x²)) Σ_faces (face term >= 0) <= 0, μ = Φ + β⁻¹ log ρ;
    the face terms are those of the step balance."""
    rng = np.random.default_rng(3)
    prob = _synthetic((6, 9, 8), q=3, amp=1.0, wsc=1.5)
    a_c, s_c, r_c, h_a, h_s, h_r, phi0, feats, w = prob
    h3 = h_a * h_s * h_r
    lam, beta, c = 0.2, 6.0, 2 * XI
    for _ in range(5):
        rho = rng.random((6, 9, 8)) ** 3 + 1e-3
        out = np.empty_like(rho)
        D.sg_rhs3d(rho, 0.0, *_tables(*prob, 1.0, lam, beta, m), XI_CONST, out)
        Phi = D.effective_potential3d(rho, *_tables(*prob, 1.0, lam, beta, m))
        mu = Phi + np.log(rho) / beta
        dfdt = h3 * float(np.sum(mu * out))
        assert dfdt < 0.0
        cells, _, _, part, _ = D.make_noisy3d_work(6, 9, 8, 3)
        cells[SP._PHI] = Phi
        cells[SP._LOG] = np.log(rho)
        total = 0.0
        for ax, (h, bp, bm) in enumerate([(h_a, SP._BPA, SP._BMA), (h_s, SP._BPS, SP._BMS),
                                          (h_r, SP._BPR, SP._BMR)]):
            SP._faces_from_phi(Phi, beta, cells)
            dis, breg = E._dis_breg(ax, rho, rho, cells, cells[bp], cells[bm], beta, part)
            assert dis >= 0.0 and breg == 0.0
            total += h3 * c / (beta * beta * h * h) * dis
        assert dfdt == pytest.approx(-total, rel=1e-10)


# ----------------------------------------------------------------------------------------------
# exact Gibbs states and the split step


def test_frozen_gibbs_state_is_zero_flux_and_a_fixed_point_of_the_split_step():
    """ρ ∝ exp(−βΦ) for a rough frozen Φ: zero flux at every face, and unchanged by a split step
    with any dt (each factor has zero flux along its axis)."""
    rng = np.random.default_rng(4)
    shape, hs, beta = (7, 10, 9), (0.3, 0.2, 0.25), 10.0
    Phi = 0.4 * rng.standard_normal(shape)
    rho = np.exp(-beta * (Phi - Phi.min()))
    rho_gibbs = rho / (rho.sum() * np.prod(hs))
    out, fmax = _rhs_numpy(rho_gibbs, Phi, hs, 2.0, beta)
    assert np.max(np.abs(out)) <= 1e-13 * fmax / min(hs)
    for dt in (1e-4, 1.0, 1e4):
        new = D.frozen_step3d(rho_gibbs, Phi, *hs, 2.0, beta, dt)
        assert np.max(np.abs(new / rho_gibbs - 1.0)) <= 1e-12
    # a Markov operator preserving ρ_G: positive, conservative, contracts the L1 distance and the
    # relative entropy to ρ_G (= β (frozen free energy − its minimum)) for any dt
    rho = _rough(rng, shape, np.prod(hs))

    def kl(x):
        pos = x > 0
        return float(np.sum(x[pos] * np.log(x[pos] / rho_gibbs[pos])))

    for dt in (1e-3, 1e-1, 1e3, 1e3, 1e3):
        new = D.frozen_step3d(rho, Phi, *hs, 2.0, beta, dt)
        assert new.min() > 0.0 and new.sum() == pytest.approx(rho.sum(), rel=1e-14)
        assert np.abs(new - rho_gibbs).sum() < np.abs(rho - rho_gibbs).sum()
        assert kl(new) < kl(rho)
        rho = new


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_each_split_factor_is_the_one_dimensional_implicit_solve(axis):
    """A line along one axis: the split step reduces to the tridiagonal solve of
    :func:`driftdiffusion1d.semi_implicit_step` (the other two factors are 1 × 1 identities)."""
    rng = np.random.default_rng(5)
    n, h, beta, c, dt = 23, 0.1, 9.0, 1.4, 0.7
    shape = [1, 1, 1]
    shape[axis] = n
    hs = [1.0, 1.0, 1.0]
    hs[axis] = h
    phi = np.cumsum(rng.standard_normal(n)) * 0.3
    rho = rng.random(n)
    rho[3:6] = 0.0
    new = D.frozen_step3d(rho.reshape(shape), phi.reshape(shape), *hs, c, beta, dt).ravel()
    ref = np.empty(n)
    dd.semi_implicit_step(rho, phi, h, c, beta, dt, ref, np.empty(n), np.empty(n), np.empty(n))
    assert np.max(np.abs(new - ref)) <= 1e-14 * ref.max()


def test_self_consistent_gibbs_state_is_zero_flux_and_unchanged_by_a_step():
    prob = _synthetic((8, 12, 12), q=4, amp=0.5, wsc=1.0)
    a_c, s_c, r_c, h_a, h_s, h_r, phi0, feats, w = prob
    lam, beta, m = 0.3, 10.0, 3.0
    g = D.gibbs_state3d(*_tables(*prob, 1.0, lam, beta, m))
    assert g.converged and g.density.shape == (8, 12, 12)
    rho = np.ascontiguousarray(g.density)
    h3 = h_a * h_s * h_r
    assert rho.sum() * h3 == pytest.approx(1.0, rel=1e-14)
    _, M = potential3d(rho, a_c, h_a, h_s, h_r, phi0, feats, w)
    # two N-cell sums of h³ a f_k rho in different orders: <= 2 N u h³ |a f_k| . rho apart
    m_abs = [h3 * np.sum(np.abs(a_c[:, None, None] * f.reshape(phi0.shape)[None] * rho))
             for f in feats]
    assert np.all(np.abs(g.moments - M) <= 2 * rho.size * U * np.array(m_abs))
    args = (a_c, s_c, r_c, h_a, h_s, h_r, phi0, feats, w, 1.0, lam, beta, m)
    assert D.free_energy3d(rho, *_tables(*args)) == pytest.approx(g.free_energy, rel=1e-13)
    out = np.empty_like(rho)
    D.sg_rhs3d(rho, 0.0, *_tables(*prob, 1.0, lam, beta, m), Xi.make(0, ONE), out)
    Phi = D.effective_potential3d(rho, *_tables(*prob, 1.0, lam, beta, m))
    _, fmax = _rhs_numpy(rho, Phi, (h_a, h_s, h_r), 2.0, beta)
    assert np.max(np.abs(out)) <= 1e-12 * fmax / min(h_a, h_s, h_r)
    for dt in (1e-3, 10.0):
        new = rho.copy()
        t, steps, rej, status, _, f = _advance(new, 0.0, dt, prob, lam, beta, m, dt_max=dt)
        assert (t, steps, rej, status) == (dt, 1, 0, D.REACHED)
        assert np.max(np.abs(new - rho)) <= 1e-12 * rho.max()
        assert f == pytest.approx(g.free_energy, rel=1e-14)
    # the Gibbs state minimises F: random mass-preserving perturbations raise it
    rng = np.random.default_rng(6)
    for _ in range(3):
        pert = rho * (1 + 0.05 * rng.standard_normal(rho.shape))
        pert *= rho.sum() / pert.sum()
        assert D.free_energy3d(pert, *_tables(*args)) > g.free_energy


# ----------------------------------------------------------------------------------------------
# the adaptive stepper


@pytest.mark.parametrize("wsc", [0.5, 8.0])
def test_large_steps_conserve_mass_stay_positive_and_decrease_free_energy(wsc):
    """dt = 100× the explicit parabolic limit h²β/(4ξ): mass to 1e-13, ρ >= 0, F non-increasing
    at every accepted step.  A very strong interaction (w ~ 8) limits dt below that through the
    frozen-interaction energy test (rejections) — the guarantees hold all the same."""
    rng = np.random.default_rng(7)
    shape = (8, 12, 12)
    prob = _synthetic(shape, q=4, amp=0.6, wsc=wsc)
    a_c, s_c, r_c, h_a, h_s, h_r, phi0, feats, w = prob
    h3 = h_a * h_s * h_r
    lam, beta, m = 0.3, 10.0, 3.0
    args = (a_c, s_c, r_c, h_a, h_s, h_r, phi0, feats, w, 1.0, lam, beta, m)
    dt_par = min(h_a, h_s, h_r) ** 2 * beta / (4 * XI)
    dt_max = 100 * dt_par
    rho = _rough(rng, shape, h3)
    mass0 = rho.sum()
    work = D.make_noisy3d_work(*shape, 4)
    f_old = D.free_energy3d(rho, *_tables(*args))
    sc_old = free_energy_roundoff_3d(rho, *args)
    t, dt, big, rejected = 0.0, dt_max, 0, 0
    for _ in range(40):
        before = t
        t, steps, rej, status, dt, f = _advance(rho, t, 1e4, prob, lam, beta, m, dt_init=dt,
                                                dt_max=dt_max, max_steps=1, params=CONST,
                                                work=work)
        assert status in (D.REACHED, D.MAX_STEPS) and steps == 1
        rejected += rej
        big += (t - before) >= 50 * dt_par
        assert rho.min() >= 0.0
        assert abs(rho.sum() - mass0) <= 1e-13 * mass0
        assert f == pytest.approx(D.free_energy3d(rho, *_tables(*args)), rel=1e-13, abs=1e-15)
        # F decreases exactly; each evaluation carries <= U * free_energy_roundoff_3d of round-off
        # (up to 3.5e-14 here, above the former 1e-14 |F|); an unrejected large step of a strong
        # interaction raises F by O(1) (the 1-D balance test: +1.4 at dt = 100)
        sc = free_energy_roundoff_3d(rho, *args)
        assert f <= f_old + U * (sc + sc_old)
        f_old, sc_old = f, sc
    if wsc < 1:
        assert big >= 35 and rejected == 0  # steps of 100× the parabolic limit
    else:
        assert rejected > 0


def test_step_balance_is_the_exact_free_energy_change():
    """F(ρⁿ⁺¹) − F(ρⁿ) = ½ Σ w ΔM² − Σ_x (dt D_x + Breg_x) for one split step (rough data)."""
    rng = np.random.default_rng(8)
    shape = (6, 9, 10)
    prob = _synthetic(shape, q=3, amp=0.8, wsc=3.0)
    a_c, s_c, r_c, h_a, h_s, h_r, phi0, feats, w = prob
    h3 = h_a * h_s * h_r
    lam, beta, m = 0.3, 5.0, 3.0
    args = (a_c, s_c, r_c, h_a, h_s, h_r, phi0, feats, w, 1.0, lam, beta, m)
    rho = _rough(rng, shape, h3)
    for dt in (1e-3, 0.05, 2.0):
        cells, planes, qv, part, geo = D.make_noisy3d_work(*shape, 3)
        grid, kern, _ = _tables(*args)
        SP._geometry(a_c, s_c, r_c, lam, beta, m, geo)
        field3d(rho, grid, kern, planes[0], qv[0], planes[1])
        SP._prepare(a_c, planes[1], geo, beta, cells)
        cb = dt * 2.0 / beta
        SP._split_step(False, rho, cb, h_a, h_s, h_r, cells)
        ok, quad, dis, breg = E._balance(False, rho, cells, grid, kern, beta, cb, planes, qv,
                                         part)
        assert ok and quad >= 0 and dis >= 0 and breg >= 0
        new = cells[SP._NEW].copy()
        change = D.free_energy3d(new, *_tables(*args)) - D.free_energy3d(rho, *_tables(*args))
        assert change == pytest.approx(quad - dis - breg, rel=1e-9, abs=1e-14)


def test_first_order_in_time():
    prob = _synthetic((8, 10, 10), q=3, amp=0.5, wsc=0.5)
    lam, beta, m = 0.3, 8.0, 3.0
    rho0 = _blob(*prob[:6])
    sols = []
    for dt in (0.04, 0.02, 0.01):
        rho = rho0.copy()
        t, steps, rej, status, _, _ = _advance(rho, 0.0, 0.4, prob, lam, beta, m, dt_init=dt,
                                               dt_max=dt)
        assert status == D.REACHED and rej == 0 and t == 0.4
        sols.append(rho)
    d1 = np.abs(sols[0] - sols[1]).sum()
    d2 = np.abs(sols[1] - sols[2]).sum()
    assert 1.8 <= d1 / d2 <= 2.2


def test_stop_time_budget_status_and_validation():
    prob = _synthetic((5, 6, 7), q=2)
    a_c, s_c, r_c, h_a, h_s, h_r, phi0, feats, w = prob
    rho = _blob(a_c, s_c, r_c, h_a, h_s, h_r)
    t, steps, _, status, dt_next, _ = _advance(rho, 0.0, 0.3, prob, 0.3, 5.0, 3.0, dt_max=0.25)
    assert (t, steps, status) == (0.3, 2, D.REACHED) and dt_next == 0.25  # landing not reused
    t, steps, _, status, _, _ = _advance(rho, 0.3, 10.0, prob, 0.3, 5.0, 3.0, dt_max=0.1,
                                         max_steps=3)
    assert steps == 3 and status == D.MAX_STEPS and t == pytest.approx(0.6)
    bad = rho.copy()
    bad[0, 0, 0] = math.nan
    assert _advance(bad, 0.0, 1.0, prob, 0.3, 5.0, 3.0)[3] == D.NONFINITE
    bad[0, 0, 0] = -1.0
    assert _advance(bad, 0.0, 1.0, prob, 0.3, 5.0, 3.0)[3] == D.NONFINITE
    with pytest.raises(ValueError):
        _advance(rho.astype(np.float32), 0.0, 1.0, prob, 0.3, 5.0, 3.0)
    with pytest.raises(ValueError):
        _advance(rho, 0.0, 1.0, prob, 0.3, 5.0, 3.0, work=D.make_noisy3d_work(5, 6, 8, 2))
    r_bad = r_c - r_c[0]
    with pytest.raises(ValueError):
        D.free_energy3d(rho, *_tables(a_c, s_c, r_bad, h_a, h_s, h_r, phi0, feats, w, 1.0, 0.3,
                                      5.0, 3.0))


def test_parallel_is_bit_identical_to_serial():
    rng = np.random.default_rng(9)
    shape = (7, 13, 11)
    prob = _synthetic(shape, q=5, amp=0.6, wsc=6.0)
    lam, beta, m = 0.3, 10.0, 3.0
    rho0 = _rough(rng, shape, prob[3] * prob[4] * prob[5])
    outs, rhos = [], []
    for parallel in (False, True):
        rho = rho0.copy()
        outs.append(_advance(rho, 0.0, 3.0, prob, lam, beta, m, dt_max=1.0, parallel=parallel))
        rhos.append(rho)
    # exact by construction: the parallel kernels split the loops but keep every sum in the
    # serial order (same compiled arithmetic, no reductions across threads)
    assert outs[0] == outs[1] and outs[0][2] > 0  # with rejections
    assert np.array_equal(rhos[0], rhos[1])


# ----------------------------------------------------------------------------------------------
# long-time limit


@pytest.mark.parametrize("beta, lam", [(10.0, 0.3), (20.0, 0.3), (5.0, 0.5)])
def test_long_time_limit_is_the_gibbs_state_synthetic(beta, lam):
    prob = _synthetic((12, 16, 16), q=4, amp=0.3, wsc=0.5)
    a_c, s_c, r_c, h_a, h_s, h_r, phi0, feats, w = prob
    m = 3.0
    tables = _tables(*prob, 1.0, lam, beta, m)
    g = D.gibbs_state3d(*tables)
    res = D.steady_state3d(_blob(a_c, s_c, r_c, h_a, h_s, h_r), *tables, tol=1e-13,
                           tol_rho=1e-10, t_chunk=2.0, t_max=500.0)
    assert res.converged
    l1 = h_a * h_s * h_r * np.abs(res.density - g.density).sum()
    assert l1 <= 1e-8
    assert res.free_energy == pytest.approx(g.free_energy, rel=1e-14, abs=1e-15)


def test_long_time_limit_is_the_gibbs_state_tanh_neuron():
    """Real single-neuron kernel: σ = f_* = tanh, d = 10 (m = d − 2 = 8)."""
    tanh = get_activation("tanh")
    a_c, h_a = cell_centres(-2.5, 2.5, 10)
    s_c, h_s = cell_centres(-1.5, 1.5, 12)
    r_c, h_r = cell_centres(0.0, 1.5, 12)
    k = neuron_kernel(tanh, tanh, 0.0, 10, s_c, r_c)
    phi0 = np.ascontiguousarray(-k.v)
    feats, w = np.ascontiguousarray(k.feats), np.ascontiguousarray(k.weights)
    lam, beta, m = 0.3, 10.0, 8.0
    tables = _tables(a_c, s_c, r_c, h_a, h_s, h_r, phi0, feats, w, k.r_sharp, lam, beta, m)
    g = D.gibbs_state3d(*tables)
    assert g.converged
    rho0 = _blob(a_c, s_c, r_c, h_a, h_s, h_r, centre=(0.0, 0.0, 0.7))
    res = D.steady_state3d(rho0, *tables, tol=1e-13, tol_rho=1e-10, t_chunk=2.0, t_max=500.0,
                           parallel=True)
    assert res.converged
    assert h_a * h_s * h_r * np.abs(res.density - g.density).sum() <= 1e-8
    assert res.free_energy == pytest.approx(g.free_energy, rel=1e-14)

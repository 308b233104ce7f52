"""Finite-volume kernels: agreement with numpy, conservation, positivity, dissipation."""

import numpy as np
import pytest
from roundoff import U

from meanfield_pde.fv import lowrank, stepper1d, transport
from meanfield_pde.fv.bundles import LowRank, Xi


def _random_problem(rng, n=300, k=12):
    h = 5.0 / n
    r = (np.arange(n) + 0.5) * h
    rho = rng.random(n) * np.exp(-((r - 2) ** 2))
    rho[rng.random(n) < 0.1] = 0.0  # zeros and kinks stress the limiter
    feats = np.ascontiguousarray(np.cos(np.outer(np.arange(k), r) * 0.7) * rng.random((k, 1)))
    lam = rng.random(k)
    v = np.sin(3 * r) * rng.random()
    return h, r, rho, feats, lam, v


@pytest.mark.parametrize("theta", [1.0, 1.5, 2.0])
def test_numba_matches_numpy_reference(theta):
    rng = np.random.default_rng(0)
    h, r, rho, feats, lam, v = _random_problem(rng)
    psi, mom = np.empty_like(rho), np.empty(len(lam))
    lowrank.potential(rho, h, v, feats, lam, psi, mom)
    psi_np, mom_np = lowrank.potential_numpy(rho, h, v, feats, lam)
    assert np.max(np.abs(psi - psi_np)) <= 1e-12 * np.max(np.abs(psi_np))
    assert np.max(np.abs(mom - mom_np)) <= 1e-12 * np.max(np.abs(mom_np))
    out = np.empty_like(rho)
    umax = transport.transport_rhs(rho, psi, h, 2.0, theta, out)
    ref = transport.transport_rhs_numpy(rho, psi, h, 2.0, theta)
    assert np.max(np.abs(out - ref)) <= 1e-12 * np.max(np.abs(ref))
    assert umax == pytest.approx(np.max(np.abs(2.0 * np.diff(psi) / h)), rel=1e-14)
    r_np = 1.0 + 2 * h * v @ rho + lam @ mom_np**2
    assert lowrank.risk(rho, h, v, feats, lam, 1.0) == pytest.approx(r_np, rel=1e-13)


def test_conservation_positivity_and_dissipation_of_one_euler_step():
    rng = np.random.default_rng(1)
    for _ in range(50):
        h, r, rho, feats, lam, v = _random_problem(rng)
        psi, mom, out = np.empty_like(rho), np.empty(len(lam)), np.empty_like(rho)
        lowrank.potential(rho, h, v, feats, lam, psi, mom)
        umax = transport.transport_rhs(rho, psi, h, 2.0, 2.0, out)
        # conservation: the fluxes telescope
        assert abs(np.sum(out) * h) <= 1e-13 * np.sum(np.abs(out)) * h
        # semi-discrete dissipation: dR/dt = 2 h Σ ψ_i dρ_i/dt <= 0
        assert 2 * h * np.dot(psi, out) <= 1e-14 * np.sum(np.abs(psi * out)) * h
        # forward Euler at the CFL limit dt max|u| = h/2 keeps ρ >= 0
        new = rho + (0.5 * h / umax) * out
        assert new.min() >= -1e-15 * rho.max()


def test_stepper_lands_on_stop_time_and_conserves():
    rng = np.random.default_rng(2)
    h, r, rho, feats, lam, v = _random_problem(rng, n=200, k=6)
    n, k = len(rho), len(lam)
    work = tuple(np.empty(n) for _ in range(5)) + (np.empty(k),)
    m0 = rho.sum()
    kern, xi = LowRank.make(v, feats, lam), Xi.make(0, [1.0])
    t, steps, rej, status, dt, umax = stepper1d.advance(
        rho, 0.0, 0.3, 10**6, h, kern, xi, 0.4, 2.0, work)
    assert status == stepper1d.REACHED and t == 0.3 and steps > 5
    # round-off, not a random walk: each of the 3 SSP-RK stages rounds every cell a few times
    # (<= 16u of the mass per step, the telescoping fluxes included), plus two n-term sums
    assert abs(rho.sum() - m0) <= (16 * steps + 2 * n) * U * m0
    assert rho.min() >= 0.0
    # a step budget stops early and reports it
    t2, steps2, *_ , status2, _, _ = stepper1d.advance(
        rho, 0.3, 10.0, 3, h, kern, xi, 0.4, 2.0, work)
    assert status2 == stepper1d.MAX_STEPS and steps2 == 3 and 0.3 < t2 < 10.0


def test_nonfinite_state_is_reported():
    rng = np.random.default_rng(3)
    h, r, rho, feats, lam, v = _random_problem(rng, n=50, k=3)
    rho[10] = np.nan
    work = tuple(np.empty(50) for _ in range(5)) + (np.empty(3),)
    out = stepper1d.advance(rho, 0.0, 1.0, 100, h, LowRank.make(v, feats, lam), Xi.make(0, [1.0]),
                            0.4, 2.0, work)
    assert out[3] == stepper1d.NONFINITE

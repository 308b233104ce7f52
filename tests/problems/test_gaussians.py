"""The radial problem (MATH.md §2): kernel, initial laws, and the properties of the solver."""

from functools import partial

import numpy as np
import pytest
from brute import pair_expectation, u_brute
from helpers import make_problem
from roundoff import risk_roundoff_1d
from scipy import integrate, special

from meanfield_pde import load, solve
from meanfield_pde.activations import get_activation
from meanfield_pde.config import default_config
from meanfield_pde.errors import ConfigError, SolverError
from meanfield_pde.fv import lowrank, transport
from meanfield_pde.problems.gaussians import R_SHARP, GaussiansProblem, chi_law, radial_kernel

_problem = partial(make_problem, "gaussians")
#: the finite-volume method: the tests below check its grid, its cell averages and its stepper
#: (the noiseless default is the Lagrangian method, tested in tests/lagrangian/test_radial*.py)
FV = "solver.method=fv"


def _run(problem, t_end):
    stepper, rho = problem.make_stepper(), problem.initial_state()
    rep = stepper.advance(rho, 0.0, t_end, 10**9)
    assert rep.t == t_end
    return rho


# ------------------------------------------------------------------------------ kernel
@pytest.mark.parametrize("d", [3, 5, 40, 320])
def test_low_rank_kernel_matches_brute_force(d):
    """u_d from the truncated Hermite series vs quadrature over the angle c (MATH.md §2)."""
    act = get_activation("ramp")
    r = np.array([0.3, 0.7, 1.0])
    k = radial_kernel(act, 0.8, d, r, tol=1e-11, max_terms=20000)
    assert k.converged
    for i in range(3):
        for j in range(i, 3):
            assert abs(k.u(i, j) - u_brute(r[i], r[j], d, 0.8, act.params)) <= 1e-8


def test_rank_grows_as_d_falls_and_d_inf_is_rank_two():
    act = get_activation("ramp")
    r = np.linspace(0.05, 5, 50)
    terms = [radial_kernel(act, 0.8, d, r).n_terms for d in (320, 40, 10)]
    assert terms[0] < terms[1] < terms[2] <= 2048
    k = radial_kernel(act, 0.8, float("inf"), r)
    assert k.feats.shape == (2, 50) and k.truncation_error == 0.0
    # u_inf(r, r') = ½ Σ q(τr) q(τr') = c = 0 value of the pair expectation
    for i, j in [(3, 7), (10, 40)]:
        ref = 0.5 * sum(pair_expectation(tau * r[i], tau * r[j], 0.0, act.params)
                        for tau in (1.8, 0.2))
        assert k.u(i, j) == pytest.approx(ref, abs=1e-12)


def test_cap_on_terms_is_reported():
    p = _problem("model.d=3", "kernel.max_terms=50", "grid.n=64", "grid.r_max=4",
                 "time.t_end=0.1", FV)
    assert not p.kernel.converged and p.kernel.n_terms == 50
    assert p.kernel.truncation_error > 1e-12
    assert "kernel.max_terms" in p.warnings()[0]


# ------------------------------------------------------------------------------ initial laws
def test_chi_cell_averages_are_exact():
    edges = np.linspace(0, 2, 201)
    rho = chi_law(edges, 0.8, 40)
    x = 40 * edges**2 / (2 * 0.64)
    cdf, sf = special.gammainc(20, x), special.gammaincc(20, x)
    exact = np.where(cdf[1:] < 0.5, np.diff(cdf), -np.diff(sf))
    assert np.allclose(rho * np.diff(edges), exact, rtol=1e-12, atol=0)
    assert np.sum(rho) * 0.01 == pytest.approx(1.0, abs=1e-14)
    # tails keep relative accuracy (survival function on the right)
    far = chi_law(np.array([1.9, 1.95]), 0.8, 40)[0] * 0.05
    exact, _ = integrate.quad(lambda r: np.exp(
        np.log(2) + 20 * np.log(20 / 0.64) - special.gammaln(20) + 39 * np.log(r)
        - 20 * r * r / 0.64), 1.9, 1.95, epsabs=0, epsrel=1e-12)
    assert far == pytest.approx(exact, rel=1e-9)
    # E r² = κ² exactly for w ~ N(0, κ²/d I_d)
    c = 0.5 * (edges[1:] + edges[:-1])
    assert np.sum(c**2 * rho) * 0.01 == pytest.approx(0.64, rel=1e-4)


def test_chi_with_infinite_d_is_refused():
    with pytest.raises(ConfigError, match="point mass"):
        _problem("model.d=inf")
    p = _problem("model.d=inf", "init.d=40", "time.t_end=1", FV)
    assert p.initial_state().sum() * p.h == pytest.approx(1.0, abs=1e-13)


# ------------------------------------------------------------------------------ solver
def test_numba_rhs_matches_numpy_on_the_problem():
    p = _problem("grid.n=300", "grid.r_max=5", "time.t_end=1", FV)
    rho = _run(p, 0.5)
    psi, mom, out = np.empty_like(rho), np.empty(p.kernel.lam.size), np.empty_like(rho)
    lowrank.potential(rho, p.h, p.kernel.v, p.kernel.feats, p.kernel.lam, psi, mom)
    transport.transport_rhs(rho, psi, p.h, 2.0, 2.0, out)
    psi_np = p.potential(rho)
    ref = transport.transport_rhs_numpy(rho, psi, p.h, 2.0, 2.0)  # same ψ: Δψ/h amplifies
    assert np.max(np.abs(psi - psi_np)) <= 1e-12 * np.max(np.abs(psi_np))
    assert np.max(np.abs(out - ref)) <= 1e-12 * np.max(np.abs(ref))


def test_second_order_in_l1_on_a_smooth_problem():
    """L1 error against the 4× finer grid (averaged to the coarse cells) halves ~4× per level."""
    base = ["grid.r_max=3", "init.kind=gaussian", "init.mean=1.0", "init.std=0.15",
            "time.t_end=0.5", FV]
    errs = []
    for n in (200, 400, 800):
        coarse = _run(_problem(*base, f"grid.n={n}"), 0.5)
        fine = _run(_problem(*base, f"grid.n={4 * n}"), 0.5)
        errs.append(np.sum(np.abs(coarse - fine.reshape(n, 4).mean(axis=1))) * 3.0 / n)
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(orders >= 1.8), (errs, orders)


def test_default_run_conserves_mass_stays_positive_and_dissipates(tmp_path):
    """The MMN18 Fig. 1 setting on the built-in default grid."""
    cfg = default_config("gaussians").with_overrides([FV])
    summary = solve(cfg, tmp_path / "run.h5")
    res = load(tmp_path / "run.h5")
    assert res.complete and res.t[-1] == 20.0
    mass = res["mass"]
    assert np.max(np.abs(mass - mass[0])) <= 1e-12 * mass[0]
    assert res["density"].min() >= 0.0
    risk = res["risk"]
    # non-increasing up to the round-off of two risk evaluations (derived in roundoff.py)
    p = GaussiansProblem(cfg)
    k = p.kernel
    bound = [2 * risk_roundoff_1d(rho, p.h, k.v, k.feats, k.lam, R_SHARP) for rho in res["density"]]
    assert np.all(np.diff(risk) <= np.array(bound[1:]))
    assert risk[-1] < 0.1 < 1.6 < risk[0]  # the network learns (MMN18 Fig. 1)
    assert summary.mass_drift <= 1e-12
    # R(ρ̄_0) against an independent quadrature of the smooth chi density
    p = GaussiansProblem(cfg)
    act, d, k = p.activation, 40, 20
    dens = lambda r: np.exp(np.log(2) + k * np.log(k / 0.64) - special.gammaln(k)  # noqa: E731
                            + (d - 1) * np.log(r) - k * r * r / 0.64)
    quad = lambda f: integrate.quad(lambda r: f(r) * dens(r), 0.2, 2.0,  # noqa: E731
                                    epsabs=1e-14, limit=200)[0]
    mu = p.kernel.lam[: p.kernel.n_terms] * 2
    r_exact = 1.0 + 2 * quad(lambda r: -0.5 * (act.hermite(1.8 * r, 0)[0]
                                               - act.hermite(0.2 * r, 0)[0]))
    for tau in (1.8, 0.2):
        for j in range(p.kernel.n_terms):
            m = quad(lambda r, tau=tau, j=j: act.hermite(tau * r, 2 * j)[2 * j])
            r_exact += 0.5 * mu[j] * m * m
    # the discrete risk uses midpoint moments: error C h² with C the same on every grid
    coarse = GaussiansProblem(cfg.with_overrides([f"grid.n={cfg['grid.n'] // 2}",
                                                  f"grid.r_max={p.r_max}"]))
    err_fine = risk[0] - r_exact
    err_coarse = coarse.risk(coarse.initial_state()) - r_exact
    assert err_coarse / err_fine == pytest.approx(4.0, rel=0.01)
    assert abs(err_fine) <= 0.25 * p.h**2


def test_restart_from_file_and_remap(tmp_path):
    cfg = default_config("gaussians").with_overrides(
        ["grid.n=300", "grid.r_max=4", "time.t_end=1", "time.n_outputs=3", FV])
    solve(cfg, tmp_path / "a.h5")
    res = load(tmp_path / "a.h5")
    same = GaussiansProblem(cfg.with_overrides(
        ["init.kind=from_file", f"init.file='{tmp_path / 'a.h5'}'"]))
    assert np.array_equal(same.initial_state(), res["density"][-1])  # a copy, exact
    other = GaussiansProblem(cfg.with_overrides(
        ["init.kind=from_file", f"init.file='{tmp_path / 'a.h5'}'", "init.time=0.5",
         "grid.n=450", "grid.r_max=5"]))
    rho = other.initial_state()
    assert np.sum(rho) * other.h == pytest.approx(1.0, abs=1e-13)
    mean_src = res["mean_r"][1]
    assert np.dot(other.centers, rho) * other.h == pytest.approx(mean_src, abs=other.h)


def test_mass_at_the_wall_stops_the_run(tmp_path):
    cfg = default_config("gaussians").with_overrides(["grid.r_max=2.5", "grid.n=200", FV])
    with pytest.raises(SolverError, match=r"reached the wall grid\.r_max = 2\.5 .* raise it, "
                       r"e\.g\. cfg\.replace\(\{\"grid\.r_max\": 5\}\)"):
        solve(cfg, tmp_path / "w.h5")
    res = load(tmp_path / "w.h5")  # what was written before the failure stays readable
    assert not res.complete and res.t.size >= 1


def test_stored_times_and_densities_are_clean(tmp_path):
    """Output times are the nearest doubles to k·h and no density is stored as -0.0."""
    cfg = default_config("gaussians").with_overrides(["grid.n=200", "time.t_end=2.0",
                                                      "time.n_outputs=21"])
    solve(cfg, tmp_path / "r.h5")
    res = load(tmp_path / "r.h5")
    assert [repr(float(x)) for x in res.t[:4]] == ["0.0", "0.1", "0.2", "0.3"]
    assert not np.any(np.signbit(res["density"]))

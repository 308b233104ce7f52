"""Noisy dynamics of the radial problem (MATH.md §1–2): Gibbs states, free energy, β → ∞."""

from functools import partial

import numpy as np
import pytest
from helpers import make_problem
from roundoff import U, free_energy_roundoff_1d, free_energy_roundoff_3d

from meanfield_pde import load
from meanfield_pde.config import default_config
from meanfield_pde.errors import ConfigError
from meanfield_pde.fv import driftdiffusion1d as dd1
from meanfield_pde.problems.gaussians import GaussiansProblem
from meanfield_pde.problems.single_neuron import SingleNeuronProblem
from meanfield_pde.runner.gibbs import solve_gibbs
from meanfield_pde.runner.pde import solve

NOISY = ["noise.beta=10", "noise.lam=0.1", "grid.n=500", "solver.dt_max=1"]


_problem = partial(make_problem, "gaussians")


def _decreases(fe, roundoff):
    """F non-increasing up to the round-off of its two evaluations (F decreases exactly; a
    relative 1e-14 |F| was below that round-off when F's terms cancel)."""
    roundoff = np.asarray(roundoff)
    return np.all(np.diff(fe) <= roundoff[1:] + roundoff[:-1])


def test_discrete_gibbs_state_is_an_exact_zero_flux_state():
    p = _problem(*NOISY)
    g = p.gibbs()
    assert g.converged and g.iterations <= 20
    psi = p.potential(g.density)
    phi = np.empty_like(psi)
    dd1.effective_potential(psi, p.centers, p.lam, p.beta, p.d - 1.0, phi)
    out = np.empty_like(psi)
    rate = dd1.sg_flux_rhs(g.density, phi, p.h, 2.0, p.beta, out)
    assert np.max(np.abs(out)) <= 1e-12 * rate * np.max(g.density)
    assert np.sum(g.density) * p.h == pytest.approx(1.0, abs=1e-13)


def test_long_time_state_equals_the_direct_fixed_point(tmp_path):
    cfg = default_config("gaussians").with_overrides(NOISY)
    summary = solve(cfg, tmp_path / "t.h5", steady=True)
    assert summary.steady
    solve_gibbs(cfg, tmp_path / "g.h5")
    a, b = load(tmp_path / "t.h5"), load(tmp_path / "g.h5")
    assert b.attrs["solution"] == "gibbs_fixed_point" and b.t.size == 1
    h = np.diff(a.grid["r_edges"])[0]
    assert np.sum(np.abs(a["density"][-1] - b["density"][0])) * h <= 1e-8
    fe = a["free_energy"]
    p = GaussiansProblem(cfg)
    assert _decreases(fe, [free_energy_roundoff_1d(p, rho) for rho in a["density"]])
    assert fe[-1] == pytest.approx(b["free_energy"][0], abs=1e-12)


def test_free_energy_decreases_at_every_step_far_above_the_parabolic_limit():
    p = _problem("noise.beta=100", "noise.lam=0.01", "grid.n=1000", "grid.r_max=7",
                 "time.t_end=2")
    explicit_limit = p.h**2 * p.beta / 4.0  # dt <= h² β / (4 ξ), ξ = 1
    stepper = p.make_stepper()
    stepper.dt_max = 100 * explicit_limit
    rho = p.initial_state()
    f, mass0, t, big = [p.free_energy(rho)], rho.sum() * p.h, 0.0, 0
    roundoff = [free_energy_roundoff_1d(p, rho)]
    for _ in range(300):
        rep = stepper.advance(rho, t, 10.0, 1)
        t = rep.t
        f.append(p.free_energy(rho))
        roundoff.append(free_energy_roundoff_1d(p, rho))
        big += rep.dt > 50 * explicit_limit
        assert rho.min() >= 0.0
    f = np.array(f)
    assert _decreases(f, roundoff)
    assert abs(rho.sum() * p.h - mass0) <= 1e-12 * mass0
    assert big >= 100  # most steps really were far above the explicit limit


def test_noisy_solution_approaches_the_noiseless_one_as_beta_grows():
    base = ["grid.r_max=6", "grid.n=600", "noise.lam=0.01", "time.t_end=2"]

    def risks(*extra):
        p = _problem(*base, *extra)
        stepper, rho, t, out = p.make_stepper(), p.initial_state(), 0.0, []
        for t_stop in np.linspace(0.2, 2.0, 10):
            t = stepper.advance(rho, t, float(t_stop), 10**8).t
            out.append(p.risk(rho))
        return np.array(out)

    ref = risks()
    gaps = [np.max(np.abs(risks(f"noise.beta={b}", "solver.dt_max=1e-3") - ref))
            for b in (100, 300, 1000, 3000)]
    assert all(b < a for a, b in zip(gaps, gaps[1:], strict=False)), gaps
    assert gaps[-1] < 0.1 * gaps[0]


def test_gibbs_fixed_point_converges_under_grid_refinement():
    """The Gibbs density vanishes smoothly at both walls, so its moments converge faster than any
    power of h (Euler–Maclaurin): at least order 2, and round-off by n = 32 cells."""
    ns = (16, 24, 32, 128)
    risks = []
    for n in ns:
        p = _problem(*NOISY[:2], f"grid.n={n}", "grid.r_max=14")
        risks.append(p.risk(p.gibbs().density))
    err = np.abs(np.array(risks[:-1]) - risks[-1])
    order = np.log(err[0] / err[1]) / np.log(ns[1] / ns[0])
    assert order >= 1.8, (risks, order)
    assert err[2] <= 1e-13


@pytest.mark.parametrize("overrides, fragment", [
    (["noise.beta=10"], "set noise.lam > 0"),
    (["noise.beta=10", "noise.lam=0.1", "model.d=inf", "init.d=40"], "model.d = inf"),
])
def test_noise_configuration_errors(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        _problem(*overrides)


# ------------------------------------------------------------------------------ single neuron
SN_NOISY = ["model.d=10", "noise.beta=10", "noise.lam=1", "grid.n_a=12", "grid.n_s=14",
            "grid.n_r=14", "grid.a_min=-2.5", "grid.a_max=3", "grid.s_min=-2",
            "grid.s_max=2", "grid.r_max=3", "grid.wall_tol=1e-3", "init.kappa=0.8",
            "solver.dt_max=1", "time.t_end=5", "time.n_outputs=6"]


def test_single_neuron_long_time_state_equals_the_direct_fixed_point(tmp_path):
    cfg = default_config("single-neuron").with_overrides(SN_NOISY)
    summary = solve(cfg, tmp_path / "t.h5", steady=True)
    assert summary.steady
    gib = solve_gibbs(cfg, tmp_path / "g.h5")
    assert gib.residual <= 1e-13
    a, b = load(tmp_path / "t.h5"), load(tmp_path / "g.h5")
    cell = np.prod([np.diff(a.grid[f"{x}_edges"])[0] for x in "asr"])
    assert np.sum(np.abs(a["density"][-1] - b["density"][0])) * cell <= 1e-6
    fe = a["free_energy"]
    p = SingleNeuronProblem(cfg)
    k = p.kernel
    geo = (p.a_centers, p.s_centers, p.r_centers, p.h_a, p.h_s, p.h_r, -k.v, k.feats,
           k.weights, k.r_sharp, p.lam, p.beta, p.d - 2.0)
    assert _decreases(fe, [U * free_energy_roundoff_3d(rho, *geo) for rho in a["density"]])
    assert np.max(np.abs(a["mass"] - 1.0)) <= 1e-12 and a["density"].min() >= 0.0


@pytest.mark.parametrize("overrides, fragment", [
    (["noise.beta=10"], "set noise.lam > 0"),
    (["noise.lam=0.1", "solver.method=fv"], "without noise is not supported for single-neuron"),
    (["noise.beta=10", "noise.lam=0.1", "model.d=inf", "init.d=30"], "model.d = inf"),
])
def test_single_neuron_noise_configuration_errors(overrides, fragment):
    box = ["grid.a_min=0", "grid.a_max=2", "grid.s_min=-1", "grid.s_max=1.5", "grid.r_max=1.2"]
    with pytest.raises(ConfigError, match=fragment):
        SingleNeuronProblem(default_config("single-neuron").with_overrides(box + overrides))

"""The radial Lagrangian solver in mass coordinates (MATH.md §6): features, quadrature, cells,
and the properties of the flow (mass, positivity, monotone risk, order in the mass cells)."""

from functools import partial

import numpy as np
import pytest
from helpers import config, make_problem
from scipy import special

from meanfield_pde import load, solve
from meanfield_pde.activations import get_activation
from meanfield_pde.errors import SolverError
from meanfield_pde.lagrangian import radial_pilot
from meanfield_pde.lagrangian.radial import InitialLaw
from meanfield_pde.lagrangian.radial_cells import MassCells, lobatto
from meanfield_pde.lagrangian.radial_features import RadialFeatures, _pl_even_alphas
from meanfield_pde.problems.gaussians import GaussiansProblem, radial_kernel

EPS = np.finfo(float).eps
_problem = partial(make_problem, "gaussians")


def _advance(p, times):
    """Risks and states of ``p`` at ``times`` (its own stepper)."""
    st, x = p.make_stepper(), p.initial_state()
    risks, states = [p.risk(x)], [x.copy()]
    for a, b in zip(times[:-1], times[1:], strict=True):
        assert st.advance(x, a, b, 10**8).t == b
        risks.append(p.risk(x))
        states.append(x.copy())
    return np.array(risks), states


# ------------------------------------------------------------------------------ features
@pytest.mark.parametrize("name,d", [("ramp", 40), ("relu", 20), ("softplus", 40),
                                    ("ramp", float("inf"))])
def test_stein_derivative_matches_finite_differences(name, d):
    """∂_rψ_λ from α_k' = (√((k+1)(k+2)) α_{k+2} + k α_k)/t against the 5-point difference of
    ψ_λ: its error h⁴|ψ⁽⁵⁾|/30 falls 16× when h halves, down to the round-off floor
    ~ eps |ψ| / h."""
    act = get_activation(name)
    k = radial_kernel(act, 0.8, d, np.linspace(0, 4, 200))
    f = RadialFeatures(act, 0.8, k.n_terms, k.lam, l2=0.1)
    x, w = np.linspace(0.3, 1.5, 40), np.full(40, 1 / 40)
    r = np.array([0.05, 0.2, 0.7, 1.3, 2.5])
    slope, _ = f.slope_and_risk(np.concatenate([x, r]), np.concatenate([w, 0 * r]))

    def fd(h):
        ps = [f.potential(r + s * h, x, w) for s in (-2, -1, 1, 2)]
        return (ps[0] - 8 * ps[1] + 8 * ps[2] - ps[3]) / (12 * h)

    scale = np.max(np.abs(f.potential(r, x, w))) + 1.0
    e1, e2 = (np.abs(fd(h) - slope[-5:]) for h in (2e-3, 1e-3))
    floor = 50 * EPS * scale / 1e-3
    assert np.all((e2 <= e1 / 16 * 1.5) | (e2 <= floor)), (e1, e2)
    assert np.max(e2) <= 1e-7 * scale
    # ψ depends on r through r²: the slope vanishes exactly at 0 and is odd
    s0, _ = f.slope_and_risk(np.array([0.0, 0.4, -0.4]), np.array([0.0, 1.0, 0.0]))
    assert s0[0] == 0.0 and s0[1] == -s0[2]


@pytest.mark.parametrize("name,params", [("ramp", {}), ("relu", {}),
                                         ("ramp", {"s1": 0, "s2": 1, "t1": -1, "t2": 0.3})])
def test_even_rows_kernel_equals_the_activations_hermite(name, params):
    """The compiled even-row kernel of the solver reproduces Activation.hermite (the same closed
    form, φ as exp(−x²/4)²): ~1e-14 relative to the largest coefficient, t = 0 included."""
    act = get_activation(name, params)
    f = RadialFeatures(act, 0.8, 19, np.ones(38))
    t = np.concatenate([[0.0], np.geomspace(1e-3, 30, 2000)])
    out = np.empty((20, t.size))
    _pl_even_alphas(t, *f._closed, 38, out)
    ref = act.hermite(t, 38)[0::2]
    scale = np.maximum(np.max(np.abs(ref), axis=0), 1e-300)  # relu: all zero at t = 0
    assert np.max(np.abs(out - ref) / scale) <= 1e-13


# ------------------------------------------------------------------------------ quadrature
@pytest.mark.parametrize("order", [3, 4, 6, 8, 10])
def test_lobatto_rule_is_exact_to_degree_2_order_minus_3(order):
    x, w = lobatto(order)
    assert x[0] == 0.0 and x[-1] == 1.0 and np.all(np.diff(x) > 0)
    for k in range(2 * order - 2):
        assert abs(np.dot(w, x**k) - 1 / (k + 1)) <= 4 * EPS
    assert abs(np.dot(w, x ** (2 * order - 2)) - 1 / (2 * order - 1)) > 1e-12  # not beyond


def test_chi_law_cells_hold_the_exact_masses():
    """Cell masses are differences of the regularised incomplete gamma function, total 1; the
    labels hold all but 1e-17 of the mass at each end; quantile inverts the CDF."""
    law = InitialLaw.chi(0.8, 40)
    a, s = 20.0, 0.8 / np.sqrt(40)
    assert special.gammainc(a, 0.5 * (law.lo / s) ** 2) == pytest.approx(1e-17, rel=1e-6)
    assert special.gammaincc(a, 0.5 * (law.hi / s) ** 2) == pytest.approx(1e-17, rel=1e-6)
    edges = np.linspace(law.lo, law.hi, 31)
    cells = MassCells.build(edges, 5, law.pdf, law.masses)
    y = 0.5 * (edges / s) ** 2
    cdf, sf = special.gammainc(a, y), special.gammaincc(a, y)
    exact = np.where(cdf[1:] < 0.5, np.diff(cdf), -np.diff(sf))  # relative accuracy in tails
    assert np.allclose(cells.masses[1:-1], exact[1:-1], rtol=1e-12, atol=1e-300)
    assert abs(np.sum(cells.masses) - 1.0) <= 2 * EPS
    assert abs(np.sum(cells.weights) - 1.0) <= 30 * EPS
    m = np.array([1e-10, 0.1, 0.5, 0.9, 1 - 1e-10])
    assert np.allclose(special.gammainc(a, 0.5 * (law.quantile(m) / s) ** 2), m, rtol=1e-10)
    # the Lobatto weights reproduce E r² = κ² (the chi law's second moment)
    assert np.dot(cells.weights, cells.nodes**2) == pytest.approx(0.64, rel=1e-12)


# ------------------------------------------------------------------------------ the flow
def test_mass_positivity_and_monotone_risk_through_the_split(tmp_path):
    """Default setting to t = 8 (past the split at t ≈ 5) on 40 cells: mass is the fixed sum of
    the cell masses (1 to 1e-14), the edges stay ordered (every cell average > 0), and the risk
    of the node measure — the energy of the discrete gradient flow — never increases beyond the
    round-off of two evaluations: P terms summed, each of size <= 1 + 2|v| + Σλ M²."""
    cfg = config("gaussians", "time.t_end=8", "time.n_outputs=81", "lagrangian.mass_cells=40")
    solve(cfg, tmp_path / "l.h5")
    res = load(tmp_path / "l.h5")
    assert res.attrs["method"] == "lagrangian"
    assert np.max(np.abs(res["mass"] - 1.0)) <= 1e-14
    assert np.all(np.diff(res["cell_edges"], axis=1) > 0)
    masses = res.grid["cell_masses"]
    dens = masses[None, :] / np.diff(res["cell_edges"], axis=1)
    assert dens.min() > 0 and res.attrs["min_density"] == pytest.approx(dens.min(), rel=1e-12)
    n_nodes = res["nodes"].shape[1]
    bound = 2 * n_nodes * EPS * (1 + 2 * 5.0 + res["risk"][0])
    assert np.max(np.diff(res["risk"])) <= bound
    # the deposit on the output grid holds the mass inside the grid exactly
    h = np.diff(res.grid["r_edges"])
    assert np.max(np.abs(res["density"] @ h - 1.0)) <= 1e-13
    assert res["risk"][-1] < 0.35 < 1.6 < res["risk"][0]


def test_error_estimate_bounds_the_risk_curve_on_an_unmeasured_setting(tmp_path):
    """risk_error (companion: ¾ of the cells, p = 4; runner/companion.py) on a setting and
    resolution outside the ladders the order was chosen on (Δ = 0.7, d = 30, κ = 0.9, 20 cells,
    through the split to t = 6), against 160 cells at rtol 1e-12: the error of the risk curve so
    far is <= 3 × risk_error at every output, and the final risk_error <= 100 × the largest error
    + 1e-10 (the acceptance's window)."""
    sets = ("model.delta=0.7", "model.d=30", "init.kappa=0.9", "time.t_end=6",
            "time.n_outputs=61")
    solve(config("gaussians", *sets, "lagrangian.mass_cells=20"), tmp_path / "m.h5")
    res = load(tmp_path / "m.h5")
    ref, _ = _advance(_problem(*sets, "lagrangian.mass_cells=160", "solver.rtol=1e-12",
                               "lagrangian.pilot_t_end=6"), res.t)
    actual = np.maximum.accumulate(np.abs(res["risk"] - ref))
    est = res["risk_error"]
    assert res.attrs["companion_mass_cells"] == 15 and res.attrs["error_order"] == 4.0
    assert np.all(actual <= 3.0 * est), np.max(actual / est)
    assert est[-1] <= 100.0 * actual[-1] + 1e-10, (est[-1], actual[-1])
    assert actual[-1] > 1e-9  # an error the estimate has to see (not only its floor)


def test_order_in_the_mass_cells_before_the_split():
    """Before the law splits (t <= 3) X is smooth in the label: the Lobatto rule with 4 nodes
    per cell (degree 5) has error O(h^6); the risk error halves >= 2^5 per doubling."""
    times = np.linspace(0, 3, 7)
    base = ("time.t_end=3", "time.n_outputs=7", "lagrangian.cell_order=4")
    ref, _ = _advance(_problem(*base, "lagrangian.mass_cells=160", "lagrangian.cell_order=8",
                               "lagrangian.pilot_t_end=3"), times)
    errs = [np.max(np.abs(_advance(_problem(*base, f"lagrangian.mass_cells={n}",
                                            "lagrangian.pilot_t_end=3"), times)[0] - ref))
            for n in (8, 16, 32)]
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(orders >= 5.0), (errs, orders)


def test_time_integration_error_is_negligible():
    """solver.rtol = 1e-10 against 1e-12 through the split: the risks agree to 1e-9 (1000× below
    the 1e-6 target)."""
    times = np.linspace(0, 6, 13)
    runs = [_advance(_problem("time.t_end=6", "lagrangian.mass_cells=40", f"solver.rtol={tol}"),
                     times)[0] for tol in (1e-10, 1e-12)]
    assert np.max(np.abs(runs[0] - runs[1])) <= 1e-9


# ------------------------------------------------------------------------------ the problem
def test_companions_and_orders():
    p = _problem("time.t_end=2")
    c = p.companion_config()
    assert p.method == "lagrangian" and p.error_order == 4.0
    assert c["lagrangian.mass_cells"] == 3 * p.config["lagrangian.mass_cells"] // 4
    assert p.companion_ratio == p.config["lagrangian.mass_cells"] / c["lagrangian.mass_cells"]
    assert c["grid.r_max"] == p.r_max and c["lagrangian.pilot_t_end"] == 2.0
    assert c["solver.method"] == "lagrangian"
    q = _problem("time.t_end=2", "solver.method=fv", "grid.n=200")
    c = q.companion_config()
    assert q.error_order > 0 and c["grid.n"] == 100 and c["grid.r_max"] == q.r_max
    assert q.companion_ratio == 2.0
    noisy = _problem("noise.beta=10", "noise.lam=0.1", "grid.n=64", "grid.r_max=4",
                     "time.t_end=0.1")
    c = noisy.companion_config()
    assert noisy.error_order == 1.0 and c["grid.n"] == 32
    assert c["solver.dt_max"] == 2 * noisy.config["solver.dt_max"]


def test_resume_rebuilds_the_same_cells():
    """The cells come from a deterministic pilot to lagrangian.pilot_t_end, recorded in the
    attributes: a rebuild with a later t_end (resume --t-end) gives bitwise the same cells."""
    cfg = config("gaussians", "time.t_end=3")
    p = GaussiansProblem(cfg)
    radial_pilot._CACHE.clear()
    again = GaussiansProblem(GaussiansProblem.with_walls(cfg.replace({"time.t_end": 5.0}),
                                                         p.attrs()))
    for name, arr in p.grid.items():
        assert np.array_equal(again.grid[name], arr), name


def test_from_file_of_a_lagrangian_result_keeps_the_cell_masses(tmp_path):
    cfg = config("gaussians", "time.t_end=1", "time.n_outputs=3", "lagrangian.mass_cells=20")
    solve(cfg, tmp_path / "a.h5")
    res = load(tmp_path / "a.h5")
    p = GaussiansProblem(cfg.with_overrides(["init.kind=from_file",
                                             f"init.file='{tmp_path / 'a.h5'}'"]))
    edges = res["cell_edges"][-1]
    # the new law's CDF at the source's edges is the source's cumulative cell mass
    law = p.lagrangian.law
    cum = np.cumsum(res.grid["cell_masses"])
    assert np.allclose(np.cumsum(law.masses(edges)), cum / cum[-1], atol=1e-14, rtol=0)
    assert p.lagrangian.mean_r(p.initial_state()) == pytest.approx(res["mean_r"][-1], abs=1e-3)
    assert p.risk(p.initial_state()) == pytest.approx(res["risk"][-1], abs=1e-3)


def test_from_file_of_a_finite_volume_result_is_exact_per_cell(tmp_path):
    """A piecewise-constant initial law: the cells take its jumps as edges, so the Lobatto rule
    integrates r ρ̄_0 exactly — the initial mean equals the file's (midpoint-exact) mean."""
    cfg = config("gaussians", "solver.method=fv", "grid.n=300", "grid.r_max=4", "time.t_end=1",
                 "time.n_outputs=3")
    solve(cfg, tmp_path / "fv.h5")
    res = load(tmp_path / "fv.h5")
    p = GaussiansProblem(config("gaussians", "init.kind=from_file", "time.t_end=1",
                                f"init.file='{tmp_path / 'fv.h5'}'", "lagrangian.mass_cells=20"))
    x = p.initial_state()
    assert abs(np.sum(p.lagrangian.cells.masses) - 1.0) <= 2 * EPS
    assert p.lagrangian.mean_r(x) == pytest.approx(res["mean_r"][-1], rel=1e-13)


def test_mass_at_the_wall_stops_a_lagrangian_run(tmp_path):
    cfg = config("gaussians", "grid.r_max=2.5", "grid.n=200", "lagrangian.mass_cells=20")
    with pytest.raises(SolverError, match=r"reached the wall grid\.r_max = 2\.5"):
        solve(cfg, tmp_path / "w.h5")


def test_finite_volumes_converge_to_the_lagrangian_risk_on_a_smooth_activation():
    """Independent cross-check (softplus: the quadrature route of the Hermite coefficients,
    t <= 2): the second-order finite-volume risk approaches the Lagrangian one 4× per doubling
    of n (measured 7.97e-9, 1.99e-9, 4.98e-10 for n = 600, 1200, 2400)."""
    base = ("model.activation=softplus", "time.t_end=2", "time.n_outputs=5")
    times = np.linspace(0, 2, 5)
    lag, _ = _advance(_problem(*base, "lagrangian.mass_cells=20"), times)
    fv600 = _problem(*base, "solver.method=fv", "grid.n=600")
    errs = [np.max(np.abs(_advance(p, times)[0] - lag)) for p in (
        fv600, _problem(*base, "solver.method=fv", "grid.n=1200", f"grid.r_max={fv600.r_max}"))]
    assert 1.8 <= np.log2(errs[0] / errs[1]) <= 2.2, errs


def test_the_companion_thread_changes_no_bit():
    """The companion steps in a second thread (runner/companion.py): with budgets of 1 and 3
    steps per call (the main part stops short of t_stop, so the companion is restored and re-run
    to the main part's time) and unlimited, the paired state is bit-identical to the serial
    order's with the same budget."""
    from meanfield_pde.runner.companion import with_companion

    paired = with_companion(_problem("time.t_end=2", "lagrangian.mass_cells=16"))
    times = np.linspace(0.0, 2.0, 5)
    for budget in (1, 3, 10**8):
        finals = []
        for threaded in (True, False):
            st, y, t = paired.make_stepper(), paired.initial_state(), 0.0
            assert st.concurrent_pair
            st.concurrent_pair = threaded
            for stop in times[1:]:
                while t < stop:
                    rep = st.advance(y, t, stop, budget)
                    assert rep.steps <= budget and rep.t > t
                    t = rep.t
            finals.append(y)
        np.testing.assert_array_equal(finals[0], finals[1])

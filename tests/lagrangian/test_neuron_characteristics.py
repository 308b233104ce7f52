"""The noiseless single-neuron characteristic solver (solver.method = lagrangian, MATH.md §6)."""

import math

import numpy as np
import pytest
from helpers import run_module

from meanfield_pde import load
from meanfield_pde.config import default_config
from meanfield_pde.errors import ConfigError, SolverError
from meanfield_pde.lagrangian import neuron_field as nf
from meanfield_pde.problems.single_neuron import SingleNeuronProblem
from meanfield_pde.runner.companion import curve_error, curve_estimate

EPS = np.finfo(float).eps
# a small fixed box that holds the default run to t = 2 (no pilot: fast)
BOX = ["grid.a_min=0.4", "grid.a_max=1.8", "grid.s_min=-0.6", "grid.s_max=1.5",
       "grid.r_max=1.0"]
SMALL = ["lagrangian.n_s=8", "lagrangian.n_r=8", "lagrangian.table_s=24",
         "lagrangian.table_r=12"]


def _problem(over=(), t_end=2.0):
    cfg = default_config("single-neuron").with_overrides(
        [*BOX, *SMALL, f"time.t_end={t_end}", "time.n_outputs=5", *over])
    return SingleNeuronProblem(cfg)


def _run(p, times):
    y = p.initial_state()
    st, t, out = p.make_stepper(), 0.0, []
    for ts in times:
        rep = st.advance(y, t, ts, 10**7)
        assert rep.t == ts
        t = ts
        out.append(y.copy())
    return out


def test_auto_is_lagrangian_without_noise_and_fv_with_noise():
    assert _problem().method == "lagrangian"
    noisy = default_config("single-neuron").with_overrides(
        [*BOX, "noise.beta=50", "noise.lam=0.1"])
    assert SingleNeuronProblem(noisy).method == "fv"
    with pytest.raises(ConfigError, match="noiseless"):
        SingleNeuronProblem(noisy.with_overrides(["solver.method=lagrangian"]))
    with pytest.raises(ConfigError, match="noise.lam > 0 without noise"):
        SingleNeuronProblem(default_config("single-neuron").with_overrides(
            [*BOX, "noise.lam=0.1", "solver.method=fv"]))


def test_velocity_is_minus_two_xi_grad_psi():
    """dz_p/dt = −(ξ/w_p) ∂R/∂z_p (R = R# + 2Σ w a(−v) + Σ w w' U: ∂R/∂z_p = 2 w_p ∇Ψ(z_p)),
    checked by central differences of the compiled risk (error ~ h² R''' + eps R/h)."""
    p = _problem(["schedule.xi0=0.7"])
    sysm = p.lagrangian
    rng = np.random.default_rng(0)
    y = p.initial_state() + 0.02 * rng.standard_normal(p.initial_state().size)
    y.reshape(-1, 3)[:, 2] = np.abs(y.reshape(-1, 3)[:, 2])
    vel = sysm.rhs(0.0, y).reshape(-1, 3)
    h = 1e-5
    for idx in rng.choice(sysm.w.size, 5, replace=False):
        for c in range(3):
            yp, ym = y.copy(), y.copy()
            yp[3 * idx + c] += h
            ym[3 * idx + c] -= h
            grad = (sysm.risk(yp) - sysm.risk(ym)) / (2 * h)
            expect = -0.7 * grad / sysm.w[idx]
            tol = (1e-6 * h * h + 10 * EPS / h) / sysm.w[idx] + 1e-9
            assert vel[idx, c] == pytest.approx(expect, abs=tol)


def test_mass_positivity_and_non_increasing_risk():
    p = _problem()
    w = p.lagrangian.w
    assert abs(math.fsum(w) - 1.0) <= 1e-14
    states = _run(p, [0.25 * k for k in range(1, 9)])
    risks = [p.risk(p.initial_state())] + [p.risk(y) for y in states]
    # round-off of one risk evaluation: a few eps times its terms (R#, 2|∫V|, |m|² <= R# + 1)
    bound = 64 * EPS * (3 * p.lagrangian.table.r_sharp + 1)
    assert np.all(np.diff(risks) <= bound), np.diff(risks)
    assert risks[-1] < 0.2 * risks[0]
    for y in states:
        snap = p.snapshot(y)
        assert abs(snap["mass"] - 1.0) <= 1e-14
        assert snap["density"].min() >= 0.0 and p.min_density(y) >= 0.0
        vol = p.h_a * p.h_s * p.h_r
        assert abs(snap["density"].sum() * vol - 1.0) <= 1e-13
        assert np.all(y.reshape(-1, 3)[:, 2] > 0)  # r never crosses 0


def test_l2_term_dissipates_the_energy_without_noise():
    p = _problem(["noise.lam=0.2"])
    assert p.energy_field == "free_energy"
    states = _run(p, [0.25 * k for k in range(1, 9)])
    f = [p.snapshot(p.initial_state())["free_energy"]]
    f += [p.snapshot(y)["free_energy"] for y in states]
    assert np.all(np.diff(f) <= 64 * EPS * 4)
    # λ pulls |z|² below the λ = 0 run's
    q = _problem()
    free = _run(q, [2.0])[0]
    assert p.lagrangian.l2(states[-1]) < q.lagrangian.l2(free)


def test_risk_converges_with_the_quadrature():
    """Gauss rules in s and r: geometric convergence of the risk at t = 2 (measured errors
    against 24 × 24 nodes, same table: 3.6e-7, 2.5e-8, 7.1e-11, 4.1e-12, 4e-14 for
    n = 3, 4, 6, 8, 12)."""
    errs = []
    ref = _run(_problem(["lagrangian.n_s=24", "lagrangian.n_r=24"]), [2.0])[0]
    pr = _problem(["lagrangian.n_s=24", "lagrangian.n_r=24"])
    r_ref = pr.risk(ref)
    for n in (3, 4, 6):
        p = _problem([f"lagrangian.n_s={n}", f"lagrangian.n_r={n}"])
        errs.append(abs(p.risk(_run(p, [2.0])[0]) - r_ref))
    assert errs[0] < 1e-3 * r_ref
    assert errs[1] < 0.1 * errs[0] and errs[2] < 0.1 * errs[1], errs


def test_walls_reached_and_cut_off():
    p = _problem(["grid.s_max=0.6", "grid.a_max=1.3"])
    y = _run(p, [2.0])[0]
    with pytest.raises(SolverError, match=r"grid\.(a|s)_max"):
        p.check_walls(y, 2.0)
    with pytest.raises(ConfigError, match="cuts off the initial law"):
        _problem(["grid.s_max=0.1"])


def test_table_field_is_even_in_r():
    p = _problem()
    tb = p.lagrangian.table
    z = np.array([[1.0, 0.3, 0.0], [1.0, -0.2, 0.0]])
    out = np.empty_like(z)
    nf.velocity(z, np.array([0.5, 0.5]), tb.cv, tb.E, *tb.coords(), 2.0, 0.0,
                np.empty(tb.cv.size), np.empty(tb.cv.shape), out)
    assert np.all(out[:, 2] == 0.0)


def test_default_cli_run_writes_particles(tmp_path):
    out = tmp_path / "sn.h5"
    proc = run_module("solve", "single-neuron", "-o", out, "--set", "time.t_end=2",
                      "--set", "time.n_outputs=5")
    assert proc.returncode == 0, proc.stderr
    res = load(out)
    assert res.attrs["method"] == "lagrangian"
    w = res.grid["particle_weights"]
    parts = res["particles"]
    assert parts.shape == (5, w.size, 3) and abs(math.fsum(w) - 1.0) <= 1e-14
    assert np.max(np.abs(res["mass"] - 1.0)) <= 1e-14
    assert res["density"].min() >= 0.0
    assert np.all(np.diff(res["risk"]) <= 0.0)
    # the means are the particle means; the marginals the deposit of the same particles
    assert res["mean_s"][-1] == pytest.approx(np.dot(w, parts[-1, :, 1]), abs=1e-15)
    h_a = np.diff(res.grid["a_edges"])[0]
    assert np.sum(res["marginal_a"][-1]) * h_a == pytest.approx(1.0, abs=1e-13)
    png = tmp_path / "sn.png"
    pl = run_module("plot", out, "-o", png, timeout=300)
    assert pl.returncode == 0 and png.stat().st_size > 20_000
    info = run_module("info", out, timeout=300)
    assert info.returncode == 0 and "lagrangian" in info.stdout


def _risks(p, times):
    return np.array([p.risk(y) for y in _run(p, times)])


def _honest(p, times, ref):
    """The runner's estimate of the risk curve's error (runner/companion.py) at ``times``:
    the curve's error so far <= 3 est at every output, and the final est <= 100 × the largest
    error + 1e-10 (issue 14)."""
    r = _risks(p, times)
    comp = SingleNeuronProblem(p.companion_config())
    assert np.allclose(comp.box, p.box, rtol=1e-14, atol=1e-15) and comp.method == p.method
    est = curve_estimate(r, _risks(comp, times), p.error_order, p.companion_ratio,
                         p.risk_error_floor)
    act = curve_error(r, ref)
    assert np.all(act <= 3 * est) and est[-1] <= 100 * act[-1] + 1e-10, (act, est)
    return act / est


def test_risk_error_estimate_is_honest_on_a_small_run():
    """Main 8 × 8 nodes with a 24 × 12 table; companion 6 × 6 and 16 × 8; reference 24 × 24
    nodes and a 48 × 24 table (its own error ~1e-13)."""
    times = [0.5, 1.0, 2.0]
    ref = _risks(_problem(["lagrangian.n_s=24", "lagrangian.n_r=24", "lagrangian.table_s=48",
                           "lagrangian.table_r=24"]), times)
    p = _problem()
    assert p.error_order == pytest.approx(math.log2(7))
    _honest(p, times, ref)


@pytest.mark.slow
@pytest.mark.parametrize("over", [[], ["model.activation=erf", "model.target=tanh"],
                                  ["init.s0=0.3", "init.a_law=gaussian", "init.a_std=0.1"],
                                  ["noise.lam=0.05"], ["model.d=10", "init.kappa=0.8"],
                                  ["model.activation=relu"]])
def test_risk_error_estimate_is_honest_at_the_defaults(over):
    """Default resolution on the automatic walls against 48 × 48 (16 in a) nodes, a 64 × 32
    table and rtol 1e-12 on the same walls, t <= 8."""
    times = [0.5, 1.0, 2.0, 4.0, 8.0]
    cfg = default_config("single-neuron").with_overrides(["time.n_outputs=17", *over])
    p = SingleNeuronProblem(cfg)
    walls = {f"grid.{k}": float(v)
             for k, v in zip(("a_min", "a_max", "s_min", "s_max", "r_max"), p.box, strict=True)}
    ref = _risks(SingleNeuronProblem(cfg.replace({
        **walls, "lagrangian.n_s": 48, "lagrangian.n_r": 48, "lagrangian.n_a": 16,
        "lagrangian.table_s": 64, "lagrangian.table_r": 32, "solver.rtol": 1e-12})), times)
    _honest(p, times, ref)


def test_one_particle_follows_the_brute_force_single_neuron_ode():
    """d = ∞ (one Mehler term): one particle of weight 1 obeys dz/dt = −2ξ∇Ψ(z; δ_z) with
    v(s, r) = E tanh(G) tanh(sG + rZ), K = E_G[q(s G, r) q(s' G, r')], q = E_Z tanh(· + r Z),
    here by brute-force Gauss–Hermite and central differences."""
    from numpy.polynomial.hermite_e import hermegauss
    from scipy import integrate

    from meanfield_pde.lagrangian.neuron import NeuronCharacteristics, NeuronParticles

    g, gw = hermegauss(160)
    gw = gw / np.sqrt(2 * np.pi)
    zz, zw = hermegauss(80)
    zw = zw / np.sqrt(2 * np.pi)

    def v(s, r):
        return float(np.sum(gw[:, None] * zw * np.tanh(g)[:, None]
                            * np.tanh(s * g[:, None] + r * zz)))

    def q(s, r):
        return np.tanh(s * g[:, None] + r * zz) @ zw

    def k(s, r, s2, r2):
        return float(np.sum(gw * q(s, r) * q(s2, r2)))

    eps = 1e-5

    def rhs(_t, z):
        a, s, r = z
        dv = ((v(s + eps, r) - v(s - eps, r)) / (2 * eps),
              (v(s, r + eps) - v(s, r - eps)) / (2 * eps))
        dk = ((k(s + eps, r, s, r) - k(s - eps, r, s, r)) / (2 * eps),
              (k(s, r + eps, s, r) - k(s, r - eps, s, r)) / (2 * eps))
        grad = (-v(s, r) + a * k(s, r, s, r), -a * dv[0] + a * a * dk[0],
                -a * dv[1] + a * a * dk[1])
        return [-2.0 * x for x in grad]

    p = _problem(["model.d=inf", "init.d=30", "lagrangian.table_s=48", "lagrangian.table_r=24"])
    z0 = np.array([[1.0, 0.3, 0.45]])
    sysm = NeuronCharacteristics(NeuronParticles(z0, np.array([1.0])), p.lagrangian.table,
                                 p.schedule, 0.0, False)
    y = z0.ravel().copy()
    sysm.stepper(1e-11).advance(y, 0.0, 1.0, 10**6)
    ode = integrate.solve_ivp(rhs, (0, 1.0), z0[0], rtol=1e-11, atol=1e-12).y[:, -1]
    assert np.max(np.abs(ode - z0[0])) > 0.05  # it moves
    # central differences ~eps² |Ψ'''|/6 ~ 1e-10, both integrators rtol 1e-11; measured 9e-12
    assert np.max(np.abs(y - ode)) <= 1e-9, (y, ode)

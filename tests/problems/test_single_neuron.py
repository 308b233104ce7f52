"""The (a, s, r) problem of MATH.md §3: initial risk, solver properties, the particle limit."""

import math

import numpy as np
import pytest
from helpers import NEURON_TIGHT_BOX, run_module
from numpy.polynomial.hermite_e import hermegauss
from numpy.polynomial.legendre import leggauss
from roundoff import risk_roundoff_3d
from scipy import integrate, special

from meanfield_pde import load, solve
from meanfield_pde.config import build_config, default_config
from meanfield_pde.errors import ConfigError, SolverError
from meanfield_pde.problems.single_neuron import SingleNeuronProblem

BOX = NEURON_TIGHT_BOX
# these tests check the finite-volume method, which a noiseless run no longer uses by default
# (solver.method = "auto" is Lagrangian without noise; tests/lagrangian/test_neuron*.py)
FV = ["solver.method=fv"]


def _gh(n):
    x, w = hermegauss(n)
    return x, w / np.sqrt(2 * np.pi)


def _sphere_moments(m, jmax):
    out = np.ones(jmax + 1)
    for j in range(1, jmax + 1):
        out[j] = out[j - 1] * (2 * j - 1) / (m + 2 * j - 2)
    return out


@pytest.fixture(scope="module")
def default_problem():
    return SingleNeuronProblem(default_config("single-neuron").with_overrides(FV))


# ------------------------------------------------------------------------------ initial risk
def test_initial_risk_matches_independent_quadrature(default_problem):
    """R(ρ̄_0) of the solver against an independent quadrature of the continuous initial law.

    Independent route: the network output ŷ(g, x) = E_{s,r} tanh(s g + r x) (a = 1) is integrated
    over the law of (s, r) first, then projected on Hermite polynomials in x; the angle average
    gives Σ_j μ_2j(d−1) ĥ_2j(g)², and ∫V = −E_{s,r} E[tanh(G) tanh(s G + r Z)].
    """
    p, d, kappa = default_problem, 30, 0.5
    rho = p.initial_state()
    # law of s: N(0, κ²/d); law of r: (κ/√d) χ_{d−1}
    xs, ws = _gh(60)
    s_nodes, s_w = xs * kappa / math.sqrt(d), ws
    lo, hi = 0.05, 1.2
    xr, wr = leggauss(200)
    r_nodes = 0.5 * (hi - lo) * xr + 0.5 * (hi + lo)
    k = d - 1
    dens = np.exp(np.log(2) + (k / 2) * np.log(d / (2 * kappa**2)) - special.gammaln(k / 2)
                  + (k - 1) * np.log(r_nodes) - d * r_nodes**2 / (2 * kappa**2))
    r_w = 0.5 * (hi - lo) * wr * dens
    assert r_w.sum() == pytest.approx(1.0, abs=1e-13)
    S, R = np.meshgrid(s_nodes, r_nodes, indexing="ij")
    W = np.outer(s_w, r_w)
    g, gw = _gh(120)
    x, xw = _gh(120)
    # 2∫V dρ0 = −2 E_{s,r} E[tanh(G) tanh(s G + r Z)]
    v = np.einsum("g,z,gz...->...", gw * np.tanh(g), xw,
                  np.tanh(S[None, None] * g[:, None, None, None]
                          + R[None, None] * x[None, :, None, None]))
    two_v = -2.0 * np.sum(W * v)
    # ∬U dρ0 dρ0
    yhat = np.einsum("ij,gxij->gx", W, np.tanh(S[None, None] * g[:, None, None, None]
                                                 + R[None, None] * x[None, :, None, None]))
    kmax = 60
    he = np.zeros((kmax + 1, x.size))
    he[0], he[1] = 1.0, x
    for n in range(2, kmax + 1):
        he[n] = (x * he[n - 1] - math.sqrt(n - 1) * he[n - 2]) / math.sqrt(n)
    coef = yhat @ (xw[:, None] * he.T)  # (g, k)
    mu = _sphere_moments(d - 1, kmax // 2)
    uu = np.sum(gw * np.sum(mu * coef[:, 0::2] ** 2, axis=1))
    r_sharp = np.sum(gw * np.tanh(g) ** 2)
    exact = r_sharp + two_v + uu
    assert p.risk(rho) == pytest.approx(exact, abs=1e-8)


# ------------------------------------------------------------------------------ the solver
def test_default_cli_run(tmp_path):
    out = tmp_path / "sn.h5"
    proc = run_module("solve", "single-neuron", "-o", out, "--set", "solver.method=fv")
    assert proc.returncode == 0, proc.stderr
    res = load(out)
    assert res.complete and res.problem == "single-neuron"
    for t in (0, 0.5, 1, 2, 4, 8):
        res.index_of_time(t)
    dens = res["density"]
    k, n_a, n_s, n_r = dens.shape
    assert res["marginal_a"].shape == (k, n_a) and res["marginal_s"].shape == (k, n_s)
    assert res["marginal_r"].shape == (k, n_r) and res["mean_a"].shape == (k,)
    assert res.grid["a_edges"].shape == (n_a + 1,) and res.grid["r_centers"].shape == (n_r,)
    assert np.max(np.abs(res["mass"] - res["mass"][0])) <= 1e-12 * res["mass"][0]
    assert dens.min() >= 0.0
    risk = res["risk"]
    # non-increasing up to the round-off of two risk evaluations (derived in roundoff.py), on
    # the walls the run chose
    cfg = build_config(res.problem, res.config)
    p = SingleNeuronProblem(SingleNeuronProblem.with_walls(cfg, res.attrs))
    grid, kern, _ = p.tables()
    bound = np.array([2 * risk_roundoff_3d(rho, grid, kern, p.kernel.r_sharp) for rho in dens])
    assert np.all(np.diff(risk) <= bound[1:])
    assert risk[-1] < 0.01 < 0.3 < risk[0]  # the student learns the teacher
    assert res["mean_s"][-1] > 0.5  # and aligns with w_*
    png = tmp_path / "sn.png"
    pl = run_module("plot", out, "-o", png, timeout=300)
    assert pl.returncode == 0 and png.stat().st_size > 20_000
    info = run_module("info", out, timeout=300)
    assert info.returncode == 0 and "single-neuron" in info.stdout


def _smooth(n_a, n_s, n_r, t_end=0.25):
    cfg = default_config("single-neuron").with_overrides(
        ["grid.a_min=0.2", "grid.a_max=1.8", "grid.s_min=-1.2", "grid.s_max=1.6",
         "grid.r_max=1.6", f"grid.n_a={n_a}", f"grid.n_s={n_s}", f"grid.n_r={n_r}",
         "init.a_law=gaussian", "init.a_std=0.15", "init.kappa=0.8", "init.d=12",
         "grid.wall_tol=1e-3", f"time.t_end={t_end}", *FV])
    p = SingleNeuronProblem(cfg)
    rho = p.initial_state()
    rep = p.make_stepper().advance(rho, 0.0, t_end, 10**7)
    assert rep.t == t_end
    return p, rho


def _coarsen(rho):
    a, s, r = rho.shape
    return rho.reshape(a // 2, 2, s // 2, 2, r // 2, 2).mean(axis=(1, 3, 5))


def test_second_order_in_l1_on_a_smooth_problem():
    errs = []
    for n in ((6, 12, 12), (12, 24, 24), (24, 48, 48)):
        p, coarse = _smooth(*n)
        _, fine = _smooth(*(2 * x for x in n))
        errs.append(np.sum(np.abs(coarse - _coarsen(fine))) * p.h_a * p.h_s * p.h_r)
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert orders[-1] >= 1.8, (errs, orders)


def test_parallel_matches_serial_bit_for_bit(tmp_path):
    base = default_config("single-neuron").with_overrides(BOX + FV + ["time.t_end=0.5",
                                                                     "time.n_outputs=3"])
    solve(base, tmp_path / "p.h5")
    solve(base.with_overrides(["solver.parallel=false"]), tmp_path / "s.h5")
    # exact by construction: the parallel kernels keep the serial summation order
    assert np.array_equal(load(tmp_path / "p.h5")["density"], load(tmp_path / "s.h5")["density"])


# ------------------------------------------------------------------------------ particle limit
def _v_and_k():
    """v(s, r) = E tanh(G) tanh(sG + rZ) and K(s, r; s', r') = E[q(sG, r) q(s'G, r')] at d = ∞."""
    g, gw = _gh(160)
    z, zw = _gh(80)

    def v(s, r):
        return float(np.sum(gw[:, None] * zw * np.tanh(g)[:, None]
                            * np.tanh(s * g[:, None] + r * z)))

    def q(s, r):
        return np.tanh(s * g[:, None] + r * z) @ zw

    def k(s, r, s2, r2):
        return float(np.sum(gw * q(s, r) * q(s2, r2)))

    return v, k


def test_concentrated_law_follows_the_single_particle_ode():
    """d = ∞ and a narrow initial law: the mean of ρ̄_t follows dz/dt = −2ξ ∇Ψ(z; δ_z)."""
    v, k = _v_and_k()
    eps = 1e-5

    def rhs(_t, z):
        a, s, r = z
        dv_s = (v(s + eps, r) - v(s - eps, r)) / (2 * eps)
        dv_r = (v(s, r + eps) - v(s, r - eps)) / (2 * eps)
        dk_s = (k(s + eps, r, s, r) - k(s - eps, r, s, r)) / (2 * eps)
        dk_r = (k(s, r + eps, s, r) - k(s, r - eps, s, r)) / (2 * eps)
        grad = (-v(s, r) + a * k(s, r, s, r), -a * dv_s + a * a * dk_s, -a * dv_r + a * a * dk_r)
        return [-2.0 * x for x in grad]

    # a = 1 in one cell; s ~ N(0.3, κ²/D), r ~ (κ/√D) χ_{D−1} with D = 2000: widths ≈ 0.01
    cfg = default_config("single-neuron").with_overrides(
        ["model.d=inf", "init.d=2000", "init.kappa=0.45", "init.s0=0.3", "grid.n_a=48",
         "grid.n_s=96", "grid.n_r=96", "grid.a_min=0.7", "grid.a_max=1.6", "grid.s_min=0.15",
         "grid.s_max=0.85", "grid.r_max=0.7", "grid.wall_tol=1e-3", "time.t_end=1.0", *FV])
    p = SingleNeuronProblem(cfg)
    rho = p.initial_state()
    snap = p.snapshot(rho)
    z0 = (snap["mean_a"], snap["mean_s"], snap["mean_r"])
    ode = integrate.solve_ivp(rhs, (0, 1.0), z0, t_eval=[0.5, 1.0], rtol=1e-10, atol=1e-12)
    stepper, t = p.make_stepper(), 0.0
    for i, t_stop in enumerate([0.5, 1.0]):
        t = stepper.advance(rho, t, t_stop, 10**7).t
        snap = p.snapshot(rho)
        pde = np.array([snap["mean_a"], snap["mean_s"], snap["mean_r"]])
        moved_pde, moved_ode = pde - np.array(z0), ode.y[:, i] - np.array(z0)
        assert np.all(np.abs(moved_ode) > 0.02)  # the test is not vacuous
        # the mean moves like the particle up to O(width²) and the grid's O(h) in a
        assert np.max(np.abs(moved_pde - moved_ode)) <= 0.25 * p.h_a + 0.01, (pde, ode.y[:, i])


# ------------------------------------------------------------------------------ errors
def test_errors(tmp_path):
    with pytest.raises(ConfigError, match="init.d"):
        SingleNeuronProblem(default_config("single-neuron").with_overrides(["model.d=inf"]))
    with pytest.raises(ConfigError, match="grid.s_max .* cuts off the initial law"):
        SingleNeuronProblem(default_config("single-neuron").with_overrides(
            BOX[:3] + ["grid.s_max=0.1", "grid.r_max=1.1"]))
    cfg = default_config("single-neuron").with_overrides(
        ["grid.a_min=0.5", "grid.a_max=1.3", "grid.s_min=-0.6", "grid.s_max=0.55",
         "grid.r_max=1.1", "grid.n_a=8", "grid.n_s=16", "grid.n_r=16", *FV])
    with pytest.raises(SolverError,
                       match=r"reached the wall grid\.(a|s)_max = .* cfg\.replace\(\{\"grid"):
        solve(cfg, tmp_path / "w.h5")
    assert load(tmp_path / "w.h5").t.size >= 1


@pytest.mark.parametrize("outputs", [[0.0, 0.5], "log"])
def test_warmup_ignores_the_users_output_times(outputs):
    """The kernel warm-up runs to t = 1e-3; it used to keep the user's time.outputs and fail
    with limits the user never set ("time.t_end = 0.001")."""
    from meanfield_pde.problems.gaussians import GaussiansProblem

    for problem, cls in (("single-neuron", SingleNeuronProblem), ("gaussians", GaussiansProblem)):
        cfg = default_config(problem).replace({"time.outputs": outputs, "time.t_end": 0.5,
                                               "checkpoint.every": 0.25})
        cls.warmup(cfg)  # no ConfigError

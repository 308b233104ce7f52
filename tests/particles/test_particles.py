"""Particle SGD (meanfield_pde.particles): the update, its randomness, and the population risk.

Tolerances come from the maths: Monte-Carlo comparisons use the estimated standard error (SE) of
the estimate; quadrature references are accurate to ~1e-12.
"""

import math
from functools import partial

import numpy as np
import pytest
from helpers import config
from scipy import integrate, special

from meanfield_pde import load, solve
from meanfield_pde.activations import get_activation
from meanfield_pde.errors import ConfigError
from meanfield_pde.particles import (
    ParticleSGD,
    PopulationRisk,
    SGDState,
    population_risk,
    reduced_coordinates,
    run_sgd,
)
from meanfield_pde.particles.gaussian_integrals import _bvn_upper, _hinge_pair
from meanfield_pde.problems.neuron_kernel import potential_V, r_sharp
from meanfield_pde.schedule import Schedule

KINKS = {"ramp": [0.5, 1.5], "relu": [0.0], "tanh": [], "erf": [], "softplus": []}


_cfg_a = partial(config, "gaussians")
_cfg_b = partial(config, "single-neuron")


# ------------------------------------------------------------------------------ references
def _quad(f, breaks, lo=-12.0, hi=12.0) -> float:
    """∫_lo^hi f with adaptive quadrature split at the given points (kinks, steps)."""
    pts = sorted({lo, hi, *(b for b in breaks if lo < b < hi)})
    return sum(integrate.quad(f, a, b, epsabs=1e-14, epsrel=1e-13, limit=400)[0]
               for a, b in zip(pts[:-1], pts[1:], strict=True))


def _phi(x):
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _pair_reference(act, t1: float, t2: float, c: float) -> float:
    """E[σ(t1 X) σ(t2 Y)], corr c: condition on X, E_Y in closed form/quadrature by hermite."""
    s = math.sqrt(max(0.0, 1.0 - c * c))
    kinks = KINKS[act.name]
    breaks = [k / t1 for k in kinks] + ([k / (t2 * c) for k in kinks] if c else []) + [0.0]
    return _quad(lambda x: _phi(x) * act.value(t1 * x) * act.hermite(t2 * s, 0, t2 * c * x)[0],
                 breaks)


def _diag_reference(act, t: float) -> float:
    """E σ(tG)² by adaptive quadrature."""
    return _quad(lambda x: _phi(x) * act.value(t * x) ** 2, [k / t for k in KINKS[act.name]])


def _mean_reference(act, t: float) -> float:
    return _quad(lambda x: _phi(x) * act.value(t * x), [k / t for k in KINKS[act.name]])


def _structured_network(rng, n: int, d: int) -> np.ndarray:
    """Rows with every kind of pair: near-parallel (|c| > 0.75), anti-aligned, random."""
    base = rng.standard_normal(d)
    base /= np.linalg.norm(base)
    w = np.empty((n, d))
    for i in range(n):
        u = (base + 0.05 * rng.standard_normal(d), -base + 0.3 * rng.standard_normal(d),
             rng.standard_normal(d))[i % 3]
        w[i] = u / np.linalg.norm(u) * rng.uniform(0.3, 1.5)
    return w


def _random_rotations(rng, w: np.ndarray) -> np.ndarray:
    """Each row rotated independently and uniformly (same radii, other angles)."""
    g = rng.standard_normal(w.shape)
    return g / np.linalg.norm(g, axis=1)[:, None] * np.linalg.norm(w, axis=1)[:, None]


def _mc_loss(cfg, theta: np.ndarray, m: int, rng) -> tuple[float, float]:
    """Mean and standard error of (y − ŷ(x))² over m fresh samples of cfg's data."""
    sigma = get_activation(cfg["model.activation"], cfg["model.activation_params"])
    losses = []
    for start in range(0, m, 250_000):
        k = min(250_000, m - start)
        if cfg.problem == "gaussians":
            y = np.where(rng.random(k) < 0.5, 1.0, -1.0)
            x = rng.standard_normal((k, theta.shape[1])) * (1.0 + cfg["model.delta"] * y)[:, None]
            yhat = sigma.value(x @ theta.T).mean(axis=1)
        else:
            x = rng.standard_normal((k, theta.shape[1] - 1))
            y = sigma.value(x[:, 0]) + math.sqrt(cfg["model.label_noise"]) * rng.standard_normal(k)
            yhat = (sigma.value(x @ theta[:, 1:].T) * theta[:, 0]).mean(axis=1)
        losses.append((y - yhat) ** 2)
    loss = np.concatenate(losses)
    return float(loss.mean()), float(loss.std() / math.sqrt(m))


# ------------------------------------------------------------------------------ closed forms
def test_bivariate_normal_tail_and_hinge_moments():
    """Genz's P(U > h, V > k) and E[(U−h)+(V−k)+] against quadrature, up to |r| = 1 − 1e-6."""
    rng = np.random.default_rng(5)
    for _ in range(40):
        h, k = rng.normal(0.0, 1.5, 2)
        r = float(rng.choice([rng.uniform(-0.99, 0.99),
                              np.sign(rng.normal()) * (1 - 10 ** rng.uniform(-6, -1))]))
        s = math.sqrt(1 - r * r)
        step = [k / r]  # where the conditional law of V switches sides of k
        bvn = _quad(lambda u, r=r, s=s, k=k: _phi(u) * special.ndtr((r * u - k) / s),
                    [h, *step], lo=h, hi=40.0)
        assert abs(_bvn_upper(h, k, r) - bvn) < 1e-12

        def hinge(u, r=r, s=s, k=k, h=h):
            z = (r * u - k) / s
            return (u - h) * _phi(u) * ((r * u - k) * special.ndtr(z) + s * _phi(z))

        assert abs(_hinge_pair(h, k, r) - _quad(hinge, step, lo=h, hi=40.0)) < 1e-11
    # the limits r = ±1 (V = ±U) are continuous
    for h, k in [(0.3, -0.2), (-0.5, 0.4), (1.0, 1.0), (-1.2, 0.1)]:
        assert abs(_hinge_pair(h, k, 1.0) - _hinge_pair(h, k, 1 - 1e-12)) < 1e-9
        assert abs(_hinge_pair(h, k, -1.0) - _hinge_pair(h, k, -1 + 1e-12)) < 1e-9


@pytest.mark.parametrize("name", ["ramp", "relu", "tanh", "erf", "softplus"])
def test_pair_expectation_every_angle(name):
    """E[σ(t1 X)σ(t2 Y)] by Mehler (|c| <= 0.75) / closed form or long Mehler (|c| > 0.75) matches
    quadrature to 1e-10 on both sides of the switch and up to c = 1 − 1e-6, −0.999; c -> 1
    reaches the exact diagonal."""
    pr = PopulationRisk(_cfg_a(f"model.activation='{name}'"))
    act = get_activation(name)
    for t1, t2 in [(0.7, 1.9), (2.5, 1.1), (1.3, 1.3)]:
        for c in [0.0, 0.3, -0.6, 0.7499999, 0.7500001, 0.9, -0.95, -0.999, 0.999, 1 - 1e-6]:
            ref = _pair_reference(act, t1, t2, c)
            assert abs(pr.pair(t1, t2, c) - ref) < 1e-10 * max(1.0, abs(ref)), (t1, t2, c)
    for t in (0.4, 1.3, 3.0):
        diag = _diag_reference(act, t)
        assert abs(pr.pair(t, t, 1.0) - diag) < 1e-11 * max(1.0, diag)
        assert abs(pr.pair(t, t, 1 - 1e-13) - diag) < 1e-9 * max(1.0, diag)


def test_relu_pair_is_the_arc_cosine_kernel_up_to_c_equal_minus_one():
    """relu: E[(aX)+(bY)+] = ab (sin φ + (π − φ) cos φ) / (2π), φ = arccos c — relative 1e-9
    even where it is ~1e-10 (c = −1 + 1e-6: the anti-aligned limit, sin φ − φ' cos φ' ≈ φ'³/3)."""
    pr = PopulationRisk(_cfg_a("model.activation='relu'"))
    for c in [-1.0, -1 + 1e-9, -1 + 1e-6, -0.8, -0.2, 0.5, 0.76, 0.99, 1 - 1e-9, 1.0]:
        phi = math.acos(c)
        ref = 0.7 * 1.9 * (math.sin(phi) + (math.pi - phi) * c) / (2 * math.pi)
        if c > -1 + 1e-7:
            assert abs(pr.pair(0.7, 1.9, c) - ref) <= 1e-9 * abs(ref) + 1e-16, c
        else:  # the exact value is below 1e-13: cancellation leaves only an absolute accuracy
            assert abs(pr.pair(0.7, 1.9, c) - ref) < 1e-15, c


# ------------------------------------------------------------------------------ population risk
@pytest.mark.parametrize("problem", ["gaussians", "single-neuron"])
def test_population_risk_matches_a_monte_carlo_test_set(problem):
    """R_N of a fixed network (N = 50, d = 10) against 2e6 fresh samples: within 4 SE, with
    SE < 2e-3; the same radii with other angles are > 10 SE away (the test can fail)."""
    rng = np.random.default_rng(11 if problem == "gaussians" else 12)
    if problem == "gaussians":  # default ramp, Δ = 0.8
        cfg = _cfg_a("model.d=10")
        theta = _structured_network(rng, 50, 10)
        rotated = _random_rotations(rng, theta)
    else:  # default tanh teacher and student; label noise ν = 0.3
        cfg = _cfg_b("model.d=10", "model.label_noise=0.3")
        w = _structured_network(rng, 50, 10)
        a = rng.normal(0.5, 0.7, 50)
        theta = np.column_stack([a, w])
        rotated = np.column_stack([a, _random_rotations(rng, w)])
    risk = population_risk(cfg, theta)
    mc, se = _mc_loss(cfg, theta, 2_000_000, np.random.default_rng(99))
    assert se < 2e-3
    assert abs(risk - mc) < 4 * se, (risk, mc, se)
    assert abs(population_risk(cfg, rotated) - mc) > 10 * se


def test_population_risk_of_one_neuron_is_r_sharp_plus_2v_plus_diagonal():
    """N = 1: R = R# + 2V(θ) + U(θ, θ), U(θ, θ) the exact diagonal (quadrature references)."""
    sigma = get_activation("ramp")
    w = np.array([[0.3, -0.7, 0.5, 0.2]])
    r = float(np.linalg.norm(w))
    v = -0.5 * (_mean_reference(sigma, 1.8 * r) - _mean_reference(sigma, 0.2 * r))
    u = 0.5 * (_diag_reference(sigma, 1.8 * r) + _diag_reference(sigma, 0.2 * r))
    got = population_risk(_cfg_a("model.d=4"), w)
    assert abs(got - (1.0 + 2 * v + u)) < 1e-11

    for name in ("tanh", "relu"):
        cfg = _cfg_b("model.d=4", f"model.activation='{name}'", "model.label_noise=0.2")
        act = get_activation(name)
        theta = np.array([[0.8, 0.6, 0.4, -0.3, 0.5]])
        s, rr = 0.6, math.sqrt(0.4**2 + 0.3**2 + 0.5**2)
        rs = r_sharp(act, 0.2)  # E f_*² + ν²
        vv = -0.8 * potential_V(act, act, s, rr)
        uu = 0.64 * _diag_reference(act, math.hypot(s, rr))
        assert abs(rs - (_diag_reference(act, 1.0) + 0.2)) < 1e-12  # label_noise = ν² = 0.2
        assert abs(population_risk(cfg, theta) - (rs + 2 * vv + uu)) < 1e-11


def _special_rows(w: np.ndarray) -> np.ndarray:
    """``w`` with the degenerate pairs: a zero row, a near duplicate (1 − c ~ 1e-9), an exact
    negative (c = −1) and a row parallel to another at 1e-3 of its radius.  (No exact duplicate:
    the computed c of two equal rows is 1 or 1 − 1.1e-16 depending on the summation order, and the
    piecewise-linear closed form differs between the two by up to ~4e-7 — a limitation of the
    pair formula near c = 1, not of the summation tested here.)"""
    w = w.copy()
    w[5] = 0.0
    w[7] = w[8]
    w[7, 0] += 1e-4 * np.linalg.norm(w[8])
    w[9] = -w[10]
    w[11] = 1e-3 * w[12]
    return w


def _risk_scale(pr: PopulationRisk, theta: np.ndarray) -> float:
    """Σ of the absolute sizes of the terms of R_N: R# + (2/N) Σ|V_i| + (Σ|a_i|/N)² max U_ii —
    round-off is relative to this, not to R_N (which may be a small difference)."""
    a, w = pr._split(theta)
    rad = np.linalg.norm(w, axis=1)
    diag = max(float(np.max(pr._diag(s * rad))) for s in pr.scales)
    v = float(np.mean(np.abs(pr.potential(theta))))
    return abs(pr.r_sharp) + 2 * v + (float(np.mean(np.abs(a)))) ** 2 * diag


@pytest.mark.parametrize("problem,name", [
    ("gaussians", "ramp"), ("gaussians", "relu"), ("gaussians", "tanh"), ("gaussians", "erf"),
    ("gaussians", "softplus"), ("single-neuron", "tanh"), ("single-neuron", "relu"),
    ("single-neuron", "erf")])
def test_population_risk_equals_the_previous_evaluation(problem, name):
    """The serial per-pair-length evaluation equals the previous one (PopulationRisk.reference:
    BLAS Gram matrix, every far pair to k = 129, one pass per scale) up to round-off: the two
    differ only in summation order and in series terms below 0.75^130 sqrt(U_ii U_jj) per pair,
    so |ΔR| <= N · 1e-14 · (size of the terms), on every kind of pair (near-parallel, anti-aligned,
    random, c = −1, c ≈ 1, a zero row, a tiny parallel row) and at radii where smooth σ need longer
    near-pair series (scale 6: a different table length per data scale)."""
    rng = np.random.default_rng(21)
    n, d = 61, 10
    cfg = (_cfg_a if problem == "gaussians" else _cfg_b)("model.d=10",
                                                          f"model.activation='{name}'")
    pr = PopulationRisk(cfg)
    for radius in (1.0, 6.0):
        w = _special_rows(radius * _structured_network(rng, n, d))
        theta = w if problem == "gaussians" else np.column_stack([rng.normal(0.5, 0.7, n), w])
        got, ref = pr(theta), pr.reference(theta)
        assert abs(got - ref) <= n * 1e-14 * _risk_scale(pr, theta), (radius, got, ref)


@pytest.mark.parametrize("problem", ["gaussians", "single-neuron"])
def test_population_risk_is_the_double_sum_over_pairs(problem):
    """Small N: R_N = R# + (2/N) Σ_i V_i + (1/N²) Σ_{i,j} U_ij with every U_ij by the quadrature
    reference of E[σ(t_i X) σ(t_j Y)] (diagonal: E σ(t_i G)²) — a brute-force double loop that
    shares no code with the risk; quadrature accuracy ~1e-12."""
    rng = np.random.default_rng(22)
    n, d = 6, 5
    w = _structured_network(rng, n, d)
    w[4] = -w[1]  # c = −1: anti-aligned
    rad = np.linalg.norm(w, axis=1)
    cos = np.clip((w @ w.T) / np.outer(rad, rad), -1.0, 1.0)
    if problem == "gaussians":
        cfg, act = _cfg_a("model.d=5"), get_activation("ramp")
        scales, a = ((1.8, 0.5), (0.2, 0.5)), np.ones(n)
        theta = w
        v = -0.5 * np.array([_mean_reference(act, 1.8 * r) - _mean_reference(act, 0.2 * r)
                             for r in rad])
        r_sh = 1.0
    else:
        cfg, act = _cfg_b("model.d=5", "model.label_noise=0.1"), get_activation("tanh")
        scales, a = ((1.0, 1.0),), rng.normal(0.5, 0.7, n)
        theta = np.column_stack([a, w])
        v = -a * np.array([potential_V(act, act, w[i, 0], float(np.linalg.norm(w[i, 1:])))
                           for i in range(n)])
        r_sh = r_sharp(act, 0.1)
    u = 0.0
    for tau, weight in scales:
        for i in range(n):
            for j in range(n):
                e = (_diag_reference(act, tau * rad[i]) if i == j
                     else _pair_reference(act, tau * rad[i], tau * rad[j], float(cos[i, j])))
                u += weight * a[i] * a[j] * e
    brute = r_sh + 2 * np.sum(v) / n + u / n**2
    assert abs(population_risk(cfg, theta) - brute) < 1e-11


# ------------------------------------------------------------------------------ the update
def _numpy_step(sgd: ParticleSGD, theta: np.ndarray, rng_state: dict, step: int):
    """One step of MATH.md §1 in plain NumPy from the documented draw layout; returns
    (theta', rng_state')."""
    gen = np.random.Generator(np.random.PCG64())
    gen.bit_generator.state = rng_state
    row = gen.standard_normal(sgd.draws_per_step)
    n, d, batch = sgd.n, sgd.d, sgd.batch
    s = sgd.eps * Schedule.from_config(sgd.cfg)(step * batch * sgd.eps)
    grad = np.zeros_like(theta)
    for b in range(batch):
        u, g = row[b * (d + 1)], row[b * (d + 1) + 1:(b + 1) * (d + 1)]
        if sgd.cfg.problem == "gaussians":
            y = 1.0 if u >= 0 else -1.0
            x = (1.0 + sgd.model.delta * y) * g
            z = theta @ x
            e = 2 * s * (y - sgd.sigma.value(z).mean())
            grad += e * sgd.sigma.derivative(z)[:, None] * x[None, :]
        else:
            a, w = theta[:, 0], theta[:, 1:]
            x = g
            y = sgd.model.target.value(x[0]) + sgd.model.nu * u
            z = w @ x
            e = 2 * s * (y - (a * sgd.sigma.value(z)).mean())
            grad[:, 0] += e * sgd.sigma.value(z)
            grad[:, 1:] += e * (a * sgd.sigma.derivative(z))[:, None] * x[None, :]
    new = (1 - 2 * sgd.lam * batch * s) * theta + grad
    if sgd.noisy:
        noise = row[batch * (d + 1):].reshape(sgd.dim, n).T
        new += math.sqrt(4 * batch * s / sgd.beta) * noise
    return new, gen.bit_generator.state


@pytest.mark.parametrize("problem", ["gaussians", "single-neuron"])
@pytest.mark.parametrize("batch", [1, 3])
def test_step_is_the_documented_update(problem, batch):
    """Two compiled steps equal the update of MATH.md §1 (mini-batch sum, decay (1 − 2λBs),
    noise sqrt(4Bs/β), s = ε ξ(t_k) at the step's start) recomputed in NumPy from the same draws;
    each step advances t by Bε."""
    over = ["model.d=6", "noise.beta=50.0", "noise.lam=0.3", "schedule.kind='power'",
            "schedule.t0=0.01", "schedule.p=1.0"]
    cfg = (_cfg_a if problem == "gaussians" else _cfg_b)(*over)
    sgd = ParticleSGD(cfg, n_neurons=5, eps=2e-3, batch=batch, seed=7)
    st = sgd.initial_state()
    theta, state = st.theta.copy(), st.rng_state
    for k in range(2):
        theta, state = _numpy_step(sgd, theta, state, k)
        sgd.advance(st, 1)
        assert st.step == k + 1
        assert st.t == pytest.approx((k + 1) * batch * 2e-3, rel=1e-15)
        np.testing.assert_allclose(st.theta, theta, rtol=1e-12, atol=1e-13)
        assert st.rng_state == state


@pytest.mark.parametrize("problem", ["gaussians", "single-neuron"])
def test_expected_increment_is_minus_grad_psi(problem):
    """E[(θ' − θ)/(2Bs)] = −∇_θΨ(θ; ρ̂_N) − λθ (noiseless, one step from a fixed θ), with
    ∇_θ_iΨ = (N/2) ∂R_N/∂θ_i by central differences of the population risk.  40 independent
    mini-batch steps of B = 25000 samples: every coordinate within 4.5 SE; the λ term is > 10 SE
    (dropping it would fail)."""
    lam = 1.0
    if problem == "gaussians":
        cfg = _cfg_a("model.d=5", f"noise.lam={lam}")
        rng = np.random.default_rng(3)
        theta0 = _structured_network(rng, 4, 5)
    else:
        cfg = _cfg_b("model.d=5", f"noise.lam={lam}")
        rng = np.random.default_rng(4)
        theta0 = np.column_stack([rng.normal(1.0, 0.3, 4), _structured_network(rng, 4, 5)])
    n = theta0.shape[0]
    eps, batch = 1e-7, 25_000
    sgd = ParticleSGD(cfg, n_neurons=n, eps=eps, batch=batch, seed=21)
    st = sgd.initial_state()
    est = []
    for _ in range(40):
        st.theta[:] = theta0
        st.step, st.t = 0, 0.0
        sgd.advance(st, 1)
        est.append((st.theta - theta0) / (2 * batch * eps))
    est = np.array(est)
    mean, se = est.mean(axis=0), est.std(axis=0, ddof=1) / math.sqrt(len(est))

    risk = PopulationRisk(cfg)
    grad = np.zeros_like(theta0)
    h = 1e-5
    for idx in np.ndindex(theta0.shape):
        tp, tm = theta0.copy(), theta0.copy()
        tp[idx] += h
        tm[idx] -= h
        grad[idx] = (risk(tp) - risk(tm)) / (2 * h) * n / 2
    expected = -grad - lam * theta0
    z = (mean - expected) / se
    assert np.max(np.abs(z)) < 4.5, z
    assert np.max(se) < 0.05 * np.max(np.abs(grad))
    assert np.max(np.abs(lam * theta0) / se) > 10


def test_noise_increment_variance_is_4s_over_beta():
    """With tiny s the increment is the noise: its variance per coordinate is 4s/β (not 2s/β)
    within 4 relative standard errors sqrt(2/n)."""
    beta, eps = 2.0, 1e-8
    cfg = _cfg_a("model.d=8", f"noise.beta={beta}")
    sgd = ParticleSGD(cfg, n_neurons=10, eps=eps, seed=5)
    st = sgd.initial_state()
    incs = []
    for _ in range(2000):
        before = st.theta.copy()
        sgd.advance(st, 1)
        incs.append(st.theta - before)
    incs = np.array(incs).ravel()
    var, expected = float(np.mean(incs**2)), 4 * eps / beta
    rel_se = math.sqrt(2.0 / incs.size)
    assert abs(var / expected - 1) < 4 * rel_se
    assert abs(var / (2 * eps / beta) - 1) > 100 * rel_se


def test_minibatch_time_and_output_landing():
    """A step with batch B advances t by Bε; outputs land on the first step boundary >= t."""
    sgd = ParticleSGD(_cfg_a("model.d=6"), n_neurons=3, eps=1e-3, batch=7)
    st = sgd.initial_state()
    sgd.advance(st, 3)
    assert st.step == 3 and st.t == pytest.approx(0.021, rel=1e-14)
    res = run_sgd(_cfg_a("model.d=6"), n_neurons=3, eps=1e-3, batch=2,
                  times=[0.0, 0.01, 0.0105, 0.011, 0.0111])
    np.testing.assert_array_equal(res.steps, [0, 5, 6])  # 0.0105 and 0.011 share step 6
    np.testing.assert_allclose(res.t, [0.0, 0.01, 0.012], rtol=1e-14)
    assert res.n_samples == 12 and res.coords.shape == (3, 3)


# ------------------------------------------------------------------------------ reproducibility
def test_bit_for_bit_reproducible_and_independent_of_outputs():
    """Same seed: identical bits; other seed: different; the trajectory does not depend on the
    output times (blocks); a run continued from a restored SGDState equals the uninterrupted run."""
    cfg = _cfg_b("model.d=8", "noise.beta=100.0", "noise.lam=0.01")
    kw = {"n_neurons": 30, "eps": 1e-3, "batch": 2}
    r1 = run_sgd(cfg, seed=4, times=[0.0, 0.5, 1.0], **kw)
    r2 = run_sgd(cfg, seed=4, times=[0.0, 0.5, 1.0], **kw)
    assert np.array_equal(r1.coords, r2.coords) and np.array_equal(r1.risk, r2.risk)
    r3 = run_sgd(cfg, seed=5, times=[0.0, 0.5, 1.0], **kw)
    assert not np.array_equal(r1.coords[-1], r3.coords[-1])
    r4 = run_sgd(cfg, seed=4, times=np.linspace(0, 1, 37), **kw)
    assert np.array_equal(r4.final_state.theta, r1.final_state.theta)
    half = run_sgd(cfg, seed=4, times=[0.0, 0.5], **kw).final_state
    saved = SGDState.restore(half.theta, half.step, half.t, half.rng_state)
    r5 = run_sgd(cfg, seed=4, times=[0.0, 0.5, 1.0], state=saved, **kw)
    assert np.array_equal(r5.final_state.theta, r1.final_state.theta)
    assert np.array_equal(r5.t, [0.5, 1.0])
    assert r1.generator.startswith("numpy") and "PCG64" in r1.generator and r1.seed == 4


# ------------------------------------------------------------------------------ initial laws
def test_initial_laws_match_the_pde():
    """θ^0: problem A r ~ (κ/√d) χ_d; problem B a ~ P_A, s ~ N(s0, κ²/d), r ~ (κ/√d) χ_{d−1}
    (means within 4 SE)."""
    n, d = 20_000, 12
    r = reduced_coordinates("gaussians", ParticleSGD(_cfg_a(f"model.d={d}"),
                                                     n_neurons=n).initial_state().theta)
    chi_mean = math.sqrt(2) * math.exp(special.gammaln((d + 1) / 2) - special.gammaln(d / 2))
    assert abs(r.mean() - 0.8 / math.sqrt(d) * chi_mean) < 4 * r.std() / math.sqrt(n)
    cfg = _cfg_b(f"model.d={d}", "init.a_law='uniform'", "init.a=0.5", "init.a_halfwidth=0.2",
                 "init.s0=0.3")
    z = reduced_coordinates("single-neuron", ParticleSGD(cfg, n_neurons=n).initial_state().theta)
    assert z[:, 0].min() >= 0.3 and z[:, 0].max() <= 0.7
    assert abs(z[:, 1].mean() - 0.3) < 4 * 0.5 / math.sqrt(d * n)
    assert abs(z[:, 1].std() - 0.5 / math.sqrt(d)) < 0.02 * 0.5 / math.sqrt(d)
    chi1 = math.sqrt(2) * math.exp(special.gammaln(d / 2) - special.gammaln((d - 1) / 2))
    assert abs(z[:, 2].mean() - 0.5 / math.sqrt(d) * chi1) < 4 * z[:, 2].std() / math.sqrt(n)
    g = ParticleSGD(_cfg_a("init.kind='gaussian'", "init.mean=1.0", "init.std=0.1"),
                    n_neurons=5000).initial_state().theta
    rg = np.linalg.norm(g, axis=1)
    assert abs(rg.mean() - 1.0) < 4 * 0.1 / math.sqrt(5000)


def test_configuration_errors():
    with pytest.raises(ConfigError, match="model.d"):
        ParticleSGD(_cfg_a("model.d='inf'"))
    with pytest.raises(ConfigError, match="output times"):
        ParticleSGD(_cfg_a()).output_steps([-1.0])


# ------------------------------------------------------------------------------ against the PDE
@pytest.fixture(scope="module")
def pde_a(tmp_path_factory):
    cfg = _cfg_a("grid.n=400", "grid.r_max=4.0", "time.t_end=2.0", "time.n_outputs=5")
    path = tmp_path_factory.mktemp("pde") / "a.h5"
    solve(cfg, path)
    return cfg, load(path)


def test_short_run_follows_the_pde(pde_a):
    """Problem A, d = 40, N = 200, ε = 1e-4, t <= 2: the risk decreases, the radii grow from
    ≈ 0.8 as the PDE's mean_r (|Δ| < 0.05 at t = 2, i.e. ~5 fluctuations r.m.s.), and R_N is
    within 0.05 of R(ρ_t) (O(1/N) self-interaction + O(1/√N))."""
    cfg, res = pde_a
    run = run_sgd(cfg, n_neurons=200, eps=1e-4, seed=1)
    np.testing.assert_allclose(run.t, res.t, rtol=1e-12)
    mean_r = run.coords.mean(axis=1)
    assert abs(mean_r[0] - 0.8) < 0.02
    assert np.all(np.diff(run.risk) < 0) and np.all(np.diff(mean_r) > 0)
    assert abs(mean_r[-1] - res["mean_r"][-1]) < 0.05
    assert np.max(np.abs(run.risk - res["risk"])) < 0.05


def test_gap_to_the_pde_is_order_eps(pde_a):
    """The SGD − PDE gap in mean r at t = 2 shrinks with ε like ε (here: measured gaps ≈ 0.26,
    0.10, 0.04 for ε = 1e-3, 5e-4, 2.5e-4 at N = 400): large steps are visibly off, which is
    why the comparison above uses ε = 1e-4."""
    cfg, res = pde_a
    gaps = [abs(run_sgd(cfg, n_neurons=400, eps=eps, seed=2, times=[0.0, 2.0]).coords[-1].mean()
                - res["mean_r"][-1]) for eps in (1e-3, 5e-4, 2.5e-4)]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[0] / gaps[2] > 2.5


def test_initial_law_from_a_pde_result_file(pde_a):
    """init.kind = 'from_file': radii drawn from the stored density at init.time (mean and
    second moment of the cell-average density within 4 SE)."""
    _, res = pde_a
    cfg = _cfg_a("init.kind='from_file'", f"init.file='{res.path}'", "init.time=2.0")
    r = np.linalg.norm(ParticleSGD(cfg, n_neurons=20_000).initial_state().theta, axis=1)
    edges, dens = res.grid["r_edges"], res["density"][-1]
    mass = dens * np.diff(edges)
    m1 = np.sum(mass * 0.5 * (edges[1:] + edges[:-1])) / mass.sum()
    m2 = np.sum(mass * (edges[1:] ** 3 - edges[:-1] ** 3) / (3 * np.diff(edges))) / mass.sum()
    assert abs(r.mean() - m1) < 4 * r.std() / math.sqrt(r.size)
    assert abs(np.mean(r * r) - m2) < 4 * np.std(r * r) / math.sqrt(r.size)


# ------------------------------------------------------------------------------ the seam
def test_the_particle_engine_names_no_problem():
    """The engine is generic: no problem name, no problem code in meanfield_pde/particles/ —
    each problem declares its side as a ParticleModel (Problem.particle_model)."""
    import pathlib

    import meanfield_pde.particles as pkg

    for path in sorted(pathlib.Path(pkg.__file__).parent.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        for word in ("gaussians", "single-neuron", "single_neuron", "PROBLEM_A", "PROBLEM_B",
                     "_PROBLEMS"):
            assert word not in text, (path.name, word)


def test_a_particle_model_declared_by_a_problem_drives_the_engine(monkeypatch):
    """A model defined only here (the single-neuron teacher with the outer weight frozen at
    a ≡ 1: θ = w, coordinates (s, |w|)), declared by a problem class the registry returns, runs
    through the unchanged engine: its risk equals the single-neuron risk at θ = (1, w) and one
    noiseless step moves w exactly as the single-neuron step from (1, w) does (the w-gradient
    uses the old a = 1)."""
    import meanfield_pde.problems as problems
    from meanfield_pde.particles.model import ParticleModel
    from meanfield_pde.problems.single_neuron_particles import SingleNeuronParticles

    class FrozenOuterWeight(ParticleModel):
        train_outer_weight = False

        def __init__(self, cfg):
            super().__init__(cfg)
            self.teacher = SingleNeuronParticles(cfg)

        def initial_theta(self, rng, n):
            return self.teacher.initial_theta(rng, n)[:, 1:]

        @staticmethod
        def reduced_coordinates(theta):
            return np.column_stack([theta[:, 0], np.linalg.norm(theta, axis=1)])

        def data_law(self):
            return self.teacher.data_law()

        def scales(self):
            return self.teacher.scales()

        def r_sharp(self):
            return self.teacher.r_sharp()

        def potential(self, a, w, rad, tables):
            return self.teacher.potential(a, w, rad, tables)

    class Frozen:
        particle_model = FrozenOuterWeight

    cfg = _cfg_b("model.d=6", "model.activation='tanh'", "model.label_noise=0.1")
    rng = np.random.default_rng(8)
    w0 = _structured_network(rng, 9, 6)
    theta_b = np.column_stack([np.ones(9), w0])
    sn = ParticleSGD(cfg, n_neurons=9, eps=1e-2, batch=3, seed=4)
    r_sn = PopulationRisk(cfg)(theta_b)
    st_b = SGDState(theta_b.copy(), 0, 0.0, np.random.default_rng(11))
    sn.advance(st_b, 1)

    monkeypatch.setattr(problems, "problem_class", lambda name: Frozen)
    frozen = ParticleSGD(cfg, n_neurons=9, eps=1e-2, batch=3, seed=4)
    assert frozen.dim == 6 and frozen.draws_per_step == 3 * 7
    assert PopulationRisk(cfg)(w0) == pytest.approx(r_sn, rel=1e-14, abs=1e-15)
    st = SGDState(w0.copy(), 0, 0.0, np.random.default_rng(11))
    frozen.advance(st, 1)
    np.testing.assert_array_equal(st.theta, st_b.theta[:, 1:])
    res = run_sgd(cfg, n_neurons=9, eps=1e-2, times=[0.0, 0.05])
    assert res.coords.shape == (2, 9, 2) and np.all(np.isfinite(res.risk))

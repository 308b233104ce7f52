"""Particle SGD: the d-dimensional two-layer network itself, trained by one-pass SGD (MATH.md §1).

The PDE of :mod:`meanfield_pde.solver` is the N → ∞, ε → 0 limit of this simulation; the module
exists to validate it (MATH.md §5).

Network and update
------------------
ŷ(x; θ) = (1/N) Σ_i σ_*(x; θ_i).  Each step draws B fresh samples (x_b, y_b) and updates every
neuron with the gradient evaluated at the current parameters θ^k (MATH.md §1, summed over the
mini-batch):

    s_k       = ε ξ(t_k),   t_k = k B ε          (ξ from ``[schedule]``, at the step's start)
    θ_i^{k+1} = (1 − 2λ B s_k) θ_i^k + 2 s_k Σ_b (y_b − ŷ(x_b; θ^k)) ∇_θ σ_*(x_b; θ_i^k)
                + sqrt(4 B s_k / β) g_i^k,                   g_i^k ~ N(0, I_D)

(the noise term only for finite ``noise.beta``; λ = ``noise.lam``).  With B = 1 this is MATH.md's
noisy SGD, whose per-step noise variance 4 s_k/β is the diffusion coefficient 2ξ/β of the PDE; a
step with B samples advances t by Bε and carries B times the drift, decay and noise variance of one
sample.

* Problem A (``gaussians``, MATH.md §2): θ = w ∈ R^d, σ_*(x; w) = σ(⟨w, x⟩), y = ±1 with
  probability ½, x = τ_y g, g ~ N(0, I_d), τ_± = 1 ± Δ.  ∇_w σ_* = σ'(⟨w, x⟩) x.
* Problem B (``single-neuron``, MATH.md §3): θ = (a, w) ∈ R^{1+d}, σ_* = a σ(⟨w, x⟩),
  x ~ N(0, I_d), y = f_*(⟨w_*, x⟩) + ν ζ with w_* = e_1 (ζ ~ N(0, 1)).  ∇_a σ_* = σ(⟨w, x⟩),
  ∇_w σ_* = a σ'(⟨w, x⟩) x (with the old a).  At a kink σ' is the mean of the one-sided slopes.

Reduced coordinates (:func:`reduced_coordinates`): r = |w| (A); z = (a, s, r) with
s = w_1 = ⟨w, w_*⟩ and r = |w_{2:d}| (B) — the variables of the PDE.

Randomness (bit-for-bit reproducible)
-------------------------------------
All randomness comes from one ``numpy.random.Generator(PCG64(seed))``, consumed in this order:

1. the initial parameters (:meth:`ParticleSGD.initial_state`, see there);
2. per step, one row of ``B (d + 1) + (N D if noisy)`` standard normals (NumPy's ziggurat
   ``standard_normal``): for each sample b the block ``[u_b, g_b1, …, g_bd]`` — problem A:
   y_b = +1 if u_b >= 0 else −1, x_b = τ_{y_b} g_b; problem B: x_b = g_b,
   y_b = f_*(g_b1) + ν u_b — then, if noisy, the noise as a (D, N) array (coordinate-major:
   problem B's row 0 is a, then w_1 … w_d; problem A's rows are w_1 … w_d).

Rows are drawn in blocks of consecutive steps; NumPy fills an array element by element, so the
trajectory does not depend on the block size nor on the output times (a test checks this).  The
compiled kernels are serial and use no fast-math, so the same seed gives the same bits.  The
generator's state is part of :class:`SGDState` (for checkpoints).

Output times
------------
Steps are never shortened (a fractional mini-batch does not exist): the output for a requested
time t is taken at the first step boundary at or after it, step ``ceil(t / (B ε))`` (a t within
1e-9 steps of a boundary counts as on it), and :attr:`SGDResult.t` holds the actual time
``k B ε``.  Requested times that fall on the same step give one output.  Take output times that are
multiples of Bε to have them exactly.  A step that straddles a breakpoint of a piecewise ξ uses ξ
at its start.

Population risk without a test set (MATH.md §1, §5)
--------------------------------------------------
R_N(θ) = R# + (2/N) Σ_i V(θ_i) + (1/N²) Σ_{i,j} U(θ_i, θ_j), with the actual pairwise angles
c_ij = cos∠(w_i, w_j) and radii ρ_i = |w_i|: for a pair of neurons and a data scale τ,

    E[σ(τ⟨w_i, g⟩) σ(τ⟨w_j, g⟩)] = Σ_k c_ij^k α_k(τρ_i) α_k(τρ_j)         (Mehler)

* problem A: U = ½ Σ_± (the above at τ_±), V(w) = v(|w|) = −½[q(τ_+ρ) − q(τ_−ρ)], R# = 1;
* problem B: U = a_i a_j (the above at τ = 1), V = −a v(s, r) with v(s, r) = E[f_*(G1) σ(sG1 + rZ)]
  (the accurate :func:`~meanfield_pde.problems.neuron_kernel` routine; for analytic σ and f_* the
  Mehler series Σ_k (s/ρ)^k f̂_k α_k(ρ) on the same coefficient table), R# = E f_*(G)² + ν².

How each pair is evaluated (:class:`PopulationRisk`):

* |c| <= 0.75: the Mehler series to the first K <= 129 with |c|^(K+1) <= 0.75^130, so that its
  tail is below 0.75^130 sqrt(U_ii U_jj) < 1e-16 sqrt(U_ii U_jj) (K from a table on |c|
  quantised upwards to 1/4096; in d = 40 most pairs need K ≈ 10–25 rather than 129);
* |c| > 0.75, piecewise-linear σ (ramp, relu): the exact closed form of E[σ(X)σ(Y)] for a
  bivariate normal (Stein's lemma for the linear parts; for the products of hinges the truncated
  bivariate moments of Rosenbaum (1961) with the bivariate normal tail of Genz (2004), accurate to
  ~1e-15 for every correlation, including |c| -> 1);
* erf: E[erf(X)erf(Y)] = (2/π) arcsin(2 Cov / sqrt((1 + 2 Var X)(1 + 2 Var Y))), every pair;
* |c| > 0.75, tanh / sigmoid / softplus: the Mehler series continued to K_near terms, K_near
  doubling (from 128, at most 4096) until the tail Σ_{k>K} α_k(t_i)² = E σ(t_i G)² − Σ_{k<=K}
  α_k(t_i)² is below 1e-13 of the largest diagonal for every neuron (the analytic σ's coefficients
  decay like exp(−(pole/t) sqrt(2k)), so this converges even at c = 1); the bound is reported as
  :attr:`PopulationRisk.truncation_error`;
* i = j: the exact diagonal E σ(tG)² (closed form for piecewise-linear σ and erf, graded composite
  Gauss–Legendre quadrature otherwise).

Cost O(N² (d + K̄)) per evaluation, K̄ the mean series length, in one serial Numba pass over the
pairs i < j for all data scales at once (:func:`_pair_sums`: the inner products row by row, no
stored Gram matrix; no thread pool, so neither the value nor the time depends on how many threads
the machine can spare).  :meth:`PopulationRisk.reference` keeps the previous evaluation (BLAS
Gram matrix, every far pair to k = 129, a parallel pass per scale) as a check; the two agree to
round-off.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
from numba import prange
from scipy import special

from .activations import Activation, Erf, PiecewiseLinearActivation, get_activation
from .config import Config
from .errors import ConfigError, DataError
from .quadrature import graded_gauss_legendre
from .schedule import Schedule, grid_time, output_times, xi_at

__all__ = [
    "ParticleSGD",
    "PopulationRisk",
    "SGDResult",
    "SGDState",
    "population_risk",
    "reduced_coordinates",
    "run_sgd",
]

PROBLEM_A, PROBLEM_B = 0, 1
_PROBLEMS = {"gaussians": PROBLEM_A, "single-neuron": PROBLEM_B}

# activation codes of the compiled kernels
ACT_PL, ACT_TANH, ACT_SIGMOID, ACT_SOFTPLUS, ACT_ERF = 0, 1, 2, 3, 4
_SMOOTH_CODES = {"tanh": ACT_TANH, "sigmoid": ACT_SIGMOID, "softplus": ACT_SOFTPLUS}

BLOCK_ELEMS = 1 << 20  # standard normals drawn per block (8 MB)
STEP_TOL = 1e-9  # an output time within this many steps of a boundary is on it

# population risk
C_SWITCH = 0.75  # pairs with |c| above this leave the short Mehler series
K_FAR = 129  # 0.75^130 < 1e-16
K_NEAR_START = 128
K_NEAR_MAX = 4096
NEAR_TOL = 1e-13  # smooth sigma: per-neuron Mehler tail / largest diagonal
T_MIN = 1e-100  # below this scale a neuron is constant to double precision: Mehler (exact)

_INV_SQRT_2PI = 0.3989422804014327
_SQRT_HALF = 0.7071067811865476
_TWO_OVER_SQRT_PI = 1.1283791670955126


# ============================================================================ activations
def _encode(act: Activation) -> tuple[int, np.ndarray]:
    """(code, params) of ``act`` for the compiled kernels.

    Piecewise linear σ(u) = A + B u + Σ_m D_m (u − κ_m)_+: params ``[A, B, n, κ_1..κ_n,
    D_1..D_n]``; the smooth activations need no parameters.
    """
    if isinstance(act, PiecewiseLinearActivation):
        kinks = np.asarray(act._kinks, dtype=np.float64)
        jumps = np.asarray(act._jumps, dtype=np.float64)
        params = np.concatenate([[act._a, act._b, float(kinks.size)], kinks, jumps])
        return ACT_PL, np.ascontiguousarray(params)
    if isinstance(act, Erf):
        return ACT_ERF, np.zeros(1)
    if act.name in _SMOOTH_CODES:
        return _SMOOTH_CODES[act.name], np.zeros(1)
    raise ConfigError(f"particle SGD does not support the activation {act.name!r}")


@numba.njit(cache=True)
def _act_vd(code: int, p: np.ndarray, u: float) -> tuple[float, float]:
    """(σ(u), σ'(u)) for an encoded activation; σ' at a kink is the mean of the slopes."""
    if code == ACT_PL:
        v = p[0] + p[1] * u
        dv = p[1]
        nk = int(p[2])
        for m in range(nk):
            x = u - p[3 + m]
            if x > 0.0:
                v += p[3 + nk + m] * x
                dv += p[3 + nk + m]
            elif x == 0.0:
                dv += 0.5 * p[3 + nk + m]
        return v, dv
    if code == ACT_TANH:
        e = math.exp(-2.0 * abs(u))
        return math.tanh(u), 4.0 * e / ((1.0 + e) * (1.0 + e))
    if code == ACT_SIGMOID or code == ACT_SOFTPLUS:
        e = math.exp(-abs(u))
        sig = 1.0 / (1.0 + e) if u >= 0.0 else e / (1.0 + e)
        if code == ACT_SIGMOID:
            return sig, e / ((1.0 + e) * (1.0 + e))
        return max(u, 0.0) + math.log1p(e), sig
    # ACT_ERF
    return math.erf(u), _TWO_OVER_SQRT_PI * math.exp(-u * u)


# ============================================================================ the SGD kernel
@numba.njit(cache=True)
def _sgd_block(a: np.ndarray, wt: np.ndarray, draws: np.ndarray, step0: int, batch: int,
               eps: float, sched_kind: int, sched_params: np.ndarray, problem: int,
               delta: float, act_code: int, act_p: np.ndarray, tgt_code: int,
               tgt_p: np.ndarray, nu: float, lam: float, noise_coef: float,
               z: np.ndarray, sv: np.ndarray, dv: np.ndarray, xb: np.ndarray,
               ga: np.ndarray, gwt: np.ndarray) -> None:
    """Advance ``draws.shape[0]`` steps in place (the update of the module docstring).

    ``a`` (N,) output weights (all 1 and untouched for problem A); ``wt`` (d, N) the first-layer
    weights, transposed so that ⟨w_i, x⟩ for all i and the update are contiguous loops over i;
    ``draws[k]`` the standard normals of step ``step0 + k``; ``noise_coef = sqrt(4/β)`` (0 if
    noiseless).  ``z, sv, dv`` (N,), ``xb`` (d,), ``ga`` (N,), ``gwt`` (d, N): work arrays.
    """
    d, n = wt.shape
    train_a = problem == PROBLEM_B
    per = d + 1
    noff = batch * per
    inv_n = 1.0 / n
    for k in range(draws.shape[0]):
        row = draws[k]
        t = float(step0 + k) * batch * eps
        s = eps * xi_at(sched_kind, sched_params, t)
        decay = 1.0 - 2.0 * lam * batch * s
        amp = noise_coef * math.sqrt(batch * s)
        if batch > 1:
            ga[:] = 0.0
            gwt[:, :] = 0.0
        for b in range(batch):
            u = row[b * per]
            if problem == PROBLEM_A:
                y = 1.0 if u >= 0.0 else -1.0
                tau = 1.0 + delta if u >= 0.0 else 1.0 - delta
                for q in range(d):
                    xb[q] = tau * row[b * per + 1 + q]
            else:
                for q in range(d):
                    xb[q] = row[b * per + 1 + q]
                y = _act_vd(tgt_code, tgt_p, xb[0])[0] + nu * u
            # pre-activations <w_i, x> for all i, then the network output
            z[:] = 0.0
            for q in range(d):
                xq = xb[q]
                for i in range(n):
                    z[i] += wt[q, i] * xq
            yhat = 0.0
            for i in range(n):
                v_, d_ = _act_vd(act_code, act_p, z[i])
                sv[i] = v_
                dv[i] = d_
                yhat += a[i] * v_
            e2s = 2.0 * s * (y - yhat * inv_n)
            # coefficient of x in the w-gradient (old a), then the a-gradient
            for i in range(n):
                dv[i] *= e2s * a[i]
                sv[i] *= e2s
            if batch == 1:  # apply directly: theta' = decay theta + grad (+ noise)
                if train_a:
                    for i in range(n):
                        a[i] = decay * a[i] + sv[i]
                        if amp > 0.0:
                            a[i] += amp * row[noff + i]
                for q in range(d):
                    xq = xb[q]
                    if amp > 0.0:
                        nq = noff + (q + 1 if train_a else q) * n
                        for i in range(n):
                            wt[q, i] = decay * wt[q, i] + dv[i] * xq + amp * row[nq + i]
                    elif decay != 1.0:
                        for i in range(n):
                            wt[q, i] = decay * wt[q, i] + dv[i] * xq
                    else:
                        for i in range(n):
                            wt[q, i] += dv[i] * xq
            else:
                if train_a:
                    for i in range(n):
                        ga[i] += sv[i]
                for q in range(d):
                    xq = xb[q]
                    for i in range(n):
                        gwt[q, i] += dv[i] * xq
        if batch > 1:
            if train_a:
                for i in range(n):
                    a[i] = decay * a[i] + ga[i]
                    if amp > 0.0:
                        a[i] += amp * row[noff + i]
            for q in range(d):
                nq = noff + (q + 1 if train_a else q) * n
                for i in range(n):
                    wt[q, i] = decay * wt[q, i] + gwt[q, i]
                    if amp > 0.0:
                        wt[q, i] += amp * row[nq + i]


# ============================================================================ state and result
@dataclass
class SGDState:
    """Everything needed to continue a run bit for bit (and to checkpoint it).

    ``theta`` (N, D): problem A rows w_i ∈ R^d; problem B rows (a_i, w_i) ∈ R^{1+d}.
    ``step``: steps done (t = step · B · ε); ``rng``: the generator, advanced past every draw
    used so far (its state as a plain dict: :attr:`rng_state`).
    """

    theta: np.ndarray
    step: int
    t: float
    rng: np.random.Generator

    @property
    def rng_state(self) -> dict[str, Any]:
        """The PCG64 state (JSON-serialisable dict) of :attr:`rng`."""
        return copy.deepcopy(self.rng.bit_generator.state)

    @classmethod
    def restore(cls, theta: np.ndarray, step: int, t: float,
                rng_state: dict[str, Any]) -> SGDState:
        """Rebuild a state saved as (theta, step, t, :attr:`rng_state`)."""
        bitgen = np.random.PCG64()
        bitgen.state = copy.deepcopy(rng_state)
        return cls(np.array(theta, dtype=np.float64, order="C"), int(step), float(t),
                   np.random.Generator(bitgen))

    def copy(self) -> SGDState:
        """An independent copy (parameters and generator state)."""
        return SGDState.restore(self.theta, self.step, self.t, self.rng_state)


@dataclass
class SGDResult:
    """A particle run: outputs at the times ``t`` (actual step boundaries, see the module doc).

    ``coords``: (K, N) radii r = |w| (problem A) or (K, N, 3) z = (a, s, r) (problem B).
    ``n_samples``: samples used from t = 0 to the last output (steps × B).
    """

    t: np.ndarray
    risk: np.ndarray
    coords: np.ndarray
    seed: int
    generator: str
    n_samples: int
    wall_seconds: float
    steps: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    risk_seconds: float = 0.0  # part of wall_seconds spent on the population risk
    risk_truncation_error: float = 0.0  # largest bound reported by PopulationRisk
    n_neurons: int = 0
    eps: float = 0.0
    batch: int = 1
    final_state: SGDState | None = None


def reduced_coordinates(problem: str, theta: np.ndarray) -> np.ndarray:
    """The PDE's variables of each particle: r = |w| (gaussians), shape (N,); (a, s, r) with
    s = w_1 = ⟨w, w_*⟩ and r = |w_{2:d}| (single-neuron), shape (N, 3)."""
    theta = np.asarray(theta, dtype=np.float64)
    if _problem_code(problem) == PROBLEM_A:
        return np.sqrt(np.einsum("ij,ij->i", theta, theta))
    w = theta[:, 1:]
    r = np.sqrt(np.einsum("ij,ij->i", w[:, 1:], w[:, 1:]))
    return np.column_stack([theta[:, 0], w[:, 0], r])


def _problem_code(problem: str) -> int:
    try:
        return _PROBLEMS[problem]
    except KeyError:
        raise ConfigError(f"particle SGD knows the problems {', '.join(_PROBLEMS)}, "
                          f"not {problem!r}") from None


def _finite_d(cfg: Config) -> int:
    d = cfg["model.d"]
    if math.isinf(d):
        raise ConfigError("particle SGD needs a finite input dimension; set model.d "
                          "(e.g. --set model.d=40)")
    return int(d)


def _available_bytes() -> float:
    """Memory available to this process: MemAvailable of /proc/meminfo, else physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except (OSError, ValueError, IndexError):
        pass
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return math.inf


def _check_memory(n: int, d: int, dim: int, batch: int) -> None:
    """Refuse, before allocating, a run whose arrays do not fit in memory: the N x N Gram
    matrix W Wᵀ of the population risk, about four N x D copies of the parameters (θ, its
    transpose, a batch work array, the snapshot) and the standard normals of one step."""
    need = 8.0 * (float(n) * n + 4.0 * n * dim + 2.0 * batch * (d + 1))
    have = _available_bytes()
    if need > have:
        raise ConfigError(
            f"particle SGD with sgd.n_neurons = {n} in model.d = {d} needs about "
            f"{need / 2**30:.3g} GiB of memory (the N x N Gram matrix of the risk and the N x d "
            f"parameters), more than the {have / 2**30:.3g} GiB available; lower sgd.n_neurons "
            "or model.d")


def _label_noise_std(cfg: Config) -> float:
    """ν of y = f_*(⟨w_*, x⟩) + ν ζ: ``model.label_noise`` is the variance ν² (as in the PDE's
    R# = E f_*² + ν², :func:`neuron_kernel.r_sharp`)."""
    return math.sqrt(float(cfg["model.label_noise"]))


# ============================================================================ the engine
class ParticleSGD:
    """One-pass SGD of the network of ``cfg`` (module docstring); overrides of ``[sgd]``."""

    def __init__(self, cfg: Config, *, n_neurons: int | None = None, eps: float | None = None,
                 batch: int | None = None, seed: int | None = None) -> None:
        self.cfg = cfg
        self.problem = _problem_code(cfg.problem)
        self.d = _finite_d(cfg)
        sgd = cfg.section("sgd")
        self.n = int(sgd["n_neurons"] if n_neurons is None else n_neurons)
        self.eps = float(sgd["eps"] if eps is None else eps)
        self.batch = int(sgd["batch"] if batch is None else batch)
        if sgd["init_sampling"] == "stratified" and self.problem != PROBLEM_A:
            raise ConfigError("sgd.init_sampling = 'stratified' exists for gaussians only (the "
                              "single-neuron initial law is not a law of one radius); use 'iid'")
        self.seed = int(sgd["seed"] if seed is None else seed)
        if self.n < 1:
            raise ConfigError(f"sgd.n_neurons = {self.n} is out of range; accepted: n >= 1")
        if not (self.eps > 0 and math.isfinite(self.eps)):
            raise ConfigError(f"sgd.eps = {self.eps} is out of range; accepted: 0 < x")
        if self.batch < 1:
            raise ConfigError(f"sgd.batch = {self.batch} is out of range; accepted: n >= 1")
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"sgd.seed = {self.seed} is out of range; accepted: "
                              "0 <= n <= 2^63 - 1")
        m = cfg.section("model")
        self.sigma = get_activation(m["activation"], m["activation_params"])
        self.act_code, self.act_p = _encode(self.sigma)
        if self.problem == PROBLEM_B:
            self.target = (self.sigma if m["target"] == "same"
                           else get_activation(m["target"], m["target_params"]))
            self.tgt_code, self.tgt_p = _encode(self.target)
            self.nu = _label_noise_std(cfg)
            self.delta = 0.0
        else:
            self.target = None
            self.tgt_code, self.tgt_p = ACT_PL, np.zeros(3)
            self.nu = 0.0
            self.delta = float(m["delta"])
        self.schedule = Schedule.from_config(cfg)
        noise = cfg.section("noise")
        self.beta, self.lam = float(noise["beta"]), float(noise["lam"])
        self.noisy = math.isfinite(self.beta)
        self.noise_coef = math.sqrt(4.0 / self.beta) if self.noisy else 0.0
        self.dim = self.d + (1 if self.problem == PROBLEM_B else 0)  # D
        self.draws_per_step = self.batch * (self.d + 1) + (self.n * self.dim if self.noisy else 0)
        _check_memory(self.n, self.d, self.dim, self.batch)
        self._risk: PopulationRisk | None = None

    # ------------------------------------------------------------------ description
    @property
    def step_time(self) -> float:
        """Time per step, B ε."""
        return self.batch * self.eps

    @property
    def generator(self) -> str:
        """How the randomness is produced (recorded with the result)."""
        noise = f" + {self.n}*{self.dim} noise" if self.noisy else ""
        return (f"numpy {np.__version__} Generator(PCG64(seed)): initial state, then per step "
                f"{self.batch}*({self.d}+1) sample{noise} standard normals (ziggurat)")

    # ------------------------------------------------------------------ initial state
    def initial_state(self) -> SGDState:
        """θ^0 drawn from the configuration's initial law (the PDE's ρ̄_0), and the generator.

        Problem A (``init.kind``): ``chi`` — w = (κ/√k) G, G ~ N(0, I_d) (N × d normals) when
        k = ``init.d`` or model.d equals d; otherwise r = (κ/√k) χ_k (``chisquare``) and a uniform
        direction (N × d normals, then N chi-squares); ``gaussian`` — uniform direction, then r
        from N(mean, std²) conditioned on r >= 0 by inverting the normal CDF of N uniforms;
        ``from_file`` — uniform direction, then r from the piecewise-constant density of
        ``init.file`` at ``init.time`` (N uniforms, inverse CDF).  With
        ``sgd.init_sampling = "stratified"`` the radii are r_i = F^{-1}(u_i) for stratified
        uniforms u_i = (π_i + v_i)/N (π a random permutation, v_i uniform; N × d normals for the
        directions first, then the permutation, then N uniforms): each neuron still has the law
        ρ̄_0, but the empirical law of the radii is within 1/N of it in Kolmogorov distance, which
        removes the O(N^-1/2) fluctuation of R_N(θ^0) around R(ρ̄_0) (the population risk of an
        isotropic initial law depends on the neurons through their radii only at first order).
        Problem B: a (``init.a_law``): ``point`` a = init.a (no draw), ``gaussian`` a + a_std g
        (N normals), ``uniform`` a + a_halfwidth (2U − 1) (N uniforms); then w: with
        k = ``init.d`` or d, w = (κ/√k) G (N × d normals) with w_1 += ``init.s0`` if k = d,
        otherwise s = s0 + (κ/√k) g (N normals), r = (κ/√k) χ_{k−1} (N chi-squares) and a uniform
        direction in the d − 1 remaining coordinates (N × (d − 1) normals).
        """
        rng = np.random.Generator(np.random.PCG64(self.seed))
        if self.problem == PROBLEM_A:
            theta = self._init_gaussians(rng)
        else:
            theta = self._init_neuron(rng)
        return SGDState(np.ascontiguousarray(theta), 0, 0.0, rng)

    def _init_gaussians(self, rng: np.random.Generator) -> np.ndarray:
        ini, n, d = self.cfg.section("init"), self.n, self.d
        kind = ini["kind"]
        stratified = self.cfg["sgd.init_sampling"] == "stratified"
        if kind == "chi":
            dof = int(ini["d"] or d)
            g = rng.standard_normal((n, d))
            if stratified:
                r = ini["kappa"] / math.sqrt(dof) * np.sqrt(special.chdtri(
                    dof, 1.0 - _stratified_uniforms(rng, n)))
                return _directions(g) * r[:, None]
            if dof == d:
                return ini["kappa"] / math.sqrt(d) * g
            r = ini["kappa"] / math.sqrt(dof) * np.sqrt(rng.chisquare(dof, n))
            return _directions(g) * r[:, None]
        g = rng.standard_normal((n, d))
        u = _stratified_uniforms(rng, n) if stratified else rng.random(n)
        if kind == "gaussian":
            mean, std = ini["mean"], ini["std"]
            p = special.ndtr(mean / std)  # P(N(mean, std²) >= 0)
            r = mean - std * special.ndtri(u * p)
            r = np.maximum(r, 0.0)
        else:
            edges, dens = _read_radial_density(ini)
            mass = dens * np.diff(edges)
            cdf = np.concatenate([[0.0], np.cumsum(mass)])
            u = u * cdf[-1]
            cell = np.clip(np.searchsorted(cdf, u, side="right") - 1, 0, mass.size - 1)
            frac = np.where(mass[cell] > 0, (u - cdf[cell]) / np.where(mass[cell] > 0,
                                                                       mass[cell], 1.0), 0.5)
            r = edges[cell] + np.clip(frac, 0.0, 1.0) * (edges[cell + 1] - edges[cell])
        return _directions(g) * r[:, None]

    def _init_neuron(self, rng: np.random.Generator) -> np.ndarray:
        ini, n, d = self.cfg.section("init"), self.n, self.d
        law = ini["a_law"]
        if law == "point":
            a = np.full(n, ini["a"])
        elif law == "gaussian":
            a = ini["a"] + ini["a_std"] * rng.standard_normal(n)
        else:
            a = ini["a"] + ini["a_halfwidth"] * (2.0 * rng.random(n) - 1.0)
        dof = int(ini["d"] or d)
        scale = ini["kappa"] / math.sqrt(dof)
        if dof == d:
            w = scale * rng.standard_normal((n, d))
            w[:, 0] += ini["s0"]
        else:
            if dof < 3:
                raise ConfigError(f"init.d = {dof} is out of range; accepted: 3 <= d")
            s = ini["s0"] + scale * rng.standard_normal(n)
            r = scale * np.sqrt(rng.chisquare(dof - 1, n))
            w = np.empty((n, d))
            w[:, 0] = s
            w[:, 1:] = _directions(rng.standard_normal((n, d - 1))) * r[:, None]
        return np.column_stack([a, w])

    # ------------------------------------------------------------------ stepping
    def advance(self, state: SGDState, n_steps: int,
                on_block: Callable[[SGDState], None] | None = None) -> None:
        """Advance ``state`` in place by ``n_steps`` steps (``on_block`` after each block)."""
        if n_steps <= 0:
            return
        n, d = self.n, self.d
        if state.theta.shape != (n, self.dim):
            raise DataError(f"state.theta has shape {state.theta.shape}, expected {(n, self.dim)}")
        if self.problem == PROBLEM_B:
            a = np.ascontiguousarray(state.theta[:, 0])
            wt = np.ascontiguousarray(state.theta[:, 1:].T)
        else:
            a = np.ones(n)
            wt = np.ascontiguousarray(state.theta.T)
        m = self.draws_per_step
        block = max(1, min(n_steps, BLOCK_ELEMS // m))
        buf = np.empty((block, m))
        work = (np.empty(n), np.empty(n), np.empty(n), np.empty(d), np.empty(n),
                np.empty((d, n) if self.batch > 1 else (1, 1)))
        done = 0
        while done < n_steps:
            nb = min(block, n_steps - done)
            draws = buf[:nb]
            state.rng.standard_normal(out=draws)
            _sgd_block(a, wt, draws, state.step, self.batch, self.eps, self.schedule.kind,
                       self.schedule.params, self.problem, self.delta, self.act_code,
                       self.act_p, self.tgt_code, self.tgt_p, self.nu, self.lam,
                       self.noise_coef, *work)
            done += nb
            state.step += nb
            state.t = grid_time(state.step, self.step_time)
            if on_block is not None:
                self._sync(state, a, wt)
                on_block(state)
        self._sync(state, a, wt)

    def _sync(self, state: SGDState, a: np.ndarray, wt: np.ndarray) -> None:
        if self.problem == PROBLEM_B:
            state.theta[:, 0] = a
            state.theta[:, 1:] = wt.T
        else:
            state.theta[:, :] = wt.T

    # ------------------------------------------------------------------ outputs
    def output_steps(self, times: np.ndarray) -> np.ndarray:
        """Sorted unique step indices of the outputs: the first boundary at or after each t."""
        times = np.asarray(times, dtype=np.float64).ravel()
        if times.size == 0 or not np.all(np.isfinite(times)) or np.any(times < 0):
            raise ConfigError("output times must be a non-empty list of finite times >= 0")
        q = times / self.step_time
        near = np.rint(q)
        on = np.abs(q - near) <= STEP_TOL * np.maximum(1.0, q)
        steps = np.where(on, near, np.ceil(q)).astype(np.int64)
        return np.unique(steps)

    def coords(self, theta: np.ndarray) -> np.ndarray:
        """:func:`reduced_coordinates` of ``theta``."""
        return reduced_coordinates(self.cfg.problem, theta)

    @property
    def risk(self) -> PopulationRisk:
        """The population-risk evaluator of this configuration (built on first use)."""
        if self._risk is None:
            self._risk = PopulationRisk(self.cfg)
        return self._risk


def _stratified_uniforms(rng: np.random.Generator, n: int) -> np.ndarray:
    """u_i = (π_i + v_i)/n: one uniform in each of the n strata [k/n, (k+1)/n), in random order."""
    return (rng.permutation(n) + rng.random(n)) / n


def _directions(g: np.ndarray) -> np.ndarray:
    """Rows of ``g`` normalised to unit length (uniform directions for Gaussian rows)."""
    norm = np.sqrt(np.einsum("ij,ij->i", g, g))
    return g / np.where(norm > 0, norm, 1.0)[:, None]


def _read_radial_density(ini: dict) -> tuple[np.ndarray, np.ndarray]:
    """(r_edges, density) of ``init.file`` at ``init.time`` (as the radial PDE reads it)."""
    from .problems.gaussians import read_radial_density

    edges, dens = read_radial_density(ini["file"], ini["time"])
    return edges, np.maximum(dens, 0)


# ============================================================================ run
def run_sgd(cfg: Config, *, n_neurons: int | None = None, eps: float | None = None,
            batch: int | None = None, seed: int | None = None,
            times: np.ndarray | list[float] | None = None,
            on_progress: Callable[[float, float], None] | None = None,
            state: SGDState | None = None,
            on_output: Callable[[int, SGDState, float, np.ndarray], None] | None = None,
            after_step: int | None = None,
            on_block: Callable[[SGDState], None] | None = None) -> SGDResult:
    """Run particle SGD for ``cfg`` and record risk and reduced coordinates at the output times.

    ``n_neurons, eps, batch, seed`` override ``[sgd]``; ``times`` default to
    :func:`~meanfield_pde.schedule.output_times` (each output lands on the first step boundary
    at or after its time; :attr:`SGDResult.t` holds the actual times).  ``on_progress(t, t_end)``
    is called after every block of steps.  ``state`` continues a saved run (outputs before its
    step are skipped, or, with ``after_step``, those at steps <= after_step — the outputs a
    resumed run already wrote); ``on_output(k, state, risk, coords)`` is called at each output
    (to write the snapshot as the run goes); ``on_block(state)`` after every block of steps, with
    ``state.theta`` up to date (to checkpoint, or to stop by raising).
    """
    t_wall = time.perf_counter()
    sgd = ParticleSGD(cfg, n_neurons=n_neurons, eps=eps, batch=batch, seed=seed)
    steps = sgd.output_steps(output_times(cfg) if times is None else np.asarray(times))
    st = sgd.initial_state() if state is None else state
    steps = steps[steps >= st.step] if after_step is None else steps[steps > after_step]
    if steps.size and steps[0] < st.step:
        raise DataError(f"output step {steps[0]} lies before the state's step {st.step}")
    t_end = grid_time(int(steps[-1]), sgd.step_time) if steps.size else st.t
    risk = sgd.risk
    risks, coords, t_out = [], [], []
    risk_seconds, trunc = 0.0, 0.0

    def progress(s: SGDState) -> None:
        if on_progress is not None:
            on_progress(s.t, t_end)
        if on_block is not None:
            on_block(s)
    for k, target in enumerate(steps):
        sgd.advance(st, int(target - st.step), progress)
        t0 = time.perf_counter()
        risks.append(risk(st.theta))
        risk_seconds += time.perf_counter() - t0
        trunc = max(trunc, risk.truncation_error)
        coords.append(sgd.coords(st.theta))
        t_out.append(st.t)
        if on_output is not None:
            on_output(k, st, risks[-1], coords[-1])
    return SGDResult(
        t=np.asarray(t_out, dtype=np.float64), risk=np.asarray(risks, dtype=np.float64),
        coords=np.asarray(coords, dtype=np.float64), seed=sgd.seed, generator=sgd.generator,
        n_samples=int(st.step * sgd.batch), wall_seconds=time.perf_counter() - t_wall,
        steps=steps.astype(np.int64), risk_seconds=risk_seconds, risk_truncation_error=trunc,
        n_neurons=sgd.n, eps=sgd.eps, batch=sgd.batch, final_state=st)


# ============================================================================ population risk
@numba.njit(cache=True)
def _q(x: float) -> float:
    """Upper normal tail Q(x) = P(G > x)."""
    return 0.5 * math.erfc(x * _SQRT_HALF)


@numba.njit(cache=True)
def _phi(x: float) -> float:
    return _INV_SQRT_2PI * math.exp(-0.5 * x * x)


_GL_X = np.array([
    [0.9324695142031522, 0.6612093864662647, 0.2386191860831970, 0, 0, 0, 0, 0, 0, 0],
    [0.9815606342467191, 0.9041172563704750, 0.7699026741943050, 0.5873179542866171,
     0.3678314989981802, 0.1252334085114692, 0, 0, 0, 0],
    [0.9931285991850949, 0.9639719272779138, 0.9122344282513259, 0.8391169718222188,
     0.7463319064601508, 0.6360536807265150, 0.5108670019508271, 0.3737060887154196,
     0.2277858511416451, 0.07652652113349733]])
_GL_W = np.array([
    [0.1713244923791705, 0.3607615730481384, 0.4679139345726904, 0, 0, 0, 0, 0, 0, 0],
    [0.04717533638651177, 0.1069393259953183, 0.1600783285433464, 0.2031674267230659,
     0.2334925365383547, 0.2491470458134029, 0, 0, 0, 0],
    [0.01761400713915212, 0.04060142980038694, 0.06267204833410906, 0.08327674157670475,
     0.1019301198172404, 0.1181945319615184, 0.1316886384491766, 0.1420961093183821,
     0.1491729864726037, 0.1527533871307259]])


@numba.njit(cache=True)
def _bvn_upper(h: float, k: float, r: float) -> float:
    """P(U > h, V > k) for a standard bivariate normal with correlation r, |r| < 1.

    The method of Drezner & Wesolowsky (1989) in the double-precision form of Genz (2004,
    Statistics and Computing 14: 251–260): Gauss–Legendre (6, 12 or 20 points) on the
    integral over the correlation for |r| < 0.925, and for |r| >= 0.925 the asymptotic expansion
    in 1 − r² plus a quadrature of the remainder (accurate near |r| = 1).
    """
    ar = abs(r)
    if ar < 0.3:
        ng, lg = 0, 3
    elif ar < 0.75:
        ng, lg = 1, 6
    else:
        ng, lg = 2, 10
    hk = h * k
    bvn = 0.0
    if ar < 0.925:
        hs = 0.5 * (h * h + k * k)
        asr = math.asin(r)
        for i in range(lg):
            for sgn in (-1.0, 1.0):
                sn = math.sin(asr * (1.0 + sgn * _GL_X[ng, i]) * 0.5)
                bvn += _GL_W[ng, i] * math.exp((sn * hk - hs) / (1.0 - sn * sn))
        return bvn * asr / (4.0 * math.pi) + _q(h) * _q(k)
    if r < 0.0:
        k = -k
        hk = -hk
    if ar < 1.0:
        as_ = (1.0 - r) * (1.0 + r)
        a = math.sqrt(as_)
        bs = (h - k) * (h - k)
        c = (4.0 - hk) / 8.0
        dd = (12.0 - hk) / 16.0
        asr = -0.5 * (bs / as_ + hk)
        if asr > -100.0:
            bvn = a * math.exp(asr) * (1.0 - c * (bs - as_) * (1.0 - dd * bs / 5.0) / 3.0
                                       + c * dd * as_ * as_ / 5.0)
        if hk > -100.0:
            b = math.sqrt(bs)
            sp = math.sqrt(2.0 * math.pi) * _q(b / a)  # sqrt(2π) Φ(−b/a)
            bvn -= math.exp(-0.5 * hk) * sp * b * (1.0 - c * bs * (1.0 - dd * bs / 5.0) / 3.0)
        a *= 0.5
        for i in range(lg):
            for sgn in (-1.0, 1.0):
                xs = (a + a * sgn * _GL_X[ng, i]) ** 2
                rs = math.sqrt(1.0 - xs)
                asr = -0.5 * (bs / xs + hk)
                if asr > -100.0:
                    sp = 1.0 + c * xs * (1.0 + dd * xs)
                    ep = math.exp(-hk * (1.0 - rs) / (2.0 * (1.0 + rs))) / rs
                    bvn += a * _GL_W[ng, i] * math.exp(asr) * (ep - sp)
        bvn = -bvn / (2.0 * math.pi)
    if r > 0.0:
        bvn += _q(max(h, k))
    else:
        bvn = -bvn + max(0.0, _q(h) - _q(k))
    return min(1.0, max(0.0, bvn))


@numba.njit(cache=True)
def _hinge_pair(h: float, k: float, rho: float) -> float:
    """E[(U − h)_+ (V − k)_+] for standard normals with correlation rho.

    With L = P(U > h, V > k), s = sqrt(1 − rho²), q_a = Q((k − rho h)/s), q_b = Q((h − rho k)/s):
    E[U 1] = φ(h) q_a + rho φ(k) q_b, E[V 1] = φ(k) q_b + rho φ(h) q_a,
    E[UV 1] = rho L + rho h φ(h) q_a + rho k φ(k) q_b + s φ(h) φ((k − rho h)/s), and the result is
    E[UV 1] − k E[U 1] − h E[V 1] + hk L.  rho = ±1 in closed form (V = ±U).
    """
    if rho >= 1.0:
        m = max(h, k)
        pm, qm = _phi(m), _q(m)
        return (m * pm + qm) - (h + k) * pm + h * k * qm
    if rho <= -1.0:  # V = −U: the integral of (u − h)(−u − k) φ(u) over h < u < −k
        lo, hi = h, -k
        if lo >= hi:
            return 0.0
        p = _q(lo) - _q(hi)
        i2 = lo * _phi(lo) - hi * _phi(hi) + p
        i1 = _phi(lo) - _phi(hi)
        return -(i2 + (k - h) * i1 - h * k * p)
    s = math.sqrt((1.0 - rho) * (1.0 + rho))
    big_l = _bvn_upper(h, k, rho)
    xa = (k - rho * h) / s
    xb = (h - rho * k) / s
    qa, qb = _q(xa), _q(xb)
    ph, pk = _phi(h), _phi(k)
    m10 = ph * qa + rho * pk * qb
    m01 = pk * qb + rho * ph * qa
    m11 = rho * big_l + rho * h * ph * qa + rho * k * pk * qb + s * ph * _phi(xa)
    return m11 - k * m10 - h * m01 + h * k * big_l


@numba.njit(cache=True)
def _pl_mean(p: np.ndarray, sx: float) -> float:
    """E σ(sx G) for σ(u) = A + B u + Σ D_m (u − κ_m)_+ (sx > 0)."""
    nk = int(p[2])
    out = p[0]
    for m in range(nk):
        h = p[3 + m] / sx
        out += p[3 + nk + m] * sx * (_phi(h) - h * _q(h))
    return out


@numba.njit(cache=True)
def _pl_pair(p: np.ndarray, sx: float, sy: float, rho: float) -> float:
    """E[σ(X) σ(Y)] in closed form, Var X = sx², Var Y = sy², corr rho (sx, sy > 0).

    σ = A + B u + Σ_m D_m (u − κ_m)_+; Stein's lemma gives E[X (Y − κ)_+] = rho sx sy Q(κ/sy),
    and E[(X − κ)_+ (Y − κ')_+] = sx sy :func:`_hinge_pair` (κ/sx, κ'/sy, rho).
    """
    nk = int(p[2])
    a_, b_ = p[0], p[1]
    cov = rho * sx * sy
    out = a_ * (_pl_mean(p, sx) + _pl_mean(p, sy)) - a_ * a_ + b_ * b_ * cov
    for m in range(nk):
        dm = p[3 + nk + m]
        if b_ != 0.0:
            out += b_ * dm * cov * (_q(p[3 + m] / sy) + _q(p[3 + m] / sx))
        for m2 in range(nk):
            out += dm * p[3 + nk + m2] * sx * sy * _hinge_pair(p[3 + m] / sx, p[3 + m2] / sy,
                                                              rho)
    return out


@numba.njit(cache=True)
def _erf_pair(sx: float, sy: float, rho: float) -> float:
    """E[erf(X) erf(Y)] = (2/π) arcsin(2 rho sx sy / sqrt((1 + 2 sx²)(1 + 2 sy²)))."""
    arg = 2.0 * rho * sx * sy / math.sqrt((1.0 + 2.0 * sx * sx) * (1.0 + 2.0 * sy * sy))
    return 2.0 / math.pi * math.asin(min(1.0, max(-1.0, arg)))


@numba.njit(cache=True)
def _pair_row(i: int, gram: np.ndarray, rad: np.ndarray, wts: np.ndarray, scale: float,
              alpha: np.ndarray, diag: np.ndarray, mode: int, p: np.ndarray, k_far: int,
              k_near: int) -> float:
    """wts_i [wts_i E_ii + 2 Σ_{j>i} wts_j E_ij], E_ij = E[σ(scale⟨w_i, g⟩) σ(scale⟨w_j, g⟩)].

    E_ii = ``diag[i]``.  For j > i: the Mehler series to k_far (k outer, j inner: vectorised),
    then for the near pairs (|c| > C_SWITCH, both scaled radii > T_MIN) the closed form
    (piecewise-linear σ) or the series continued to k_near on the compacted list of near j
    (smooth σ); erf: the closed form for every pair.
    """
    n = rad.size
    m_ = n - i - 1
    acc = np.zeros(m_)
    pw = np.ones(m_)
    cc = np.empty(m_)
    near = np.empty(m_, dtype=np.int64)
    for jj in range(m_):
        j = i + 1 + jj
        if rad[i] > 0.0 and rad[j] > 0.0:
            c = gram[i, j] / (rad[i] * rad[j])
            cc[jj] = min(1.0, max(-1.0, c))
        else:
            cc[jj] = 0.0
    ti = scale * rad[i]
    if mode == ACT_ERF:
        for jj in range(m_):
            acc[jj] = _erf_pair(ti, scale * rad[i + 1 + jj], cc[jj])
    else:
        for k in range(k_far + 1):
            aik = alpha[k, i]
            row = alpha[k, i + 1:]
            for jj in range(m_):
                acc[jj] += pw[jj] * aik * row[jj]
                pw[jj] *= cc[jj]
        n_near = 0
        if ti > T_MIN:
            for jj in range(m_):
                if abs(cc[jj]) > C_SWITCH and scale * rad[i + 1 + jj] > T_MIN:
                    near[n_near] = jj
                    n_near += 1
        if mode == ACT_PL:
            for m in range(n_near):
                jj = near[m]
                acc[jj] = _pl_pair(p, ti, scale * rad[i + 1 + jj], cc[jj])
        else:
            for k in range(k_far + 1, k_near + 1):
                aik = alpha[k, i]
                for m in range(n_near):
                    jj = near[m]
                    acc[jj] += pw[jj] * aik * alpha[k, i + 1 + jj]
                    pw[jj] *= cc[jj]
    tot = 0.0
    for jj in range(m_):
        tot += wts[i + 1 + jj] * acc[jj]
    return wts[i] * (wts[i] * diag[i] + 2.0 * tot)


@numba.njit(cache=True, parallel=True)
def _pair_rows(gram: np.ndarray, rad: np.ndarray, wts: np.ndarray, scale: float,
               alpha: np.ndarray, diag: np.ndarray, mode: int, p: np.ndarray, k_far: int,
               k_near: int, out: np.ndarray) -> None:
    """``out[i]`` = :func:`_pair_row` (i), so that ``Σ_i out[i] = Σ_{i,j} wts_i wts_j E_ij``.

    ``gram`` = W Wᵀ, ``rad`` = |w_i|, ``alpha[k, j] = α_k(scale rad_j)`` (k <= max(k_far,
    k_near)), ``diag[j] = E σ(scale rad_j G)²``.  Rows i and n − 1 − i go to the same task (equal
    work per task under the static schedule); each row is summed serially, so the result does not
    depend on the number of threads.
    """
    n = rad.size
    for q in prange((n + 1) // 2):
        out[q] = _pair_row(q, gram, rad, wts, scale, alpha, diag, mode, p, k_far, k_near)
        i2 = n - 1 - q
        if i2 != q:
            out[i2] = _pair_row(i2, gram, rad, wts, scale, alpha, diag, mode, p, k_far, k_near)


# per-pair series length: a pair with |c| < (q + 1)/_K_RES (q = floor(|c| _K_RES)) needs the terms
# k <= _K_TAB[q] for its tail to be below the bound C_SWITCH^(K_FAR+1) sqrt(U_ii U_jj) of the
# far pairs, since |c|^(K+1) <= C_SWITCH^(K_FAR+1) for K + 1 >= (K_FAR+1) ln C_SWITCH / ln |c|
_K_RES = 4096


def _series_lengths() -> np.ndarray:
    q = np.arange(int(C_SWITCH * _K_RES) + 1)
    upper = (q + 1.0) / _K_RES
    with np.errstate(divide="ignore"):
        need = np.ceil((K_FAR + 1) * math.log(C_SWITCH) / np.log(upper)) - 1.0
    need = np.where(upper < 1.0, need, K_FAR)  # the last cell reaches |c| = C_SWITCH itself
    return np.clip(need, 0, K_FAR).astype(np.int64)


_K_TAB = _series_lengths()
_GATHER_SHARE = 0.1  # a gathered term costs several contiguous ones (serial, no FMA; measured)


@numba.njit(cache=True)
def _horner_rows(al0: np.ndarray, al1: np.ndarray, i: int, j0: int, m_: int, k0: int,
                 cc: np.ndarray, h0: np.ndarray, h1: np.ndarray) -> None:
    """h[jj] <- Horner steps k = k0 … 0 of Σ_k c^k α_k(i) α_k(j0 + jj) for two tables at once
    (``al[k, j]``), four k per pass over h: the same operations in the same order as one step
    per pass, with a quarter of the loads and stores of h."""
    k = k0
    while k >= 3:
        a0, b0, e0, f0 = al0[k, i], al0[k - 1, i], al0[k - 2, i], al0[k - 3, i]
        a1, b1, e1, f1 = al1[k, i], al1[k - 1, i], al1[k - 2, i], al1[k - 3, i]
        r0, s0, u0, v0 = al0[k, j0:], al0[k - 1, j0:], al0[k - 2, j0:], al0[k - 3, j0:]
        r1, s1, u1, v1 = al1[k, j0:], al1[k - 1, j0:], al1[k - 2, j0:], al1[k - 3, j0:]
        for jj in range(m_):
            c = cc[jj]
            h0[jj] = (((h0[jj] * c + a0 * r0[jj]) * c + b0 * s0[jj]) * c + e0 * u0[jj]) * c \
                + f0 * v0[jj]
            h1[jj] = (((h1[jj] * c + a1 * r1[jj]) * c + b1 * s1[jj]) * c + e1 * u1[jj]) * c \
                + f1 * v1[jj]
        k -= 4
    while k >= 0:
        a0, a1 = al0[k, i], al1[k, i]
        r0, r1 = al0[k, j0:], al1[k, j0:]
        for jj in range(m_):
            c = cc[jj]
            h0[jj] = h0[jj] * c + a0 * r0[jj]
            h1[jj] = h1[jj] * c + a1 * r1[jj]
        k -= 1


@numba.njit(cache=True)
def _horner_row(al: np.ndarray, i: int, j0: int, m_: int, k0: int, cc: np.ndarray,
                h: np.ndarray) -> None:
    """:func:`_horner_rows` for one table."""
    k = k0
    while k >= 3:
        a0, b0, e0, f0 = al[k, i], al[k - 1, i], al[k - 2, i], al[k - 3, i]
        r0, s0, u0, v0 = al[k, j0:], al[k - 1, j0:], al[k - 2, j0:], al[k - 3, j0:]
        for jj in range(m_):
            c = cc[jj]
            h[jj] = (((h[jj] * c + a0 * r0[jj]) * c + b0 * s0[jj]) * c + e0 * u0[jj]) * c \
                + f0 * v0[jj]
        k -= 4
    while k >= 0:
        a0 = al[k, i]
        r0 = al[k, j0:]
        for jj in range(m_):
            h[jj] = h[jj] * cc[jj] + a0 * r0[jj]
        k -= 1


@numba.njit(cache=True)
def _pair_sums(wt: np.ndarray, rad: np.ndarray, wts: np.ndarray, tsc: np.ndarray,
               alpha: np.ndarray, diag: np.ndarray, mode: int, p: np.ndarray,
               k_tab: np.ndarray, k_res: int, k_far: int, k_near: int,
               out: np.ndarray) -> None:
    """``out[s]`` = Σ_{i,j} wts_i wts_j E^s_ij, E^s_ij = E[σ(tsc_s⟨w_i, g⟩) σ(tsc_s⟨w_j, g⟩)],
    for every data scale s at once, serially (the value does not depend on the machine's threads).

    ``wt`` (d, N) = Wᵀ; ``rad`` = |w_i|; ``alpha[s][k, j] = α_k(tsc_s rad_j)`` (a tuple of
    tables, one per scale: passed as they are, never stacked into one array);
    ``diag[s, j] = E σ(tsc_s rad_j G)²`` (the exact E^s_jj).  Row i: the inner products
    ⟨w_i, w_j⟩, j > i, as axpys over the d coordinates (the Gram matrix is never stored), the
    cosines c_ij, and for each pair its series length: pairs with |c| <= C_SWITCH stop at the
    first K with |c|^(K+1) <= C_SWITCH^(k_far+1) (table ``k_tab`` on |c| quantised to 1/k_res),
    the same tail bound as the full far series of :func:`_pair_row`; near pairs (|c| > C_SWITCH)
    as there: smooth σ the series to ``k_near``, piecewise-linear σ the closed form (the series
    to k_far when a scaled radius is <= T_MIN), erf the closed form for every pair.  Horner from
    the top k down: the terms k > k0 only for the pairs that need them (counting-sorted by
    length, longest first, gathered), k0 the smallest length with at most a share _GATHER_SHARE
    of the pairs longer; then the terms k <= k0 for every pair, contiguous in j (vectorised,
    :func:`_horner_rows`, two scales and four terms per pass).  Row i adds wts_i E^s_ij to column
    sums, which give the total at the end (no serial reduction per row).
    """
    d, n = wt.shape
    ns = tsc.size
    kt = alpha[0].shape[0] - 1
    g = np.empty(n)
    cc = np.empty(n)
    kk = np.empty(n, dtype=np.int64)
    near = np.empty(n, dtype=np.int64)
    cs = np.empty(n)
    idx = np.empty(n, dtype=np.int64)
    acc = np.zeros((ns, n))
    hi = np.zeros((ns, n))
    col = np.zeros((ns, n))
    ktop = max(k_far, k_near)
    counts = np.zeros(ktop + 2, dtype=np.int64)
    start = np.zeros(ktop + 2, dtype=np.int64)
    for i in range(n):
        j0 = i + 1
        m_ = n - j0
        ri = rad[i]
        for jj in range(m_):
            g[jj] = 0.0
        q = 0
        while q + 4 <= d:  # four coordinates per pass over g
            w0, w1, w2, w3 = wt[q, i], wt[q + 1, i], wt[q + 2, i], wt[q + 3, i]
            x0, x1, x2, x3 = wt[q, j0:], wt[q + 1, j0:], wt[q + 2, j0:], wt[q + 3, j0:]
            for jj in range(m_):
                g[jj] += w0 * x0[jj] + w1 * x1[jj] + w2 * x2[jj] + w3 * x3[jj]
            q += 4
        while q < d:
            wq = wt[q, i]
            row = wt[q, j0:]
            for jj in range(m_):
                g[jj] += wq * row[jj]
            q += 1
        for jj in range(m_):
            rj = rad[j0 + jj]
            if ri > 0.0 and rj > 0.0:
                cc[jj] = min(1.0, max(-1.0, g[jj] / (ri * rj)))
            else:
                cc[jj] = 0.0
        if mode == ACT_ERF:
            for jj in range(m_):
                for s in range(ns):
                    hi[s, jj] = _erf_pair(tsc[s] * ri, tsc[s] * rad[j0 + jj], cc[jj])
        else:
            for k in range(ktop + 2):
                counts[k] = 0
            n_near = 0
            for jj in range(m_):
                ac = abs(cc[jj])
                if ac > C_SWITCH:
                    if mode == ACT_PL:
                        near[n_near] = jj
                        n_near += 1
                        kk[jj] = -1
                        continue
                    k = k_near
                else:
                    k = k_tab[int(ac * k_res)]
                k = min(k, kt)
                kk[jj] = k
                counts[k] += 1
            # split point k0: the terms k <= k0 for every pair, contiguous in j (vectorised);
            # the terms k > k0 only for the pairs that need them (gathered), where k0 is the
            # smallest length with at most a fraction _GATHER_SHARE of the pairs longer
            n_ser = 0
            for k in range(ktop + 1):
                n_ser += counts[k]
            k0 = min(ktop, kt)
            above = 0
            for k in range(min(ktop, kt), -1, -1):
                if above > _GATHER_SHARE * n_ser:
                    break
                k0 = k
                above += counts[k]
            pos = 0
            for k in range(ktop, k0, -1):  # start[k]: first slot of the pairs of length k
                start[k] = pos
                pos += counts[k]
            for jj in range(m_):
                k = kk[jj]
                if k > k0:
                    m = start[k]
                    start[k] = m + 1
                    cs[m] = cc[jj]
                    idx[m] = jj
            # now start[k] (k > k0) = number of pairs of length >= k: those active at step k
            for s in range(ns):
                a_s = acc[s]
                for m in range(pos):
                    a_s[m] = 0.0
            for k in range(min(ktop, kt), k0, -1):
                na = start[k]
                if na == 0:
                    continue
                if ns == 2:  # both data scales in one pass (problem A)
                    a0 = alpha[0][k, i]
                    a1 = alpha[ns - 1][k, i]  # = alpha[1]; a runtime index types for 1-tuples
                    r0 = alpha[0][k, j0:]
                    r1 = alpha[ns - 1][k, j0:]
                    acc0 = acc[0]
                    acc1 = acc[1]
                    for m in range(na):
                        c = cs[m]
                        j = idx[m]
                        acc0[m] = acc0[m] * c + a0 * r0[j]
                        acc1[m] = acc1[m] * c + a1 * r1[j]
                else:
                    for s in range(ns):
                        a0 = alpha[s][k, i]
                        r0 = alpha[s][k, j0:]
                        acc0 = acc[s]
                        for m in range(na):
                            acc0[m] = acc0[m] * cs[m] + a0 * r0[idx[m]]
            for s in range(ns):
                a_s = acc[s]
                h_s = hi[s]
                for jj in range(m_):
                    h_s[jj] = 0.0
                for m in range(pos):
                    h_s[idx[m]] = a_s[m]
            for s in range(0, ns - 1, 2):  # Horner, two scales and four terms per pass
                _horner_rows(alpha[s], alpha[s + 1], i, j0, m_, k0, cc, hi[s], hi[s + 1])
            if ns % 2:
                _horner_row(alpha[ns - 1], i, j0, m_, k0, cc, hi[ns - 1])
            for m in range(n_near):  # piecewise-linear σ, |c| > C_SWITCH: replace the series
                jj = near[m]
                j = j0 + jj
                c = cc[jj]
                for s in range(ns):
                    ti = tsc[s] * ri
                    tj = tsc[s] * rad[j]
                    if ti > T_MIN and tj > T_MIN:
                        e = _pl_pair(p, ti, tj, c)
                    else:
                        e = 0.0
                        for k in range(min(k_far, kt), -1, -1):
                            e = e * c + alpha[s][k, i] * alpha[s][k, j]
                    hi[s, jj] = e
        wi = wts[i]  # column sums col[s, j] = Σ_{i<j} wts_i E^s_ij (vectorised, no reduction)
        for s in range(ns):
            h_s = hi[s]
            col_s = col[s, j0:]
            for jj in range(m_):
                col_s[jj] += wi * h_s[jj]
    for s in range(ns):
        t_ = 0.0
        for j in range(n):
            t_ += wts[j] * (wts[j] * diag[s, j] + 2.0 * col[s, j])
        out[s] = t_


@numba.njit(cache=True)
def _pl_diag(p: np.ndarray, t: np.ndarray, sigma0_sq: float) -> np.ndarray:
    """E σ(t_i G)² for piecewise-linear σ: the closed form at c = 1 (σ(0)² for t_i <= T_MIN)."""
    out = np.empty(t.size)
    for i in range(t.size):
        out[i] = _pl_pair(p, t[i], t[i], 1.0) if t[i] > T_MIN else sigma0_sq
    return out


@numba.njit(cache=True)
def _mehler_v(fhat: np.ndarray, alpha: np.ndarray, c: np.ndarray) -> np.ndarray:
    """v_i = Σ_k c_i^k f̂_k α_k(i) (problem B's v(s, r) for analytic σ and f_*)."""
    n = c.size
    out = np.zeros(n)
    for i in range(n):
        pw = 1.0
        acc = 0.0
        for k in range(fhat.size):
            acc += pw * fhat[k] * alpha[k, i]
            pw *= c[i]
        out[i] = acc
    return out


def _smooth_diag(act: Activation, t: np.ndarray) -> np.ndarray:
    """E σ(tG)² by composite Gauss–Legendre on [−14, 14], panels graded towards 0 (where the
    nearest complex singularities of σ(t·), at distance pole/t, lie)."""
    tmax = float(np.max(t)) if t.size else 0.0
    pole = getattr(act, "pole", 1.0)
    hmin = min(0.5, pole / max(tmax, 1e-300))
    z, w = graded_gauss_legendre(0.0, hmin, 0.5, 14.0, 16)
    wz = w * np.exp(-0.5 * z * z) * _INV_SQRT_2PI
    out = np.empty(t.size)
    for start in range(0, t.size, 256):
        sl = slice(start, start + 256)
        vals = act.value(t[sl, None] * z[None, :])
        out[sl] = (vals * vals) @ wz
    return out


class PopulationRisk:
    """R_N(θ) of the finite network without a test set (module docstring, MATH.md §1, §5).

    ``risk(theta)`` for theta (N, D) as in :class:`SGDState`.  After each call,
    :attr:`truncation_error` bounds the neglected Mehler tails (absolute, on R_N; 0 for exact
    closed forms) and :attr:`k_near` is the number of terms used for near pairs (smooth σ).
    """

    def __init__(self, cfg: Config) -> None:
        self.problem = _problem_code(cfg.problem)
        self.d = _finite_d(cfg)
        m = cfg.section("model")
        self.sigma = get_activation(m["activation"], m["activation_params"])
        self.mode, self.p = _encode(self.sigma)
        if self.problem == PROBLEM_A:
            delta = float(m["delta"])
            self.scales = (1.0 + delta, 1.0 - delta)
            self.scale_weights = (0.5, 0.5)
            self.r_sharp = 1.0
            self.target = None
        else:
            from .problems.neuron_kernel import r_sharp

            self.scales, self.scale_weights = (1.0,), (1.0,)
            self.target = (self.sigma if m["target"] == "same"
                           else get_activation(m["target"], m["target_params"]))
            self.r_sharp = float(r_sharp(self.target, float(cfg["model.label_noise"])))
        self.truncation_error = 0.0
        self.k_near = K_FAR
        self.seconds = 0.0
        self._ef2: float | None = None

    # ------------------------------------------------------------------ pieces
    def _split(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        if theta.ndim != 2 or theta.shape[1] != self.d + (self.problem == PROBLEM_B):
            raise DataError(f"theta must have shape (N, {self.d + (self.problem == PROBLEM_B)}),"
                            f" got {theta.shape}")
        if not np.all(np.isfinite(theta)):
            raise DataError("theta contains non-finite values (the SGD run diverged?)")
        if self.problem == PROBLEM_B:
            return theta[:, 0].copy(), np.ascontiguousarray(theta[:, 1:])
        return np.ones(theta.shape[0]), theta

    def _diag(self, t: np.ndarray) -> np.ndarray:
        """E σ(tG)², exact."""
        if self.mode == ACT_PL:
            return _pl_diag(self.p, np.ascontiguousarray(t, dtype=np.float64),
                            float(self.sigma.value(0.0)) ** 2)
        if self.mode == ACT_ERF:
            return 2.0 / np.pi * np.arcsin(2.0 * t * t / (1.0 + 2.0 * t * t))
        return _smooth_diag(self.sigma, t)

    def _tables(self, t: np.ndarray, diag: np.ndarray) -> tuple[np.ndarray, int, float]:
        """(alpha (K+1, N), k_near, tail bound) for the scaled radii t."""
        if self.mode == ACT_ERF:
            return np.zeros((1, t.size)), 0, 0.0
        if self.mode == ACT_PL:
            return np.ascontiguousarray(self.sigma.hermite(t, K_FAR)), K_FAR, 0.0
        scale = max(float(np.max(diag)), 1e-300) if diag.size else 1.0
        k = K_NEAR_START
        while True:
            alpha = np.ascontiguousarray(self.sigma.hermite(t, k))
            tail = float(np.max(diag - np.sum(alpha * alpha, axis=0))) if t.size else 0.0
            if tail <= NEAR_TOL * scale or k >= K_NEAR_MAX:
                return alpha, k, max(tail, 0.0)
            k *= 2

    def potential(self, theta: np.ndarray) -> np.ndarray:
        """V(θ_i) for every particle (MATH.md §2, §3)."""
        a, w = self._split(theta)
        rad = np.sqrt(np.einsum("ij,ij->i", w, w))
        if self.problem == PROBLEM_A:
            return self._potential_a(rad)
        return -a * self._v_neuron(w, rad, None, None)

    def _potential_a(self, rad: np.ndarray) -> np.ndarray:
        """Problem A's v(ρ) = −½[q(τ_+ρ) − q(τ_−ρ)], q(t) = α_0(t) = E σ(tG)."""
        qp = self.sigma.hermite(self.scales[0] * rad, 0)[0]
        qm = self.sigma.hermite(self.scales[1] * rad, 0)[0]
        return -0.5 * (qp - qm)

    def _v_neuron(self, w: np.ndarray, rad: np.ndarray, alpha: np.ndarray | None,
                  diag: np.ndarray | None) -> np.ndarray:
        """v(s, r) = E[f_*(G1) σ(sG1 + rZ)] for each particle.

        Analytic σ and f_*: the Mehler series Σ_k (s/ρ)^k f̂_k α_k(ρ) on the table ``alpha``
        (ρ = |w|) when its tail, at most sqrt(Σ_{k>K} f̂_k² · max_i Σ_{k>K} α_k(ρ_i)²), is below
        1e-13; otherwise (and for piecewise-linear σ or f_*) the conditioned quadrature of
        :mod:`~meanfield_pde.problems.neuron_kernel` (~1e-14).
        """
        from .problems.neuron_kernel import _v_points

        s = w[:, 0]
        r = np.sqrt(np.einsum("ij,ij->i", w[:, 1:], w[:, 1:]))
        analytic = self.mode != ACT_PL and not isinstance(self.target,
                                                          PiecewiseLinearActivation)
        if analytic and alpha is not None and diag is not None and alpha.shape[0] > 1:
            fhat = self.target.hermite(1.0, alpha.shape[0] - 1)
            ftail = max(0.0, self._target_square() - float(np.sum(fhat * fhat)))
            atail = float(np.max(diag - np.sum(alpha * alpha, axis=0), initial=0.0))
            if math.sqrt(ftail * max(atail, 0.0)) <= 1e-13:
                c = np.where(rad > 0, s / np.where(rad > 0, rad, 1.0), 0.0)
                return _mehler_v(np.ascontiguousarray(fhat), alpha, np.ascontiguousarray(c))
        return _v_points(self.sigma, self.target, s, r)

    def _target_square(self) -> float:
        """E f_*(G)² (R# without the label noise)."""
        if self._ef2 is None:
            from .problems.neuron_kernel import r_sharp

            self._ef2 = float(r_sharp(self.target, 0.0))
        return self._ef2

    def pair(self, t1: float, t2: float, c: float) -> float:
        """E[σ(t1 X) σ(t2 Y)] for standard normals X, Y with correlation c, by the same rule as
        the risk (``c = 1`` with ``t1 = t2`` gives the diagonal)."""
        t = np.array([float(t1), float(t2)])
        if not (np.all(t >= 0) and np.all(np.isfinite(t)) and -1.0 <= c <= 1.0):
            raise ConfigError("pair(t1, t2, c) needs t1, t2 >= 0 and -1 <= c <= 1")
        diag = self._diag(t)
        alpha, k_near, _ = self._tables(t, diag)
        gram = np.array([[t[0] * t[0], c * t[0] * t[1]], [c * t[0] * t[1], t[1] * t[1]]])
        row = _pair_row(0, gram, t, np.array([1.0, 0.5]), 1.0, alpha, diag, self.mode, self.p,
                        min(K_FAR, alpha.shape[0] - 1), k_near)
        return float(row - diag[0])  # row = diag_0 + 2 · 0.5 · E_01

    # ------------------------------------------------------------------ the risk
    def __call__(self, theta: np.ndarray) -> float:
        """R_N(θ) = R# + (2/N) Σ V(θ_i) + (1/N²) Σ_{i,j} U(θ_i, θ_j).

        One serial :func:`_pair_sums` pass for all data scales (per-pair series lengths, no
        stored Gram matrix); problem A's V from row k = 0 of the same Hermite tables for
        piecewise-linear σ.  Equal to :meth:`reference` up to round-off.
        """
        t0 = time.perf_counter()
        a, w = self._split(theta)
        n = w.shape[0]
        rad = np.sqrt(np.einsum("ij,ij->i", w, w))
        wsum = float(np.sum(np.abs(a)))
        trunc = 0.0
        alphas, diags, k_nears = [], [], []
        for scale, sw in zip(self.scales, self.scale_weights, strict=True):
            t = scale * rad
            diag = self._diag(t)
            alpha, k_near, tail = self._tables(t, diag)
            alphas.append(alpha)
            diags.append(diag)
            k_nears.append(k_near)
            far = C_SWITCH ** (K_FAR + 1) * float(np.max(diag, initial=0.0))
            trunc += sw * (wsum / n) ** 2 * (tail + (far if self.mode != ACT_ERF else 0.0))
        self.k_near = max(k_nears)
        wt = np.ascontiguousarray(w.T)
        scales = np.asarray(self.scales, dtype=np.float64)
        sums = np.empty(len(self.scales))
        groups = ([list(range(len(self.scales)))]
                  if len({al.shape for al in alphas}) == 1 and len(set(k_nears)) == 1
                  else [[s] for s in range(len(self.scales))])
        for grp in groups:  # smooth σ may need different table lengths per scale
            part = np.empty(len(grp))
            alpha = tuple(alphas[s] for s in grp)  # C-contiguous (K+1, N) tables, not copied
            _pair_sums(wt, rad, a, np.ascontiguousarray(scales[grp]), alpha,
                       np.ascontiguousarray(np.stack([diags[s] for s in grp])), self.mode,
                       self.p, _K_TAB, _K_RES, min(K_FAR, alpha[0].shape[0] - 1),
                       k_nears[grp[0]], part)
            sums[grp] = part
        total_u = float(sum(sw * u for sw, u in zip(self.scale_weights, sums, strict=True)))
        if self.problem == PROBLEM_A:
            if self.mode == ACT_PL:  # α_0(t) = E σ(tG) = q(t), the same closed form
                v = -0.5 * (alphas[0][0] - alphas[1][0])
            else:
                v = self._potential_a(rad)
        else:
            v = -a * self._v_neuron(w, rad, alphas[0], diags[0])
        self.truncation_error = trunc
        self.seconds = time.perf_counter() - t0
        return float(self.r_sharp + 2.0 * np.sum(v) / n + total_u / (n * n))

    def reference(self, theta: np.ndarray) -> float:
        """R_N(θ) by the previous evaluation (kept as an independent check for the tests and
        the benchmarks): the Gram matrix W Wᵀ from BLAS, every far pair summed to k = K_FAR,
        one parallel :func:`_pair_rows` pass per data scale, V by separate Hermite calls."""
        t0 = time.perf_counter()
        a, w = self._split(theta)
        n = w.shape[0]
        rad = np.sqrt(np.einsum("ij,ij->i", w, w))
        gram = np.ascontiguousarray(w @ w.T)
        total_u, trunc = 0.0, 0.0
        alpha1, diag1 = None, None
        out = np.empty(n)
        for scale, sw in zip(self.scales, self.scale_weights, strict=True):
            t = scale * rad
            diag = self._diag(t)
            alpha, k_near, tail = self._tables(t, diag)
            if self.problem == PROBLEM_B:
                alpha1, diag1 = alpha, diag
            self.k_near = k_near
            _pair_rows(gram, rad, a, scale, alpha, diag, self.mode, self.p, min(K_FAR,
                       alpha.shape[0] - 1), k_near, out)
            total_u += sw * float(np.sum(out))
            wsum = float(np.sum(np.abs(a)))
            far = C_SWITCH ** (K_FAR + 1) * float(np.max(diag, initial=0.0))
            trunc += sw * (wsum / n) ** 2 * (tail + (far if self.mode != ACT_ERF else 0.0))
        if self.problem == PROBLEM_A:
            v = self.potential(theta)
        else:
            v = -a * self._v_neuron(w, rad, alpha1, diag1)
        self.truncation_error = trunc
        self.seconds = time.perf_counter() - t0
        return float(self.r_sharp + 2.0 * np.sum(v) / n + total_u / (n * n))


def population_risk(cfg: Config, theta: np.ndarray) -> float:
    """R_N(θ) of the network with parameters ``theta`` (N, D) (see :class:`PopulationRisk`)."""
    return PopulationRisk(cfg)(theta)

"""Particle SGD: the d-dimensional two-layer network itself, trained by one-pass SGD (MATH.md §1).

The PDE of :mod:`meanfield_pde.runner.pde` is the N → ∞, ε → 0 limit of this simulation; the engine
exists to validate it (MATH.md §5).

Network and update
------------------
ŷ(x; θ) = (1/N) Σ_i a_i σ(⟨w_i, x⟩).  Each step draws B fresh samples (x_b, y_b) and updates every
neuron with the gradient evaluated at the current parameters θ^k (MATH.md §1, summed over the
mini-batch):

    s_k       = ε ξ(t_k),   t_k = k B ε          (ξ from ``[schedule]``, at the step's start)
    θ_i^{k+1} = (1 − 2λ B s_k) θ_i^k + 2 s_k Σ_b (y_b − ŷ(x_b; θ^k)) ∇_θ σ_*(x_b; θ_i^k)
                + sqrt(4 B s_k / β) g_i^k,                   g_i^k ~ N(0, I_D)

(the noise term only for finite ``noise.beta``; λ = ``noise.lam``).  With B = 1 this is MATH.md's
noisy SGD, whose per-step noise variance 4 s_k/β is the diffusion coefficient 2ξ/β of the PDE; a
step with B samples advances t by Bε and carries B times the drift, decay and noise variance of one
sample.  The compiled update is :mod:`~meanfield_pde.particles.sgd_kernel`.

What depends on the problem — θ = w or (a, w), the initial law, the law of (x, y), the reduced
coordinates — is declared by the problem's :class:`~meanfield_pde.particles.model.ParticleModel`
(``problem_class(cfg.problem).particle_model``).

Randomness (bit-for-bit reproducible)
-------------------------------------
All randomness comes from one ``numpy.random.Generator(PCG64(seed))``, consumed in this order:

1. the initial parameters (:meth:`ParticleModel.initial_theta` of the problem);
2. per step, one row of ``B (d + 1) + (N D if noisy)`` standard normals (NumPy's ziggurat
   ``standard_normal``): for each sample b the block ``[u_b, g_b1, …, g_bd]`` from which the data
   law builds (x_b, y_b), then, if noisy, the noise as a (D, N) array (coordinate-major: a first
   when it is trained, then w_1 … w_d).

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
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import Config
from ..errors import ConfigError, DataError
from ..schedule import Schedule, grid_time, output_times
from .activation_codes import encode_activation
from .memory import check_memory
from .model import ParticleModel, particle_model
from .risk import PopulationRisk
from .sgd_kernel import Network, StepRule, _sgd_block, step_work

BLOCK_ELEMS = 1 << 20  # standard normals drawn per block (8 MB)
STEP_TOL = 1e-9  # an output time within this many steps of a boundary is on it
#: the work budget of one run, in neuron-coordinate operations: samples x N x D for the steps
#: plus outputs x N^2 x d for the population risk (its Gram matrix); about a day at the measured
#: 1e9 per second (benchmarks/RESULTS.md, sgd suite: 3.2e4 samples/s at N = 800, d = 40)
MAX_WORK = 1e14
#: how far past its requested time the last output may land (a step is never shortened), as a
#: fraction of that time: a step B eps of at most this fraction of time.t_end always fits
MAX_OVERSHOOT = 0.01


# ============================================================================ state and result
@dataclass
class SGDState:
    """Everything needed to continue a run bit for bit (and to checkpoint it).

    ``theta`` (N, D): rows w_i ∈ R^d, or (a_i, w_i) ∈ R^{1+d} when the outer weight is trained.
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

    ``coords``: (K, N) or (K, N, C), the reduced coordinates of every neuron (the problem's
    ``particle_coords``, e.g. r = |w|, or z = (a, s, r) with a trained outer weight).
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
    """The PDE's variables of each particle, as the problem ``problem`` declares them
    (:meth:`ParticleModel.reduced_coordinates`): shape (N,) for one coordinate, else (N, C)."""
    return particle_model(problem).reduced_coordinates(np.asarray(theta, dtype=np.float64))


# ============================================================================ the engine
class ParticleSGD:
    """One-pass SGD of the network of ``cfg`` (module docstring); overrides of ``[sgd]``.

    :attr:`model` is the problem's :class:`ParticleModel`.
    """

    def __init__(self, cfg: Config, *, n_neurons: int | None = None, eps: float | None = None,
                 batch: int | None = None, seed: int | None = None) -> None:
        self.cfg = cfg
        model_cls = particle_model(cfg.problem)
        sgd = cfg.section("sgd")
        self.n = int(sgd["n_neurons"] if n_neurons is None else n_neurons)
        self.eps = float(sgd["eps"] if eps is None else eps)
        self.batch = int(sgd["batch"] if batch is None else batch)
        self.model: ParticleModel = model_cls(cfg)
        model_cls.check(cfg)
        self.seed = int(sgd["seed"] if seed is None else seed)
        _check_run(self.n, self.eps, self.batch, self.seed)
        self.d = self.model.d
        self.sigma = self.model.sigma
        act_code, act_p = encode_activation(self.sigma)
        self.net = Network(act_code, act_p, bool(self.model.train_outer_weight))
        self.law = self.model.data_law()
        self.schedule = Schedule.from_config(cfg)
        noise = cfg.section("noise")
        self.beta, self.lam = float(noise["beta"]), float(noise["lam"])
        self.noisy = math.isfinite(self.beta)
        self.noise_coef = math.sqrt(4.0 / self.beta) if self.noisy else 0.0
        self.dim = self.model.dim  # D
        self.draws_per_step = self.batch * (self.d + 1) + (self.n * self.dim if self.noisy else 0)
        check_memory(self.n, self.d, self.dim, self.batch)
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

    @property
    def rule(self) -> StepRule:
        """The step bundle of the compiled update."""
        return StepRule(self.batch, self.eps, self.schedule.kind, self.schedule.params,
                        self.lam, self.noise_coef)

    # ------------------------------------------------------------------ initial state
    def initial_state(self) -> SGDState:
        """θ^0 drawn from the configuration's initial law (the PDE's ρ̄_0,
        :meth:`ParticleModel.initial_theta`), and the generator, advanced past those draws."""
        rng = np.random.Generator(np.random.PCG64(self.seed))
        theta = self.model.initial_theta(rng, self.n)
        return SGDState(np.ascontiguousarray(theta), 0, 0.0, rng)

    # ------------------------------------------------------------------ stepping
    @property
    def block_steps(self) -> int:
        """Steps per compiled block (their normals, BLOCK_ELEMS at most, are drawn at once).
        Advancing in calls of at most this many steps draws the same stream as one call."""
        return max(1, BLOCK_ELEMS // self.draws_per_step)

    def advance(self, state: SGDState, n_steps: int,
                on_block: Callable[[SGDState], None] | None = None) -> None:
        """Advance ``state`` in place by ``n_steps`` steps (``on_block`` after each block)."""
        if n_steps <= 0:
            return
        n, d = self.n, self.d
        if state.theta.shape != (n, self.dim):
            raise DataError(f"state.theta has shape {state.theta.shape}, expected {(n, self.dim)}")
        if self.net.train_outer_weight:
            a = np.ascontiguousarray(state.theta[:, 0])
            wt = np.ascontiguousarray(state.theta[:, 1:].T)
        else:
            a = np.ones(n)
            wt = np.ascontiguousarray(state.theta.T)
        m = self.draws_per_step
        block = min(n_steps, self.block_steps)
        buf = np.empty((block, m))
        work = step_work(n, d, self.batch)
        rule = self.rule
        done = 0
        while done < n_steps:
            nb = min(block, n_steps - done)
            draws = buf[:nb]
            state.rng.standard_normal(out=draws)
            _sgd_block(a, wt, draws, state.step, rule, self.net, self.law, work)
            done += nb
            state.step += nb
            state.t = grid_time(state.step, self.step_time)
            if on_block is not None:
                self._sync(state, a, wt)
                on_block(state)
        self._sync(state, a, wt)

    def _sync(self, state: SGDState, a: np.ndarray, wt: np.ndarray) -> None:
        if self.net.train_outer_weight:
            state.theta[:, 0] = a
            state.theta[:, 1:] = wt.T
        else:
            state.theta[:, :] = wt.T

    # ------------------------------------------------------------------ outputs
    def output_steps(self, times: np.ndarray, t_end: float | None = None) -> np.ndarray:
        """Sorted unique step indices of the outputs: the first boundary at or after each t.

        Raises:
            ConfigError: the run does not fit its budget (:meth:`check_budget`; the landing of
                the last output is checked against ``t_end``, the config's ``time.t_end``,
                when given)."""
        times = np.asarray(times, dtype=np.float64).ravel()
        if times.size == 0 or not np.all(np.isfinite(times)) or np.any(times < 0):
            raise ConfigError("output times must be a non-empty list of finite times >= 0")
        self.check_budget(float(np.max(times)), times.size, t_end is not None)
        q = times / self.step_time
        near = np.rint(q)
        on = np.abs(q - near) <= STEP_TOL * np.maximum(1.0, q)
        steps = np.where(on, near, np.ceil(q)).astype(np.int64)
        return np.unique(steps)

    def check_budget(self, t_last: float, n_outputs: int, landing: bool = True) -> None:
        """Refuse, before any step, a run to ``t_last`` with ``n_outputs`` outputs whose last
        output would land more than :data:`MAX_OVERSHOOT` past ``t_last`` (a step B ε too long
        for the run; checked when ``landing``), or whose work (samples x N x D + outputs x
        N² x d) exceeds :data:`MAX_WORK`; one line naming the keys to change and the limit."""
        tau = self.step_time
        q = t_last / tau  # steps to t_last (a float: it may exceed any integer type)
        steps = math.ceil(q * (1.0 - STEP_TOL)) if q < 2.0**62 else q
        if landing and q < 2.0**62 and steps * tau - t_last > MAX_OVERSHOOT * t_last:
            raise ConfigError(
                f"one SGD step, sgd.batch * sgd.eps = {self.batch} * {self.eps:g} = {tau:g}, "
                f"would take the run to t = {steps * tau:.4g}, past time.t_end = {t_last:g}; "
                f"accepted: sgd.batch * sgd.eps <= {MAX_OVERSHOOT * t_last:.3g} "
                f"({MAX_OVERSHOOT:.0%} of time.t_end) or a whole fraction of time.t_end; lower "
                "sgd.batch or sgd.eps")
        work = (float(steps) * self.batch * self.n * self.dim
                + float(min(n_outputs, steps + 1)) * self.n * self.n * self.d)
        if not work <= MAX_WORK:
            raise ConfigError(
                f"particle SGD to t = {t_last:g} takes {_about(t_last / self.eps)} samples with "
                f"sgd.eps = {self.eps:g}: {_about(work)} operations at sgd.n_neurons = "
                f"{self.n}, model.d = {self.d} (at most {MAX_WORK:.0e}, about a day); raise "
                "sgd.eps, or lower sgd.n_neurons, time.t_end or time.n_outputs")

    def coords(self, theta: np.ndarray) -> np.ndarray:
        """The reduced coordinates of ``theta`` (:meth:`ParticleModel.reduced_coordinates`)."""
        return self.model.reduced_coordinates(np.asarray(theta, dtype=np.float64))

    @property
    def risk(self) -> PopulationRisk:
        """The population-risk evaluator of this configuration (built on first use)."""
        if self._risk is None:
            self._risk = PopulationRisk(self.cfg)
        return self._risk


def _about(x: float) -> str:
    return f"about {x:.3g}" if math.isfinite(x) else "over 1e308"


def _check_run(n: int, eps: float, batch: int, seed: int) -> None:
    """Range checks of the ``[sgd]`` sizes (one line naming the key and the accepted range)."""
    if n < 1:
        raise ConfigError(f"sgd.n_neurons = {n} is out of range; accepted: n >= 1")
    if not (eps > 0 and math.isfinite(eps)):
        raise ConfigError(f"sgd.eps = {eps} is out of range; accepted: 0 < x")
    if batch < 1:
        raise ConfigError(f"sgd.batch = {batch} is out of range; accepted: n >= 1")
    if not 0 <= seed < 2**63:
        raise ConfigError(f"sgd.seed = {seed} is out of range; accepted: 0 <= n <= 2^63 - 1")


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
    steps = (sgd.output_steps(output_times(cfg), cfg["time.t_end"]) if times is None
             else sgd.output_steps(np.asarray(times)))
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


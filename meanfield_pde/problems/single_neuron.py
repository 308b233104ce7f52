"""Problem B of MATH.md §3: learning a single neuron; the law ρ̄ of z = (a, s, r).

Data x ~ N(0, I_d), y = f_*(⟨w_*, x⟩) + ζ; neuron a σ(⟨w, x⟩); s = ⟨w, w_*⟩, r = |P_⊥ w|.  The
potential is linear in a, Ψ(z; ρ̄) = a φ(s, r; ρ̄), with

    φ(s, r) = −v(s, r) + Σ_j Σ_ℓ μ_2j(d−1) ω_ℓ m_2j(s, r; g_ℓ) M_jℓ,
    M_jℓ    = ∫ a' m_2j(s', r'; g_ℓ) ρ̄(dz')

(see :mod:`meanfield_pde.problems.neuron_kernel`), and

    ∂_t ρ̄ = 2ξ(t) [ ∂_a(ρ̄ ∂_aΨ) + ∂_s(ρ̄ ∂_sΨ) + ∂_r(ρ̄ ∂_rΨ) ]

on a box [a_min, a_max] × [−s_max, s_max] × [0, r_max] with no-flux walls (∂_rΨ = 0 at r = 0 by
symmetry).  Initial law: a ~ P_A, s ~ N(0, κ²/d), r ~ (κ/√d) χ_{d−1}, independent, as exact cell
averages (a point mass in a sits in one cell); ``init.s0`` shifts the mean of s.

Two methods (``solver.method``; "auto" = characteristics without noise, finite volumes with):

* **fv** — the finite volumes above (:mod:`..fv.stepper3d`, :mod:`..fv.driftdiffusion3d`).
* **lagrangian** (noiseless only, with or without the ℓ2 term λ) — weighted characteristics
  (:mod:`..lagrangian.neuron`): particles from the tensor Gauss rule of ρ̄_0
  (``[lagrangian] n_a, n_s, n_r``), moved by dz/dt = −2ξ∇Ψ_λ with φ from a Chebyshev table on
  [s_min, s_max] × [0, r_max] (``table_s, table_r``), DOP853 at ``solver.rtol``.  The state is
  the flat (P, 3) positions; the output grid is the finite-volume grid of the config, its
  automatic walls from a particle pilot (4 × 10 × 10 nodes, a 24 × 12 table, zero-weight
  tracers at the extreme main particles of weight >= 1e-8); snapshots carry the particle risk
  and means, the deposited density / marginals (each weight in the cell holding its particle:
  exact cell masses of the particle measure) and ``particles``; ``grid/particle_weights``.
  Accuracy, speed and the choice of a table: :mod:`..lagrangian.neuron`.

Error estimate (``risk_error`` = |R − R_companion| / (2^p − 1), :attr:`error_order`): the
companion is the same method on the same walls, coarser.  Finite volumes: half the cells,
p = 1 (measured act/est 0.7 .. 1.1 on the default, 0.12 .. 0.24 with a Gaussian a-law).  With
noise the semi-implicit steps' first-order time error dominates: the companion also doubles
dt_max, p = 0.5 (β = 50, λ = 0.1, t <= 2: act/est 1.8, 0.55, 0.44; with p = 1 it was 4.4).
Characteristics: 3/4 of the nodes per direction and a table with 8 × 4 nodes fewer; the table
error dominates, spectral for analytic σ and f_* (the companion's 3 .. 1000× larger: p =
log2(7), est = diff/6; act/est 0.01 .. 1.6 over default, coarse (8 × 8 nodes, 24 × 12 table),
mid (12 × 12, 32 × 16), erf/tanh, Gaussian a with s0 = 0.3, λ = 0.05, sigmoid d = 100,
d = 10 κ = 0.8), and
irregularly (algebraically) for kinked ones (relu, ramp: p = 0.5, est = 2.4 diff; relu
default: act/est 0.1 .. 1.9, uniform a: 0.05 .. 0.09).  Known misses: on a very wide box the
table is pre-asymptotic and the estimate low (softplus student, tanh teacher: s in [−10, 5.8],
error 4e-6, act/est up to 35: raise lagrangian.table_s there); an error passing through zero
makes it high (relu, s0 = 0.3, d = 10 at t = 0.5: est/act 590).  Below ``RISK_ERROR_FLOOR``
both are round-off (a risk of ~1e-3 from terms of ~0.4): the estimate is that floor.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from ..activations import PiecewiseLinearActivation, get_activation
from ..config import Config
from ..errors import ConfigError, SolverError, WallReached
from ..fv import driftdiffusion3d as dd3
from ..fv import stepper3d
from ..fv.bundles import Grid3, Kernel3, Noise, StepSizes, Xi
from ..fv.threads import ThreadChooser
from ..lagrangian import neuron as ln
from ..lagrangian import neuron_field as nf
from ..lagrangian import neuron_setup as setup
from ..schedule import Schedule, stop_times
from . import single_neuron_plots
from .base import WARMUP_RESET, CarriesDt, Problem, Stepper, StepReport, resolve_method
from .neuron_kernel import neuron_kernel, r_sharp
from .radial_laws import chi_law, chi_quantile
from .registry import register
from .single_neuron_particles import SingleNeuronParticles
from .single_neuron_schema import SCHEMA

WALLS = ("a_min", "a_max", "s_min", "s_max", "r_max")
PILOT_CELLS = (16, 32, 32)  # (n_a, n_s, n_r) of the pilot run that sizes the automatic box
PILOT_TAIL = 1e-4  # the pilot's reach: marginal mass beyond it < PILOT_TAIL
PAD = 0.25  # automatic walls sit PAD × (reached span) beyond the reach
RISK_ERROR_FLOOR = 1e-12  # round-off of the risk (terms ~R# cancel to ~1e-3): the smallest estimate
# error_order (module docstring): finite volumes without / with noise, characteristics of an
# analytic / a kinked σ or f_*
FV_ORDER, FV_ORDER_NOISY, LAGRANGIAN_ORDER_ANALYTIC, LAGRANGIAN_ORDER_KINKED = (
    1.0, 0.5, math.log2(7.0), 0.5)
COMPANION_TABLE_DROP = (8, 4)  # the companion's table: this many Chebyshev nodes fewer in s, r²


def _normal_law(edges: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Cell averages of N(mean, std²) (CDF on the left, survival function on the right)."""
    z = (edges - mean) / std
    cdf, sf = special.ndtr(z), special.ndtr(-z)
    left, right = np.diff(cdf), -np.diff(sf)
    return np.where(0.5 * (z[:-1] + z[1:]) < 0, left, right) / np.diff(edges)


class NeuronStepper(Stepper):
    """Compiled SSP-RK3 of the 3-D equation (see :mod:`meanfield_pde.fv.stepper3d`).

    ``threads`` picks the serial or the threaded (bit-identical) kernels call by call
    (:mod:`meanfield_pde.fv.threads`; ``parallel=False`` forces serial)."""

    def __init__(self, problem: SingleNeuronProblem, cfl: float, theta: float, parallel: bool):
        self.p, self.cfl, self.theta = problem, cfl, theta
        self.threads = ThreadChooser(parallel)
        k = problem.kernel
        self.grid, self.kern, self.xi = problem.tables()
        self.work = stepper3d.make_work(*problem.shape, k.feats.shape[0])

    def advance(self, state: np.ndarray, t: float, t_stop: float, max_steps: int) -> StepReport:
        def call(parallel: bool, t: float, steps: int) -> tuple:
            return stepper3d.advance3d(state, t, t_stop, steps, self.grid, self.kern, self.xi,
                                       self.cfl, self.theta, self.work, parallel=parallel)

        return StepReport(*self.threads.advance(call, t, max_steps))


class NoisyNeuronStepper(CarriesDt):
    """Semi-implicit drift–diffusion steps of the noisy 3-D equation (interaction frozen over a
    step, Lie splitting of implicit Scharfetter–Gummel line solves; free energy non-increasing at
    every step; see :mod:`meanfield_pde.fv.driftdiffusion3d`)."""

    def __init__(self, problem: SingleNeuronProblem, dt_max: float, parallel: bool):
        self.p, self.dt_max = problem, dt_max
        self.threads = ThreadChooser(parallel)  # serial or threaded kernels, call by call
        self.grid, self.kern, self.xi = problem.tables()
        self.noise = problem.noise_bundle()
        self.work = dd3.make_noisy3d_work(*problem.shape, problem.kernel.feats.shape[0])
        self.dt = 0.0

    def advance(self, state: np.ndarray, t: float, t_stop: float, max_steps: int) -> StepReport:
        def call(parallel: bool, t: float, steps: int) -> tuple:
            out = dd3.advance_noisy3d(
                state, t, t_stop, steps, self.grid, self.kern, self.noise, self.xi,
                StepSizes.make(self.dt, self.dt_max), self.work, parallel=parallel)
            self.dt = out[4]  # the next call (of a split advance) starts from it
            return out

        return StepReport(*self.threads.advance(call, t, max_steps))


@register
class SingleNeuronProblem(Problem):
    """The (a, s, r) problem on a uniform n_a × n_s × n_r grid."""

    name = "single-neuron"
    aliases = ("single_neuron",)
    schema = SCHEMA
    plot_run = staticmethod(single_neuron_plots.plot_run)
    figsize = single_neuron_plots.FIGSIZE
    plot_equilibrium = staticmethod(single_neuron_plots.plot_equilibrium)
    equilibrium_figsize = single_neuron_plots.EQUILIBRIUM_FIGSIZE
    walls = WALLS
    particle_coords = ("a", "s", "r")
    particle_field = "z"
    particle_model = SingleNeuronParticles
    marginal_fields = {x: f"marginal_{x}" for x in "asr"}

    def __init__(self, cfg: Config, pilot_box: tuple[float, ...] | None = None):
        if cfg.problem != self.name:
            raise ConfigError(f"configuration is for {cfg.problem!r}, not {self.name!r}")
        self.config = cfg
        m = cfg.section("model")
        self.d = m["d"]
        self.sigma = get_activation(m["activation"], m["activation_params"])
        if m["target"] == "same":
            self.target = self.sigma
        else:
            self.target = get_activation(m["target"], m["target_params"])
        self.label_noise = m["label_noise"]
        self.schedule = Schedule.from_config(cfg)
        noise = cfg.section("noise")
        self.beta, self.lam = noise["beta"], noise["lam"]
        self.noisy = math.isfinite(self.beta)
        self.method = resolve_method(cfg)
        if self.method == "fv" and not self.noisy and self.lam > 0.0:
            raise ConfigError("noise.lam > 0 without noise is not supported for single-neuron "
                              "(the noiseless 3-D stepper needs Psi linear in a); set noise.beta")
        if self.noisy:
            if math.isinf(self.d):
                raise ConfigError("noise.beta is finite but model.d = inf: the noisy equation "
                                  "needs the r^(d-2) weight of a finite d; set model.d")
            if self.lam == 0.0 and self.sigma.bounded:
                raise ConfigError(
                    f"noise.beta = {self.beta:g} with noise.lam = 0 and the bounded activation "
                    f"{self.sigma.name!r}: the Gibbs state is not normalisable in a; set "
                    "noise.lam > 0 (e.g. noise.lam = 0.01)"
                )
            if cfg["solver.noisy_scheme"] != "semi-implicit":
                raise ConfigError("solver.noisy_scheme = 'explicit' exists for gaussians only; "
                                  "use 'semi-implicit' for single-neuron")
        ini, grid = cfg.section("init"), cfg.section("grid")
        self._dof = self._init_dof(ini)
        self._kernel = None
        self.lagrangian = None
        if self.method == "lagrangian":
            box = pilot_box or self._choose_box(ini, grid, self._lagrangian_reach)
            self._build_grid(ini, grid, box)
            self.lagrangian = setup.characteristics(self, cfg.section("lagrangian"), self.box)
        else:
            box = pilot_box or self._choose_box(ini, grid, self._pilot_reach)
            self._build_grid(ini, grid, box)

    @property
    def kernel(self):
        """The separable kernel on the grid's (s, r) centres (characteristics: on first use)."""
        if self._kernel is None:
            self._kernel = self._kernel_on(self.s_centers, self.r_centers)
        return self._kernel

    def _kernel_on(self, s: np.ndarray, r: np.ndarray, tol: float | None = None):
        kc = self.config.section("kernel")
        return neuron_kernel(self.sigma, self.target, self.label_noise, self.d, s, r,
                             tol or kc["tol"],
                             kc["max_terms"], kc["max_nodes"])

    def _lagrangian_reach(self, support: tuple[float, ...], fixed: dict[str, float]) -> dict:
        """Automatic walls from a particle pilot (:mod:`..lagrangian.neuron_setup`)."""
        return setup.pilot_walls(self, support, fixed, WALLS, PAD)

    @classmethod
    def warmup(cls, cfg: Config) -> None:
        """Compile (or load) the kernels ``cfg`` uses on a 4 × 8 × 8 grid."""
        tiny = cfg.replace({"grid.n_a": 4, "grid.n_s": 8, "grid.n_r": 8, "grid.a_min": 0.0,
                            "grid.a_max": 2.0, "grid.s_min": -1.0, "grid.s_max": 1.0,
                            "grid.r_max": 1.5, "time.t_end": 1e-3, "init.a_law": "uniform",
                            "init.a": 1.0, "init.a_halfwidth": 0.5, "init.kappa": 0.3,
                            "init.d": 10}, reset=WARMUP_RESET)
        if resolve_method(cfg) == "lagrangian":
            tiny = tiny.replace({"lagrangian.n_a": 2, "lagrangian.n_s": 3, "lagrangian.n_r": 3,
                                 "lagrangian.table_s": 6, "lagrangian.table_r": 4,
                                 "noise.lam": 0.0})
        p = cls(tiny)
        rho = p.initial_state()
        p.make_stepper().advance(rho, 0.0, 1e-3, 1)
        p.risk(rho)
        if p.lagrangian is not None:  # both variants of the particle kernels
            sysm = p.lagrangian
            sysm._vel = nf.velocity_par if sysm._vel is nf.velocity else nf.velocity
            sysm.rhs(0.0, rho)

    # ---------------------------------------------------------------- initial law and domain
    def _init_dof(self, ini: dict) -> int:
        dof = ini["d"] or self.d
        if math.isinf(dof):
            raise ConfigError(
                "model.d = inf makes the initial law of (s, r) a point mass; set init.d to a "
                "finite dimension (the width of the initial law)"
            )
        if dof < 3:
            raise ConfigError(f"init.d = {dof} is out of range; accepted: 3 <= d (r has d-1 dof)")
        return int(dof)

    def _initial_support(self, ini: dict) -> tuple[float, float, float, float, float]:
        """(a_lo, a_hi, s_lo, s_hi, r_hi): beyond each, ρ̄_0 has less than 1% of grid.wall_tol."""
        q = 0.01 * self.config["grid.wall_tol"]
        z = float(-special.ndtri(q))  # standard normal quantile of the tail q
        a0 = ini["a"]
        if ini["a_law"] == "point":
            a_lo = a_hi = a0
        elif ini["a_law"] == "gaussian":
            a_lo, a_hi = a0 - z * ini["a_std"], a0 + z * ini["a_std"]
        else:
            a_lo, a_hi = a0 - ini["a_halfwidth"], a0 + ini["a_halfwidth"]
        s_half = z * ini["kappa"] / math.sqrt(self._dof)
        r_hi = chi_quantile(q, ini["kappa"], self._dof - 1) * math.sqrt(
            (self._dof - 1) / self._dof)
        return a_lo, a_hi, ini["s0"] - s_half, ini["s0"] + s_half, r_hi

    def _choose_box(self, ini: dict, grid: dict, pilot) -> tuple[float, ...]:
        """(a_min, a_max, s_min, s_max, r_max): the keys set in [grid], the others from
        ``pilot(support, fixed)`` (finite volumes or particles)."""
        support = self._initial_support(ini)
        fixed = {k: float(grid[k]) for k in WALLS if grid[k] != "auto"}
        reach = pilot(support, fixed) if len(fixed) < len(WALLS) else {}
        box = tuple(fixed.get(k, reach.get(k)) for k in WALLS)
        for i, key in enumerate(WALLS):
            inside = box[i] < support[i] if i in (0, 2) else box[i] > support[i]
            if i == 1 and ini["a_law"] == "point":
                inside = box[1] > box[0] and box[0] < support[0] < box[1]
            if not inside:
                need = f"< {support[i]:.3g}" if i in (0, 2) else f"> {support[i]:.3g}"
                raise ConfigError(
                    f"grid.{key} = {grid[key]} cuts off the initial law; set grid.{key} {need} "
                    'or "auto"'
                )
        return box

    def _pilot_reach(self, support: tuple[float, ...], fixed: dict[str, float]) -> dict:
        """Automatic walls from a coarse pilot run (``PILOT_CELLS``) on a wide box.

        The reach is where each marginal keeps less than ``PILOT_TAIL`` of mass beyond it over
        the whole run; each automatic wall goes 25% of the reached span beyond it.  (The far tails
        of a coarse grid are numerical diffusion: sizing the box by them would waste most cells.
        With this rule the main run's own wall test, mass < grid.wall_tol within grid.wall_cells
        cells of a wall, holds on the default grid and on finer ones.)  A wall of the wide box that
        the pilot's mass approaches is pushed out and the pilot repeated.
        """
        a_lo, a_hi, s_lo, s_hi, r_hi = support
        span_a = max(a_hi - a_lo, abs(a_hi), 1.0)
        span_s = max(s_hi - s_lo, 1.0)
        wide = [a_lo - 2 * span_a, a_hi + 2 * span_a, s_lo - 1.5 * span_s, s_hi + 1.5 * span_s,
                max(3 * r_hi, 1.5)]
        over = {"grid.n_a": PILOT_CELLS[0], "grid.n_s": PILOT_CELLS[1],
                "grid.n_r": PILOT_CELLS[2]}
        found: dict | None = None
        for _ in range(6):
            box = tuple(fixed.get(k, w) for k, w in zip(WALLS, wide, strict=True))
            reach = self._pilot_run(box, over, support)
            margin = [0.1 * (box[1] - box[0])] * 2 + [0.1 * (box[3] - box[2])] * 2 + [0.1 * box[4]]
            near = [WALLS[i] not in fixed and abs(reach[i] - box[i]) < margin[i]
                    for i in range(5)]
            if any(near):
                if found is not None:  # the refinement pass hit a wall: keep the first answer
                    return found
                spans = [wide[1] - wide[0]] * 2 + [wide[3] - wide[2]] * 2 + [wide[4]]
                for i, hit in enumerate(near):
                    if hit:  # double the box towards that wall
                        wide[i] += -spans[i] if i in (0, 2) else spans[i]
                continue
            lo_a, hi_a, lo_s, hi_s, hi_r = reach
            pad_a, pad_s = PAD * (hi_a - lo_a), PAD * (hi_s - lo_s)
            proposal = {"a_min": lo_a - pad_a, "a_max": hi_a + pad_a, "s_min": lo_s - pad_s,
                        "s_max": hi_s + pad_s, "r_max": (1 + PAD) * hi_r}
            if found is not None:
                return proposal
            # one refinement pass on the proposed box (finer cells, less numerical diffusion)
            found, wide = proposal, [proposal[k] for k in WALLS]
        if found is not None:
            return found
        raise SolverError(
            "mass keeps moving towards the walls of the pilot box; set grid.a_min, grid.a_max, "
            "grid.s_min, grid.s_max and grid.r_max explicitly or shorten time.t_end"
        )

    def _pilot_run(self, box: tuple[float, ...], over: dict[str, int],
                   support: tuple[float, ...]) -> tuple[float, ...]:
        """(a_lo, a_hi, s_lo, s_hi, r_hi) reached by the pilot's mass (tail PILOT_TAIL)."""
        from ..runner import loop
        from ..runner.plan import Plan
        from ..runner.trackers import PILOT_MAX_STEPS, Callback, SetupGuard

        pilot = SingleNeuronProblem(self.config.replace(over), pilot_box=box)
        reach = list(support)  # lo_a, hi_a, lo_s, hi_s, hi_r

        def track(rho: np.ndarray, t: float) -> None:
            e = pilot.extent(rho, PILOT_TAIL)
            reach[:] = [min(reach[0], e[0]), max(reach[1], e[1]), min(reach[2], e[2]),
                        max(reach[3], e[3]), max(reach[4], e[4])]
        chunked = loop.ChunkedStepper(pilot.make_stepper(), 100)
        guard = SetupGuard("the pilot run that sizes the automatic box", chunked,
                           PILOT_MAX_STEPS, "set grid.a_min, grid.a_max, grid.s_min, "
                           "grid.s_max and grid.r_max explicitly, or shorten time.t_end")
        try:  # chunks of 100 steps, the extent measured after each
            loop.run(chunked, pilot.initial_state(), 0.0,
                     Plan.of(stop_times(pilot.config, pilot.schedule)[1:]),
                     [Callback(poll=track), guard])
        except loop.StepFailed:
            pass  # the extent so far; the main run reports the failure with its own grid
        lo_a, hi_a, lo_s, hi_s, hi_r = reach
        # (unlike the radial problem, the equilibrium's reach is not added: a 3-D Gibbs solve on
        # the pilot grid costs O(Q² cells) per Newton step; --steady and gibbs runs that reach a
        # wall stop with the wall-mass error, which names the wall to move)
        return lo_a, hi_a, lo_s, hi_s, hi_r

    def _build_grid(self, ini: dict, grid: dict, box) -> None:
        a_min, a_max, s_min, s_max, r_max = box
        n_a, n_s, n_r = grid["n_a"], grid["n_s"], grid["n_r"]
        if ini["a_law"] == "point":
            # put a0 at a cell centre: shift the a-grid, keeping h_a = (a_max − a_min)/n_a
            h = (a_max - a_min) / n_a
            k = math.floor((ini["a"] - a_min) / h)
            a_min = ini["a"] - (k + 0.5) * h
            a_max = a_min + n_a * h
        self.box = (a_min, a_max, s_min, s_max, r_max)
        self.a_edges = np.linspace(a_min, a_max, n_a + 1)
        self.s_edges = np.linspace(s_min, s_max, n_s + 1)
        self.r_edges = np.linspace(0.0, r_max, n_r + 1)
        self.a_centers = 0.5 * (self.a_edges[1:] + self.a_edges[:-1])
        self.s_centers = 0.5 * (self.s_edges[1:] + self.s_edges[:-1])
        self.r_centers = 0.5 * (self.r_edges[1:] + self.r_edges[:-1])
        self.h_a, self.h_s, self.h_r = ((a_max - a_min) / n_a, (s_max - s_min) / n_s, r_max / n_r)
        self.shape = (n_a, n_s, n_r)

    def initial_state(self) -> np.ndarray:
        """Cell averages of ρ̄_0 (finite volumes) or the flat initial particle positions."""
        if self.lagrangian is not None:
            return self.lagrangian.particles.z.ravel().copy()
        ini = self.config.section("init")
        if ini["a_law"] == "point":
            pa = np.zeros(self.shape[0])
            pa[int(np.argmin(np.abs(self.a_centers - ini["a"])))] = 1.0 / self.h_a
        elif ini["a_law"] == "gaussian":
            pa = _normal_law(self.a_edges, ini["a"], ini["a_std"])
        else:
            lo, hi = ini["a"] - ini["a_halfwidth"], ini["a"] + ini["a_halfwidth"]
            e = np.clip(self.a_edges, lo, hi)
            pa = np.diff(e) / (hi - lo) / self.h_a
        ps = _normal_law(self.s_edges, ini["s0"], ini["kappa"] / math.sqrt(self._dof))
        # r = (κ/√d) χ_{d−1}: the chi law with d−1 dof and scale κ √((d−1)/d)
        pr = chi_law(self.r_edges, ini["kappa"] * math.sqrt((self._dof - 1) / self._dof),
                     self._dof - 1)
        return np.ascontiguousarray(pa[:, None, None] * ps[None, :, None] * pr[None, None, :])

    # ---------------------------------------------------------------- output
    @property
    def grid(self) -> dict[str, np.ndarray]:
        out = {"a_edges": self.a_edges, "s_edges": self.s_edges, "r_edges": self.r_edges,
               "a_centers": self.a_centers, "s_centers": self.s_centers,
               "r_centers": self.r_centers}
        if self.lagrangian is not None:
            out["particle_weights"] = self.lagrangian.w
        return out

    @property
    def fields(self) -> dict[str, tuple[int, ...]]:
        n_a, n_s, n_r = self.shape
        extra = {"free_energy": ()} if self.noisy or self.lam > 0 else {}
        parts = ({"particles": (self.lagrangian.w.size, 3)} if self.lagrangian is not None
                 else {})
        return {"risk": (), "mass": (), **extra, "mean_a": (), "mean_s": (), "mean_r": (),
                "marginal_a": (n_a,), "marginal_s": (n_s,), "marginal_r": (n_r,),
                "density": self.shape, **parts}

    def density(self, state: np.ndarray) -> np.ndarray:
        """Cell averages on the output grid: the state itself (finite volumes) or the exact
        conservative deposit of the particle weights (each into the cell holding it)."""
        if self.lagrangian is None:
            return state
        mass = ln.deposit(state.reshape(-1, 3), self.lagrangian.w,
                          (self.a_edges, self.s_edges, self.r_edges))
        return mass / (self.h_a * self.h_s * self.h_r)

    def marginals(self, state: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Densities of a, s and r (each integrates to the mass)."""
        state = self.density(state)
        return (state.sum(axis=(1, 2)) * self.h_s * self.h_r,
                state.sum(axis=(0, 2)) * self.h_a * self.h_r,
                state.sum(axis=(0, 1)) * self.h_a * self.h_s)

    def snapshot(self, state: np.ndarray) -> dict[str, float | np.ndarray]:
        if self.lagrangian is not None:
            return setup.particle_snapshot(self, state)
        ma, ms, mr = self.marginals(state)
        mass = float(ma.sum() * self.h_a)
        return {
            "risk": self.risk(state), "mass": mass,
            **({"free_energy": self.free_energy(state)} if self.noisy else {}),
            "mean_a": float(np.dot(self.a_centers, ma) * self.h_a / mass),
            "mean_s": float(np.dot(self.s_centers, ms) * self.h_s / mass),
            "mean_r": float(np.dot(self.r_centers, mr) * self.h_r / mass),
            "marginal_a": ma, "marginal_s": ms, "marginal_r": mr, "density": state.copy(),
        }

    def min_density(self, state: np.ndarray) -> float:
        return float(np.min(self.density(state)))

    def self_interaction(self, density: np.ndarray, diag) -> float:
        """D = ∫a² E σ(|w| G)² ρ̄ − Σ_q w_q M_q², |w| = sqrt(s² + r²) (MATH.md §5)."""
        k = self.kernel
        s, r = np.meshgrid(self.s_centers, self.r_centers, indexing="ij")
        u_diag = diag(np.sqrt(s * s + r * r).ravel()).reshape(s.shape)  # E σ(|w| G)², × a²
        vol = self.h_a * self.h_s * self.h_r
        e_uu = vol * float(np.einsum("i,ijk,jk->", self.a_centers**2, density, u_diag))
        A = self.h_a * np.einsum("i,ijk->jk", self.a_centers, density)
        m = self.h_s * self.h_r * (k.feats @ A.ravel())
        return e_uu - float(np.dot(k.weights, m * m))

    def risk(self, state: np.ndarray) -> float:
        """R(ρ̄) = R# + 2∫V dρ̄ + Σ_q w_q M_q² with midpoint moments (the discrete energy); for
        particles the risk of the tabulated kernel
        (:func:`..lagrangian.neuron_field.table_risk`)."""
        if self.lagrangian is not None:
            return self.lagrangian.risk(state)
        grid, kern, _ = self.tables()
        return float(stepper3d.discrete_risk(state, grid, kern, self.kernel.r_sharp,
                                             np.empty(self.kernel.v.shape)))

    def extent(self, state: np.ndarray, tail: float) -> tuple[float, float, float, float, float]:
        """(a_lo, a_hi, s_lo, s_hi, r_hi): beyond each, the marginal has mass < ``tail``."""
        ma, ms, mr = self.marginals(state)

        def upper(edges, dens):
            cum = np.cumsum((dens * np.diff(edges))[::-1])[::-1]  # mass in [e_i, end]
            idx = np.nonzero(cum >= tail)[0]
            return edges[idx[-1] + 1] if idx.size else edges[0]

        def lower(edges, dens):
            cum = np.cumsum(dens * np.diff(edges))  # mass in [start, e_{i+1}]
            idx = np.nonzero(cum >= tail)[0]
            return edges[idx[0]] if idx.size else edges[-1]

        return (lower(self.a_edges, ma), upper(self.a_edges, ma), lower(self.s_edges, ms),
                upper(self.s_edges, ms), upper(self.r_edges, mr))

    def make_stepper(self) -> Stepper:
        s = self.config.section("solver")
        if self.lagrangian is not None:
            return self.lagrangian.stepper(s["rtol"])
        if self.noisy:
            return NoisyNeuronStepper(self, s["dt_max"], s["parallel"])
        return NeuronStepper(self, s["cfl"], s["theta"], s["parallel"])

    def free_energy(self, state: np.ndarray) -> float:
        """F = ½R + (λ/2)∫(a² + s² + r²) dρ̄ + β⁻¹∫ρ̄ log(ρ̄/r^(d−2)) (MATH.md §3)."""
        grid, kern, _ = self.tables()
        return float(dd3.free_energy3d(state, grid, kern, self.noise_bundle()))

    def tables(self) -> tuple[Grid3, Kernel3, Xi]:
        """The grid, kernel and ξ bundles the compiled kernels read (:mod:`..fv.bundles`)."""
        k = self.kernel
        grid = Grid3.make(self.a_centers, self.s_centers, self.r_centers, self.h_a, self.h_s,
                          self.h_r)
        return (grid, Kernel3.make(-k.v, k.feats, k.weights),
                Xi.make(self.schedule.kind, self.schedule.params))

    def noise_bundle(self) -> Noise:
        """(R#, λ, β, m = d − 2) of the noisy equation (:class:`..fv.bundles.Noise`)."""
        return Noise.make(self.kernel.r_sharp, self.lam, self.beta, self.d - 2.0)

    def gibbs(self):
        """The self-consistent discrete Gibbs state ρ̄* ∝ r^(d−2) exp(−β Ψ_λ(z; ρ̄*)) by Newton in
        the moment space of the separable kernel (:func:`..fv.driftdiffusion3d.gibbs_state3d`)."""
        if not self.noisy:
            raise ConfigError("the Gibbs state needs noise: set noise.beta to a finite value "
                              "(and noise.lam > 0)")
        grid, kern, _ = self.tables()
        return dd3.gibbs_state3d(grid, kern, self.noise_bundle())

    def check_walls(self, state: np.ndarray, t: float) -> None:
        g = self.config.section("grid")
        k, tol = g["wall_cells"], g["wall_tol"]
        ma, ms, mr = self.marginals(state)
        walls = [
            ("a_min", ma[:k].sum() * self.h_a, self.box[0], "lower"),
            ("a_max", ma[-k:].sum() * self.h_a, self.box[1], "raise"),
            ("s_min", ms[:k].sum() * self.h_s, self.box[2], "lower"),
            ("s_max", ms[-k:].sum() * self.h_s, self.box[3], "raise"),
            ("r_max", mr[-k:].sum() * self.h_r, self.box[4], "raise"),
        ]
        for key, mass, value, verb in walls:
            if mass > tol:
                new = value - abs(value) - 1.0 if verb == "lower" else 2 * abs(value) + 0.5
                raise WallReached(key, value, mass, t, k, tol, new)

    # ------------------------------------------------------------ the a-posteriori estimate
    @property
    def error_order(self) -> float:
        """p of the estimate |R − R_companion| / (2^p − 1), measured (module docstring)."""
        if self.lagrangian is None:
            return FV_ORDER_NOISY if self.noisy else FV_ORDER
        smooth = not any(isinstance(f, PiecewiseLinearActivation)
                         for f in (self.sigma, self.target))
        return LAGRANGIAN_ORDER_ANALYTIC if smooth else LAGRANGIAN_ORDER_KINKED

    @property
    def risk_error_floor(self) -> float:
        """The smallest meaningful risk_error: round-off of a risk evaluation (the runner reports
        max(|R − R_c| / (2^p − 1), this))."""
        return RISK_ERROR_FLOOR * max(1.0, r_sharp(self.target, self.label_noise))

    def companion_config(self) -> Config:
        """The same problem on the same walls at a coarser resolution: half the cells in every
        direction (finite volumes), or 3/4 of the quadrature nodes per direction and a table
        with ``COMPANION_TABLE_DROP`` fewer Chebyshev nodes (characteristics)."""
        cfg = self.config.replace({f"grid.{k}": float(v)
                                   for k, v in zip(WALLS, self.box, strict=True)})
        if self.lagrangian is None:
            g = self.config.section("grid")
            half = {"grid.n_a": max(4, g["n_a"] // 2), "grid.n_s": max(8, g["n_s"] // 2),
                    "grid.n_r": max(8, g["n_r"] // 2)}
            if self.noisy:  # the semi-implicit steps' first-order time error: twice dt_max
                half["solver.dt_max"] = 2.0 * self.config["solver.dt_max"]
            return cfg.replace(half)
        lag = self.config.section("lagrangian")
        coarse = {f"lagrangian.{k}": max(2, lag[k] - lag[k] // 4) for k in ("n_s", "n_r")}
        coarse["lagrangian.n_a"] = max(1, lag["n_a"] - lag["n_a"] // 4)
        coarse["lagrangian.table_s"] = max(4, lag["table_s"] - COMPANION_TABLE_DROP[0])
        coarse["lagrangian.table_r"] = max(2, lag["table_r"] - COMPANION_TABLE_DROP[1])
        return cfg.replace(coarse)

    def attrs(self) -> dict[str, object]:
        k = self.kernel if self.lagrangian is None else self.lagrangian.table.kernel
        extra = {}
        if self.lagrangian is not None:
            lag = self.config.section("lagrangian")
            extra = {"particles": int(self.lagrangian.w.size),
                     **{f"quadrature_{k}": int(lag[k]) for k in ("n_a", "n_s", "n_r")},
                     **{k: int(lag[k]) for k in ("table_s", "table_r")},
                     "table_rank": int(self.lagrangian.table.E.shape[1])}
        return {**dict(zip(WALLS, self.box, strict=True)), "method": self.method, **extra,
                "kernel_terms": k.n_terms,
                "kernel_nodes": k.n_nodes,
                "kernel_rank": int(k.feats.shape[0]),
                "kernel_truncation_error": k.truncation_error}

    def warnings(self) -> list[str]:
        k = self.kernel if self.lagrangian is None else self.lagrangian.table.kernel
        if k.converged:
            return []
        return [
            f"warning: the kernel reached kernel.max_terms / kernel.max_nodes ({k.n_terms} terms, "
            f"{k.n_nodes} nodes) before kernel.tol = {self.config['kernel.tol']:g}; estimated "
            f"relative error {k.truncation_error:.2g}"
        ]

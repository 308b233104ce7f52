"""Problem A of MATH.md §2: separating two isotropic Gaussians; the law ρ̄ of r = |w|.

Data y = ±1, x | y ~ N(0, τ_y² I_d), τ_± = 1 ± Δ.  With α_k(t) = E[σ(tG) He_k(G)]/sqrt(k!),
q = α_0 and μ_2j(d) the sphere moments,

    v(r)        = −½ [ q(τ_+ r) − q(τ_− r) ]
    u_d(r, r')  = ½ Σ_± Σ_j μ_2j(d) α_2j(τ_± r) α_2j(τ_± r')          (rank 2(J+1))
    ψ(r; ρ̄)    = v(r) + ∫ u_d(r, r') ρ̄(dr')
    R(ρ̄)       = 1 + 2∫v dρ̄ + ½ Σ_± Σ_j μ_2j(d) (∫ α_2j(τ_± r) ρ̄(dr))²
    ∂_t ρ̄      = 2ξ(t) ∂_r(ρ̄ ∂_r ψ)

The series in j is truncated where the estimated tail falls below ``kernel.tol`` relative to the
largest diagonal value max_r u_d(r, r) (see :func:`radial_kernel`).

Two methods (``solver.method``; "auto" = Lagrangian without noise, finite volumes with noise):

* finite volumes on the grid of ``grid.n`` cells on [0, r_max] (MATH.md §4), state = the cell
  averages;
* Lagrangian (noiseless only, MATH.md §6): ``lagrangian.mass_cells`` cells of fixed mass whose
  edges and Gauss–Lobatto nodes move with the flow (:mod:`.gaussians_lagrangian`), state = the node
  positions; the density on the same output grid is the exact deposit of the cells.

Both write the same fields; ``error_order`` and ``companion_config`` give the risk-error estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..activations import Activation, get_activation
from ..config import Config
from ..errors import ConfigError, DataError, SolverError, WallReached
from ..fv import driftdiffusion1d as dd1
from ..fv import stepper1d
from ..fv.bundles import Grid1, LowRank, Noise, StepSizes, Xi
from ..fv.lowrank import risk as lowrank_risk
from ..quadrature import sphere_moments
from ..schedule import Schedule, stop_times
from . import gaussians_plots
from .base import WARMUP_RESET, CarriesDt, Problem, Stepper, StepReport, resolve_method
from .gaussians_particles import GaussiansParticles
from .gaussians_schema import SCHEMA
from .radial_laws import chi_law, chi_quantile, gaussian_law, remap  # noqa: F401 (re-exported)
from .registry import register

R_SHARP = 1.0  # E y² for labels ±1
PILOT_CELLS = 800  # cells of the pilot run that sizes the automatic wall
PILOT_TAIL = 1e-15  # the pilot's reach: mass beyond it < PILOT_TAIL


# --------------------------------------------------------------------------------------------
# the reduced kernel
# --------------------------------------------------------------------------------------------
@dataclass
class RadialKernel:
    """v and the low-rank kernel u_d(r, r') = Σ_k λ_k f_k(r) f_k(r') at the points ``r``.

    ``feats`` (K, n) stacks α_2j(τ_+ r) for j = 0..J, then α_2j(τ_− r); ``lam`` = ½ μ_2j(d).
    """

    r: np.ndarray
    v: np.ndarray
    feats: np.ndarray
    lam: np.ndarray
    n_terms: int  # J + 1 even Hermite terms per data scale
    truncation_error: float  # estimated relative tail of the series (0 when exact)
    converged: bool

    def u(self, i: np.ndarray | int, j: np.ndarray | int) -> np.ndarray:
        """u_d(r_i, r_j) from the low-rank form (for tests and diagnostics)."""
        return np.einsum("k,k...,k...->...", self.lam, self.feats[:, i], self.feats[:, j])

    def potential(self, rho: np.ndarray, h: float) -> np.ndarray:
        """ψ at the points for the cell-average density ``rho`` on cells of width h."""
        return self.v + (self.lam * (self.feats @ rho * h)) @ self.feats

    def risk(self, rho: np.ndarray, h: float) -> float:
        """R(ρ̄) = 1 + 2∫v dρ̄ + Σ_k λ_k m_k² with midpoint moments m_k = h Σ_i f_k(r_i) ρ_i."""
        m = self.feats @ rho * h
        return float(R_SHARP + 2.0 * h * np.dot(self.v, rho) + np.dot(self.lam, m * m))


def _tail_terms(alpha_even: list[np.ndarray], mu: np.ndarray) -> np.ndarray:
    """term_j = ½ μ_2j Σ_± max_r α_2j(τ_± r)²: bounds the j-th term of u_d anywhere on the grid."""
    out = np.zeros(len(mu))
    for a in alpha_even:
        out += 0.5 * mu * np.max(a * a, axis=1)
    return out


def radial_kernel(act: Activation, delta: float, d: float, r: np.ndarray,
                  tol: float = 1e-12, max_terms: int = 2048) -> RadialKernel:
    """Build v and the truncated series of u_d at the points r (MATH.md §2).

    Truncation: with term_j as in :func:`_tail_terms` and scale = max_r u_d(r, r), keep
    j <= J for the smallest J with (J + 1) max(term_{J+1..J+4}) <= tol · scale.  For the sphere
    moments' geometric (large d) or algebraic (small d, kinked σ: term_j ~ j^-p, p > 2) decay this
    overestimates the neglected tail Σ_{j>J} term_j.  The number of terms doubles until the rule is
    met or ``max_terms`` is reached; then the estimate is reported as ``truncation_error``.
    """
    r = np.asarray(r, dtype=np.float64)
    taus = (1.0 + delta, 1.0 - delta)
    if math.isinf(d):
        alphas = [act.hermite(tau * r, 0) for tau in taus]
        q = [a[0] for a in alphas]
        feats = np.stack(q)
        v = -0.5 * (q[0] - q[1])
        return RadialKernel(r, v, feats, np.array([0.5, 0.5]), 1, 0.0, True)
    window = 4
    jmax = 16
    while True:
        jcap = min(jmax, max_terms - 1)
        kmax = 2 * (jcap + window)
        alphas = [act.hermite(tau * r, kmax) for tau in taus]
        even = [a[0::2] for a in alphas]  # α_2j, j = 0..jcap+window
        mu = sphere_moments(d, jcap + window)
        terms = _tail_terms(even, mu)
        diag = sum(0.5 * mu[:, None] * a * a for a in even)
        scale = float(np.max(np.sum(diag, axis=0))) or 1.0
        tails = np.array([(j + 1) * terms[j + 1 : j + 1 + window].max() for j in range(jcap + 1)])
        ok = np.nonzero(tails <= tol * scale)[0]
        if ok.size:
            J, err, converged = int(ok[0]), float(tails[ok[0]] / scale), True
            break
        if jcap >= max_terms - 1:
            J, err, converged = jcap, float(tails[jcap] / scale), False
            break
        jmax *= 2
    q = [a[0] for a in alphas]
    v = -0.5 * (q[0] - q[1])
    feats = np.concatenate([e[: J + 1] for e in even])
    lam = np.concatenate([0.5 * mu[: J + 1]] * 2)
    return RadialKernel(r, v, np.ascontiguousarray(feats), lam, J + 1, err, converged)


# --------------------------------------------------------------------------------------------
# the problem
# --------------------------------------------------------------------------------------------
class RadialStepper(Stepper):
    """Compiled SSP-RK3 for the radial equation (see :mod:`meanfield_pde.fv.stepper1d`)."""

    def __init__(self, h: float, kernel: RadialKernel, schedule: Schedule, cfl: float,
                 theta: float):
        self.h, self.cfl, self.theta = float(h), float(cfl), float(theta)
        self.kern = LowRank.make(kernel.v, kernel.feats, kernel.lam)
        self.xi = Xi.make(schedule.kind, schedule.params)
        n, nk = kernel.feats.shape[1], kernel.feats.shape[0]
        self.work = tuple(np.empty(n) for _ in range(5)) + (np.empty(nk),)

    def advance(self, state: np.ndarray, t: float, t_stop: float, max_steps: int) -> StepReport:
        t, steps, rej, status, dt, umax = stepper1d.advance(
            state, t, t_stop, max_steps, self.h, self.kern, self.xi, self.cfl, self.theta,
            self.work)
        return StepReport(t, steps, rej, status, dt, umax)


class NoisyRadialStepper(CarriesDt):
    """Drift–diffusion steps of the noisy radial equation (:mod:`..fv.driftdiffusion1d`):
    semi-implicit with the interaction frozen over a step (free energy non-increasing at every
    step, no parabolic dt limit) or explicit SSP-RK3 with the Scharfetter–Gummel flux."""

    def __init__(self, problem: GaussiansProblem, scheme: str, dt_max: float, cfl: float):
        self.p, self.scheme, self.dt_max, self.cfl = problem, scheme, dt_max, cfl
        n, nk = problem.centers.size, problem.kernel.lam.size
        self.work = dd1.noisy_workspace(n, nk)
        k, p = problem.kernel, problem
        self.grid, self.kern = Grid1.make(p.h, p.centers), LowRank.make(k.v, k.feats, k.lam)
        self.noise = Noise.make(R_SHARP, p.lam, p.beta, p.d - 1.0)
        self.xi = Xi.make(p.schedule.kind, p.schedule.params)
        self.dt = 0.0

    def advance(self, state: np.ndarray, t: float, t_stop: float, max_steps: int) -> StepReport:
        tables = (self.grid, self.kern, self.noise, self.xi)
        if self.scheme == "explicit":
            out = dd1.advance_noisy_rk3(
                state, t, t_stop, max_steps, *tables, 2.0 * self.cfl,
                self.work)  # cfl <= 1 there (forward-Euler rate), <= 0.5 here
            return StepReport(*out[:6])
        t, steps, rej, status, self.dt, f = dd1.advance_noisy(
            state, t, t_stop, max_steps, *tables, StepSizes.make(self.dt, self.dt_max),
            self.work)
        return StepReport(t, steps, rej, status, self.dt, f)


def read_radial_density(file: str, time: float | str) -> tuple[np.ndarray, np.ndarray]:
    """(r_edges, density) of the radial PDE result ``file`` at ``time`` (or "last") — the
    initial law ``init.kind = "from_file"`` of the PDE and of particle SGD.  For a Lagrangian
    result: its cell edges and exact cell averages Δm_i / (X_{i+1} − X_i)."""
    from .. import io as storage

    if not file:
        raise ConfigError("init.kind = 'from_file' needs init.file = path of a result file")
    res = storage.load(file)
    if res.problem != "gaussians":
        raise DataError(f"init.file {file} holds a {res.problem!r} result, not 'gaussians'")
    if "r_edges" not in res.grid or "density" not in res.fields:
        raise DataError(f"init.file {file} holds no radial density (an SGD or other result); "
                        "pass a file written by a PDE solve of 'gaussians'")
    if res.n_snapshots == 0:
        raise DataError(f"init.file {file} has no snapshot yet")
    idx = res.n_snapshots - 1 if time == "last" else res.index_of_time(time)
    if "cell_edges" in res.fields and "cell_masses" in res.grid:  # a Lagrangian result:
        edges = np.asarray(res.fields["cell_edges"][idx])  # its cells hold exact masses
        if np.all(np.diff(edges) > 0):
            return edges, np.asarray(res.grid["cell_masses"]) / np.diff(edges)
    return np.asarray(res.grid["r_edges"]), np.asarray(res.fields["density"][idx])


@register
class GaussiansProblem(Problem):
    """The radial problem on a cell-centred grid of n cells on [0, r_max] with no-flux walls."""

    name = "gaussians"
    schema = SCHEMA
    plot_run = staticmethod(gaussians_plots.plot_run)
    figsize = gaussians_plots.FIGSIZE
    plot_equilibrium = staticmethod(gaussians_plots.plot_equilibrium)
    equilibrium_figsize = gaussians_plots.EQUILIBRIUM_FIGSIZE
    walls = ("r_max",)
    particle_coords = ("r",)
    particle_field = "r"
    particle_model = GaussiansParticles
    marginal_fields = {"r": "density"}

    def __init__(self, cfg: Config, pilot_r_max: float | None = None):
        self._pilot = pilot_r_max
        if cfg.problem != self.name:
            raise ConfigError(f"configuration is for {cfg.problem!r}, not {self.name!r}")
        self.config = cfg
        self.method = resolve_method(cfg)
        m = cfg.section("model")
        self.delta, self.d = m["delta"], m["d"]
        self.activation = get_activation(m["activation"], m["activation_params"])
        self.schedule = Schedule.from_config(cfg)
        noise = cfg.section("noise")
        self.beta, self.lam = noise["beta"], noise["lam"]
        self.noisy = math.isfinite(self.beta)
        if self.noisy and math.isinf(self.d):
            raise ConfigError("noise.beta is finite but model.d = inf: the noisy radial equation "
                              "needs the r^(d-1) weight of a finite d; set model.d")
        if self.noisy and self.lam == 0.0 and self.activation.bounded:
            raise ConfigError(
                f"noise.beta = {self.beta:g} with noise.lam = 0 and the bounded activation "
                f"{self.activation.name!r}: the Gibbs state ∝ r^(d-1) exp(-beta psi) is not "
                "normalisable; set noise.lam > 0 (e.g. noise.lam = 0.01)"
            )
        ini, grid = cfg.section("init"), cfg.section("grid")
        self._source = self._read_source(ini) if ini["kind"] == "from_file" else None
        self.lagrangian = None
        if self.method == "lagrangian":
            from .gaussians_lagrangian import build_lagrangian

            self.lagrangian = build_lagrangian(self, ini, cfg.section("lagrangian"))
        self.r_max = self._choose_r_max(ini, grid)
        n = grid["n"]
        self.edges = np.linspace(0.0, self.r_max, n + 1)
        self.centers = 0.5 * (self.edges[:-1] + self.edges[1:])
        self.h = self.r_max / n
        self._kernel: RadialKernel | None = None

    @property
    def kernel(self) -> RadialKernel:
        """v and the low-rank kernel at the output grid's centres (built on first use: the
        Lagrangian method evaluates its own features at the moving nodes)."""
        if self._kernel is None:
            kc = self.config.section("kernel")
            self._kernel = radial_kernel(self.activation, self.delta, self.d, self.centers,
                                         kc["tol"], kc["max_terms"])
        return self._kernel

    @classmethod
    def warmup(cls, cfg: Config) -> None:
        """Compile (or load from the on-disk cache) every kernel ``cfg`` uses, on a tiny grid."""
        tiny = cfg.replace({"grid.n": 8, "grid.r_max": 4.0, "init.kind": "gaussian",
                            "init.mean": 1.0, "init.std": 0.2, "time.t_end": 1e-3,
                            "lagrangian.mass_cells": 4, "lagrangian.pilot_t_end": "auto"},
                           reset=WARMUP_RESET)
        p = cls(tiny)
        p.make_stepper().advance(p.initial_state(), 0.0, 1e-3, 1)
        p.risk(p.initial_state())

    # ---------------------------------------------------------------- initial law and domain
    def _chi_dof(self, ini: dict) -> int:
        dof = ini["d"] or self.d
        if math.isinf(dof):
            raise ConfigError(
                "init.kind = 'chi' with model.d = inf is a point mass (no finite width); "
                "set init.d to a finite dimension or use init.kind = 'gaussian'"
            )
        return int(dof)

    def _read_source(self, ini: dict) -> tuple[np.ndarray, np.ndarray]:
        return read_radial_density(ini["file"], ini["time"])

    def _upper_support(self, ini: dict) -> float:
        """An r beyond which ρ̄_0 has mass < 1e-15."""
        if ini["kind"] == "chi":
            return chi_quantile(1e-15, ini["kappa"], self._chi_dof(ini))
        if ini["kind"] == "gaussian":
            return ini["mean"] + 8.1 * ini["std"]
        edges, dens = self._source
        tail = np.cumsum((dens * np.diff(edges))[::-1])[::-1]  # mass in [e_i, r_max]
        beyond = np.nonzero(tail < 1e-15 * tail[0])[0]
        return float(edges[beyond[0]]) if beyond.size else float(edges[-1])

    def _choose_r_max(self, ini: dict, grid: dict) -> float:
        r_hi = self._upper_support(ini)
        if grid["r_max"] == "auto":
            if self._pilot:
                return float(self._pilot)
            if self.lagrangian is not None:  # the Lagrangian pilot knows the reach
                return float(1.5 * max(self.lagrangian.reach, r_hi))
            return self._pilot_reach(r_hi)
        r_max = float(grid["r_max"])
        if r_max <= r_hi:
            raise ConfigError(
                f"grid.r_max = {r_max:g} cuts off the initial law (it extends to r = {r_hi:.3g}); "
                f"set grid.r_max > {r_hi:.3g} or \"auto\""
            )
        return r_max

    def _pilot_reach(self, r_hi: float) -> float:
        """Automatic wall from a coarse pilot run.

        ``PILOT_CELLS`` cells on a wide domain find how far mass travels by t_end; r_max = 1.5 ×
        that reach (the 1 − PILOT_TAIL quantile), at least 1.5 r_hi.  The pilot's domain doubles
        while its own mass reaches its wall."""
        from ..runner import loop
        from ..runner.plan import Plan
        from ..runner.trackers import PILOT_MAX_STEPS, Callback, SetupGuard

        big = max(10.0 * r_hi, r_hi + 10.0)
        t_end = self.config["time.t_end"]
        for _ in range(6):
            pilot = GaussiansProblem(self.config.replace(
                {"grid.n": PILOT_CELLS, "grid.r_max": "auto", "solver.method": "fv"}),
                pilot_r_max=big)
            found = [r_hi]

            def track(rho: np.ndarray, t: float, pilot=pilot, found=found) -> None:
                cdf = np.cumsum(rho) * pilot.h
                found[0] = max(found[0],
                               pilot.edges[1 + np.searchsorted(cdf, cdf[-1] - PILOT_TAIL)])
            chunked = loop.ChunkedStepper(pilot.make_stepper(), 500)
            guard = SetupGuard("the pilot run that sizes the automatic wall", chunked,
                               PILOT_MAX_STEPS, "set grid.r_max explicitly, or shorten "
                               "time.t_end")
            try:  # chunks of 500 steps, the reach measured after each
                loop.run(chunked, pilot.initial_state(), 0.0,
                         Plan.of(stop_times(pilot.config, pilot.schedule)[1:]),
                         [Callback(poll=track), guard])
            except loop.StepFailed:
                return big  # the main run will report the failure with its own grid
            reach = found[0]
            if self.noisy:  # the domain must also hold the equilibrium
                gibbs = pilot.gibbs().density
                cdf = np.cumsum(gibbs) * pilot.h
                reach = max(reach, pilot.edges[1 + np.searchsorted(cdf, cdf[-1] - 1e-12)])
            if reach < 0.8 * big:
                # finer grids move mass slightly further than the coarse pilot: margin 1.5
                return float(max(1.5 * reach, 1.5 * r_hi))
            big *= 2.0
        raise SolverError(
            f"mass keeps moving outwards beyond r = {big:.3g} by t = {t_end:g}; set grid.r_max "
            "explicitly (and expect a large grid) or shorten time.t_end"
        )

    def initial_state(self) -> np.ndarray:
        if self.lagrangian is not None:
            return self.lagrangian.initial_state()
        ini = self.config.section("init")
        if ini["kind"] == "chi":
            rho = chi_law(self.edges, ini["kappa"], self._chi_dof(ini))
        elif ini["kind"] == "gaussian":
            rho = gaussian_law(self.edges, ini["mean"], ini["std"])
        else:
            rho = remap(*self._source, self.edges)
        return np.ascontiguousarray(rho, dtype=np.float64)

    # ---------------------------------------------------------------- per-snapshot output
    @property
    def grid(self) -> dict[str, np.ndarray]:
        out = {"r_edges": self.edges, "r_centers": self.centers}
        if self.lagrangian is not None:
            out.update(self.lagrangian.grid)
        return out

    @property
    def fields(self) -> dict[str, tuple[int, ...]]:
        extra = {"free_energy": ()} if self.noisy else {}
        lagr = self.lagrangian.fields if self.lagrangian is not None else {}
        return {"risk": (), "mass": (), "mean_r": (), **extra, "density": (self.centers.size,),
                **lagr}

    def snapshot(self, state: np.ndarray) -> dict[str, float | np.ndarray]:
        if self.lagrangian is not None:
            return self.lagrangian.snapshot(state, self.edges)
        mass = float(np.sum(state) * self.h)
        return {
            "risk": self.risk(state),
            "mass": mass,
            "mean_r": float(np.dot(self.centers, state) * self.h / mass),
            **({"free_energy": self.free_energy(state)} if self.noisy else {}),
            "density": state.copy(),
        }

    def self_interaction(self, density: np.ndarray, diag) -> float:
        """D = ∫U(r, r) ρ̄(dr) − ∬U ρ̄ ρ̄, U(r, r) = ½ Σ_± E σ(τ_± r G)² (MATH.md §5)."""
        r, h, k = self.centers, self.h, self.kernel
        u_diag = 0.5 * (diag((1 + self.delta) * r) + diag((1 - self.delta) * r))
        m = k.feats @ density * h
        return float(h * density @ u_diag - np.dot(k.lam, m * m))

    def risk(self, state: np.ndarray) -> float:
        """R(ρ̄) of the state: the cell-average density (MATH.md §2), or the Lagrangian nodes."""
        if self.lagrangian is not None:
            return self.lagrangian.risk(state)
        k = self.kernel
        return float(lowrank_risk(state, self.h, k.v, k.feats, k.lam, R_SHARP))

    def potential(self, state: np.ndarray) -> np.ndarray:
        """ψ(r_i; ρ̄) at the cell centres."""
        if self.lagrangian is not None:
            return self.lagrangian.potential(state, self.centers)
        return self.kernel.potential(state, self.h)

    def make_stepper(self) -> Stepper:
        s = self.config.section("solver")
        if self.lagrangian is not None:
            return self.lagrangian.stepper(s["rtol"])
        if self.noisy:
            return NoisyRadialStepper(self, s["noisy_scheme"], s["dt_max"], s["cfl"])
        kernel = self.kernel
        if self.lam > 0.0:  # the l2 penalty enters the transport as the potential λ r²/2
            kernel = RadialKernel(kernel.r, kernel.v + 0.5 * self.lam * self.centers**2,
                                  kernel.feats, kernel.lam, kernel.n_terms,
                                  kernel.truncation_error, kernel.converged)
        return RadialStepper(self.h, kernel, self.schedule, s["cfl"], s["theta"])

    def free_energy(self, state: np.ndarray) -> float:
        """F = ½R + (λ/2)∫r² dρ̄ + β⁻¹∫ρ̄ log(ρ̄/r^(d−1)) (MATH.md §2; ½R + λ-term if β = ∞)."""
        k = self.kernel
        if not self.noisy:
            return 0.5 * self.risk(state) + 0.5 * self.lam * self.h * float(
                np.dot(self.centers**2, state))
        return float(dd1.free_energy(state, self.h, self.centers, k.v, k.feats, k.lam, R_SHARP,
                                     self.lam, self.beta, self.d - 1.0))

    def gibbs(self):
        """The self-consistent discrete Gibbs state ρ̄* ∝ r^(d−1) exp(−β(ψ(ρ̄*) + λr²/2)) by
        Newton in the moment space of the low-rank kernel (:func:`..gibbs.gibbs_fixed_point`)."""
        from ..fv.gibbs import gibbs_fixed_point

        if not self.noisy:
            raise ConfigError("the Gibbs state needs noise: set noise.beta to a finite value "
                              "(and noise.lam > 0)")
        k = self.kernel
        return gibbs_fixed_point(self.centers, self.h, k.v, k.feats, k.lam, R_SHARP, self.lam,
                                 self.beta, self.d - 1.0)

    def check_walls(self, state: np.ndarray, t: float) -> None:
        g = self.config.section("grid")
        if self.lagrangian is not None:
            near = self.lagrangian.mass_beyond(state, float(self.edges[-1 - g["wall_cells"]]))
        else:
            near = float(np.sum(state[-g["wall_cells"] :]) * self.h)
        if near > g["wall_tol"]:
            raise WallReached("r_max", self.r_max, near, t, g["wall_cells"], g["wall_tol"],
                              2 * self.r_max)

    def attrs(self) -> dict[str, object]:
        if self.lagrangian is not None:
            return {"r_max": self.r_max, "method": "lagrangian", **self.lagrangian.attrs()}
        k = self.kernel
        return {
            "r_max": self.r_max,
            "method": "fv",
            "kernel_terms": k.n_terms,
            "kernel_rank": int(k.feats.shape[0]),
            "kernel_truncation_error": k.truncation_error,
        }

    @classmethod
    def with_walls(cls, cfg: Config, attrs: dict) -> Config:
        """``cfg`` with the wall a run chose, its method (a file without a "method" attribute was
        written by finite volumes) and, for a Lagrangian run, its pilot's horizon (the cells are
        graded by a pilot to that time: a resume rebuilds the same cells)."""
        out = super().with_walls(cfg, attrs)
        # the method that wrote the file (files from before the Lagrangian method: finite volumes)
        out = out.replace({"solver.method": str(attrs.get("method", "fv"))})
        if "pilot_t_end" in attrs:
            out = out.replace({"lagrangian.pilot_t_end": float(attrs["pilot_t_end"])})
        return out

    def min_density(self, state: np.ndarray) -> float:
        """The smallest cell average (negative if two Lagrangian cell edges crossed)."""
        if self.lagrangian is not None:
            return float(np.min(self.lagrangian.densities(state)))
        return float(np.min(state))

    # ------------------------------------------------------------ the error estimate
    @property
    def error_order(self) -> float:  # type: ignore[override]
        """The order p of the Richardson estimate |R − R_companion| / (q^p − 1), measured (the
        numbers are in :mod:`.gaussians_lagrangian`)."""
        from .gaussians_lagrangian import FV_ORDER, LAGRANGIAN_ORDER, NOISY_ORDER

        if self.lagrangian is not None:
            return LAGRANGIAN_ORDER
        if self.noisy and self.config["solver.noisy_scheme"] == "semi-implicit":
            return NOISY_ORDER
        return FV_ORDER

    @property
    def companion_ratio(self) -> float:  # type: ignore[override]
        """Mesh size of the companion over this run's: mass cells n / ⌊3n/4⌋ (Lagrangian), or
        grid cells n / ⌊n/2⌋."""
        from .gaussians_lagrangian import companion_cells

        if self.lagrangian is not None:
            n = self.config["lagrangian.mass_cells"]
            return n / companion_cells(n)
        return self.config["grid.n"] / max(8, self.config["grid.n"] // 2)

    @property
    def risk_error_floor(self) -> float:
        """The Lagrangian solver's time-integration error, which the companion (same
        solver.rtol) does not see: 0.1 × solver.rtol (measured: rtol 1e-10 against 1e-12 moves
        the risk by 3e-12 on the default and 6e-12 at d = 20).  Finite volumes: 0."""
        return 0.1 * self.config["solver.rtol"] if self.lagrangian is not None else 0.0

    def companion_config(self) -> Config | None:
        """The same run at a coarser resolution between the same walls: ¾ of the mass cells
        (same grading and pilot; :mod:`.gaussians_lagrangian` says why not half), or half the
        finite-volume cells — with noise and the semi-implicit scheme also twice solver.dt_max
        (its first-order time error dominates)."""
        cfg = self.config.replace({"grid.r_max": self.r_max, "solver.method": self.method})
        if self.lagrangian is not None:
            from .gaussians_lagrangian import companion_cells

            cells = companion_cells(self.config["lagrangian.mass_cells"])
            return cfg.replace({"lagrangian.mass_cells": cells,
                                "lagrangian.pilot_t_end": self.lagrangian.pilot_t_end})
        cfg = cfg.replace({"grid.n": max(8, self.config["grid.n"] // 2)})
        if self.noisy and self.config["solver.noisy_scheme"] == "semi-implicit":
            cfg = cfg.replace({"solver.dt_max": 2.0 * self.config["solver.dt_max"]})
        return cfg

    def warnings(self) -> list[str]:
        k = self.lagrangian.kernel if self.lagrangian is not None else self.kernel
        if k.converged:
            return []
        tol = self.config["kernel.tol"]
        return [
            f"warning: the kernel series reached kernel.max_terms = {k.n_terms} before "
            f"kernel.tol = {tol:g}; estimated relative truncation error {k.truncation_error:.2g} "
            "(raise kernel.max_terms to reduce it)"
        ]

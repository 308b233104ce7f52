"""The time loop: problem-agnostic, from the initial law to t_end, writing snapshots as it goes.

For each stop time (output times and schedule breakpoints) the compiled stepper advances the state
in chunks of at most ``CHUNK_STEPS`` steps; between chunks the loop checks the walls, updates the
progress bar and the step statistics.  Snapshots land exactly on the requested output times and are
appended to the result file immediately, so a crash loses nothing already written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .config import Config
from .errors import SolverError
from .fv.stepper1d import DT_UNDERFLOW, MAX_STEPS, NONFINITE, REACHED
from .problems import Problem, build_problem, problem_class
from .schedule import output_times, stop_times
from .storage import ResultWriter

CHUNK_STEPS = 2000


@dataclass
class RunSummary:
    """What a finished run reports (also stored as root attributes of the result file)."""

    path: Path
    problem: str
    t_end: float
    n_snapshots: int
    risk_initial: float
    risk_final: float
    n_steps: int
    n_rejected: int
    wall_seconds: float
    compile_seconds: float
    setup_seconds: float
    mass_drift: float  # max relative |mass − mass_0| over the snapshots
    min_density: float
    risk_increase: float  # max over snapshots of E_{k+1} − E_k, E = F (noisy) or R (<= 0)
    warnings: list[str] = field(default_factory=list)
    energy_name: str = "risk"
    free_energy_final: float | None = None
    steady: bool | None = None  # --steady: reached the tolerance?
    steady_rate: float | None = None

    def lines(self) -> list[str]:
        return [
            f"wrote {self.path}",
            f"  problem {self.problem}, t in [0, {self.t_end:g}], {self.n_snapshots} snapshots, "
            f"{self.n_steps} steps ({self.n_rejected} rejected)",
            f"  risk {self.risk_initial:.10g} -> {self.risk_final:.10g}",
            f"  mass drift {self.mass_drift:.2e}, min density {self.min_density:.3g}, "
            f"max {self.energy_name.replace('_', ' ')} increase "
            f"{max(self.risk_increase, 0.0):.2e}",
            f"  wall time {self.wall_seconds:.2f} s (+ {self.compile_seconds:.2f} s compile/load, "
            f"{self.setup_seconds:.2f} s setup)",
        ] + ([f"  free energy {self.free_energy_final:.12g}"]
             if self.free_energy_final is not None else []) + (
            [f"  steady state {'reached' if self.steady else 'NOT reached'} at t = "
             f"{self.t_end:g} (relative dF/dt = {self.steady_rate:.2e})"]
            if self.steady is not None else [])


def default_output_path(problem: str, directory: str | Path = "runs") -> Path:
    """``runs/<problem>-<UTC time>.h5``, never an existing file."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = Path(directory) / f"{problem}-{stamp}"
    path, i = base.with_suffix(".h5"), 1
    while path.exists():
        path = Path(f"{base}-{i}.h5")
        i += 1
    return path


def _status_error(status: int, t: float, problem: Problem) -> SolverError:
    if status == NONFINITE:
        return SolverError(
            f"the density became non-finite at t = {t:.6g}; lower solver.cfl or refine grid.n, "
            "and check that the activation parameters are sensible"
        )
    if status == DT_UNDERFLOW:
        return SolverError(
            f"the time step underflowed at t = {t:.6g} (velocity too large for the grid); "
            "lower solver.cfl or check grid.r_max and the activation"
        )
    return SolverError(f"stepper stopped with status {status} at t = {t:.6g}")


def _steady(rate: float | None, rho_rate: float | None, cfg: Config) -> bool:
    """Both steady-state criteria: relative dF/dt and relative L1 change of ρ per unit time."""
    return (rate is not None and rho_rate is not None and abs(rate) <= cfg["time.steady_tol"]
            and rho_rate <= cfg["time.steady_tol_rho"])


def solve(cfg: Config, output: str | Path | None = None, *, overwrite: bool = False,
          progress: bool = False, problem: Problem | None = None,
          on_warning: Callable[[str], None] | None = None, steady: bool = False) -> RunSummary:
    """Solve the mean-field PDE described by ``cfg`` and write the result file.

    Parameters
    ----------
    cfg: resolved configuration (see :mod:`meanfield_pde.config`).
    output: HDF5 path; default ``runs/<problem>-<UTC time>.h5``.
    overwrite: replace an existing ``output`` (otherwise that is an error).
    progress: show a progress bar on stderr.
    on_warning: called with each one-line warning of the problem before the run starts.
    steady: after t_end, keep going in intervals that double in length, writing a snapshot after
        each, until the relative free-energy decrease per unit time is below
        ``time.steady_tol`` and the relative L1 change of ρ per unit time is below
        ``time.steady_tol_rho`` (or t reaches ``time.steady_t_max``).
    """
    t0 = time.perf_counter()
    problem_class(cfg.problem).warmup(cfg)  # compile, or load the cached kernels
    compile_seconds = time.perf_counter() - t0
    problem = problem or build_problem(cfg)  # kernel tables, initial law, automatic wall
    for w in problem.warnings():
        if on_warning is not None:
            on_warning(w)
    stepper = problem.make_stepper()
    state = problem.initial_state()
    setup_seconds = time.perf_counter() - t0 - compile_seconds

    path = Path(output) if output is not None else default_output_path(cfg.problem)
    writer = ResultWriter(
        path, problem=cfg.problem, config=cfg.to_dict(), grid=problem.grid,
        fields=problem.fields, attrs={"seed": "none (deterministic solver)", **problem.attrs()},
        overwrite=overwrite,
    )
    outputs = output_times(cfg)
    stops = stop_times(cfg, problem.schedule)
    is_output = np.isin(stops, outputs)
    max_steps = cfg["solver.max_steps"]

    snap = problem.snapshot(state)
    writer.append(0.0, snap)
    energy = "free_energy" if "free_energy" in snap else "risk"
    mass0, risk0 = snap["mass"], snap["risk"]
    risks, masses, energies, min_density = [risk0], [mass0], [snap[energy]], float(state.min())

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=float(stops[-1]), unit="t", desc=cfg.problem, leave=False,
                   disable=None,  # only on a terminal
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| t={n:.3g}/{total:.3g} "
                              "[{elapsed}<{remaining}]{postfix}")
    t, n_steps, n_rejected = 0.0, 0, 0
    t_wall = time.perf_counter()
    steady_ok, rate, rho_rate = None, None, None
    writer_times, last_state = [0.0], state.copy()
    plan = list(zip(stops[1:], is_output[1:], strict=True))
    interval = float(stops[-1] - stops[-2]) if len(stops) > 1 else 1.0
    try:
        i = 0
        while i < len(plan) or steady:
            if i >= len(plan):  # --steady: extend the plan past t_end
                if _steady(rate, rho_rate, cfg):
                    steady_ok = True
                    break
                if t >= cfg["time.steady_t_max"]:
                    steady_ok = False
                    break
                interval *= 2.0
                plan.append((min(t + interval, cfg["time.steady_t_max"]), True))
            t_stop, out = plan[i]
            i += 1
            while t < t_stop:
                rep = stepper.advance(state, t, float(t_stop), CHUNK_STEPS)
                n_steps += rep.steps
                n_rejected += rep.rejected
                if bar is not None:
                    bar.update(min(rep.t, bar.total) - min(t, bar.total))
                t = rep.t
                if rep.status not in (REACHED, MAX_STEPS):
                    raise _status_error(rep.status, t, problem)
                problem.check_walls(state, t)
                if n_steps >= max_steps:
                    raise SolverError(
                        f"solver.max_steps = {max_steps} reached at t = {t:.6g}; raise "
                        "solver.max_steps or shorten time.t_end"
                    )
            t = float(t_stop)
            if out:
                snap = problem.snapshot(state)
                writer.append(t, snap)
                if i >= len(stops) - 1:  # past t_end (or at it): the steady-state criterion
                    span = t - writer_times[-1]
                    rate = (energies[-1] - snap[energy]) / (span * max(abs(snap[energy]), 1e-300))
                    rho_rate = (float(np.sum(np.abs(state - last_state)))
                                / (span * float(np.sum(np.abs(state)))))
                last_state = state.copy()
                writer_times.append(t)
                risks.append(snap["risk"])
                masses.append(snap["mass"])
                energies.append(snap[energy])
                min_density = min(min_density, float(state.min()))
                if bar is not None:
                    bar.set_postfix_str(f"risk={snap['risk']:.6g}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t_wall
    if steady and steady_ok is None:
        steady_ok = _steady(rate, rho_rate, cfg)
    risks_a, masses_a, energies_a = np.array(risks), np.array(masses), np.array(energies)
    summary = RunSummary(
        path=path, problem=cfg.problem, t_end=t, n_snapshots=writer.n_snapshots,
        risk_initial=risk0, risk_final=float(risks_a[-1]), n_steps=n_steps,
        n_rejected=n_rejected, wall_seconds=wall, compile_seconds=compile_seconds,
        setup_seconds=setup_seconds,
        mass_drift=float(np.max(np.abs(masses_a - mass0)) / mass0),
        min_density=min_density + 0.0,  # no "-0" in reports
        risk_increase=float(np.max(np.diff(energies_a))) if energies_a.size > 1 else 0.0,
        warnings=problem.warnings(), energy_name=energy,
        free_energy_final=float(energies_a[-1]) if energy == "free_energy" else None,
        steady=steady_ok if steady else None, steady_rate=rate if steady else None,
    )
    extra = ({"steady_reached": bool(steady_ok), "steady_rate": float(rate),
              "steady_rho_rate": float(rho_rate)} if steady else {})
    writer.finish(
        **extra,
        wall_seconds=wall, compile_seconds=compile_seconds, setup_seconds=setup_seconds,
        n_steps=n_steps,
        n_rejected=n_rejected, mass_drift=summary.mass_drift,
        min_density=summary.min_density, risk_final=summary.risk_final,
    )
    return summary


@dataclass
class GibbsSummary:
    """What :func:`solve_gibbs` reports."""

    path: Path
    problem: str
    free_energy: float
    risk: float
    iterations: int
    residual: float
    wall_seconds: float

    def lines(self) -> list[str]:
        return [
            f"wrote {self.path}",
            f"  self-consistent Gibbs state of {self.problem}: free energy "
            f"{self.free_energy:.12g}, risk {self.risk:.10g}",
            f"  Newton iterations {self.iterations}, relative residual {self.residual:.1e}, "
            f"{self.wall_seconds:.2f} s",
        ]


def solve_gibbs(cfg: Config, output: str | Path | None = None, *,
                overwrite: bool = False) -> GibbsSummary:
    """Solve the self-consistent Gibbs fixed point ρ̄* ∝ w exp(−β Ψ_λ(ρ̄*)) directly (Newton in the
    moment space of the low-rank kernel) and write it as a one-snapshot result file (t = 0,
    root attribute ``solution = "gibbs_fixed_point"``)."""
    t0 = time.perf_counter()
    problem = build_problem(cfg)
    res = problem.gibbs()
    if not res.converged:
        raise SolverError(
            f"the Gibbs fixed point did not converge (residual {res.residual:.1e} after "
            f"{res.iterations} Newton steps); try a finer grid or a smaller noise.beta"
        )
    state = np.ascontiguousarray(res.density.reshape(problem.initial_state().shape))
    problem.check_walls(state, float("inf"))
    wall = time.perf_counter() - t0
    path = Path(output) if output is not None else default_output_path(cfg.problem + "-gibbs")
    writer = ResultWriter(
        path, problem=cfg.problem, config=cfg.to_dict(), grid=problem.grid,
        fields=problem.fields, overwrite=overwrite,
        attrs={"seed": "none (deterministic solver)", "solution": "gibbs_fixed_point",
               **problem.attrs()},
    )
    snap = problem.snapshot(state)
    writer.append(0.0, snap)
    writer.finish(wall_seconds=wall, newton_iterations=res.iterations,
                  newton_residual=res.residual)
    return GibbsSummary(path, cfg.problem, float(snap.get("free_energy", res.free_energy)),
                        float(snap["risk"]), res.iterations, res.residual, wall)


@dataclass
class SGDSummary:
    """What :func:`solve_sgd` reports."""

    path: Path
    problem: str
    n_neurons: int
    eps: float
    batch: int
    seed: int
    t_end: float
    risk_initial: float
    risk_final: float
    n_samples: int
    wall_seconds: float
    risk_seconds: float

    def lines(self) -> list[str]:
        return [
            f"wrote {self.path}",
            f"  particle SGD of {self.problem}: N = {self.n_neurons}, eps = {self.eps:g}, "
            f"batch = {self.batch}, seed = {self.seed}, t in [0, {self.t_end:g}]",
            f"  risk {self.risk_initial:.10g} -> {self.risk_final:.10g}",
            f"  {self.n_samples} samples in {self.wall_seconds:.2f} s "
            f"({self.risk_seconds:.2f} s of it for the population risk)",
        ]


def solve_sgd(cfg: Config, output: str | Path | None = None, *, overwrite: bool = False,
              progress: bool = False) -> SGDSummary:
    """Run one-pass SGD of the d-dimensional network (:mod:`meanfield_pde.particles`) and write
    ``t``, ``risk`` (the population risk R_N, no test set) and the reduced coordinates of every
    neuron at each output time: ``r`` (K, N) for gaussians, ``z`` (K, N, 3) = (a, s, r) for
    single-neuron.  Snapshots are appended as the run goes; root attributes ``kind = "sgd"``,
    ``seed``, ``generator``, ``n_neurons``, ``eps``, ``batch``."""
    from .particles import ParticleSGD, run_sgd

    s = cfg.section("sgd")
    probe = ParticleSGD(cfg)
    n = probe.n
    fields = ({"risk": (), "r": (n,)} if cfg.problem == "gaussians"
              else {"risk": (), "z": (n, 3)})
    key = "r" if cfg.problem == "gaussians" else "z"
    path = Path(output) if output is not None else default_output_path(cfg.problem + "-sgd")
    writer = ResultWriter(
        path, problem=cfg.problem, config=cfg.to_dict(), grid={}, fields=fields,
        overwrite=overwrite,
        attrs={"kind": "sgd", "seed": int(s["seed"]), "generator": probe.generator,
               "n_neurons": n, "eps": float(s["eps"]), "batch": int(s["batch"])},
    )
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=float(cfg["time.t_end"]), unit="t", desc=f"sgd N={n}", leave=False,
                   disable=None)

    def on_output(_k, state, risk, coords):
        writer.append(float(state.t), {"risk": float(risk), key: coords})

    def on_progress(t, _t_end):
        if bar is not None:
            bar.update(min(t, bar.total) - bar.n)

    try:
        res = run_sgd(cfg, on_output=on_output, on_progress=on_progress)
    finally:
        if bar is not None:
            bar.close()
    writer.finish(wall_seconds=res.wall_seconds, risk_seconds=res.risk_seconds,
                  n_samples=res.n_samples, risk_truncation_error=res.risk_truncation_error)
    return SGDSummary(path, cfg.problem, res.n_neurons, res.eps, res.batch, res.seed,
                      float(res.t[-1]), float(res.risk[0]), float(res.risk[-1]), res.n_samples,
                      res.wall_seconds, res.risk_seconds)

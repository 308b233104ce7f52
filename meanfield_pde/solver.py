"""The time loop: problem-agnostic, from the initial law to t_end, writing snapshots as it goes.

For each stop time (output times and schedule breakpoints) the compiled stepper advances the state
in chunks of at most ``CHUNK_STEPS`` steps; between chunks the loop checks the walls, updates the
progress bar and the step statistics.  Snapshots land exactly on the requested output times and are
appended to the result file immediately, so a crash loses nothing already written.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from .config import Config
from .errors import ConfigError, DataError, MeanFieldError, SolverError
from .fv.stepper1d import DT_UNDERFLOW, MAX_STEPS, NONFINITE, REACHED
from .io import ResultWriter, load, package_version
from .problems import Problem, build_problem, problem_class
from .runcontrol import NEVER, CheckpointClock, StopFlag, config_hash, interrupted
from .schedule import grid_time, output_times, stop_times

CHUNK_STEPS = 2000  # at most this many steps per compiled call
CHUNK_SECONDS = 0.25  # aim for compiled calls of about this long (signals, checkpoints)


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


def _status_error(status: int, t: float, dt: float, problem: Problem) -> SolverError:
    if status == NONFINITE:
        return SolverError(
            f"the density became non-finite at t = {t:.6g} (last dt = {dt:.3g}); lower "
            "solver.cfl (or solver.dt_max with noise) or refine the grid, and check that the "
            "activation parameters are sensible"
        )
    if status == DT_UNDERFLOW:
        return SolverError(
            f"the time step underflowed at t = {t:.6g} (dt = {dt:.3g}: velocity too large for "
            "the grid); lower solver.cfl or check the grid walls and the activation"
        )
    return SolverError(f"stepper stopped with status {status} at t = {t:.6g}")


def _steady(rate: float | None, rho_rate: float | None, cfg: Config) -> bool:
    """Both steady-state criteria: relative dF/dt and relative L1 change of ρ per unit time."""
    return (rate is not None and rho_rate is not None and abs(rate) <= cfg["time.steady_tol"]
            and rho_rate <= cfg["time.steady_tol_rho"])


@dataclass
class _Progress:
    """The state of a PDE run between compiled chunks: everything a checkpoint must restore
    and the per-snapshot statistics of the summary."""

    state: np.ndarray
    t: float
    i: int  # index in ``plan`` of the first stop not yet completed
    plan: list[tuple[float, bool]]  # (stop time, write a snapshot there)
    n_plan: int  # stops up to t_end (entries beyond are --steady extensions)
    interval: float  # length of the last --steady extension
    risks: list[float]
    masses: list[float]
    energies: list[float]
    times: list[float]  # output times written
    last_state: np.ndarray  # the state of the last snapshot
    min_density: float
    n_steps: int = 0
    n_rejected: int = 0
    wall_before: float = 0.0  # wall seconds of earlier sessions (resumed runs)
    rate: float | None = None
    rho_rate: float | None = None


def _plan(cfg: Config, schedule) -> list[tuple[float, bool]]:
    """(stop, is_output) for every stop after t = 0: outputs and schedule breakpoints."""
    stops = stop_times(cfg, schedule)
    is_output = np.isin(stops, output_times(cfg))
    return [(float(s), bool(o)) for s, o in zip(stops[1:], is_output[1:], strict=True)]


def solve(cfg: Config, output: str | Path | None = None, *, overwrite: bool = False,
          progress: bool = False, problem: Problem | None = None,
          on_warning: Callable[[str], None] | None = None, steady: bool = False,
          stop: StopFlag = NEVER) -> RunSummary:
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
    stop: a flag set by a signal handler (:func:`~meanfield_pde.runcontrol.trap_signals`); when
        set, the run writes a checkpoint and raises :class:`~meanfield_pde.runcontrol.Interrupted`.

    Checkpoints (``checkpoint.every`` / ``checkpoint.wall_seconds``, and always at t = 0 and at
    the end) go into the result file; :func:`resume` continues from the last one.
    """
    if steady and math.isinf(cfg["noise.beta"]):
        raise ConfigError(
            "--steady needs noise, but noise.beta = inf: the noiseless flow concentrates and has "
            "no steady state that the free-energy and L1 criteria can detect (it would run until "
            "mass reaches the wall); set e.g. --set noise.beta=10 --set noise.lam=0.1, or drop "
            "--steady"
        )
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
        fields=problem.fields, attrs={"seed": "none (deterministic solver)", **problem.attrs(),
                                      **_output_spacing(cfg)},
        overwrite=overwrite,
    )
    plan = _plan(cfg, problem.schedule)
    snap = problem.snapshot(state)
    writer.append(0.0, snap)
    energy = "free_energy" if "free_energy" in snap else "risk"
    run = _Progress(
        state=state, t=0.0, i=0, plan=plan, n_plan=len(plan),
        interval=float(plan[-1][0] - (plan[-2][0] if len(plan) > 1 else 0.0)) if plan else 1.0,
        risks=[snap["risk"]], masses=[snap["mass"]], energies=[snap[energy]], times=[0.0],
        last_state=state.copy(), min_density=float(state.min()),
    )
    return _run_pde(cfg, problem, stepper, writer, run, steady=steady, progress=progress,
                    stop=stop, compile_seconds=compile_seconds, setup_seconds=setup_seconds,
                    fresh=True)


def _pde_meta(cfg: Config, run: _Progress, stepper, steady: bool, wall: float,
              done: bool) -> dict:
    return {
        "kind": "pde", "t": run.t, "i": run.i, "n_plan": run.n_plan,
        "t_stop": run.plan[run.i][0] if run.i < len(run.plan) else None,
        "interval": run.interval, "steady": steady, "rate": run.rate,
        "rho_rate": run.rho_rate, "n_steps": run.n_steps, "n_rejected": run.n_rejected,
        "wall_seconds": run.wall_before + wall, "stepper": stepper.get_state(),
        "min_density": run.min_density, "complete": done,
        "config_hash": config_hash(cfg.to_dict()), "package_version": package_version(),
    }


def _run_pde(cfg: Config, problem: Problem, stepper, writer: ResultWriter, run: _Progress, *,
             steady: bool, progress: bool, stop: StopFlag, compile_seconds: float,
             setup_seconds: float, fresh: bool) -> RunSummary:
    """The time loop from ``run`` to the end of ``run.plan`` (and past it with ``steady``)."""
    energy = "free_energy" if "free_energy" in problem.fields else "risk"
    max_steps = cfg["solver.max_steps"]
    clock = CheckpointClock(cfg["checkpoint.every"], cfg["checkpoint.wall_seconds"], run.t)
    t_wall = time.perf_counter()
    state = run.state

    def checkpoint(done: bool = False) -> None:
        meta = _pde_meta(cfg, run, stepper, steady, time.perf_counter() - t_wall, done)
        writer.write_checkpoint({"state": state}, meta)
        clock.reset(run.t)

    def failed(exc: SolverError) -> SolverError:
        again = ("" if fresh else " (a resumed run keeps the grid of the original one: apply "
                 "such a change by solving again)")
        return SolverError(f"{exc}; the {writer.n_snapshots} snapshots up to t = "
                           f"{run.times[-1]:.6g} are kept in {writer.path}{again}")

    if fresh:
        checkpoint()
    bar = None
    if progress:
        from tqdm import tqdm

        total = float(run.plan[run.n_plan - 1][0]) if run.n_plan else 0.0
        bar = tqdm(total=total, unit="t", desc=cfg.problem, leave=False,
                   initial=min(run.t, total),
                   disable=None,  # only on a terminal
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| t={n:.3g}/{total:.3g} "
                              "[{elapsed}<{remaining}]{postfix}")
    steady_ok = None
    chunk = CHUNK_STEPS
    # one BLAS thread: the radial potential's matrix-vector products are memory bound, and a
    # second OpenBLAS thread gains ~10 % on an idle machine but costs 2.4x when the other core is
    # busy (measured at n = 16000); the 3-D kernels use prange and no BLAS
    blas = threadpool_limits(limits=1, user_api="blas")
    try:
        while True:
            if run.i >= len(run.plan):
                if not steady:
                    break
                if _steady(run.rate, run.rho_rate, cfg):  # --steady: extend the plan past t_end
                    steady_ok = True
                    break
                if run.t >= cfg["time.steady_t_max"]:
                    steady_ok = False
                    break
                run.interval *= 2.0
                run.plan.append((min(run.t + run.interval, cfg["time.steady_t_max"]), True))
            t_stop, out = run.plan[run.i]
            while run.t < t_stop:
                tick = time.perf_counter()
                rep = stepper.advance(state, run.t, float(t_stop), chunk)
                run.n_steps += rep.steps
                run.n_rejected += rep.rejected
                if bar is not None:
                    bar.update(min(rep.t, bar.total) - min(run.t, bar.total))
                if rep.status not in (REACHED, MAX_STEPS):
                    raise failed(_status_error(rep.status, rep.t, rep.dt, problem))
                run.t = rep.t
                try:
                    problem.check_walls(state, run.t)
                except SolverError as exc:
                    raise failed(exc) from None
                if run.n_steps >= max_steps:
                    raise failed(SolverError(
                        f"solver.max_steps = {max_steps} reached at t = {run.t:.6g}; raise "
                        "solver.max_steps or shorten time.t_end"
                    ))
                if rep.steps:  # chunks of about CHUNK_SECONDS, so signals are seen promptly
                    rate = rep.steps / max(time.perf_counter() - tick, 1e-9)
                    chunk = int(min(CHUNK_STEPS, max(1, rate * CHUNK_SECONDS)))
                if stop:
                    checkpoint()
                    raise interrupted(stop, writer.path, run.t)
                if clock.due(run.t):
                    checkpoint()
            run.t = float(t_stop)
            if out:
                snap = problem.snapshot(state)
                writer.append(run.t, snap)
                if run.i >= run.n_plan - 1:  # at t_end or past it: the steady-state criterion
                    span = run.t - run.times[-1]
                    run.rate = ((run.energies[-1] - snap[energy])
                                / (span * max(abs(snap[energy]), 1e-300)))
                    run.rho_rate = (float(np.sum(np.abs(state - run.last_state)))
                                    / (span * float(np.sum(np.abs(state)))))
                run.last_state = state.copy()
                run.times.append(run.t)
                run.risks.append(snap["risk"])
                run.masses.append(snap["mass"])
                run.energies.append(snap[energy])
                run.min_density = min(run.min_density, float(state.min()))
                if bar is not None:
                    bar.set_postfix_str(f"risk={snap['risk']:.6g}", refresh=False)
            run.i += 1
            if stop:
                checkpoint()
                raise interrupted(stop, writer.path, run.t)
            if clock.due(run.t):
                checkpoint()
    finally:
        blas.restore_original_limits()
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t_wall
    if steady and steady_ok is None:
        steady_ok = _steady(run.rate, run.rho_rate, cfg)
    checkpoint(done=True)  # lets `resume --t-end` extend the run
    risks_a, masses_a, energies_a = np.array(run.risks), np.array(run.masses), np.array(
        run.energies)
    mass0 = masses_a[0]
    summary = RunSummary(
        path=writer.path, problem=cfg.problem, t_end=run.t, n_snapshots=writer.n_snapshots,
        risk_initial=float(risks_a[0]), risk_final=float(risks_a[-1]), n_steps=run.n_steps,
        n_rejected=run.n_rejected, wall_seconds=run.wall_before + wall,
        compile_seconds=compile_seconds, setup_seconds=setup_seconds,
        mass_drift=float(np.max(np.abs(masses_a - mass0)) / mass0),
        min_density=run.min_density + 0.0,  # no "-0" in reports
        risk_increase=float(np.max(np.diff(energies_a))) if energies_a.size > 1 else 0.0,
        warnings=problem.warnings(), energy_name=energy,
        free_energy_final=float(energies_a[-1]) if energy == "free_energy" else None,
        steady=steady_ok if steady else None, steady_rate=run.rate if steady else None,
    )
    extra = ({"steady_reached": bool(steady_ok), "steady_rate": float(run.rate),
              "steady_rho_rate": float(run.rho_rate)} if steady else {})
    writer.finish(
        **extra,
        wall_seconds=summary.wall_seconds, compile_seconds=compile_seconds,
        setup_seconds=setup_seconds, n_steps=run.n_steps, n_rejected=run.n_rejected,
        mass_drift=summary.mass_drift, min_density=summary.min_density,
        risk_final=summary.risk_final,
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
              progress: bool = False, stop: StopFlag = NEVER) -> SGDSummary:
    """Run one-pass SGD of the d-dimensional network (:mod:`meanfield_pde.particles`) and write
    ``t``, ``risk`` (the population risk R_N, no test set) and the reduced coordinates of every
    neuron at each output time: ``r`` (K, N) for gaussians, ``z`` (K, N, 3) = (a, s, r) for
    single-neuron.  Snapshots are appended as the run goes; root attributes ``kind = "sgd"``,
    ``seed``, ``generator``, ``n_neurons``, ``eps``, ``batch``.  Checkpoints (parameters, step,
    generator state) as for :func:`solve`; :func:`resume` continues bit for bit."""
    from .particles import ParticleSGD

    s = cfg.section("sgd")
    probe = ParticleSGD(cfg)
    n = probe.n
    pc = problem_class(cfg.problem)
    n_coords = len(pc.particle_coords)
    fields = {"risk": (), pc.particle_field: (n,) if n_coords == 1 else (n, n_coords)}
    path = Path(output) if output is not None else default_output_path(cfg.problem + "-sgd")
    writer = ResultWriter(
        path, problem=cfg.problem, config=cfg.to_dict(), grid={}, fields=fields,
        overwrite=overwrite,
        attrs={"kind": "sgd", "seed": int(s["seed"]), "generator": probe.generator,
               **_output_spacing(cfg),
               "n_neurons": n, "eps": float(s["eps"]), "batch": int(s["batch"])},
    )
    return _run_sgd(cfg, writer, None, progress=progress, stop=stop)


def _run_sgd(cfg: Config, writer: ResultWriter, ck: dict | None, *, progress: bool,
             stop: StopFlag, risk_initial: float | None = None,
             state_arrays: dict | None = None) -> SGDSummary:
    """SGD from the start (``ck`` None) or from the checkpoint metadata ``ck`` (+ its arrays)."""
    from .particles import SGDState, run_sgd

    key = problem_class(cfg.problem).particle_field
    ck = ck or {}
    state = (SGDState.restore(state_arrays["theta"], ck["step"], ck["t"], ck["rng_state"])
             if state_arrays is not None else None)
    last = {"step": int(ck.get("last_output_step", -1)), "risk0": risk_initial}
    wall_before = float(ck.get("wall_seconds", 0.0))
    risk_before = float(ck.get("risk_seconds", 0.0))
    clock = CheckpointClock(cfg["checkpoint.every"], cfg["checkpoint.wall_seconds"],
                            state.t if state is not None else 0.0)
    t_wall = time.perf_counter()
    cfg_hash = config_hash(cfg.to_dict())
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=float(cfg["time.t_end"]), unit="t", desc=f"sgd N={cfg['sgd.n_neurons']}",
                   leave=False, disable=None, initial=state.t if state is not None else 0.0)

    def checkpoint(st, risk_seconds: float = 0.0, done: bool = False) -> None:
        writer.write_checkpoint({"theta": st.theta}, {
            "kind": "sgd", "t": float(st.t), "step": int(st.step), "rng_state": st.rng_state,
            "last_output_step": last["step"], "complete": done,
            "wall_seconds": wall_before + time.perf_counter() - t_wall,
            "risk_seconds": risk_before + risk_seconds, "config_hash": cfg_hash,
            "package_version": package_version()})
        clock.reset(st.t)

    def guard(st) -> None:
        if not np.all(np.isfinite(st.theta)):
            raise SolverError(
                f"the SGD parameters became non-finite at t = {st.t:.6g} (step {st.step}); lower "
                f"sgd.eps or the schedule's xi0; the {writer.n_snapshots} snapshots so far are "
                f"kept in {writer.path}")

    def on_output(k, st, risk, coords):
        guard(st)
        writer.append(float(st.t), {"risk": float(risk), key: coords})
        last["step"] = int(st.step)
        if last["risk0"] is None:
            last["risk0"] = float(risk)
        if (k == 0 and state is None) or clock.due(st.t):
            checkpoint(st)
        if stop:
            checkpoint(st)
            raise interrupted(stop, writer.path, st.t)

    def on_block(st):
        guard(st)
        if stop:
            checkpoint(st)
            raise interrupted(stop, writer.path, st.t)
        if clock.due(st.t):
            checkpoint(st)

    def on_progress(t, _t_end):
        if bar is not None:
            bar.update(min(t, bar.total) - bar.n)

    try:
        res = run_sgd(cfg, on_output=on_output, on_progress=on_progress, on_block=on_block,
                      state=state, after_step=last["step"])
    finally:
        if bar is not None:
            bar.close()
    st = res.final_state
    checkpoint(st, res.risk_seconds, done=True)
    wall = wall_before + res.wall_seconds
    risk_seconds = risk_before + res.risk_seconds
    n_samples = int(st.step * res.batch)
    written = load(writer.path)
    writer.finish(wall_seconds=wall, risk_seconds=risk_seconds, n_samples=n_samples,
                  risk_truncation_error=res.risk_truncation_error)
    return SGDSummary(writer.path, cfg.problem, res.n_neurons, res.eps, res.batch, res.seed,
                      float(written.t[-1]), float(written["risk"][0]),
                      float(written["risk"][-1]), n_samples, wall, risk_seconds)


# ------------------------------------------------------------------------------ resume
def _output_spacing(cfg: Config) -> dict:
    """{"output_spacing": h} for uniform outputs (stored with the result, so that every
    ``resume --t-end`` continues the grid k h), else {}."""
    tc = cfg.section("time")
    if tc["outputs"] == "uniform" and tc["t_end"] > 0:
        return {"output_spacing": tc["t_end"] / (tc["n_outputs"] - 1)}
    return {}


def _extend(cfg: Config, t_end: float, spacing: float | None = None) -> Config:
    """``cfg`` with ``time.t_end = t_end`` whose output times begin with those of ``cfg``,
    exactly (a resume's plan, and a later resume's, is rebuilt from the stored config).

    Uniform outputs (spacing h, or ``spacing`` from the file for a run extended before) go on
    at the times k h after the old t_end, then ``t_end``: n_outputs is scaled when ``t_end`` is
    a multiple of h (linspace then reproduces the old times bit for bit), otherwise the outputs
    become the list of those times. Listed (or log) outputs get ``t_end`` as a last output.
    """
    tc = cfg.section("time")
    old = output_times(cfg)
    over: dict[str, object] = {"time.t_end": float(t_end)}
    if tc["outputs"] == "uniform" and tc["t_end"] > 0:
        spacing = tc["t_end"] / (tc["n_outputs"] - 1)
        n = round(t_end / spacing) + 1
        if n <= 1_000_000:
            scaled = cfg.replace({**over, "time.n_outputs": max(2, n)})
            new = output_times(scaled)
            if len(new) > len(old) and np.array_equal(new[: len(old)], old):
                return scaled
    extra: list[float] = []
    if spacing is not None and spacing > 0:
        first = math.floor(old[-1] / spacing + 1e-9) + 1
        last = math.ceil(t_end / spacing - 1e-9) - 1
        extra = [grid_time(k, spacing) for k in range(first, last + 1)]
        extra = [x for x in extra if old[-1] + 1e-9 * spacing < x < t_end - 1e-9 * spacing]
    over["time.outputs"] = [float(x) for x in old] + extra  # old t_end included
    return cfg.replace(over)


def _fixed_walls(cfg: Config, attrs: dict) -> Config:
    """``cfg`` with the walls the original run chose (the automatic ones depend on t_end)."""
    try:
        return problem_class(cfg.problem).with_walls(cfg, attrs)
    except KeyError as exc:
        raise DataError(f"the result file has no {exc.args[0]!r} attribute; it was not written "
                        "by a solve of this package") from None


def resume(path: str | Path, *, t_end: float | None = None, progress: bool = False,
           stop: StopFlag = NEVER) -> RunSummary | SGDSummary:
    """Continue the run stored in ``path`` from its last checkpoint, in place.

    The snapshots written after a resume equal those of an uninterrupted run (the PDE steps do
    not depend on where a run was cut; SGD restores the generator state).  ``t_end`` extends a
    run past its ``time.t_end`` (uniform outputs keep their spacing; the grid, including an
    automatic wall, stays that of the original run).

    Raises:
        DataError: the file is not a result of this package, has no readable checkpoint, is
            complete and no later ``t_end`` is given, or its stored config does not match the
            checkpoint.
    """
    from .config import build_config
    from .io import load, load_checkpoint

    path = Path(path)
    res = load(path)
    if res.attrs.get("solution") == "gibbs_fixed_point":
        raise DataError(f"{path} holds a Gibbs fixed point, not a time-dependent run; nothing to "
                        "resume")
    ck = load_checkpoint(path)
    meta = ck.meta
    if meta.get("config_hash") != config_hash(res.config):
        raise DataError(f"the stored config of {path} does not match its checkpoint (the file "
                        "was edited or mixed from two runs); run the solve again")
    kind = "sgd" if res.attrs.get("kind") == "sgd" else "pde"
    if meta.get("kind") != kind:
        raise DataError(f"the checkpoint of {path} is of kind {meta.get('kind')!r}, the file of "
                        f"kind {kind!r}; {path} is corrupt, run the solve again")
    try:
        cfg = build_config(res.problem, res.config)
    except MeanFieldError as exc:
        raise DataError(f"the stored config of {path} is not valid for this version of "
                        f"meanfield-pde ({exc}); run the solve again") from None
    t_ck = float(meta["t"])
    if t_end is None:
        if res.complete:
            raise DataError(f"{path} is complete (t_end = {cfg['time.t_end']:g}); pass "
                            f"--t-end T with T > {t_ck:g} to continue it")
        new_cfg = cfg
    else:
        if meta.get("steady"):
            raise DataError("a --steady run ends on its own criterion; --t-end does not apply")
        if not (math.isfinite(t_end) and t_end > t_ck):
            raise DataError(f"--t-end {t_end:g} must be a finite time after the checkpoint's "
                            f"t = {t_ck:g}")
        spacing = res.attrs.get("output_spacing")
        new_cfg = _extend(cfg, t_end, spacing if isinstance(spacing, float) else None)
    k = int(meta["n_snapshots"])
    if not 1 <= k <= res.n_snapshots:
        raise DataError(f"the checkpoint of {path} counts {k} snapshots but the file has "
                        f"{res.n_snapshots}; {path} is corrupt, run the solve again")
    if kind == "sgd":
        theta = ck.arrays.get("theta")
        n = int(cfg["sgd.n_neurons"])
        if theta is None or theta.ndim != 2 or theta.shape[0] != n:
            raise DataError(f"the checkpoint of {path} holds no parameters of {n} neurons; "
                            f"{path} is corrupt, run the sgd again")
        writer = _reopen(path, k, new_cfg if t_end is not None else None)
        return _run_sgd(new_cfg, writer, meta, progress=progress, stop=stop,
                        state_arrays={"theta": theta}, risk_initial=float(res["risk"][0]))
    return _resume_pde(path, cfg, new_cfg, res, ck, t_end, progress, stop)


def _reopen(path: Path, k: int, new_cfg: Config | None) -> ResultWriter:
    """The first write of a resume (after every check): drop the rows after the checkpoint's
    ``k`` snapshots and store the extended config (``--t-end``), if any."""
    writer = ResultWriter.reopen(path, k)
    if new_cfg is not None:
        writer.update_config(new_cfg.to_dict())
    return writer


def _resume_pde(path: Path, cfg: Config, new_cfg: Config, res, ck, t_end: float | None,
                progress: bool, stop: StopFlag) -> RunSummary:
    meta = ck.meta
    t0 = time.perf_counter()
    problem_class(cfg.problem).warmup(cfg)
    compile_seconds = time.perf_counter() - t0
    problem = build_problem(_fixed_walls(new_cfg, res.attrs))
    for name, arr in problem.grid.items():
        if name not in res.grid or not np.array_equal(res.grid[name], arr):
            raise DataError(f"the grid of {path} ({name}) differs from the one its config gives "
                            "in this version of meanfield-pde; run the solve again")
    state = np.ascontiguousarray(ck.arrays.get("state"), dtype=np.float64)
    if state.shape != problem.fields["density"]:
        raise DataError(f"the checkpoint state of {path} has shape {state.shape}, the grid "
                        f"{problem.fields['density']}; {path} is corrupt, run the solve again")
    stepper = problem.make_stepper()
    stepper.set_state(meta["stepper"])
    k, i = int(meta["n_snapshots"]), int(meta["i"])
    plan = _plan(cfg, problem.schedule)
    n_plan = len(plan)
    if t_end is not None:
        t_done = plan[i - 1][0] if i >= 1 else 0.0
        plan = plan[:i] + [e for e in _plan(new_cfg, problem.schedule) if e[0] > t_done]
        n_plan = len(plan)
    elif i >= len(plan):  # inside the --steady extension: rebuild the stop in progress
        plan += [(math.nan, True)] * (i - len(plan))
        if meta["t_stop"] is not None:
            plan.append((float(meta["t_stop"]), True))
    energy = "free_energy" if "free_energy" in problem.fields else "risk"
    run = _Progress(
        state=state, t=float(meta["t"]), i=i, plan=plan, n_plan=n_plan,
        interval=float(meta["interval"]), risks=res["risk"][:k].tolist(),
        masses=res["mass"][:k].tolist(), energies=res[energy][:k].tolist(),
        times=res.t[:k].tolist(), last_state=res["density"][k - 1].copy(),
        min_density=float(meta["min_density"]), n_steps=int(meta["n_steps"]),
        n_rejected=int(meta["n_rejected"]), wall_before=float(meta["wall_seconds"]),
        rate=meta["rate"], rho_rate=meta["rho_rate"],
    )
    setup_seconds = time.perf_counter() - t0 - compile_seconds
    writer = _reopen(path, k, new_cfg if t_end is not None else None)
    return _run_pde(new_cfg, problem, stepper, writer, run, steady=bool(meta["steady"]),
                    progress=progress, stop=stop, compile_seconds=compile_seconds,
                    setup_seconds=setup_seconds, fresh=False)

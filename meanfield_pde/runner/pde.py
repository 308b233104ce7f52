"""PDE runs: from the initial law (or a checkpoint) to t_end, writing snapshots as they go.

The problem's compiled stepper, in chunks of about ``CHUNK_SECONDS``
(:class:`.loop.ChunkedStepper`), is driven by the time loop (:func:`.loop.run`) through the
stops of the plan (output times and schedule breakpoints); trackers write the snapshots (landing
exactly on the output times, appended at once, so a crash loses nothing already written), check
the walls, the step budget and the signals, write checkpoints, show progress and — with
``--steady`` — extend the run until the energy is stationary.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from ..config import Config
from ..errors import OptionError, SolverError
from ..io import ResultWriter, package_version
from ..problems import Problem, build_problem, problem_class
from . import loop
from .companion import with_companion
from .memory import run_in_memory
from .plan import Plan, make_plan, output_spacing
from .summary import RunSummary
from .trackers import (
    NEVER,
    CheckpointClock,
    CheckpointTracker,
    ProgressBar,
    RunStatistics,
    SignalTracker,
    SnapshotTracker,
    SteadyTracker,
    StepLimit,
    StopFlag,
    WallTracker,
    config_hash,
)

BAR_FORMAT = ("{desc}: {percentage:3.0f}%|{bar}| t={n:.3g}/{total:.3g} "
              "[{elapsed}<{remaining}]{postfix}")


@dataclass
class PdeStart:
    """Where a PDE run (re)starts: the state and everything a checkpoint restores, and the
    history of the snapshots already written (for the summary and the steady-state test)."""

    state: np.ndarray
    t: float
    plan: Plan
    times: list[float]  # output times written
    history: dict[str, list[float]]  # risk, mass and the energy field per snapshot written
    last_state: np.ndarray  # the state of the last snapshot
    min_density: float
    steady: bool = False
    fresh: bool = True  # a new file (not a resume)
    n_steps: int = 0
    n_rejected: int = 0
    wall_before: float = 0.0  # wall seconds of earlier sessions (resumed runs)
    rates: tuple[float | None, float | None] = (None, None)  # --steady: (rate, rho_rate)
    seconds: dict[str, float] = field(default_factory=dict)  # compile, setup



#: snapshots of a PDE run reach the file in batches at most this old (and at every checkpoint):
#: one open per batch instead of one per snapshot (200 snapshots: 0.6 s -> ~0.05 s); a crash
#: loses only rows a resume would recompute (those after the last checkpoint)
SNAPSHOT_FLUSH_SECONDS = 0.5

def solve(cfg: Config, output: str | Path | None = None, *, overwrite: bool = False,
          progress: bool = False, problem: Problem | None = None,
          on_warning: Callable[[str], None] | None = None, steady: bool = False,
          stop: StopFlag = NEVER) -> RunSummary:
    """Solve the mean-field PDE described by ``cfg`` from t = 0 to ``time.t_end``, writing a
    snapshot at each output time, and return the run's :class:`.summary.RunSummary`.

    Parameters
    ----------
    cfg: resolved configuration (see :mod:`meanfield_pde.config`).
    output: HDF5 result file to write.  None: no file — the run is kept in memory
        (:mod:`.memory`): the summary's ``path`` is None and ``summary.result`` is the
        :class:`~meanfield_pde.io.Result` that ``load`` would return.  Either way
        ``summary.result`` gives the snapshots (``result.t``, ``result["risk"]``, ...).
    overwrite: replace an existing ``output`` (otherwise that is an error).
    problem: the problem built from ``cfg``, when the caller has it already.
    progress: show a progress bar on stderr.
    on_warning: called with each one-line warning of the problem before the run starts.
    steady: after t_end, keep going in intervals that double in length, writing a snapshot after
        each, until the relative free-energy decrease per unit time is below
        ``time.steady_tol`` and the relative L1 change of ρ per unit time is below
        ``time.steady_tol_rho`` (or t reaches ``time.steady_t_max``).
    stop: a flag set by a signal handler (:func:`~meanfield_pde.runner.trackers.trap_signals`);
        when set, the run writes a checkpoint and raises
        :class:`~meanfield_pde.runner.trackers.Interrupted`.

    Checkpoints (``checkpoint.every`` / ``checkpoint.wall_seconds``, and always at t = 0 and at
    the end) go into the result file; :func:`~meanfield_pde.runner.resume.resume` continues from
    the last one.

    Raises:
        ConfigError: ``steady=True`` without noise (an :class:`~meanfield_pde.errors.OptionError`)
            or a problem that refuses ``cfg``.
        DataError: ``output`` exists and ``overwrite`` is False, or it cannot be written.
        SolverError: the solution cannot continue (mass at a wall, step budget, non-finite
            state); the snapshots written so far are kept and the message names the file.
    """
    if output is None:
        return run_in_memory(cfg.problem, lambda path: solve(
            cfg, path, progress=progress, problem=problem, on_warning=on_warning, steady=steady,
            stop=stop))
    if steady and math.isinf(cfg["noise.beta"]):
        raise OptionError(
            "steady", "{opt} needs noise, but noise.beta = inf: the noiseless flow concentrates "
            "and has no steady state that the free-energy and L1 criteria can detect (it would "
            "run until mass reaches the wall); set e.g. noise.beta = 10 and noise.lam = 0.1, or "
            "drop {opt}")
    t0 = time.perf_counter()
    problem_class(cfg.problem).warmup(cfg)  # compile, or load the cached kernels
    compile_seconds = time.perf_counter() - t0
    problem = problem or build_problem(cfg)  # kernel tables, initial law, automatic wall
    problem = with_companion(problem)  # the coarser run behind risk_error (runner/companion.py)
    for w in problem.warnings():
        if on_warning is not None:
            on_warning(w)
    stepper = problem.make_stepper()
    state = problem.initial_state()
    setup_seconds = time.perf_counter() - t0 - compile_seconds

    writer = ResultWriter(
        Path(output), problem=cfg.problem, config=cfg.to_dict(), grid=problem.grid,
        fields=problem.fields, attrs={"seed": "none (deterministic solver)", **problem.attrs(),
                                      **output_spacing(cfg)},
        overwrite=overwrite, flush_seconds=SNAPSHOT_FLUSH_SECONDS,
    )
    snap = problem.snapshot(state)
    writer.append(0.0, snap)
    names = ("risk", "mass", problem.energy_field, *(("risk_error",)
                                                    if "risk_error" in problem.fields else ()))
    start = PdeStart(
        state=state, t=0.0, plan=make_plan(cfg, problem.schedule), times=[0.0],
        history={k: [snap[k]] for k in names}, last_state=_main_density(problem)(state).copy(),
        min_density=problem.min_density(state), steady=steady,
        seconds={"compile": compile_seconds, "setup": setup_seconds},
    )
    return run_pde(cfg, problem, stepper, writer, start, progress=progress, stop=stop)


def run_pde(cfg: Config, problem: Problem, stepper, writer: ResultWriter, start: PdeStart, *,
            progress: bool = False, stop: StopFlag = NEVER) -> RunSummary:
    """Run from ``start`` to the end of its plan (and past it with ``start.steady``), writing
    snapshots and checkpoints with ``writer``; ``stepper`` is ``problem``'s (its state restored
    for a resume).  The final checkpoint lets ``resume(path, t_end=...)`` extend the run."""
    run = _PdeRun(cfg, problem, stepper, writer, start)
    if start.fresh:
        run.checkpoint(start.t)
    trackers = run.trackers(progress, stop)
    # one BLAS thread: the radial potential's matrix-vector products are memory bound, and a
    # second OpenBLAS thread gains ~10 % on an idle machine but costs 2.4x when the other core is
    # busy (measured at n = 16000); the 3-D kernels use prange and no BLAS
    blas = threadpool_limits(limits=1, user_api="blas")
    try:
        t = loop.run(run.chunked, start.state, start.t, start.plan, trackers)
    except SolverError as exc:
        writer.close()  # the file is released before the error reaches the caller
        raise run.failed(exc) from None
    except BaseException:
        writer.close()
        raise
    finally:
        blas.restore_original_limits()
    return run.finish(t)


def _main_density(problem) -> Callable[[np.ndarray], np.ndarray]:
    """The run's own density in its state: without the companion's part, if it has one."""
    split = getattr(problem, "split", None)
    return (lambda state: split(state)[0]) if split is not None else (lambda state: state)


class _PdeRun:
    """The trackers of one PDE run and what they share: checkpoint metadata, statistics."""

    def __init__(self, cfg: Config, problem: Problem, stepper, writer: ResultWriter,
                 start: PdeStart):
        self.cfg, self.problem, self.stepper, self.writer, self.start = (
            cfg, problem, stepper, writer, start)
        self.energy = problem.energy_field
        self.chunked = loop.ChunkedStepper(stepper, adaptive=True)
        self.chunked.n_steps, self.chunked.n_rejected = start.n_steps, start.n_rejected
        self.snapshots = SnapshotTracker(lambda state, t: problem.snapshot(state),
                                         writer.append)
        self.stats = RunStatistics(self.snapshots, start.times, start.history,
                                   start.min_density, problem.min_density)
        self.steady = (SteadyTracker(
            self.snapshots, self.energy, (cfg["time.steady_tol"], cfg["time.steady_tol_rho"]),
            cfg["time.steady_t_max"], (start.times[-1], start.history[self.energy][-1],
                                       start.last_state), start.rates,
            density_of=_main_density(problem))
            if start.steady else None)
        self.t_wall = time.perf_counter()

    def checkpoint(self, t: float, done: bool = False) -> None:
        """Write the state and everything :func:`~.resume.resume` needs to continue at ``t``."""
        plan, st = self.start.plan, self.steady
        rate, rho_rate = (st.rate, st.rho_rate) if st is not None else self.start.rates
        self.writer.write_checkpoint({"state": self.start.state}, {
            "kind": "pde", "t": t, "i": plan.i, "n_plan": plan.n_plan, "t_stop": plan.t_stop,
            "interval": plan.interval, "steady": self.start.steady, "rate": rate,
            "rho_rate": rho_rate, "n_steps": self.chunked.n_steps,
            "n_rejected": self.chunked.n_rejected, "wall_seconds": self.wall_seconds(),
            "stepper": self.stepper.get_state(), "min_density": self.stats.minimum,
            "complete": done, "config_hash": config_hash(self.cfg.to_dict()),
            "package_version": package_version(),
        })

    def wall_seconds(self) -> float:
        return self.start.wall_before + time.perf_counter() - self.t_wall

    def trackers(self, progress: bool, stop: StopFlag) -> list[loop.Tracker]:
        """In order: snapshots and what reads them, progress, walls, step budget, signals,
        checkpoints."""
        cfg, plan = self.cfg, self.start.plan
        clock = CheckpointClock(cfg["checkpoint.every"], cfg["checkpoint.wall_seconds"],
                                self.start.t)
        max_steps = cfg["solver.max_steps"]
        checkpoints = CheckpointTracker(self.checkpoint, clock)
        out: list[loop.Tracker] = [self.snapshots, self.stats]
        if self.steady is not None:
            out.append(self.steady)
        if progress:
            total = float(plan.stops[plan.n_plan - 1][0]) if plan.n_plan else 0.0
            out.append(ProgressBar(total, cfg.problem, self.start.t, bar_format=BAR_FORMAT,
                                   postfix=lambda: f"risk={self.snapshots.last['risk']:.6g}"))
        out += [
            WallTracker(self.problem.check_walls),
            StepLimit(self.chunked, max_steps, lambda t: SolverError(
                f"solver.max_steps = {max_steps} reached at t = {t:.6g}; raise "
                "solver.max_steps or shorten time.t_end")),
            SignalTracker(stop, checkpoints.write, self.writer.path),
            checkpoints,
        ]
        return out

    def failed(self, exc: SolverError) -> SolverError:
        """``exc`` with what the file keeps."""
        again = ("" if self.start.fresh else " (a resumed run keeps the grid of the original one:"
                 " apply such a change by solving again)")
        return SolverError(f"{exc}; the {self.writer.n_snapshots} snapshots up to t = "
                           f"{self.stats.times[-1]:.6g} are kept in {self.writer.path}{again}")

    def finish(self, t: float) -> RunSummary:
        """The final checkpoint, the summary, and the result file's closing attributes."""
        wall = self.wall_seconds()
        steady = self.steady
        if steady is not None and steady.reached is None:
            steady.reached = steady.steady()
        self.checkpoint(t, done=True)  # lets `resume --t-end` extend the run
        hist, seconds = self.start.history, self.start.seconds
        risks, masses, energies = (np.array(hist[k]) for k in ("risk", "mass", self.energy))
        summary = RunSummary(
            path=self.writer.path, problem=self.cfg.problem, t_end=t,
            n_snapshots=self.writer.n_snapshots, risk_initial=float(risks[0]),
            risk_final=float(risks[-1]), n_steps=self.chunked.n_steps,
            n_rejected=self.chunked.n_rejected, wall_seconds=wall,
            compile_seconds=seconds.get("compile", 0.0), setup_seconds=seconds.get("setup", 0.0),
            mass_drift=float(np.max(np.abs(masses - masses[0])) / masses[0]),
            min_density=self.stats.minimum + 0.0,  # no "-0" in reports
            risk_increase=float(np.max(np.diff(energies))) if energies.size > 1 else 0.0,
            warnings=self.problem.warnings(), energy_name=self.energy,
            free_energy_final=float(energies[-1]) if self.energy != "risk" else None,
            steady=steady.reached if steady is not None else None,
            steady_rate=steady.rate if steady is not None else None,
            method=str(self.problem.attrs().get("method", "")),
            risk_error_final=(float(hist["risk_error"][-1]) if "risk_error" in hist else None),
        )
        extra = ({"steady_reached": bool(steady.reached), "steady_rate": float(steady.rate),
                  "steady_rho_rate": float(steady.rho_rate)} if steady is not None else {})
        self.writer.finish(
            **extra,
            wall_seconds=summary.wall_seconds, compile_seconds=summary.compile_seconds,
            setup_seconds=summary.setup_seconds, n_steps=summary.n_steps,
            n_rejected=summary.n_rejected, mass_drift=summary.mass_drift,
            min_density=summary.min_density, risk_final=summary.risk_final,
            **({"risk_error_final": summary.risk_error_final}
               if summary.risk_error_final is not None else {}),
        )
        return summary

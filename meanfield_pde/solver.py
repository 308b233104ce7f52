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
    risk_increase: float  # max over snapshots of R_{k+1} − R_k (<= 0 up to round-off)
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"wrote {self.path}",
            f"  problem {self.problem}, t in [0, {self.t_end:g}], {self.n_snapshots} snapshots, "
            f"{self.n_steps} steps ({self.n_rejected} rejected)",
            f"  risk {self.risk_initial:.10g} -> {self.risk_final:.10g}",
            f"  mass drift {self.mass_drift:.2e}, min density {self.min_density:.3g}, "
            f"max risk increase {max(self.risk_increase, 0.0):.2e}",
            f"  wall time {self.wall_seconds:.2f} s (+ {self.compile_seconds:.2f} s compile/load, "
            f"{self.setup_seconds:.2f} s setup)",
        ]


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


def solve(cfg: Config, output: str | Path | None = None, *, overwrite: bool = False,
          progress: bool = False, problem: Problem | None = None,
          on_warning: Callable[[str], None] | None = None) -> RunSummary:
    """Solve the mean-field PDE described by ``cfg`` and write the result file.

    Parameters
    ----------
    cfg: resolved configuration (see :mod:`meanfield_pde.config`).
    output: HDF5 path; default ``runs/<problem>-<UTC time>.h5``.
    overwrite: replace an existing ``output`` (otherwise that is an error).
    progress: show a progress bar on stderr.
    on_warning: called with each one-line warning of the problem before the run starts.
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
    mass0, risk0 = snap["mass"], snap["risk"]
    risks, masses, min_density = [risk0], [mass0], float(state.min())

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=float(stops[-1]), unit="t", desc=cfg.problem, leave=False,
                   disable=None,  # only on a terminal
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| t={n:.3g}/{total:.3g} "
                              "[{elapsed}<{remaining}]{postfix}")
    t, n_steps, n_rejected = 0.0, 0, 0
    t_wall = time.perf_counter()
    try:
        for t_stop, out in zip(stops[1:], is_output[1:], strict=True):
            while t < t_stop:
                rep = stepper.advance(state, t, float(t_stop), CHUNK_STEPS)
                n_steps += rep.steps
                n_rejected += rep.rejected
                if bar is not None:
                    bar.update(rep.t - t)
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
                risks.append(snap["risk"])
                masses.append(snap["mass"])
                min_density = min(min_density, float(state.min()))
                if bar is not None:
                    bar.set_postfix_str(f"risk={snap['risk']:.6g}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t_wall
    risks_a, masses_a = np.array(risks), np.array(masses)
    summary = RunSummary(
        path=path, problem=cfg.problem, t_end=t, n_snapshots=writer.n_snapshots,
        risk_initial=risk0, risk_final=float(risks_a[-1]), n_steps=n_steps,
        n_rejected=n_rejected, wall_seconds=wall, compile_seconds=compile_seconds,
        setup_seconds=setup_seconds,
        mass_drift=float(np.max(np.abs(masses_a - mass0)) / mass0),
        min_density=min_density + 0.0,  # no "-0" in reports
        risk_increase=float(np.max(np.diff(risks_a))) if risks_a.size > 1 else 0.0,
        warnings=problem.warnings(),
    )
    writer.finish(
        wall_seconds=wall, compile_seconds=compile_seconds, setup_seconds=setup_seconds,
        n_steps=n_steps,
        n_rejected=n_rejected, mass_drift=summary.mass_drift,
        min_density=summary.min_density, risk_final=summary.risk_final,
    )
    return summary

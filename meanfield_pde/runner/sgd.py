"""Particle SGD runs (:mod:`meanfield_pde.particles`) through the same time loop as the PDE.

The SGD engine is the stepper: :class:`SGDStepper` advances the parameters by one block of steps
per call (the engine's own block, so checkpoints fall where they always did) towards the step of
the next output; trackers write the risk and the particles' reduced coordinates at the outputs,
check that the parameters stay finite, honour signals and write checkpoints (parameters, step,
generator state), from which :func:`~.resume.resume` continues bit for bit.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config
from ..errors import DataError, SolverError
from ..io import ResultWriter, load, package_version
from ..problems import problem_class
from ..schedule import grid_time, output_times
from . import loop
from .memory import run_in_memory
from .plan import Plan, output_spacing
from .summary import SGDSummary
from .trackers import (
    NEVER,
    Callback,
    CheckpointClock,
    CheckpointTracker,
    ProgressBar,
    SignalTracker,
    SnapshotTracker,
    StopFlag,
    config_hash,
)


def solve_sgd(cfg: Config, output: str | Path | None = None, *, overwrite: bool = False,
              progress: bool = False, stop: StopFlag = NEVER) -> SGDSummary:
    """Run one-pass SGD of the d-dimensional network (:mod:`meanfield_pde.particles`) and write
    ``t``, ``risk`` (the population risk R_N, no test set) and the reduced coordinates of every
    neuron at each output time, in the field the problem names (``Problem.particle_field``):
    (K, N) for one coordinate, (K, N, C) for C coordinates (``Problem.particle_coords``).
    Snapshots are appended as the run goes; root attributes ``kind = "sgd"``, ``seed``,
    ``generator``, ``n_neurons``, ``eps``, ``batch``.  Checkpoints (parameters, step, generator
    state) as for :func:`~.pde.solve`; :func:`~.resume.resume` continues bit for bit.

    ``output`` None: no file, the run is kept in memory (``summary.path`` is None,
    ``summary.result`` the :class:`~meanfield_pde.io.Result`; :mod:`.memory`).  Returns an
    :class:`.summary.SGDSummary`.

    Raises:
        ConfigError: the problem has no particle model, or ``cfg`` is refused.
        SolverError: the parameters became non-finite (the snapshots so far are kept).
        DataError: ``output`` exists and ``overwrite`` is False.
    """
    if output is None:
        return run_in_memory(cfg.problem, lambda path: solve_sgd(cfg, path, progress=progress,
                                                                 stop=stop))
    from ..particles import ParticleSGD

    engine = ParticleSGD(cfg)  # first: a problem with no particle model is refused here
    engine.output_steps(output_times(cfg), cfg["time.t_end"])  # the budget, before the file
    s = cfg.section("sgd")
    n = int(s["n_neurons"])
    pc = problem_class(cfg.problem)
    n_coords = len(pc.particle_coords)
    fields = {"risk": (), pc.particle_field: (n,) if n_coords == 1 else (n, n_coords)}
    writer = ResultWriter(
        Path(output), problem=cfg.problem, config=cfg.to_dict(), grid={}, fields=fields,
        overwrite=overwrite,
        attrs={"kind": "sgd", "seed": int(s["seed"]), "generator": engine.generator,
               **output_spacing(cfg),
               "n_neurons": n, "eps": float(s["eps"]), "batch": int(s["batch"])},
    )
    return run_sgd(cfg, writer, progress=progress, stop=stop)


class SGDStepper:
    """The SGD engine as the loop's stepper: each call advances one of the engine's blocks of
    steps towards the step of ``t_stop`` (an output time of ``targets``: time -> step)."""

    def __init__(self, engine: Any, targets: dict[float, int]):
        self.engine, self.targets = engine, targets

    def advance(self, state: Any, t: float, t_stop: float) -> float:
        """One block of SGD steps (at most up to the step of ``t_stop``); returns
        the time reached."""
        n = min(self.engine.block_steps, self.targets[t_stop] - state.step)
        self.engine.advance(state, n)
        return state.t


def run_sgd(cfg: Config, writer: ResultWriter, checkpoint: tuple[dict, np.ndarray] | None = None,
            *, progress: bool = False, stop: StopFlag = NEVER) -> SGDSummary:
    """SGD from the start, or from ``checkpoint`` = (metadata, parameters) of a resumed run
    (outputs at steps up to its ``last_output_step`` are already written), to the last output."""
    from ..particles import ParticleSGD, SGDState

    t_wall = time.perf_counter()
    engine = ParticleSGD(cfg)
    ck = checkpoint[0] if checkpoint is not None else {}
    if checkpoint is not None:
        state = SGDState.restore(checkpoint[1], ck["step"], ck["t"], ck["rng_state"])
    else:
        state = engine.initial_state()
    steps = engine.output_steps(output_times(cfg), cfg["time.t_end"])
    steps = steps[steps > int(ck.get("last_output_step", -1))]
    if steps.size and steps[0] < state.step:
        raise DataError(f"output step {steps[0]} lies before the state's step {state.step}")
    times = [grid_time(int(k), engine.step_time) for k in steps]
    run = _SGDRun(cfg, engine, writer, ck, t_wall)
    trackers: list[loop.Tracker] = [SnapshotTracker(run.snapshot, writer.append)]
    if progress:
        trackers.append(ProgressBar(float(cfg["time.t_end"]), f"sgd N={cfg['sgd.n_neurons']}",
                                    state.t))
    clock = CheckpointClock(cfg["checkpoint.every"], cfg["checkpoint.wall_seconds"], state.t)
    checkpoints = CheckpointTracker(lambda t: run.checkpoint(state), clock,
                                    pending=checkpoint is None)
    trackers += [Callback(poll=run.guard), SignalTracker(stop, checkpoints.write, writer.path),
                 checkpoints]
    try:
        loop.run(SGDStepper(engine, dict(zip(times, steps.tolist(), strict=True))), state,
                 state.t, Plan.of(times, output=True), trackers)
    except BaseException:
        writer.close()  # the file is released before the error reaches the caller
        raise
    return run.finish(state)


class _SGDRun:
    """What the trackers of one SGD run share: the engine, the writer, timing, the last output."""

    def __init__(self, cfg: Config, engine: Any, writer: ResultWriter, ck: dict, t_wall: float):
        self.cfg, self.engine, self.writer, self.t_wall = cfg, engine, writer, t_wall
        self.key = problem_class(cfg.problem).particle_field
        self.last_output_step = int(ck.get("last_output_step", -1))
        self.wall_before = float(ck.get("wall_seconds", 0.0))
        self.risk_before = float(ck.get("risk_seconds", 0.0))
        self.risk_seconds = 0.0
        self.truncation = 0.0

    def guard(self, state: Any, t: float) -> None:
        """Stop a diverged run: parameters non-finite or so large that |θ|² overflows (the
        population risk could not be evaluated any more)."""
        with np.errstate(over="ignore", invalid="ignore"):
            size = float(np.einsum("ij,ij->", state.theta, state.theta))
        if not np.isfinite(size):
            raise self.diverged(state)

    def diverged(self, state: Any) -> SolverError:
        """The one-line error of a diverged run: the cause (the step size against the scale of
        the data and activation) and the fix (a smaller ``sgd.eps``)."""
        eng = self.engine
        eps, batch = eng.eps, eng.batch
        step = eps * float(eng.schedule(state.t))
        return SolverError(
            f"SGD diverged at t = {state.t:.6g} (step {state.step}): the parameters grew without "
            f"bound because the step size, sgd.eps * xi(t) = {step:.3g} per sample (batch "
            f"{batch}), is too large for the scale of the data and activation; lower sgd.eps, "
            f"e.g. to {eps / 2:.3g} (half the current {eps:g}; halve again if it still "
            f"diverges); the {self.writer.n_snapshots} snapshots so far are kept in "
            f"{self.writer.path}")

    def snapshot(self, state: Any, t: float) -> dict:
        self.guard(state, t)
        risk = self.engine.risk
        tick = time.perf_counter()
        value = risk(state.theta)
        self.risk_seconds += time.perf_counter() - tick
        if not np.isfinite(value):  # finite parameters whose risk overflows: diverged as well
            raise self.diverged(state)
        self.truncation = max(self.truncation, risk.truncation_error)
        self.last_output_step = int(state.step)
        return {"risk": float(value), self.key: self.engine.coords(state.theta)}

    def wall_seconds(self) -> float:
        return self.wall_before + time.perf_counter() - self.t_wall

    def checkpoint(self, state: Any, done: bool = False) -> None:
        self.writer.write_checkpoint({"theta": state.theta}, {
            "kind": "sgd", "t": float(state.t), "step": int(state.step),
            "rng_state": state.rng_state, "last_output_step": self.last_output_step,
            "complete": done, "wall_seconds": self.wall_seconds(),
            "risk_seconds": self.risk_before + self.risk_seconds,
            "config_hash": config_hash(self.cfg.to_dict()), "package_version": package_version()})

    def finish(self, state: Any) -> SGDSummary:
        self.checkpoint(state, done=True)
        s = self.cfg.section("sgd")
        wall = self.wall_seconds()
        risk_seconds = self.risk_before + self.risk_seconds
        n_samples = int(state.step * int(s["batch"]))
        written = load(self.writer.path)
        self.writer.finish(wall_seconds=wall, risk_seconds=risk_seconds, n_samples=n_samples,
                           risk_truncation_error=self.truncation)
        return SGDSummary(self.writer.path, self.cfg.problem, int(s["n_neurons"]),
                          float(s["eps"]), int(s["batch"]), int(s["seed"]),
                          float(written.t[-1]), float(written["risk"][0]),
                          float(written["risk"][-1]), n_samples, wall, risk_seconds)

"""The time loop and its trackers on trivial steppers (no PDE): stops landed on exactly, tracker
cadences, the steady-state extension, signals, step failures."""

from __future__ import annotations

import math
import signal

import numpy as np
import pytest

from meanfield_pde.cli import _cli_words
from meanfield_pde.errors import SolverError
from meanfield_pde.fv.stepper1d import MAX_STEPS, NONFINITE, REACHED
from meanfield_pde.problems.base import StepReport
from meanfield_pde.runner import loop
from meanfield_pde.runner.plan import Plan
from meanfield_pde.runner.trackers import (
    Callback,
    CheckpointClock,
    CheckpointTracker,
    Interrupted,
    SignalTracker,
    SnapshotTracker,
    SteadyTracker,
    StopFlag,
)


class Drift:
    """dx/dt = 1 in steps of at most ``dt``, landing on ``t_stop``: x(t) = x(0) + t."""

    def __init__(self, dt: float):
        self.dt, self.calls = dt, 0

    def advance(self, state, t, t_stop):
        self.calls += 1
        t_new = min(t + self.dt, t_stop)
        state += t_new - t
        return t_new


class Recorder(loop.Tracker):
    def __init__(self):
        self.polls, self.events, self.closed = [], [], False

    def poll(self, state, t):
        self.polls.append(t)

    def event(self, state, t, plan):
        self.events.append((t, plan.current[1], float(state[0])))

    def close(self):
        self.closed = True


def test_loop_lands_exactly_on_every_stop():
    stops = [0.0, 0.35, 1.0, 1.7]
    plan = Plan([(s, i % 2 == 0) for i, s in enumerate(stops)], 0, len(stops), 0.7)
    rec, state = Recorder(), np.zeros(1)
    t = loop.run(Drift(0.3), state, 0.0, plan, [rec])
    assert t == 1.7 and plan.done and rec.closed
    assert [e[0] for e in rec.events] == stops  # bit for bit, a stop at the start included
    assert [e[1] for e in rec.events] == [True, False, True, False]
    np.testing.assert_allclose([e[2] for e in rec.events], stops, rtol=0, atol=1e-15)
    # a poll after each chunk and after each stop; no chunk overshoots a stop
    assert set(stops) <= set(rec.polls) and max(rec.polls) == 1.7
    assert sorted(rec.polls) == rec.polls


def test_loop_resumes_from_a_plan_index_and_closes_trackers_on_errors():
    plan = Plan.of([1.0, 2.0, 3.0], output=True, i=1)
    rec = Recorder()
    assert loop.run(Drift(0.4), np.zeros(1), 1.0, plan, [rec]) == 3.0
    assert [e[0] for e in rec.events] == [2.0, 3.0]

    def boom(state, t):
        if t > 0.5:
            raise SolverError("wall")

    rec = Recorder()
    with pytest.raises(SolverError, match="wall"):
        loop.run(Drift(0.4), np.zeros(1), 0.0, Plan.of([1.0]), [Callback(poll=boom), rec])
    assert rec.closed


def test_checkpoint_cadence_in_simulated_time():
    """Due once ``every`` has passed since the last one: at the first poll at or after it."""
    written: list[float] = []
    ck = CheckpointTracker(written.append, CheckpointClock(0.25, 0.0, 0.0))
    loop.run(Drift(0.1), np.zeros(1), 0.0, Plan.of([0.5, 1.0], output=True), [ck])
    expected, last = [], 0.0
    for t in [0.1, 0.2, 0.30000000000000004, 0.4, 0.5, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0]:
        if t - last >= 0.25:
            expected.append(t)
            last = t
    np.testing.assert_allclose(written, expected, rtol=0, atol=1e-12)
    assert len(written) == 3


def test_pending_checkpoint_is_written_at_the_first_poll():
    written: list[float] = []
    ck = CheckpointTracker(written.append, CheckpointClock(0.0, 0.0, 0.0), pending=True)
    loop.run(Drift(0.1), np.zeros(1), 0.0, Plan.of([0.0, 0.3], output=True), [ck])
    assert written == [0.0]  # after the snapshot at t = 0, then never (both triggers off)


class Relax:
    """ρ(t) = 1 + e^{-t} ρ_1 exactly (any chunking); energy E = Σρ."""

    def __init__(self, shape):
        self.base, self.mode = np.ones(shape), np.linspace(0.0, 1.0, shape)

    def advance(self, state, t, t_stop):
        state[:] = self.base + math.exp(-t_stop) * self.mode
        return t_stop


def _steady_run(t_max: float):
    stepper, state = Relax(8), None
    state = stepper.base + stepper.mode
    snaps = SnapshotTracker(lambda s, t: {"energy": float(np.sum(s))}, lambda t, v: None)
    steady = SteadyTracker(snaps, "energy", (1e-3, 1e-3), t_max,
                           (0.0, float(np.sum(state)), state.copy()))
    plan = Plan.of([0.5, 1.0], output=True)
    t = loop.run(stepper, state, 0.0, plan, [snaps, steady])
    return t, plan, steady


def test_steady_tracker_doubles_the_interval_until_stationary():
    t, plan, steady = _steady_run(1e6)
    assert steady.reached is True and steady.steady()
    ext = [s for s, _ in plan.stops[plan.n_plan:]]
    np.testing.assert_allclose(np.diff([1.0, *ext]), 0.5 * 2.0 ** np.arange(1, len(ext) + 1))
    assert t == ext[-1]
    # the rates are those of the last interval: relative dE/dt and L1 change per unit time
    span = ext[-1] - ext[-2]
    mode_sum = np.sum(np.linspace(0, 1, 8))
    e = lambda s: 8 + math.exp(-s) * mode_sum  # noqa: E731
    assert steady.rate == pytest.approx((e(ext[-2]) - e(ext[-1])) / (span * e(ext[-1])))
    assert abs(steady.rate) <= 1e-3 and steady.rho_rate <= 1e-3


def test_steady_tracker_stops_at_t_max():
    t, plan, steady = _steady_run(3.0)
    assert t == 3.0 and steady.reached is False
    assert [s for s, _ in plan.stops[plan.n_plan:]] == [2.0, 3.0]


def test_signal_checkpoints_then_raises_a_typed_interrupt(tmp_path):
    stop, written = StopFlag(), []

    def poll(state, t):
        if t >= 0.6:
            stop.signum = signal.SIGINT

    path = tmp_path / "run.h5"
    with pytest.raises(Interrupted) as info:
        loop.run(Drift(0.25), np.zeros(1), 0.0, Plan.of([2.0]),
                 [Callback(poll=poll), SignalTracker(stop, written.append, path)])
    exc = info.value
    assert written == [0.75] and exc.t == 0.75 and exc.path == path
    assert exc.exit_code == 130 and exc.signal_name == "SIGINT"
    assert "meanfield_pde.resume(" in str(exc) and "meanfield-pde" not in str(exc)
    assert f"meanfield-pde resume {path}" in _cli_words(exc)


class Scripted:
    """A compiled stepper's interface returning scripted statuses."""

    def __init__(self, statuses):
        self.statuses = list(statuses)

    def advance(self, state, t, t_stop, max_steps):
        status = self.statuses.pop(0)
        t_new = t_stop if status == REACHED else 0.5 * (t + t_stop)
        return StepReport(t_new, max_steps if status == MAX_STEPS else 3, 1, status, 0.1, 1.0)


def test_chunked_stepper_counts_steps_and_raises_on_error_status():
    chunked = loop.ChunkedStepper(Scripted([MAX_STEPS, REACHED]), 5)
    assert loop.run(chunked, np.zeros(1), 0.0, Plan.of([1.0]), []) == 1.0
    assert (chunked.n_steps, chunked.n_rejected, chunked.chunk) == (8, 2, 5)
    chunked = loop.ChunkedStepper(Scripted([MAX_STEPS, NONFINITE]), 5)
    with pytest.raises(loop.StepFailed, match="non-finite at t = 0.75") as info:
        loop.run(chunked, np.zeros(1), 0.0, Plan.of([1.0]), [])
    assert info.value.status == NONFINITE and isinstance(info.value, SolverError)


def test_loop_and_trackers_import_nothing_from_problems_or_above():
    """Problems run their pilots through the loop: loop, trackers and plan import only config,
    errors, schedule, fv and each other — no problem, runner, I/O, particles or CLI module."""
    import ast
    from pathlib import Path

    import meanfield_pde.runner as runner

    allowed = {"config", "errors", "schedule", "fv", "runner.loop", "runner.plan"}
    for name in ("loop", "trackers", "plan"):
        tree = ast.parse((Path(runner.__file__).parent / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("meanfield_pde") for a in node.names), name
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                assert not (node.module or "").startswith("meanfield_pde"), name
            elif isinstance(node, ast.ImportFrom):
                prefix = "runner." if node.level == 1 else ""
                targets = ([prefix + node.module] if node.module
                           else [prefix + a.name for a in node.names])
                for target in targets:
                    top = target.split(".")[0]
                    assert target in allowed or (top != "runner" and top in allowed), (
                        f"runner/{name}.py imports {target}")

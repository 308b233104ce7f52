"""Trackers: what happens to the state between the stepper's chunks (:mod:`.loop`).

* :class:`SnapshotTracker` — a snapshot at every output stop, appended to the result file.
* :class:`RunStatistics` — per-snapshot scalars and the minimum of the state (run summaries).
* :class:`CheckpointTracker` — a checkpoint every ``checkpoint.every`` of simulated time and/or
  ``checkpoint.wall_seconds`` of wall time (:class:`CheckpointClock`; 0 disables a trigger).
* :class:`WallTracker` — raises when mass reaches a wall; :class:`StepLimit` — when a step budget
  is spent.
* :class:`SteadyTracker` — ``--steady``: after t_end, output stops at doubling intervals until the
  energy and the state stop changing.
* :class:`ProgressBar` — a tqdm bar in simulated time.
* :class:`SignalTracker` — SIGINT / SIGTERM (:func:`trap_signals` turns them into a
  :class:`StopFlag`): writes a checkpoint and raises :class:`Interrupted`.  A Numba call cannot be
  interrupted mid-step, so the loop polls between compiled chunks; a second signal interrupts at
  once (KeyboardInterrupt).
* :class:`Callback` — a tracker from plain functions (pilot runs).

:func:`config_hash` fingerprints the resolved config stored with a checkpoint.  This module
imports nothing from :mod:`meanfield_pde.problems` or above.
"""

from __future__ import annotations

import hashlib
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MeanFieldError, SolverError
from ..fv.semi_implicit import is_steady, steady_rates
from .loop import Tracker
from .plan import Plan

RESUMABLE_KEYS = (("time", "t_end"), ("time", "n_outputs"))
SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


# ----------------------------------------------------------------------------- signals
class SignalStopped(MeanFieldError):
    """Something stopped by the signal ``signum`` (set by the subclass): its name and the
    exit code the command line returns."""

    signum: int = 0

    @property
    def signal_name(self) -> str:
        """The signal's name (``SIGINT``, ``SIGTERM``) or ``signal N``."""
        return SIGNAL_NAMES.get(self.signum, f"signal {self.signum}")

    @property
    def exit_code(self) -> int:
        """128 + signal number: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


class Interrupted(SignalStopped):
    """A run stopped by the signal ``signum`` at time ``t`` after writing a checkpoint to
    ``path``.  The message names the Python API's way on (``meanfield_pde.resume(path)``); the
    CLI words its own (``meanfield-pde resume FILE``) and exits with :attr:`exit_code`."""

    def __init__(self, path: object, t: float, signum: int):
        self.path, self.t, self.signum = path, float(t), int(signum)
        super().__init__(f"interrupted by {self.signal_name} at t = {self.t:.6g}; checkpoint "
                         f"written, continue with meanfield_pde.resume({str(path)!r})")


class StopFlag:
    """Set by the signal handlers; polled by :class:`SignalTracker`."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None

    def __repr__(self) -> str:  # as help(solve) shows the default
        return "NEVER" if self is NEVER else f"StopFlag(signum={self.signum})"


NEVER = StopFlag()  # a flag nobody sets (library calls without signal handling)
_WATCHED: list[StopFlag] = []  # the flags of the enclosing trap_signals / watching blocks


@contextmanager
def watching(stop: StopFlag) -> Iterator[StopFlag]:
    """Within the block, :func:`active_stop` returns ``stop``: phases that are not the run's
    time loop (pilot runs inside a problem's setup) see the run's stop flag through it."""
    _WATCHED.append(stop)
    try:
        yield stop
    finally:
        _WATCHED.remove(stop)


def active_stop() -> StopFlag:
    """The flag of the innermost enclosing :func:`trap_signals` or :func:`watching` block that
    is set, else the innermost one, else :data:`NEVER`."""
    for flag in reversed(_WATCHED):
        if flag:
            return flag
    return _WATCHED[-1] if _WATCHED else NEVER


class SetupInterrupted(Interrupted):
    """A signal during a setup phase (``what``, e.g. the pilot run that sizes the walls): no
    result file exists yet, so nothing is written or kept."""

    def __init__(self, what: str, signum: int):
        self.what, self.path, self.t, self.signum = what, None, 0.0, int(signum)
        MeanFieldError.__init__(self, f"interrupted by {self.signal_name} during {what}; "
                                "nothing was written")


def check_setup(what: str) -> None:
    """Raise :class:`SetupInterrupted` if :func:`active_stop` is set (setup loops call it
    between short pieces of work)."""
    stop = active_stop()
    if stop:
        raise SetupInterrupted(what, stop.signum)


#: step budget of a pilot run (the automatic walls or the grading of the cells)
PILOT_MAX_STEPS = 2_000_000
#: steps per compiled call inside a pilot, between which signals are looked at
PILOT_CHUNK = 200


def advance_guarded(stepper: Any, y: Any, t: float, t_stop: float, what: str,
                    budget: list[int]) -> Any:
    """``stepper.advance(y, t, t_stop, ·)`` in pieces of PILOT_CHUNK steps, checking signals
    between them (:func:`check_setup`) and spending ``budget[0]`` steps; returns the last step
    report (its ``t`` short of ``t_stop`` when the budget ran out or the stepper stopped)."""
    rep = None
    while t < t_stop and budget[0] > 0:
        check_setup(what)
        rep = stepper.advance(y, t, t_stop, min(PILOT_CHUNK, budget[0]))
        budget[0] -= max(rep.steps, 1)
        if rep.t <= t:
            break
        t = rep.t
    return rep


class SetupGuard(Tracker):
    """The budget and the signals of a setup run (a pilot): raises :class:`SetupInterrupted`
    once :func:`active_stop` is set, and :class:`~meanfield_pde.errors.SolverError` naming
    ``fix`` once ``chunked`` (a :class:`.loop.ChunkedStepper`) has taken more than ``max_steps``
    steps.  The pilot's chunks are short, so both are seen within a fraction of a second."""

    def __init__(self, what: str, chunked: Any, max_steps: int, fix: str):
        self.what, self.chunked, self.max_steps, self.fix = what, chunked, int(max_steps), fix

    def poll(self, state: Any, t: float) -> None:
        check_setup(self.what)
        if self.chunked.n_steps > self.max_steps:
            raise SolverError(f"{self.what} took more than {self.max_steps:,} steps (t = "
                              f"{t:.6g}); {self.fix}")


@contextmanager
def trap_signals() -> Iterator[StopFlag]:
    """Within the block, SIGINT and SIGTERM set the yielded flag instead of killing the process
    (a second signal raises KeyboardInterrupt at once).  Outside the main thread: no-op."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, _frame):
        if flag.signum is not None:
            raise KeyboardInterrupt
        flag.signum = signum

    old = {s: signal.signal(s, handler) for s in SIGNAL_NAMES}
    try:
        with watching(flag):
            yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class SignalTracker(Tracker):
    """When ``stop`` is set: ``checkpoint(t)``, then raise :class:`Interrupted`."""

    def __init__(self, stop: StopFlag, checkpoint: Callable[[float], None], path: Path):
        self.stop, self.checkpoint, self.path = stop, checkpoint, path

    def poll(self, state: Any, t: float) -> None:
        if self.stop:
            self.checkpoint(t)
            raise Interrupted(self.path, t, self.stop.signum)


# ----------------------------------------------------------------------------- checkpoints
class CheckpointClock:
    """When to write the next checkpoint: ``every`` of simulated time, ``wall_seconds`` of wall
    time (either 0 = that trigger off)."""

    def __init__(self, every: float, wall_seconds: float, t: float):
        self.every, self.wall = float(every), float(wall_seconds)
        self.reset(t)

    def reset(self, t: float) -> None:
        """Start counting again from time ``t`` and now."""
        self.t_last, self.wall_last = float(t), time.monotonic()

    def due(self, t: float) -> bool:
        """Whether ``every`` of simulated time or ``wall_seconds`` of wall time has passed."""
        if self.every > 0 and t - self.t_last >= self.every:
            return True
        return self.wall > 0 and time.monotonic() - self.wall_last >= self.wall


class CheckpointTracker(Tracker):
    """Calls ``write(t)`` when the clock is due (and at the first poll with ``pending``).  The
    runner writes the checkpoints at the start and the end itself (:meth:`write`)."""

    def __init__(self, write: Callable[[float], None], clock: CheckpointClock, *,
                 pending: bool = False):
        self._write, self.clock, self.pending = write, clock, pending

    def write(self, t: float) -> None:
        """Write a checkpoint at ``t`` now and restart the clock."""
        self._write(t)
        self.clock.reset(t)
        self.pending = False

    def poll(self, state: Any, t: float) -> None:
        if self.pending or self.clock.due(t):
            self.write(t)


def config_hash(config: dict) -> str:
    """SHA-256 of the resolved config (as stored in result files), ignoring the keys a resume
    may change: ``time.t_end``, ``time.n_outputs`` and the ``checkpoint`` section."""
    c = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.items()}
    c.pop("checkpoint", None)
    for section, key in RESUMABLE_KEYS:
        if isinstance(c.get(section), dict):
            c[section].pop(key, None)
    text = json.dumps(c, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------- snapshots
class SnapshotTracker(Tracker):
    """At every output stop: ``values = snapshot(state, t)``, then ``write(t, values)``; the last
    values are :attr:`last` (trackers listed after this one read them)."""

    def __init__(self, snapshot: Callable[[Any, float], dict],
                 write: Callable[[float, dict], None]):
        self.snapshot, self.write = snapshot, write
        self.last: dict | None = None

    def event(self, state: Any, t: float, plan: Plan) -> None:
        if plan.current[1]:
            self.last = self.snapshot(state, t)
            self.write(t, self.last)


class RunStatistics(Tracker):
    """At every output: appends its time to :attr:`times` and the snapshot fields named in
    ``history`` (name -> list), and keeps the smallest entry of the state (:attr:`minimum`)."""

    def __init__(self, snapshots: SnapshotTracker, times: list[float],
                 history: dict[str, list[float]], minimum: float,
                 minimum_of: Callable[[Any], float] = np.min):
        self.snapshots, self.times, self.history = snapshots, times, history
        self.minimum, self.minimum_of = float(minimum), minimum_of

    def event(self, state: Any, t: float, plan: Plan) -> None:
        if plan.current[1]:
            self.times.append(t)
            for name, values in self.history.items():
                values.append(self.snapshots.last[name])
            self.minimum = min(self.minimum, float(self.minimum_of(state)))


class SteadyTracker(Tracker):
    """``--steady``: at each output from t_end on, the relative energy decrease per unit time
    ``rate = (E_prev − E)/(Δt |E|)`` and the relative L1 change of the state per unit time
    ``rho_rate = ‖ρ − ρ_prev‖₁/(Δt ‖ρ‖₁)``; once every stop is reached, extends the plan by an
    interval twice the last one (an output at its end, capped at ``t_max``) until both rates are
    below their tolerances (:attr:`reached` True) or ``t_max`` is reached (False)."""

    def __init__(self, snapshots: SnapshotTracker, energy: str, tols: tuple[float, float],
                 t_max: float, previous: tuple[float, float, np.ndarray],
                 rates: tuple[float | None, float | None] = (None, None),
                 density_of: Callable[[np.ndarray], np.ndarray] = lambda state: state):
        self.snapshots, self.energy, self.tols, self.t_max = snapshots, energy, tols, t_max
        self.density_of = density_of  # the run's density in its state (e.g. without a companion)
        self.t_prev, self.e_prev, self.state_prev = previous
        self.rate, self.rho_rate = rates
        self.reached: bool | None = None

    def steady(self) -> bool:
        """Whether both rates are below their tolerances."""
        return is_steady(self.rate, self.rho_rate, *self.tols)

    def event(self, state: np.ndarray, t: float, plan: Plan) -> None:
        if not plan.current[1]:
            return
        e = self.snapshots.last[self.energy]
        rho = self.density_of(state)
        if plan.past_t_end:
            self.rate, self.rho_rate = steady_rates(self.e_prev, e, self.state_prev, rho,
                                                    t - self.t_prev)
        self.t_prev, self.e_prev, self.state_prev = t, e, rho.copy()

    def extend(self, plan: Plan, t: float) -> bool:
        if self.steady():
            self.reached = True
            return False
        if t >= self.t_max:
            self.reached = False
            return False
        plan.interval *= 2.0
        plan.append(min(t + plan.interval, self.t_max))
        return True


# ----------------------------------------------------------------------------- guards
class WallTracker(Tracker):
    """``check(state, t)`` after every chunk: raises when mass reaches a wall."""

    def __init__(self, check: Callable[[Any, float], None]):
        self.check = check

    def poll(self, state: Any, t: float) -> None:
        self.check(state, t)


class StepLimit(Tracker):
    """Raises ``error(n)`` once ``counter.n_steps`` reaches ``max_steps``."""

    def __init__(self, counter: Any, max_steps: int, error: Callable[[float], Exception]):
        self.counter, self.max_steps, self.error = counter, int(max_steps), error

    def poll(self, state: Any, t: float) -> None:
        if self.counter.n_steps >= self.max_steps:
            raise self.error(t)


class Callback(Tracker):
    """A tracker from functions: ``poll(state, t)`` and/or ``event(state, t, plan)``."""

    def __init__(self, poll: Callable[[Any, float], None] | None = None,
                 event: Callable[[Any, float, Plan], None] | None = None):
        self._poll, self._event = poll, event

    def poll(self, state: Any, t: float) -> None:
        if self._poll is not None:
            self._poll(state, t)

    def event(self, state: Any, t: float, plan: Plan) -> None:
        if self._event is not None:
            self._event(state, t, plan)


# ----------------------------------------------------------------------------- progress
class ProgressBar(Tracker):
    """A tqdm bar on stderr (only on a terminal) from ``t`` to ``total``; ``postfix()`` shown at
    each output."""

    def __init__(self, total: float, desc: str, t: float, *, bar_format: str | None = None,
                 postfix: Callable[[], str] | None = None):
        from tqdm import tqdm

        self.postfix = postfix
        self.bar = tqdm(total=total, unit="t", desc=desc, leave=False, initial=min(t, total),
                        disable=None, bar_format=bar_format)

    def poll(self, state: Any, t: float) -> None:
        self.bar.update(min(t, self.bar.total) - self.bar.n)

    def event(self, state: Any, t: float, plan: Plan) -> None:
        if self.postfix is not None and plan.current[1]:
            self.bar.set_postfix_str(self.postfix(), refresh=False)

    def close(self) -> None:
        self.bar.close()

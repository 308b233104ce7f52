"""The time loop: the only one in the package (PDE runs, SGD runs, pilot runs, ``--steady``).

::

    while the plan has a stop (or a tracker extends it):
        while t < t_stop:
            t = stepper.advance(state, t, t_stop)       # one compiled chunk, <= t_stop
            trackers.poll(state, t)                     # walls, signals, checkpoints, progress
        t = t_stop
        trackers.event(state, t, plan)                  # snapshots, steady-state rates
        plan.i += 1
        trackers.poll(state, t)

A stepper lands on every stop exactly and returns after a chunk short enough for signals to be
seen promptly; a tracker (:class:`Tracker`) acts on the state between chunks and may raise to end
the run (a wall reached, a signal, a step limit).  The model is py-pde's controller
(``while t < t_end: t_next = trackers.handle(state, t); t = stepper(state, t, t_next)``) with
Dedalus-style cadences; unlike py-pde the event times are a :class:`~.plan.Plan`, which a
checkpoint records and a resume rebuilds.

This module and :mod:`.trackers` import nothing from :mod:`meanfield_pde.problems` or above, so
that problems can use the loop for their pilot runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..errors import SolverError
from ..fv.stepper1d import DT_UNDERFLOW, MAX_STEPS, NONFINITE, REACHED
from .plan import Plan

CHUNK_STEPS = 2000  # at most this many steps per compiled call
CHUNK_SECONDS = 0.25  # aim for compiled calls of about this long (signals, checkpoints)


class LoopStepper(Protocol):
    """What the loop drives: advances ``state`` in place from ``t`` towards ``t_stop`` (one
    chunk) and returns the time reached, ``t_stop`` exactly once it is reached."""

    def advance(self, state: Any, t: float, t_stop: float) -> float:
        """Advance ``state`` in place towards ``t_stop``; return the time reached."""


class Tracker:
    """Acts on the state between stepper calls.  Every hook is optional.

    ``poll`` runs after every chunk and after every stop; ``event`` at every stop of the plan
    (``plan.current`` is the stop reached, ``plan.current[1]`` whether it is an output);
    ``extend`` when every stop is reached: append stops to the plan and return True to go on;
    ``close`` when the loop ends, also on an exception.  Trackers run in the order given."""

    def poll(self, state: Any, t: float) -> None:
        """After every chunk and every stop."""

    def event(self, state: Any, t: float, plan: Plan) -> None:
        """At every stop of the plan."""

    def extend(self, plan: Plan, t: float) -> bool:
        """All stops reached: append more and return True, or return False (the default)."""
        return False

    def close(self) -> None:
        """The loop has ended (normally or by an exception)."""


def run(stepper: LoopStepper, state: Any, t: float, plan: Plan,
        trackers: Sequence[Tracker]) -> float:
    """Advance ``state`` from ``t`` through the stops of ``plan`` (from ``plan.i`` on), handing
    it to ``trackers`` (module docstring); returns the final time."""
    try:
        while True:
            if plan.done and not any(tr.extend(plan, t) for tr in trackers):
                return t
            t_stop = plan.current[0]
            while t < t_stop:
                t = stepper.advance(state, t, t_stop)
                for tr in trackers:
                    tr.poll(state, t)
            t = t_stop
            for tr in trackers:
                tr.event(state, t, plan)
            plan.i += 1
            for tr in trackers:
                tr.poll(state, t)
    finally:
        for tr in trackers:
            tr.close()


class StepFailed(SolverError):
    """A compiled stepper stopped with an error status (non-finite state, dt underflow)."""

    def __init__(self, status: int, t: float, dt: float):
        self.status, self.t, self.dt = int(status), float(t), float(dt)
        if status == NONFINITE:
            msg = (f"the density became non-finite at t = {t:.6g} (last dt = {dt:.3g}); lower "
                   "solver.cfl (or solver.dt_max with noise) or refine the grid, and check that "
                   "the activation parameters are sensible")
        elif status == DT_UNDERFLOW:
            msg = (f"the time step underflowed at t = {t:.6g} (dt = {dt:.3g}: velocity too large "
                   "for the grid); lower solver.cfl or check the grid walls and the activation")
        else:
            msg = f"stepper stopped with status {status} at t = {t:.6g}"
        super().__init__(msg)


class ChunkedStepper:
    """A compiled stepper (``advance(state, t, t_stop, max_steps)`` returning a report with
    ``t, steps, rejected, status, dt``) as the loop's: at most ``max_steps`` steps per call, or,
    with ``adaptive``, as many as take about ``CHUNK_SECONDS`` (at most ``CHUNK_STEPS``).
    Counts the steps; raises :class:`StepFailed` on an error status."""

    def __init__(self, stepper: Any, max_steps: int | None = None, *, adaptive: bool = False):
        self.stepper, self.adaptive = stepper, adaptive
        self.chunk = CHUNK_STEPS if max_steps is None else int(max_steps)
        self.n_steps = 0
        self.n_rejected = 0
        self.clock: Callable[[], float] = time.perf_counter

    def advance(self, state: Any, t: float, t_stop: float) -> float:
        """One compiled call of at most :attr:`chunk` steps towards ``t_stop``
        (adapting the chunk to about ``CHUNK_SECONDS``); returns the time reached.

        Raises:
            StepFailed: the compiled stepper reported an error status."""
        tick = self.clock()
        rep = self.stepper.advance(state, t, float(t_stop), self.chunk)
        self.n_steps += rep.steps
        self.n_rejected += rep.rejected
        if rep.status not in (REACHED, MAX_STEPS):
            raise StepFailed(rep.status, rep.t, rep.dt)
        if self.adaptive and rep.steps:  # chunks of about CHUNK_SECONDS: signals seen promptly
            rate = rep.steps / max(self.clock() - tick, 1e-9)
            self.chunk = int(min(CHUNK_STEPS, max(1, rate * CHUNK_SECONDS)))
        return rep.t

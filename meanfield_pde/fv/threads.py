"""Serial or threaded: an online chooser for kernels whose two variants are bit-identical.

The 3-D steppers (:mod:`.stepper3d`, :mod:`.driftdiffusion3d`) have a serial and a ``prange``
variant that give the same bits.  Threads win on an idle machine, but every parallel region ends
at a barrier, and when another process holds a core the descheduled worker makes each barrier
wait for a scheduler time slice: with libgomp's default wait policy the always-threaded solve
was 5.7–6.8× slower than serial on a loaded 2-core machine (benchmarks/threads.py).  Which
variant is faster is a property of the moment, not of the machine, so :class:`ThreadChooser`
measures it.

Contract
--------
* ``plan(max_steps) -> (parallel, steps)`` says which variant the next compiled call uses and how
  many steps it may take (``steps <= max_steps``, at least 1); ``record(parallel, steps,
  seconds)`` reports what the call did (its step count and wall seconds by ``clock``).
* ``allowed=False`` (``solver.parallel = false``): always ``(False, max_steps)``; nothing else.
* Otherwise the current variant ("best", serial at first) runs whole chunks.  The other one is
  *probed* with a short call (``probe_seconds`` of the best variant's work, at least one step)
  once the best has run for ``wait`` seconds.  A probe that is faster by ``margin`` makes it the
  best, with chunks capped at twice the probe and doubling while it keeps winning (so a lucky
  probe costs one short chunk).  After a losing probe, ``wait`` = max(``first_wait``, loss /
  ``budget``) × 2^(losses since the last switch − 1), capped at ``max_wait`` but never below
  loss / ``budget`` (loss: the probe's seconds minus what the best variant takes for its steps),
  so probes cost at most about ``budget`` of the run beyond the first probe.
* A threaded chunk slower than the last serial figure switches to serial at once (serial is the
  safe variant: it never waits for another thread); a serial chunk slower than the last threaded
  figure only makes the next probe due.
* Seconds per step are the measure: the variants take the same steps (bit-identical), so the
  results do not depend on the choices, only the wall time does.
* ``clock`` is injectable (tests use a fake one); the chooser keeps no global state and starts no
  threads.

Wait policy
-----------
:func:`passive_wait_default` (called when :mod:`meanfield_pde.fv` is imported) sets
``OMP_WAIT_POLICY=PASSIVE`` unless the environment already chooses a wait policy
(``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``, ``KMP_BLOCKTIME`` or ``KMP_LIBRARY`` set, to any value:
the user's choice is kept).  OpenMP reads it once, when Numba's ``omp`` threading layer first
starts, so a process that loaded OpenMP before keeps its policy.  With libgomp's default
(spin, then sleep) the always-threaded solve was 5.7–6.8× slower than serial there, with
passive waiting 0.55–1.14× serial (benchmarks/threads.py); the chooser covers the rest (other
layers, other policies, moments where threads win or lose).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, MutableMapping

from .stepper1d import MAX_STEPS


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity; the CPU count where that is not
    known), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


WAIT_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "KMP_LIBRARY")


def passive_wait_default(environ: MutableMapping[str, str] = os.environ) -> bool:
    """``OMP_WAIT_POLICY=PASSIVE`` unless one of :data:`WAIT_KEYS` is set (module doc); True when
    it set it."""
    if any(k in environ for k in WAIT_KEYS):
        return False
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


class ThreadChooser:
    """Pick the faster of the serial and the threaded variant of a kernel, online (module doc)."""

    def __init__(self, allowed: bool, clock: Callable[[], float] = time.perf_counter, *,
                 probe_seconds: float = 0.005, first_wait: float = 0.25, max_wait: float = 30.0,
                 budget: float = 0.02, margin: float = 0.05):
        self.allowed = bool(allowed)
        self.clock = clock
        self.probe_seconds, self.first_wait, self.max_wait = probe_seconds, first_wait, max_wait
        self.budget, self.margin = budget, margin
        self.best = False  # the variant that runs whole chunks (False: serial)
        self.cost: dict[bool, float | None] = {False: None, True: None}  # seconds per step
        self.wait = first_wait  # seconds of the best variant before the next probe
        self.since = 0.0  # seconds run by the best variant since the last probe or switch
        self.fails = 0  # losing probes (or threaded chunks) since the last switch
        self.loss_wait = 0.0  # the last loss / budget: the shortest wait that keeps the budget
        self.cap: int | None = None  # step cap of the threaded chunks while they ramp up
        self.seconds = {False: 0.0, True: 0.0}  # total wall seconds per variant
        self.probes = self.switches = 0

    # -------------------------------------------------------------------------------------
    def plan(self, max_steps: int) -> tuple[bool, int]:
        """(parallel, steps) for the next compiled call of at most ``max_steps`` steps."""
        max_steps = max(1, int(max_steps))
        if not self.allowed:
            return False, max_steps
        best_cost = self.cost[self.best]
        if best_cost is not None and self.since >= self.wait:  # probe the other variant
            steps = max(1, int(self.probe_seconds / max(best_cost, 1e-12)))
            return (not self.best), min(steps, max_steps)
        return self.best, max_steps if self.cap is None else min(self.cap, max_steps)

    def record(self, parallel: bool, steps: int, seconds: float) -> None:
        """What the call planned last did: ``steps`` steps in ``seconds`` wall seconds."""
        parallel = bool(parallel)
        self.seconds[parallel] += seconds
        if not self.allowed or steps <= 0:
            return
        c = seconds / steps
        other = self.cost[not parallel]
        self.cost[parallel] = c
        if parallel != self.best:  # a probe of the other variant
            self.probes += 1
            self.since = 0.0
            if c < other * (1.0 - self.margin):  # it wins: switch (threads ramp up their chunks)
                self.best, self.fails, self.wait = parallel, 0, self.first_wait
                self.cap = 2 * steps if parallel else None
                self.switches += 1
            else:
                self._lose(seconds - steps * other)
            return
        self.since += seconds
        if self.cap is not None:
            self.cap *= 2
        if other is None or c <= other * (1.0 + self.margin):
            return
        if parallel:  # threads lost to the last serial figure: back to serial now
            self.best, self.cap = False, None
            self.switches += 1
            self._lose(seconds - steps * other)
        else:  # serial is slower than the threads were: probe them soon (within the budget)
            self.wait = min(self.wait, max(self.since, self.loss_wait))

    def _lose(self, loss: float) -> None:
        """The probed variant lost by ``loss`` seconds: back off (within the budget)."""
        self.fails += 1
        self.since = 0.0
        self.loss_wait = max(loss, 0.0) / self.budget
        base = max(self.first_wait, self.loss_wait)
        self.wait = max(min(base * 2.0 ** (self.fails - 1), self.max_wait), self.loss_wait)

    # -------------------------------------------------------------------------------------
    def run(self, call: Callable[[bool, int], tuple], max_steps: int) -> tuple:
        """``call(parallel, steps)`` as planned, timed and recorded; returns its result, whose
        second entry is the number of steps taken."""
        parallel, steps = self.plan(max_steps)
        t0 = self.clock()
        out = call(parallel, steps)
        self.record(parallel, out[1], self.clock() - t0)
        return out

    def advance(self, call: Callable[[bool, float, int], tuple], t: float,
                max_steps: int) -> tuple:
        """A stepper call from time ``t`` of up to ``max_steps`` steps, as :meth:`run` calls that
        the chooser may split (probes, ramp-up): repeated from the time reached while the kernel
        stops only at its step budget.  ``call(parallel, t, steps)`` returns (t, steps,
        rejected, status, dt, rate) with the status codes of :mod:`.stepper1d`; the result has
        the same layout, steps and rejected summed, so the stepper contract does not change."""
        done = rejected = 0
        while True:
            t, steps, rej, status, dt, rate = self.run(
                lambda parallel, n, t0=t: call(parallel, t0, n), max_steps - done)
            done, rejected = done + steps, rejected + rej
            if status != MAX_STEPS or done >= max_steps:
                return t, done, rejected, status, dt, rate

    def summary(self) -> dict[str, float | int | bool]:
        """Totals for reports: wall seconds per variant, probes, switches, the current choice."""
        return {"serial_seconds": self.seconds[False], "parallel_seconds": self.seconds[True],
                "probes": self.probes, "switches": self.switches, "best_parallel": self.best,
                "serial_cost": self.cost[False] or 0.0, "parallel_cost": self.cost[True] or 0.0}


class FixedThreads(ThreadChooser):
    """Always the same variant (``parallel``): the threaded kernels unconditionally with True,
    i.e. the behaviour before :class:`ThreadChooser` (benchmarks compare against it)."""

    def __init__(self, parallel: bool, clock: Callable[[], float] = time.perf_counter):
        super().__init__(False, clock)
        self.fixed = bool(parallel)

    def plan(self, max_steps: int) -> tuple[bool, int]:
        return self.fixed, max(1, int(max_steps))

"""The time integrator of the Lagrangian solvers: dy/dt = f(t, y) by an embedded Runge–Kutta pair.

scipy's ``DOP853`` (Dormand–Prince 8(5, 3): order 8 with a 5th- and 3rd-order error estimate)
takes the steps: a well-tested pair with step-size control, and the right one for the tight
tolerances (1e-8 … 1e-12) these solvers run at, where a low-order pair would take thousands of
steps.  Its per-step Python overhead (~30 µs) is small against one evaluation of f (a compiled
kernel over all cells or particles).

Each accepted step satisfies ``‖err_i / (atol + rtol |y_i|)‖_rms <= 1`` for the embedded error
estimate ``err``; the step lands exactly on ``t_stop`` (the last step is shortened).  The step
proposal is carried from one :meth:`OdeStepper.advance` call to the next (and through
checkpoints) so that a chunked or resumed run takes the steps of an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.integrate import DOP853

from ..fv.rk import MAX_STEPS, NONFINITE, REACHED
from ..problems.base import CarriesDt, StepReport

__all__ = ["OdeStepper"]


class OdeStepper(CarriesDt):
    """Advances ``y`` (the state, changed in place) by ``dy/dt = rhs(t, y)``.

    ``rhs(t, y)`` returns a new array of ``y``'s shape; ``rtol`` and ``atol`` are DOP853's
    tolerances (``atol`` scalar or per component).  The step report's ``umax`` is ``speed(y)``
    if given, else max |dy/dt| at the end of the call (the derivative DOP853 holds anyway)."""

    def __init__(self, rhs: Callable[[float, np.ndarray], np.ndarray], rtol: float,
                 atol: float | np.ndarray, speed: Callable[[np.ndarray], float] | None = None):
        self.rhs, self.rtol, self.atol, self.speed = rhs, float(rtol), atol, speed
        self.dt = 0.0
        self.n_evaluations = 0

    def _counted(self, t: float, y: np.ndarray) -> np.ndarray:
        self.n_evaluations += 1
        return self.rhs(t, y)

    def advance(self, state: np.ndarray, t: float, t_stop: float, max_steps: int) -> StepReport:
        if not t_stop > t:
            return StepReport(t, 0, 0, REACHED, self.dt, 0.0)
        solver = DOP853(self._counted, t, state, t_stop, rtol=self.rtol, atol=self.atol,
                        first_step=min(self.dt, t_stop - t) if self.dt > 0 else None)
        steps = 0
        status = MAX_STEPS
        while steps < max_steps:
            solver.step()
            steps += 1
            if solver.status == "failed" or not np.all(np.isfinite(solver.y)):
                state[:] = np.where(np.isfinite(solver.y), solver.y, state)
                return StepReport(solver.t, steps, 0, NONFINITE, solver.step_size or 0.0, 0.0)
            if solver.status == "finished":
                status = REACHED
                break
        state[:] = solver.y
        # the proposal for the next step (the last step was shortened to land on t_stop)
        self.dt = float(getattr(solver, "h_abs", 0.0) or solver.step_size or self.dt)
        umax = (float(self.speed(state)) if self.speed is not None
                else float(np.max(np.abs(solver.f), initial=0.0)))
        return StepReport(float(solver.t), steps, 0, status, self.dt, umax)

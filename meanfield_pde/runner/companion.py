"""The a-posteriori error estimate of a PDE run: ``risk_error`` from a companion run.

The problem names a companion — itself at a coarser resolution (:meth:`Problem.companion_config`)
— and the order p its risk converges with (:attr:`Problem.error_order`).  Both are advanced
together (one state: the main state followed by the companion's, so that checkpoints and resume
carry both), and at every output

    risk_error_k = max_{j = k−2, k−1, k} |R_j − R̃_j| / (2^p − 1),

the Richardson estimate of |R_k − R(ρ_{t_k})| for an error C h^p (R̃ the companion's risk), at
least the problem's :attr:`~meanfield_pde.problems.base.Problem.risk_error_floor`.  The
maximum over the last ``WINDOW`` = 3 outputs keeps the estimate from vanishing where the
companion's error crosses zero near an output (measured on the default radial run: with the
current output alone 7 of 201 outputs had |actual| > 3 × estimate, up to 30×; with 3, none).
Where the *actual* error crosses zero no estimate can stay within 100× of it; the estimate then
bounds the error's envelope.  The problems choose p from measured convergence studies so
that |actual error| ≤ 3 × estimate and estimate ≤ 100 × |actual error| + 1e-10 (tests check it
against converged references).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..fv.rk import MAX_STEPS, REACHED
from ..problems.base import Problem, Stepper, StepReport

__all__ = ["PairedProblem", "PairedStepper", "richardson_factor", "with_companion"]

#: outputs over which the companion difference is maximised (the current one included)
WINDOW = 3
#: the prefix of the companion's entries in the stepper state of a checkpoint
COMPANION = "companion."


def richardson_factor(order: float) -> float:
    """1 / (2^p − 1): the error of the finer of two runs whose resolutions differ by 2."""
    return 1.0 / (2.0**order - 1.0)


class PairedStepper(Stepper):
    """Advances the main part of the state (views from ``split``, each in its problem's shape) by
    up to ``max_steps`` steps, then the companion's part to the same time (in as many calls as
    it needs)."""

    def __init__(self, main: Stepper, companion: Stepper,
                 split: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]):
        self.main, self.companion, self.split = main, companion, split

    def advance(self, state: np.ndarray, t: float, t_stop: float, max_steps: int) -> StepReport:
        main, comp = self.split(state)
        rep = self.main.advance(main, t, t_stop, max_steps)
        if rep.status not in (REACHED, MAX_STEPS) or rep.t <= t:
            return rep
        tc, steps, rejected = t, 0, 0
        while tc < rep.t:
            crep = self.companion.advance(comp, tc, rep.t, max(max_steps, 1))
            steps, rejected = steps + crep.steps, rejected + crep.rejected
            if crep.status not in (REACHED, MAX_STEPS):
                return StepReport(crep.t, rep.steps + steps, rep.rejected + rejected,
                                  crep.status, crep.dt, crep.umax)
            if crep.t <= tc and crep.steps == 0:
                break
            tc = crep.t
        return StepReport(rep.t, rep.steps, rep.rejected, rep.status, rep.dt, rep.umax)

    def get_state(self) -> dict[str, float]:
        return {**self.main.get_state(),
                **{COMPANION + k: v for k, v in self.companion.get_state().items()}}

    def set_state(self, state: dict[str, float]) -> None:
        self.main.set_state({k: v for k, v in state.items() if not k.startswith(COMPANION)})
        self.companion.set_state({k[len(COMPANION):]: v for k, v in state.items()
                                  if k.startswith(COMPANION)})


class PairedProblem:
    """``main`` with its companion: the state is both states concatenated, the snapshot is
    ``main``'s plus ``risk_error`` and ``risk_companion`` (the companion's risk, from which a
    resumed run restores the previous difference); everything else is ``main``'s."""

    def __init__(self, main: Problem, companion: Problem):
        self.main, self.companion = main, companion
        self.factor = richardson_factor(main.error_order)
        self.shapes = (np.shape(main.initial_state()), np.shape(companion.initial_state()))
        self.n = int(np.prod(self.shapes[0]))
        self._previous: list[float] = []  # |R − R̃| at the last WINDOW − 1 snapshots

    def __getattr__(self, name: str) -> Any:
        return getattr(self.main, name)

    @property
    def fields(self) -> dict[str, tuple[int, ...]]:
        return {**self.main.fields, "risk_error": (), "risk_companion": ()}

    def initial_state(self) -> np.ndarray:
        return np.concatenate([np.ravel(self.main.initial_state()),
                               np.ravel(self.companion.initial_state())])

    def split(self, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Views of the main and the companion state (each in its problem's shape)."""
        return state[: self.n].reshape(self.shapes[0]), state[self.n :].reshape(self.shapes[1])

    def make_stepper(self) -> PairedStepper:
        return PairedStepper(self.main.make_stepper(), self.companion.make_stepper(), self.split)

    def restore_previous(self, differences: list[float]) -> None:
        """Continue a resumed run: ``differences`` = |R − R̃| at its snapshots so far."""
        self._previous = [float(x) for x in differences][-(WINDOW - 1):] if WINDOW > 1 else []

    def snapshot(self, state: np.ndarray) -> dict[str, float | np.ndarray]:
        main, comp = self.split(state)
        snap = self.main.snapshot(main)
        risk_c = float(self.companion.snapshot(comp)["risk"])
        diff = abs(float(snap["risk"]) - risk_c)
        worst = max([diff, *self._previous])
        self.restore_previous([*self._previous, diff])
        error = max(worst * self.factor, float(self.main.risk_error_floor))
        return {**snap, "risk_error": error, "risk_companion": risk_c}

    def check_walls(self, state: np.ndarray, t: float) -> None:
        """The run's own walls only: the companion shares them, but its coarser cells put its
        numerical tails (and its "near the wall" band of ``grid.wall_cells`` cells) further out;
        mass it loses there only enlarges the estimate, it never stops the run."""
        self.main.check_walls(self.split(state)[0], t)

    def min_density(self, state: np.ndarray) -> float:
        return self.main.min_density(self.split(state)[0])

    def attrs(self) -> dict[str, object]:
        cc = self.companion
        return {**self.main.attrs(), "error_order": float(self.main.error_order),
                **{f"companion_{k}": v for k, v in cc.attrs().items()
                   if isinstance(v, (int, float, str)) and k not in ("method",)}}


def with_companion(problem: Problem) -> Problem | PairedProblem:
    """``problem`` paired with its companion, or itself when it names none."""
    from ..problems import build_problem

    cfg = problem.companion_config()
    if cfg is None or problem.error_order <= 0:
        return problem
    return PairedProblem(problem, build_problem(cfg))

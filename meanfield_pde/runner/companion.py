"""The a-posteriori error estimate of a PDE run: ``risk_error`` from a companion run.

The problem names a companion — itself at a coarser resolution
(:meth:`Problem.companion_config`), its mesh size q times this run's
(:attr:`Problem.companion_ratio`, 2 unless the problem says otherwise) — and the order p its risk
converges with (:attr:`Problem.error_order`).  Both are advanced together (one state: the main
state followed by the companion's, so that checkpoints and resume carry both), and at every
output

    risk_error_k = max_{j <= k} |R_j − R̃_j| / (q^p − 1),

at least the problem's :attr:`~meanfield_pde.problems.base.Problem.risk_error_floor` (R̃ the
companion's risk): the Richardson estimate, for an error C h^p, of

    max_{j <= k} |R_j − R(ρ_{t_j})|,

the error of the risk *curve* up to t_k — an error bar valid for every output so far, not only
the current one.  Pointwise estimates (|R_k − R̃_k| alone, or its maximum over a few outputs) fail
where the companion's error changes sign in time while the run's does not: on the radial
Lagrangian ladders (25 … 200 mass cells, three settings, half-cells companion) the error at
single outputs was up to 77× such estimates.  The problems
choose p from measured convergence studies (documented where they set it) so that
max_{j<=k}|actual_j| <= 3 × risk_error_k at every output and risk_error_K <= 100 × max |actual| +
1e-10 over the run (:func:`curve_estimate`, :func:`curve_error`); tests check both against
converged references.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..fv.rk import MAX_STEPS, REACHED
from ..problems.base import Problem, Stepper, StepReport

__all__ = ["PairedProblem", "PairedStepper", "curve_error", "curve_estimate", "richardson_factor",
           "with_companion"]

#: the prefix of the companion's entries in the stepper state of a checkpoint
COMPANION = "companion."


def richardson_factor(order: float, ratio: float = 2.0) -> float:
    """1 / (q^p − 1): the error of the finer of two runs whose mesh sizes differ by q, in
    units of their difference, for an error C h^p."""
    return 1.0 / (float(ratio) ** order - 1.0)


def curve_estimate(risk: np.ndarray, companion: np.ndarray, order: float, ratio: float = 2.0,
                   floor: float = 0.0) -> np.ndarray:
    """``risk_error`` at every output from the two risk curves (module docstring): the running
    maximum of |R − R̃| times 1/(q^p − 1), at least ``floor``."""
    diff = np.maximum.accumulate(np.abs(np.asarray(risk) - np.asarray(companion)))
    return np.maximum(diff * richardson_factor(order, ratio), floor)


def curve_error(risk: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """What ``risk_error`` estimates: max_{j<=k} |R_j − R_ref(t_j)| at every output k."""
    return np.maximum.accumulate(np.abs(np.asarray(risk) - np.asarray(reference)))


def thread_budget() -> int:
    """Threads this process may use: the cores it may run on, capped by ``NUMBA_NUM_THREADS``
    (set to 1 inside the Dask workers of :mod:`meanfield_pde.cluster`, where one task per core
    already fills the machine)."""
    import numba

    from ..fv.threads import usable_cores

    return max(1, min(usable_cores(), int(numba.config.NUMBA_NUM_THREADS)))


class PairedStepper(Stepper):
    """Advances the main part of the state (views from ``split``, each in its problem's shape) by
    up to ``max_steps`` steps, then the companion's part to the same time (in as many calls as
    it needs).

    When both steppers are :attr:`~meanfield_pde.problems.base.Stepper.concurrent` and the
    process may use two threads (:func:`thread_budget`), the companion runs towards ``t_stop``
    in a second thread while the main part steps (two cores
    for two independent ODE systems; on a busy machine the threads share a core and cost what
    the serial order costs).  Should the main part stop short of ``t_stop`` (a step budget, a
    failure), the companion is restored and re-run to the main part's time, so the result does
    not depend on the threading."""

    def __init__(self, main: Stepper, companion: Stepper,
                 split: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]):
        self.main, self.companion, self.split = main, companion, split
        self.concurrent_pair = bool(main.concurrent and companion.concurrent
                                    and thread_budget() > 1)

    def _catch_up(self, comp: np.ndarray, t: float, t_stop: float,
                  max_steps: int) -> StepReport:
        """The companion from ``t`` to ``t_stop``, in as many calls as it needs."""
        tc, steps, rejected = t, 0, 0
        crep = StepReport(t, 0, 0, REACHED, 0.0, 0.0)
        while tc < t_stop:
            crep = self.companion.advance(comp, tc, t_stop, max(max_steps, 1))
            steps, rejected = steps + crep.steps, rejected + crep.rejected
            if crep.status not in (REACHED, MAX_STEPS) or (crep.t <= tc and crep.steps == 0):
                break
            tc = crep.t
        return StepReport(crep.t, steps, rejected, crep.status, crep.dt, crep.umax)

    def advance(self, state: np.ndarray, t: float, t_stop: float, max_steps: int) -> StepReport:
        main, comp = self.split(state)
        if self.concurrent_pair:
            saved, saved_state = comp.copy(), self.companion.get_state()
            # a thread per call (~0.1 ms against a call's ~5 ms): nothing outlives the run
            with ThreadPoolExecutor(1, thread_name_prefix="companion") as pool:
                ahead = pool.submit(self._catch_up, comp, t, t_stop, max_steps)
                try:
                    rep = self.main.advance(main, t, t_stop, max_steps)
                finally:
                    crep = ahead.result()  # never leave the thread writing the state
            if rep.t != crep.t and rep.status in (REACHED, MAX_STEPS) and rep.t > t:
                comp[...] = saved
                self.companion.set_state(saved_state)
                crep = self._catch_up(comp, t, rep.t, max_steps)
        else:
            rep = self.main.advance(main, t, t_stop, max_steps)
            if rep.status not in (REACHED, MAX_STEPS) or rep.t <= t:
                return rep
            crep = self._catch_up(comp, t, rep.t, max_steps)
        if rep.status not in (REACHED, MAX_STEPS) or rep.t <= t:
            return rep
        if crep.status not in (REACHED, MAX_STEPS):
            return StepReport(crep.t, rep.steps + crep.steps, rep.rejected + crep.rejected,
                              crep.status, crep.dt, crep.umax)
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
        self.factor = richardson_factor(main.error_order, main.companion_ratio)
        self.shapes = (np.shape(main.initial_state()), np.shape(companion.initial_state()))
        self.n = int(np.prod(self.shapes[0]))
        self._worst = 0.0  # max |R − R̃| over the snapshots so far

    def __getattr__(self, name: str) -> Any:
        return getattr(self.main, name)

    @property
    def fields(self) -> dict[str, tuple[int, ...]]:
        """``main``'s fields plus ``risk_error`` and ``risk_companion``."""
        return {**self.main.fields, "risk_error": (), "risk_companion": ()}

    def initial_state(self) -> np.ndarray:
        """The main and the companion initial states, flattened and concatenated."""
        return np.concatenate([np.ravel(self.main.initial_state()),
                               np.ravel(self.companion.initial_state())])

    def split(self, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Views of the main and the companion state (each in its problem's shape)."""
        return state[: self.n].reshape(self.shapes[0]), state[self.n :].reshape(self.shapes[1])

    def make_stepper(self) -> PairedStepper:
        """A :class:`PairedStepper` advancing both states to the same times."""
        return PairedStepper(self.main.make_stepper(), self.companion.make_stepper(), self.split)

    def restore_previous(self, differences: list[float]) -> None:
        """Continue a resumed run: ``differences`` = |R − R̃| at its snapshots so far."""
        self._worst = max((float(x) for x in differences), default=0.0)

    def snapshot(self, state: np.ndarray) -> dict[str, float | np.ndarray]:
        """``main``'s snapshot plus ``risk_companion`` (R̃) and ``risk_error`` =
        max over snapshots of |R − R̃| times the Richardson factor (at least the floor)."""
        main, comp = self.split(state)
        snap = self.main.snapshot(main)
        risk_c = float(self.companion.snapshot(comp)["risk"])
        self._worst = max(self._worst, abs(float(snap["risk"]) - risk_c))
        error = max(self._worst * self.factor, float(self.main.risk_error_floor))
        return {**snap, "risk_error": error, "risk_companion": risk_c}

    def check_walls(self, state: np.ndarray, t: float) -> None:
        """The run's own walls only: the companion shares them, but its coarser cells put its
        numerical tails (and its "near the wall" band of ``grid.wall_cells`` cells) further out;
        mass it loses there only enlarges the estimate, it never stops the run."""
        self.main.check_walls(self.split(state)[0], t)

    def min_density(self, state: np.ndarray) -> float:
        """The main run's smallest density (the companion's is not reported)."""
        return self.main.min_density(self.split(state)[0])

    def attrs(self) -> dict[str, object]:
        """``main``'s attributes, the error order and ratio, and the companion's scalar
        attributes prefixed ``companion_``."""
        cc = self.companion
        return {**self.main.attrs(), "error_order": float(self.main.error_order),
                "companion_ratio": float(self.main.companion_ratio),
                **{f"companion_{k}": v for k, v in cc.attrs().items()
                   if isinstance(v, (int, float, str)) and k not in ("method",)}}


def with_companion(problem: Problem) -> Problem | PairedProblem:
    """``problem`` paired with its companion, or itself when it names none."""
    from ..problems import build_problem

    cfg = problem.companion_config()
    if cfg is None or problem.error_order <= 0:
        return problem
    return PairedProblem(problem, build_problem(cfg))

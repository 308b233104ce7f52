"""What finished runs report: :class:`RunSummary` (PDE), :class:`GibbsSummary`,
:class:`SGDSummary`; each prints as a few lines (``lines()``) and gives the run's
:class:`~meanfield_pde.io.Result` as ``result`` (in memory for a run without a file,
:mod:`.memory`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class _WithResult:
    """``result``: the run's :class:`~meanfield_pde.io.Result` (what ``load(path)`` returns)."""

    path: Path | None
    _result: Any

    @property
    def result(self) -> Any:
        """The run's :class:`~meanfield_pde.io.Result`: held in memory for a run written to no
        file (``path`` is None), else read from ``path`` on first access (then kept)."""
        if self._result is None:
            from ..io import load

            self._result = load(self.path)
        return self._result

    def _wrote(self) -> str:
        return f"wrote {self.path}" if self.path is not None else "in memory (no file written)"


@dataclass
class RunSummary(_WithResult):
    """What a finished PDE run reports (also stored as root attributes of the result file);
    ``path`` is None for a run in memory, whose snapshots are in :attr:`result`."""

    path: Path | None
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
    risk_increase: float  # max over snapshots of E_{k+1} − E_k, E = F (noisy) or R (<= 0)
    warnings: list[str] = field(default_factory=list)
    energy_name: str = "risk"
    free_energy_final: float | None = None
    steady: bool | None = None  # --steady: reached the tolerance?
    steady_rate: float | None = None
    method: str = ""  # "fv" or "lagrangian" ("" for files written before the choice existed)
    risk_error_final: float | None = None  # the a-posteriori estimate at t_end (companion run)
    _result: Any = field(default=None, repr=False, compare=False)

    def lines(self) -> list[str]:
        """The summary as printed by ``meanfield-pde solve`` and ``resume``."""
        method = f", {self.method}" if self.method else ""
        error = (f" ± {self.risk_error_final:.1g}" if self.risk_error_final is not None else "")
        return [
            self._wrote(),
            f"  problem {self.problem}{method}, t in [0, {self.t_end:g}], {self.n_snapshots} "
            f"snapshots, {self.n_steps} steps ({self.n_rejected} rejected)",
            f"  risk {self.risk_initial:.10g} -> {self.risk_final:.10g}{error}",
            f"  mass drift {self.mass_drift:.2e}, min density {self.min_density:.3g}, "
            f"max {self.energy_name.replace('_', ' ')} increase "
            f"{max(self.risk_increase, 0.0):.2e}",
            f"  wall time {self.wall_seconds:.2f} s (+ {self.compile_seconds:.2f} s compile/load, "
            f"{self.setup_seconds:.2f} s setup)",
        ] + ([f"  free energy {self.free_energy_final:.12g}"]
             if self.free_energy_final is not None else []) + (
            [f"  steady state {'reached' if self.steady else 'NOT reached'} at t = "
             f"{self.t_end:g} (relative dF/dt = {self.steady_rate:.2e})"]
            if self.steady is not None else [])


@dataclass
class GibbsSummary(_WithResult):
    """What :func:`~meanfield_pde.runner.gibbs.solve_gibbs` reports (``path`` None: in memory,
    see :attr:`result`)."""

    path: Path | None
    problem: str
    free_energy: float
    risk: float
    iterations: int
    residual: float
    wall_seconds: float
    risk_error: float | None = None  # Richardson estimate from the companion's fixed point
    _result: Any = field(default=None, repr=False, compare=False)

    def lines(self) -> list[str]:
        """The summary as printed by ``meanfield-pde gibbs``."""
        error = f" ± {self.risk_error:.1g}" if self.risk_error is not None else ""
        return [
            self._wrote(),
            f"  self-consistent Gibbs state of {self.problem}: free energy "
            f"{self.free_energy:.12g}, risk {self.risk:.10g}{error}",
            f"  Newton iterations {self.iterations}, relative residual {self.residual:.1e}, "
            f"{self.wall_seconds:.2f} s",
        ]


@dataclass
class SGDSummary(_WithResult):
    """What :func:`~meanfield_pde.runner.sgd.solve_sgd` reports (``path`` None: in memory, see
    :attr:`result`)."""

    path: Path | None
    problem: str
    n_neurons: int
    eps: float
    batch: int
    seed: int
    t_end: float
    risk_initial: float
    risk_final: float
    n_samples: int
    wall_seconds: float
    risk_seconds: float
    _result: Any = field(default=None, repr=False, compare=False)

    def lines(self) -> list[str]:
        """The summary as printed by ``meanfield-pde sgd`` and ``resume``."""
        return [
            self._wrote(),
            f"  particle SGD of {self.problem}: N = {self.n_neurons}, eps = {self.eps:g}, "
            f"batch = {self.batch}, seed = {self.seed}, t in [0, {self.t_end:g}]",
            f"  risk {self.risk_initial:.10g} -> {self.risk_final:.10g}",
            f"  {self.n_samples} samples in {self.wall_seconds:.2f} s "
            f"({self.risk_seconds:.2f} s of it for the population risk)",
        ]

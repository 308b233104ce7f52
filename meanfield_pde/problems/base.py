"""The interface between a reduced problem and the problem-agnostic solver loop.

A problem owns its grid, its initial law, its potential and its compiled stepper; the solver loop
(:mod:`meanfield_pde.runner`) only calls the methods below, so a new reduction slots in without
touching the loop or the storage.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from ..config import Config, Schema
from ..errors import ConfigError, OptionError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Sections a kernel warm-up resets to their defaults: they size or schedule the run (output times,
#: checkpoints, particle counts) but select no compiled kernel, and the user's values may be
#: inconsistent with the warm-up's tiny t_end (e.g. time.outputs = [0, 0.5]).
WARMUP_RESET = ("time", "checkpoint", "sgd")


@dataclass
class StepReport:
    """What one call of :meth:`Stepper.advance` did."""

    t: float
    steps: int
    rejected: int
    status: int
    dt: float
    umax: float


class GibbsSolution(Protocol):
    """What :meth:`Problem.gibbs` returns."""

    density: np.ndarray
    free_energy: float
    converged: bool
    iterations: int
    residual: float


class Stepper(ABC):
    """Advances the state in place; compiled kernels underneath.

    ``concurrent``: the stepper may run in a second thread while another one runs (its kernels
    release the GIL and start no thread pool of their own: Numba's ``workqueue`` layer aborts on
    ``prange`` kernels launched from two threads at once)."""

    concurrent: bool = False

    @abstractmethod
    def advance(self, state: np.ndarray, t: float, t_stop: float, max_steps: int) -> StepReport:
        """Advance from ``t`` towards ``t_stop`` (landing on it exactly), <= ``max_steps`` steps."""

    def get_state(self) -> dict[str, float]:
        """What the stepper carries from one call to the next (e.g. the adaptive dt), as plain
        floats for a checkpoint; stateless steppers return {}."""
        return {}

    def set_state(self, state: dict[str, float]) -> None:
        """Restore what :meth:`get_state` returned."""
        if state:
            raise ValueError(f"{type(self).__name__} carries no state, got {sorted(state)}")


class CarriesDt(Stepper):
    """A stepper whose state from one call to the next is its adaptive step ``dt`` (written to
    every checkpoint, restored on resume, so that a resumed run takes the same steps)."""

    dt: float = 0.0

    def get_state(self) -> dict[str, float]:
        return {"dt": float(self.dt)}

    def set_state(self, state: dict[str, float]) -> None:
        self.dt = float(state["dt"])


def resolve_method(cfg: Config) -> str:
    """``solver.method`` resolved to ``"fv"`` or ``"lagrangian"``: ``auto`` is Lagrangian for a
    noiseless run (noise.beta = inf) and finite volumes with noise.  The Lagrangian solvers carry
    no diffusion: asking for one with noise is a :class:`ConfigError`."""
    method = cfg["solver.method"]
    noisy = math.isfinite(cfg["noise.beta"])
    if method == "auto":
        return "fv" if noisy else "lagrangian"
    if method == "lagrangian" and noisy:
        raise ConfigError(
            f"solver.method = 'lagrangian' solves the noiseless flow, but noise.beta = "
            f"{cfg['noise.beta']:g}; set solver.method = 'fv' (or 'auto') for a noisy run, or "
            "noise.beta = inf")
    return method


class Problem(ABC):
    """A reduction of the mean-field PDE (MATH.md §2, §3) discretised on a fixed grid."""

    # ---- declaration: what the registry, config, CLI and plotting read (problems/registry.py)
    #: the problem's name in configs, result files and on the command line
    name: ClassVar[str]
    #: other names accepted for it (e.g. on the command line)
    aliases: ClassVar[tuple[str, ...]] = ()
    #: section -> key -> Spec: every configuration key of the problem and its default
    schema: ClassVar[Schema] = {}
    #: draws a time-dependent result (:class:`~meanfield_pde.io.Result`) into an empty
    #: matplotlib Figure of size ``figsize`` (inches); None: no figure
    plot_run: ClassVar[Callable[[Any, Figure], None] | None] = None
    figsize: ClassVar[tuple[float, float]] = (17.0, 5.0)
    #: draws a one-state result (a Gibbs fixed point) into a Figure of ``equilibrium_figsize``
    plot_equilibrium: ClassVar[Callable[[Any, Figure], None] | None] = None
    equilibrium_figsize: ClassVar[tuple[float, float]] = (13.0, 5.0)
    # ---- end of the declaration

    config: Config
    #: the ``[grid]`` keys of the walls ("auto" resolved at build time and stored in the result's
    #: attributes, so that a resume or a validation rebuilds the same domain)
    walls: tuple[str, ...] = ()
    #: the reduced coordinates of one neuron that particle SGD records, in order (MATH.md §5)
    particle_coords: tuple[str, ...] = ()
    #: the name of the SGD result field holding them: (K, N) for one coordinate, else (K, N, C)
    particle_field: str = ""
    #: coordinate -> the snapshot field holding the PDE's marginal density of it (its cell edges
    #: are the grid array ``<coordinate>_edges``)
    marginal_fields: dict[str, str] = {}
    #: the finite-N network behind the problem (:class:`~meanfield_pde.particles.model.
    #: ParticleModel`): its initial law, trained weights, data law and risk terms; None = the
    #: problem has no network (SGD and validation are refused with a one-line error)
    particle_model: type | None = None

    @classmethod
    def with_walls(cls, cfg: Config, attrs: dict) -> Config:
        """``cfg`` with the walls a run chose, from its result attributes (KeyError if absent)."""
        return cfg.replace({f"grid.{w}": float(attrs[w]) for w in cls.walls})

    def self_interaction(self, density: np.ndarray, diag) -> float:
        """D = ∫U(θ, θ) ρ(dθ) − ∬U ρ ρ for one snapshot's density, with ``diag(t)`` =
        E σ(tG)² (the exact diagonal): E R_N = R(ρ) + D/N for N i.i.d. neurons from ρ."""
        raise NotImplementedError(f"{type(self).__name__} has no self-interaction term")

    @classmethod
    def warmup(cls, cfg: Config) -> None:
        """Compile the kernels ``cfg`` needs on a tiny problem (so compile time is measurable).

        The default does nothing: the kernels then compile during the first solve.
        """
        return None

    @property
    @abstractmethod
    def grid(self) -> dict[str, np.ndarray]:
        """Fixed arrays written under ``grid/`` in the result file."""

    @property
    @abstractmethod
    def fields(self) -> dict[str, tuple[int, ...]]:
        """Per-snapshot datasets and their shapes (without the time axis)."""

    @abstractmethod
    def initial_state(self) -> np.ndarray:
        """Cell averages of ρ̄_0."""

    @abstractmethod
    def snapshot(self, state: np.ndarray) -> dict[str, float | np.ndarray]:
        """The values of :attr:`fields` for ``state`` (risk, mass, density, ...)."""

    @abstractmethod
    def make_stepper(self) -> Stepper:
        """The compiled time stepper."""

    @abstractmethod
    def check_walls(self, state: np.ndarray, t: float) -> None:
        """Raise :class:`~meanfield_pde.errors.SolverError` if mass reaches a wall."""

    # ---- the a-posteriori error estimate (``risk_error`` in every result; runner/companion.py)
    #: the order p the risk error of this problem's discretisation is assumed to converge with
    #: when the resolution of :meth:`companion_config` is refined to this one's: the estimate is
    #: |R − R_companion| / (q^p − 1) (Richardson, q = :attr:`companion_ratio`); 0 = no estimate
    #: (no companion is run)
    error_order: float = 0.0
    #: q = the companion's mesh size over this run's (2: half the resolution)
    companion_ratio: float = 2.0

    @property
    def risk_error_floor(self) -> float:
        """The smallest ``risk_error`` this discretisation can honestly claim (e.g. the round-off
        of its risk evaluation): the estimate is max(Richardson, floor).  Default 0."""
        return 0.0

    def companion_config(self) -> Config | None:
        """The configuration of the companion run behind ``risk_error``: the same problem at a
        coarser resolution (typically half in every direction, same walls), advanced alongside
        this one on the same output times; None = no companion (``risk_error`` is not written)."""
        return None

    def min_density(self, state: np.ndarray) -> float:
        """The smallest density value the state represents (finite volumes: the smallest cell
        average; Lagrangian states hold positions, so they say what their densities are)."""
        return float(np.min(state))

    def attrs(self) -> dict[str, object]:
        """Scalars recorded as root attributes of the result file (kernel rank, r_max, ...)."""
        return {}

    def warnings(self) -> list[str]:
        """One-line warnings to show the user before the run (e.g. a kernel tolerance not met)."""
        return []

    # ------------------------------------------------------------ what the runner asks for
    @property
    def energy_field(self) -> str:
        """The snapshot field of the energy the flow decreases: the free energy F with noise, the
        risk R without (MATH.md §2).  The ``--steady`` test and the run summary's "max energy
        increase" use it.  Default: ``"free_energy"`` if :attr:`fields` has it, else ``"risk"``."""
        return "free_energy" if "free_energy" in self.fields else "risk"

    def gibbs(self) -> GibbsSolution:
        """The self-consistent Gibbs state ρ̄* ∝ w exp(−β Ψ_λ(ρ̄*)) on this grid (noise only).

        Returns an object with ``density`` (cell averages, any shape of the state's size),
        ``free_energy``, ``converged``, ``iterations`` and ``residual``.  The default raises:
        the problem has no direct Gibbs solver."""
        why = f"problem {self.name!r} has no Gibbs solver; solve the time-dependent problem with "
        raise OptionError("steady", why + "solve(cfg, steady=True) instead",
                          cli_template=why + "{opt} instead")

"""Reduced problems: one module per reduction of MATH.md, found by name through the registry.

Each problem module declares its class and registers it (:func:`~.registry.register`); the
built-in modules are imported on the first lookup, so ``import meanfield_pde.problems`` stays
cheap.  To add a problem, write one module whose :class:`~.base.Problem` subclass declares

* ``name`` (and ``aliases``): how configs, result files and the command line name it;
* ``schema``: every config section, key and default (the shared runner sections ``TIME``,
  ``SCHEDULE``, ``CHECKPOINT``, ... come from :mod:`meanfield_pde.config`); ``meanfield-pde
  config NAME --keys`` and the README key tables are generated from it;
* ``walls``: the ``[grid]`` keys of its walls, recorded so that a resume rebuilds the domain;
* its grid, fields, initial law, snapshot, stepper and wall check (the abstract methods);
* ``plot_run`` / ``plot_equilibrium`` and their figure sizes (see ``gaussians_plots.py``);
* ``particle_coords``, ``particle_field``, ``marginal_fields``: what SGD records and validation
  compares,

decorate it with ``@register``, and list the module in :func:`~.registry.declare_builtin` below
(a problem defined elsewhere, e.g. ``tests/toy_problem.py``, calls ``register`` itself).  The
runner, CLI, configuration, validation and plotting need no change.
"""

from __future__ import annotations

from ..config import Config
from .base import Problem
from .registry import canonical, declare_builtin, get, names, register, unregister

declare_builtin("meanfield_pde.problems.gaussians", "meanfield_pde.problems.single_neuron")


def problem_class(name: str) -> type[Problem]:
    """The class implementing the problem ``name`` (ConfigError naming the known ones)."""
    return get(name)


def build_problem(cfg: Config) -> Problem:
    """The problem object named by ``cfg.problem``."""
    return get(cfg.problem)(cfg)


__all__ = ["Problem", "build_problem", "canonical", "get", "names", "problem_class", "register",
           "unregister"]

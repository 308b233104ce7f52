"""Reduced problems: one module per reduction of MATH.md, found by name through the registry.

Each problem module declares its class (name, aliases, config schema, walls, particle coordinates,
plotters) and registers it (:func:`~.registry.register`); the built-in modules are imported on the
first lookup, so ``import meanfield_pde.problems`` stays cheap.
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

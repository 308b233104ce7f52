"""Reduced problems: one module per reduction of MATH.md."""

from __future__ import annotations

from ..config import Config
from ..errors import ConfigError
from .base import Problem


def problem_class(name: str) -> type[Problem]:
    """The class implementing the problem ``name``."""
    if name == "gaussians":
        from .gaussians import GaussiansProblem

        return GaussiansProblem
    if name == "single-neuron":
        from .single_neuron import SingleNeuronProblem

        return SingleNeuronProblem
    raise ConfigError(f"problem {name!r} has no solver; known: gaussians, single-neuron")


def build_problem(cfg: Config) -> Problem:
    """The problem object named by ``cfg.problem``."""
    return problem_class(cfg.problem)(cfg)


__all__ = ["Problem", "build_problem", "problem_class"]

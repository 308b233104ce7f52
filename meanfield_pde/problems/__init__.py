"""Reduced problems: one module per reduction of MATH.md."""

from __future__ import annotations

from ..config import Config
from ..errors import ConfigError
from .base import Problem


def build_problem(cfg: Config) -> Problem:
    """The problem object named by ``cfg.problem``."""
    if cfg.problem == "gaussians":
        from .gaussians import GaussiansProblem

        return GaussiansProblem(cfg)
    raise ConfigError(f"problem {cfg.problem!r} has no solver yet; known: gaussians")


__all__ = ["Problem", "build_problem"]

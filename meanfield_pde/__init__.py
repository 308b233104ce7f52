"""meanfield-pde: the mean-field limit of wide two-layer networks, solved as a PDE.

Public API::

    from meanfield_pde import default_config, load_config, solve, load
    cfg = default_config("gaussians").with_overrides(["model.d=80"])
    summary = solve(cfg, "run.h5")
    result = load("run.h5")          # result.t, result["risk"], result["density"], result.grid
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("meanfield-pde")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.1.0+unknown"

from . import kernel_cache  # noqa: E402

kernel_cache.install()  # before any kernel module is imported: compiled kernels go to a user cache

from .config import Config, default_config, load_config  # noqa: E402
from .errors import ConfigError, DataError, MeanFieldError, SolverError  # noqa: E402


def solve(*args, **kwargs):
    """Solve a configuration and write its result file; see :func:`meanfield_pde.solver.solve`."""
    from .runner.pde import solve as _solve

    return _solve(*args, **kwargs)


def load(path):
    """Read a result file; see :func:`meanfield_pde.io.load`."""
    from .io import load as _load

    return _load(path)


__all__ = [
    "Config", "ConfigError", "DataError", "MeanFieldError", "SolverError", "__version__",
    "default_config", "load", "load_config", "solve",
]

"""meanfield-pde: the mean-field limit of wide two-layer networks, solved as a PDE.

Public API::

    from meanfield_pde import default_config, load, resume, solve
    cfg = default_config("gaussians").with_overrides({"model.d": 80})
    summary = solve(cfg, "run.h5")   # also gibbs (solve_gibbs), sgd (solve_sgd), validate
    res = solve(cfg).result          # no path: in memory, no file written
    result = load("run.h5")          # result.t, result["risk"], result["density"], result.grid
    result.at(1.5), result.marginal("r"), result.moments(), result.to_xarray()
    resume("run.h5", t_end=40.0)     # continue (or extend) a run from its last checkpoint
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
from .kernel_cache import KernelCacheWarning  # noqa: E402

#: public name -> the module defining it; imported on first access (PEP 562), so that
#: ``import meanfield_pde`` stays cheap while ``help(meanfield_pde.solve)`` shows the real
#: signature and docstring.
_LAZY = {
    "solve": "runner.pde", "solve_gibbs": "runner.gibbs", "solve_sgd": "runner.sgd",
    "resume": "runner.resume", "validate": "validation", "load": "io",
    "load_checkpoint": "io", "plot_result": "plotting", "register_problem": "problems.registry",
    "problem_names": "problems.registry", "export_netcdf": "io",
    "sgd": "runner.sgd", "gibbs": "runner.gibbs", "Result": "io",  # the notebook API
    "sweep": "sweeps.run", "plot": "plotting", "animate": "animation",
}
_ALIASES = {"register_problem": "register", "problem_names": "names", "sgd": "solve_sgd",
            "gibbs": "solve_gibbs"}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'meanfield_pde' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{_LAZY[name]}", __name__), _ALIASES.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Config", "ConfigError", "DataError", "KernelCacheWarning", "MeanFieldError", "SolverError",
    "__version__",
    "default_config", "load_config", *_LAZY,
]

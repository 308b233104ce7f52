"""Helpers shared by the test files (plain functions and constants; conftest.py puts this folder
on the import path and holds the session-wide setup).

- ROOT: the repository;
- config(), make_problem(): a default config with ``--set``-style overrides, and its problem object;
- NEURON_SMALL, NEURON_BOX, NEURON_TIGHT_BOX: small single-neuron grids with fixed walls (no
  pilot run sizes the box);
- cell_centres(), radial_cells(): uniform cell-centred grids;
- quiet_main(), run_module(), run_python(), one_line_cli_error(): the command line in this
  process or in a fresh interpreter, and its one-line errors.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from meanfield_pde.cli import main
from meanfield_pde.config import Config, default_config

ROOT = Path(__file__).resolve().parents[1]  # the repository (tests/ is one level below)
CLI_ERROR = "meanfield-pde: error: "  # how the command line starts its one error line

# single-neuron: 16 x 24 x 24 cells, a coarser kernel, serial kernels (tests share the cores)
NEURON_SMALL = ["grid.n_a=16", "grid.n_s=24", "grid.n_r=24", "kernel.tol=1e-8",
                "solver.parallel=false", "time.t_end=1", "time.n_outputs=6"]
# walls that hold the default (noiseless) run up to t = 1 ...
NEURON_BOX = ["grid.a_min=0", "grid.a_max=2.5", "grid.s_min=-1.2", "grid.s_max=2",
              "grid.r_max=1.5"]
# ... and a tighter box, for short runs
NEURON_TIGHT_BOX = ["grid.a_min=0.1", "grid.a_max=2.4", "grid.s_min=-1.0", "grid.s_max=1.85",
                    "grid.r_max=1.1"]


def config(problem: str, *overrides: str) -> Config:
    """The default config of ``problem`` with ``--set``-style overrides ("grid.n=64", ...)."""
    return default_config(problem).with_overrides(list(overrides))


def make_problem(name: str, *overrides: str):
    """The problem object of ``config(name, *overrides)``."""
    from meanfield_pde.problems import build_problem

    return build_problem(config(name, *overrides))


def cell_centres(lo: float, hi: float, n: int) -> tuple[np.ndarray, float]:
    """The centres of ``n`` equal cells on [lo, hi], and their width."""
    h = (hi - lo) / n
    return lo + (np.arange(n) + 0.5) * h, h


def radial_cells(n: int, r_max: float) -> tuple[float, np.ndarray]:
    """The width and the centres of ``n`` equal cells on [0, r_max] (note the order)."""
    r, h = cell_centres(0.0, r_max, n)
    return h, r


def quiet_main(argv: list[str]) -> int:
    """``meanfield-pde ARGV`` in this process with stdout and stderr discarded: the exit code."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(argv)


def one_line_cli_error(argv: list, capsys, fragment: str = "") -> str:
    """``meanfield-pde ARGV`` in this process exits with 2 and writes exactly one line to stderr,
    ``meanfield-pde: error: ...`` containing ``fragment``; that line."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, (code, err)
    assert err.count("\n") == 1 and err.endswith("\n") and err.startswith(CLI_ERROR), err
    assert fragment in err, err
    return err[:-1]


def python_env() -> dict[str, str]:
    """The environment of this process with the repository first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def run_module(*args, cwd=None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m meanfield_pde ARGS`` in a fresh interpreter (text output captured)."""
    return subprocess.run([sys.executable, "-m", "meanfield_pde", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env=python_env())


def run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``code`` (dedented) in a fresh interpreter that imports this meanfield_pde."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=python_env(),
                          capture_output=True, text=True, timeout=timeout)

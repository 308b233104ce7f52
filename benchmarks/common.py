"""Shared helpers: machine description, JSON results, timing."""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"  # the committed JSON files and figures (README headline, RESULTS.md)
SCRATCH = HERE / "scratch"  # default output root of a run (git-ignored): scratch/results/, ...
_OUT = [SCRATCH]  # where save() and figure() write: <root>/results/ (RESULTS.md goes in <root>/)


def set_output_root(root: str | Path) -> Path:
    """Make :func:`save` and :func:`figure` write to ``<root>/results/``: ``SCRATCH`` (the
    default) or any folder, or ``HERE`` to update the committed results (``--update-results``)."""
    _OUT[0] = Path(root).resolve()
    return _OUT[0]


def output_root() -> Path:
    return _OUT[0]


def results_dir(root: str | Path | None = None) -> Path:
    """``<root>/results``; the committed ``benchmarks/results`` when ``root`` is None."""
    return RESULTS if root is None else Path(root) / "results"


def machine() -> dict:
    """What the numbers were measured on."""
    import numba
    import numpy

    from meanfield_pde import __version__

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "meanfield_pde": __version__,
        "git": _git_rev(),
    }


def _git_rev() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _jsonable(x: object) -> object:
    """numpy scalars and arrays as plain JSON values."""
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def save(name: str, data: dict) -> Path:
    """Write ``<output root>/results/<name>.json`` (never the committed results unless the output
    root was set to them)."""
    out = results_dir(output_root())
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2, sort_keys=True,
                               default=_jsonable) + "\n")
    return path


def load(name: str, root: str | Path | None = None) -> dict | None:
    """``<root>/results/<name>.json`` (default: the committed results), or None."""
    path = results_dir(root) / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


# ------------------------------------------------------------------------------------------
# measurement helpers shared by the accuracy and performance suites
# ------------------------------------------------------------------------------------------
def best_seconds(fn: Callable[[], object], repeat: int = 5, min_seconds: float = 0.02) -> float:
    """Seconds per call of ``fn``: the minimum over ``repeat`` batches of the mean over a batch
    of calls long enough (>= ``min_seconds``) for the clock; the first call is a warm-up."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-9)
    calls = max(1, int(min_seconds / once))
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def observed_orders(h: Sequence[float], err: Sequence[float]) -> list[float | None]:
    """p_i = log(e_i / e_{i+1}) / log(h_i / h_{i+1}) between neighbouring grids (e ~ C h^p);
    ``None`` where an error is zero or not finite."""
    out: list[float | None] = []
    for (h0, e0), (h1, e1) in zip(zip(h, err, strict=True), zip(h[1:], err[1:], strict=True),
                                  strict=False):
        ok = e0 > 0 and e1 > 0 and math.isfinite(e0) and math.isfinite(e1) and h0 != h1
        out.append(math.log(e0 / e1) / math.log(h0 / h1) if ok else None)
    return out


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x (y ~ C x^slope)."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def memory_bandwidth(n_bytes: int = 1 << 27, repeat: int = 7) -> dict:
    """Memory bandwidth on arrays of ``n_bytes`` each (far larger than the caches), best of
    ``repeat``: ``np.copyto`` (bytes read + bytes written per second; the write-allocate read of
    the destination is not counted) and ``np.dot`` of two arrays (bytes read per second), both on
    one thread when the BLAS is limited to one."""
    src = np.ones(n_bytes // 8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best_copy = best_read = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best_copy = min(best_copy, time.perf_counter() - t0)
        t0 = time.perf_counter()
        np.dot(src, dst)
        best_read = min(best_read, time.perf_counter() - t0)
    return {"array_bytes": int(src.nbytes), "copy_seconds": best_copy,
            "copy_bytes_per_second": 2.0 * src.nbytes / best_copy,
            "read_seconds": best_read, "read_bytes_per_second": 2.0 * src.nbytes / best_read}


SINGLE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def call_in_subprocess(module: str, func: str, kwargs: dict, env: dict[str, str]) -> object:
    """``benchmarks.<module>.<func>(**kwargs)`` in a fresh Python process with ``env`` added to
    the environment (e.g. :data:`SINGLE_THREAD_ENV`, which must be set before numpy loads its
    BLAS); returns its JSON result.  The child's stderr (progress) passes through."""
    code = ("import json, sys\n"
            f"from benchmarks import {module} as m\n"
            f"r = m.{func}(**json.loads(sys.argv[1]))\n"
            "from benchmarks.common import _jsonable\n"
            "print('@@json@@' + json.dumps(r, default=_jsonable))\n")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)],
                         stdout=subprocess.PIPE, text=True,
                         cwd=Path(__file__).resolve().parent.parent, env={**os.environ, **env})
    if out.returncode != 0:
        raise RuntimeError(f"benchmarks.{module}.{func} failed (exit {out.returncode})")
    line = [x for x in out.stdout.splitlines() if x.startswith("@@json@@")][-1]
    return json.loads(line[len("@@json@@"):])


def fmt_order(p: float | None) -> str:
    """An observed order for a table ('–' when undefined)."""
    return "–" if p is None else f"{p:.2f}"


def figure(name: str) -> tuple[Any, Path]:
    """A new matplotlib figure (Agg backend) and the path it is to be saved to."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = results_dir(output_root())
    out.mkdir(parents=True, exist_ok=True)
    return plt, out / f"{name}.png"


@functools.cache
def neuron_box() -> tuple[str, ...]:
    """``grid.*`` overrides that pin the automatic box of the default single-neuron problem
    (its pilot run is done once per process)."""
    from meanfield_pde.problems.single_neuron import WALLS, SingleNeuronProblem

    p = SingleNeuronProblem(fv_config("single-neuron").with_overrides(
        ["solver.parallel=false"]))  # the same box; serial is robust to a busy machine
    return tuple(f"grid.{k}={float(v)!r}" for k, v in zip(WALLS, p.box, strict=True))


def fv_config(problem: str):
    """The default configuration of ``problem`` solved by finite volumes (the suites that measure
    the finite-volume kernels; without noise the default method is Lagrangian)."""
    from meanfield_pde.config import default_config

    return default_config(problem).replace({"solver.method": "fv"})

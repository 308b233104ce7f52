"""Compiled kernels are cached per user, never inside the installed package (kernel_cache.py).

The failure this guards against: Numba's default cache folder ``<package>/__pycache__`` survives
``pip uninstall``/reinstall and then shadows an editable install as an empty namespace package,
and it cannot be written when site-packages is read-only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numba
import pytest

import meanfield_pde
from meanfield_pde import kernel_cache

PACKAGE = Path(meanfield_pde.__file__).resolve().parent

# compiles one small kernel of the package (cheap) and prints where its cache lives
PROBE = """
import numpy as np
from meanfield_pde.fv import transport
rho = np.ones(8); out = np.empty(8)
transport.transport_rhs(rho, np.linspace(0.0, 1.0, 8), 0.1, 1.0, 1.5, out)
print(transport.transport_rhs._cache._cache_path)
"""


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in root.rglob("*")}


def _probe(env_extra: dict, package_parent: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MEANFIELD_PDE_CACHE_DIR", "NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(env_extra)
    if package_parent is not None:
        env["PYTHONPATH"] = str(package_parent)
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=600, cwd=str(package_parent or PACKAGE.parent))


def test_every_kernel_of_the_package_caches_outside_it():
    """Every cached dispatcher in every module of the package points below the user cache root."""
    import importlib
    import pkgutil

    root = str(kernel_cache.cache_dir())
    seen = 0
    for info in pkgutil.walk_packages(meanfield_pde.__path__, "meanfield_pde."):
        if info.name.endswith("__main__"):
            continue
        mod = importlib.import_module(info.name)
        for obj in vars(mod).values():
            if isinstance(obj, numba.core.registry.CPUDispatcher) and obj._cache is not None:
                path = getattr(obj._cache, "_cache_path", None)
                if path is None or obj.__module__ != mod.__name__:
                    continue
                seen += 1
                assert not Path(path).resolve().is_relative_to(PACKAGE), (obj, path)
                assert path.startswith(root), (obj, path, root)
    assert seen > 50  # the package has over a hundred cached kernels: the walk really found them


def test_cache_dir_order(monkeypatch, tmp_path):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(kernel_cache.ENV_VAR, raising=False)
    assert kernel_cache.cache_dir() == tmp_path / "xdg" / "meanfield-pde" / "numba"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    assert kernel_cache.cache_dir() == tmp_path / "numba"
    monkeypatch.setenv(kernel_cache.ENV_VAR, str(tmp_path / "mine"))
    assert kernel_cache.cache_dir() == tmp_path / "mine"
    # unusable roots (a path below a regular file) fall through to the next, then to temp
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv(kernel_cache.ENV_VAR, str(tmp_path / "file" / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file" / "b"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    got = kernel_cache.cache_dir()
    assert got.parent.parent == tmp_path / "tmp" and got.parent.name.startswith("meanfield-pde-")


def test_a_copied_installation_is_never_written_to(tmp_path):
    """The package copied into a fresh 'site-packages' (read-only where the OS enforces it):
    compiling a kernel writes its cache into MEANFIELD_PDE_CACHE_DIR and nothing into the copy."""
    site = tmp_path / "site"
    shutil.copytree(PACKAGE, site / "meanfield_pde",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    before = _tree(site)
    for p in [site, *site.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)  # read-only (not enforced for root, checked below)
    try:
        cache = tmp_path / "cache"
        proc = _probe({kernel_cache.ENV_VAR: str(cache), "PYTHONDONTWRITEBYTECODE": "1"}, site)
        assert proc.returncode == 0, proc.stderr
        assert Path(proc.stdout.strip().splitlines()[-1]).is_relative_to(cache)
        assert any(cache.rglob("*.nbi")) and any(cache.rglob("*.nbc"))
        assert _tree(site) == before  # not one file added or changed inside the package
    finally:
        for p in [site, *site.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)


def test_unwritable_cache_root_falls_back_to_temp(tmp_path):
    (tmp_path / "file").write_text("x")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = _probe({kernel_cache.ENV_VAR: str(tmp_path / "file" / "cache"),
                   "XDG_CACHE_HOME": str(tmp_path / "file" / "xdg"), "TMPDIR": str(tmp)})
    assert proc.returncode == 0, proc.stderr
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path.is_relative_to(tmp) and any(tmp.rglob("*.nbi"))


def test_other_libraries_keep_numbas_default(tmp_path):
    """Only files inside the package are redirected: a kernel of another module is not."""
    src = tmp_path / "other_mod.py"
    src.write_text("import numba\n@numba.njit(cache=True)\ndef f(x):\n    return x + 1\n")
    code = ("import meanfield_pde, other_mod; other_mod.f(1); "
            "print(other_mod.f._cache._cache_path)")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(PACKAGE.parent)])
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=600, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).is_relative_to(tmp_path)  # Numba's own __pycache__ beside it


def test_install_is_idempotent():
    from numba.core import caching

    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    if not isinstance(getattr(impl, "_locator_classes", None), list):
        pytest.skip("this Numba has no locator list: the config.CACHE_DIR fallback is in use")
    assert isinstance(kernel_cache.install, types.FunctionType)
    kernel_cache.install()  # a second call adds no second locator
    names = [c.__name__ for c in impl._locator_classes]
    assert names.count("PackageCacheLocator") == 1


@pytest.mark.skipif(os.name != "posix", reason="POSIX paths")
def test_candidates_never_inside_package():
    for path in kernel_cache.candidate_dirs():
        assert not path.resolve().is_relative_to(PACKAGE)


# calls every compiled driver entry point once on tiny data; "Cannot cache" warnings are errors
DRIVERS = """
import warnings
warnings.simplefilter("error")
import numpy as np
from meanfield_pde.fv import driftdiffusion1d as dd1, driftdiffusion3d as dd3
from meanfield_pde.fv import stepper1d, stepper3d
from meanfield_pde.fv.bundles import Grid1, Grid3, Kernel3, LowRank, Noise, StepSizes, Xi
n = 8
r = (np.arange(n) + 0.5) / n
kern, xi = LowRank.make(np.zeros(n), np.ones((1, n)), [0.5]), Xi.make(0, [1.0])
work = tuple(np.empty(n) for _ in range(5)) + (np.empty(1),)
stepper1d.advance(np.ones(n), 0.0, 0.01, 5, 1.0 / n, kern, xi, 0.4, 2.0, work)
grid, noise = Grid1.make(1.0 / n, r), Noise.make(0.0, 0.1, 5.0, 1.0)
nw = dd1.noisy_workspace(n, 1)
dd1.advance_noisy(np.ones(n), 0.0, 0.01, 5, grid, kern, noise, xi, StepSizes.make(0.0, 0.1), nw)
dd1.advance_noisy_rk3(np.ones(n), 0.0, 0.001, 5, grid, kern, noise, xi, 0.5, nw)
c = (np.arange(4) + 0.5) / 4
g3 = Grid3.make(c - 0.5, c - 0.5, c, 0.25, 0.25, 0.25)
k3 = Kernel3.make(np.zeros((4, 4)), np.ones((1, 16)), [0.3])
for par in (False, True):
    stepper3d.advance3d(np.ones((4, 4, 4)), 0.0, 0.01, 5, g3, k3, xi, 0.4, 2.0,
                        stepper3d.make_work(4, 4, 4, 1), parallel=par)
    dd3.advance_noisy3d(np.ones((4, 4, 4)), 0.0, 0.01, 5, g3, k3, noise, xi,
                        StepSizes.make(0.0, 0.1), dd3.make_noisy3d_work(4, 4, 4, 1),
                        parallel=par)
for f in (stepper1d.advance, dd1.advance_noisy, dd1.advance_noisy_rk3, stepper3d._advance,
          stepper3d._advance_par, dd3._advance):
    print(f.__name__, sum(f.stats.cache_hits.values()), sum(f.stats.cache_misses.values()))
"""


def test_the_time_stepping_drivers_load_from_the_disk_cache():
    """The adaptive drivers (fv/rk.py, fv/semi_implicit.py) are closures over compiled functions,
    embedded in cached entry points: in a fresh process every entry point loads from the cache
    (no recompilation, no "cannot cache" warning).  Uses the session's cache root (the first
    run compiles only what is not cached yet)."""
    env = dict(os.environ, PYTHONPATH=str(PACKAGE.parent))
    runs = [subprocess.run([sys.executable, "-c", DRIVERS], env=env, capture_output=True,
                           text=True, timeout=1200, cwd=str(PACKAGE.parent)) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    for line in runs[1].stdout.split("\n")[-7:-1]:
        name, hits, misses = line.split()
        assert int(hits) >= 1 and int(misses) == 0, line


# the serial and the threaded variant of one source, each loaded from the cache
VARIANTS = """
import numba
import numpy as np
from meanfield_pde.fv import rk
x, out = np.ones(64), np.empty(64)
rk.stage(rk.EULER, x, x, x, 0.5, out)
try:
    numba.threading_layer()
    started = True
except ValueError:  # no parallel region has run yet
    started = False
rk.stage_par(rk.EULER, x, x, x, 0.5, out)
print(started, numba.threading_layer())
for f in (rk.stage, rk.stage_par):
    print(sum(f.stats.cache_hits.values()), sum(f.stats.cache_misses.values()))
"""


def test_serial_and_threaded_variants_are_cached_apart_and_the_threaded_one_is_threaded():
    """fv/variants.py compiles one source twice; Numba's cache key ignores ``parallel=True``, so
    the two must live in different cache files.  In a fresh process both load from the cache,
    the serial one starts no thread pool and the threaded one does."""
    import importlib
    import pkgutil

    import meanfield_pde.fv as fv

    paths = {}
    for info in pkgutil.iter_modules(fv.__path__, "meanfield_pde.fv."):
        for obj in vars(importlib.import_module(info.name)).values():
            cache_file = getattr(getattr(obj, "_cache", None), "_cache_file", None)
            if isinstance(obj, numba.core.registry.CPUDispatcher) and cache_file is not None:
                paths.setdefault(cache_file._index_path, set()).add(obj)
    assert all(len(v) == 1 for v in paths.values())  # no two dispatchers share a cache file
    env = dict(os.environ, PYTHONPATH=str(PACKAGE.parent))
    runs = [subprocess.run([sys.executable, "-c", VARIANTS], env=env, capture_output=True,
                           text=True, timeout=600, cwd=str(PACKAGE.parent)) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    started, layer = runs[1].stdout.split("\n")[0].split()
    assert started == "False" and layer in ("omp", "tbb", "workqueue")
    for line in runs[1].stdout.split("\n")[1:3]:
        hits, misses = map(int, line.split())
        assert hits >= 1 and misses == 0, runs[1].stdout

"""Where the compiled Numba kernels of this package are cached: per user, never in the package.

Numba's default for ``@njit(cache=True)`` is a ``__pycache__`` folder beside the source file.  For
an installed package that is ``site-packages/meanfield_pde/__pycache__``: files pip did not
install, which ``pip uninstall`` and a reinstall leave behind (the leftover folder then shadows an
editable install as an empty namespace package), and which cannot be written at all when
site-packages is read-only.  This module points every kernel *of this package* at a per-user
directory instead, chosen in this order:

1. ``$MEANFIELD_PDE_CACHE_DIR`` if set;
2. ``$NUMBA_CACHE_DIR`` if set (Numba's own setting, respected);
3. ``$XDG_CACHE_HOME/meanfield-pde/numba`` (default ``~/.cache/meanfield-pde/numba``);
4. if none of these can be written, ``<system temp dir>/meanfield-pde-<user>/numba``.

Below the root Numba adds a sub-folder derived from the full path of the source file, so an
installed copy and a source checkout never share entries, and its index is keyed on the source
file (its SHA-256 in current Numba, its modification time and size in older ones), so changed
sources recompile.  Deleting the directory forces recompilation and is always safe.

Mechanism: a cache locator placed first in Numba's list of locators, answering only for source
files inside this package (other libraries' kernels keep Numba's defaults).  The list is consulted
when a function is decorated, so :func:`install` runs from ``meanfield_pde/__init__.py`` before any
kernel module is imported.  Should a future Numba drop that list, the fallback sets Numba's
``config.CACHE_DIR`` (the documented equivalent of ``NUMBA_CACHE_DIR``) to the same root.
"""

from __future__ import annotations

import getpass
import os
import tempfile
from pathlib import Path

ENV_VAR = "MEANFIELD_PDE_CACHE_DIR"
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_installed = False


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no name for this uid (containers): the number is as good
        return str(os.getuid()) if hasattr(os, "getuid") else "user"


def candidate_dirs() -> list[Path]:
    """The cache roots in order of preference (see the module docstring)."""
    out = []
    for var in (ENV_VAR, "NUMBA_CACHE_DIR"):
        if os.environ.get(var):
            out.append(Path(os.environ[var]).expanduser())
            break
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    out.append(Path(xdg) / "meanfield-pde" / "numba")
    out.append(Path(tempfile.gettempdir()) / f"meanfield-pde-{_user()}" / "numba")
    return out


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


def cache_dir() -> Path:
    """The first writable cache root; the kernels of this package are cached below it."""
    cands = candidate_dirs()
    for path in cands:
        if _writable(path):
            return path
    return cands[-1]


def _inside_package(py_file: str) -> bool:
    try:
        return os.path.commonpath([os.path.abspath(py_file), _PACKAGE_DIR]) == _PACKAGE_DIR
    except ValueError:  # different drives
        return False


def install() -> None:
    """Route the Numba cache of this package's kernels to :func:`cache_dir` (idempotent)."""
    global _installed
    if _installed:
        return
    from numba.core import caching

    base = getattr(caching, "UserProvidedCacheLocator", None) or getattr(
        caching, "_UserProvidedCacheLocator", None)
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    locators = getattr(impl, "_locator_classes", None)
    if base is None or not isinstance(locators, list):
        from numba.core import config

        if not config.CACHE_DIR:
            config.CACHE_DIR = str(cache_dir())
        _installed = True
        return

    class PackageCacheLocator(base):
        """Numba cache locator for the source files of meanfield_pde (per-user directory)."""

        _root: str | None = None

        def __init__(self, py_func, py_file):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            if PackageCacheLocator._root is None:
                PackageCacheLocator._root = str(cache_dir())
            sub = self.get_suitable_cache_subpath(py_file)
            self._cache_path = os.path.join(PackageCacheLocator._root, sub)

        @classmethod
        def from_function(cls, py_func, py_file):
            if not os.path.exists(py_file) or not _inside_package(py_file):
                return None
            loc = cls(py_func, py_file)
            try:
                loc.ensure_cache_path()
            except OSError:  # the root went away or became read-only: the temp fallback
                PackageCacheLocator._root = str(candidate_dirs()[-1])
                loc = cls(py_func, py_file)
                try:
                    loc.ensure_cache_path()
                except OSError:  # nothing writable at all: Numba's own choice
                    return None
            return loc

    locators.insert(0, PackageCacheLocator)
    _installed = True

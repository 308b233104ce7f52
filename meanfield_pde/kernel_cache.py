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
4. if none of these can be written, ``<system temp dir>/meanfield-pde-<user>/numba``;
5. if that cannot be written either (a read-only system with an unwritable HOME), the kernels are
   not cached at all: each process compiles them in memory, and the first compilation warns once
   (:class:`KernelCacheWarning`) naming the cause and the fix (set ``MEANFIELD_PDE_CACHE_DIR``
   to a writable directory).  Nothing ever falls back to a folder inside the package.

Below the root Numba adds a sub-folder derived from the full path of the source file, so an
installed copy and a source checkout never share entries, and its index is keyed on the source
file (its SHA-256 in current Numba, its modification time and size in older ones), so changed
sources recompile.  Deleting the directory forces recompilation and is always safe.

Mechanism: a cache locator placed first in Numba's list of locators, answering only for source
files inside this package (other libraries' kernels keep Numba's defaults).  The list is consulted
when a function is decorated, so :func:`install` runs from ``meanfield_pde/__init__.py`` before any
kernel module is imported.  Should a future Numba drop that list, the fallback sets Numba's
``config.CACHE_DIR`` (the documented equivalent of ``NUMBA_CACHE_DIR``) to the same root.
Caching without a writable root goes through Numba's ``Dispatcher.enable_caching``, which
:func:`install` wraps: for this package's kernels it then keeps a cache that stores nothing.
"""

from __future__ import annotations

import getpass
import inspect
import os
import tempfile
import warnings
from pathlib import Path

ENV_VAR = "MEANFIELD_PDE_CACHE_DIR"
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_installed = False
_UNSET = object()
_chosen_root: object = _UNSET  # the root of this process; None: nothing can be written
_tried: list[str] = []  # why each candidate was refused (for the warning)
_warned = False


class KernelCacheWarning(RuntimeWarning):
    """No directory can hold the compiled kernels: they are compiled in memory in each process."""


class _NoWritableCache(Exception):
    """Raised by the locator when its root stopped being writable and nothing else is."""


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


def _why_not_writable(path: Path) -> str | None:
    """None if ``path`` is (made) a writable directory, else the reason in a few words."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return None
    except OSError as exc:
        return f"{path}: {exc.strerror or type(exc).__name__}"


def _writable(path: Path) -> bool:
    return _why_not_writable(path) is None


def cache_dir() -> Path:
    """The first writable cache root; the kernels of this package are cached below it (the
    last candidate when none is writable: see :func:`cache_root`)."""
    cands = candidate_dirs()
    for path in cands:
        if _writable(path):
            return path
    return cands[-1]


def cache_root() -> Path | None:
    """The cache root of this process (chosen once, see the module docstring), or None when no
    candidate can be written: then the kernels are compiled in memory."""
    global _chosen_root
    if _chosen_root is _UNSET:
        _tried.clear()
        for path in candidate_dirs():
            why = _why_not_writable(path)
            if why is None:
                _chosen_root = path
                break
            _tried.append(why)
        else:
            _chosen_root = None
    return _chosen_root  # type: ignore[return-value]


def _warn_no_cache() -> None:
    """The one warning of a process that cannot cache its kernels (at its first compile)."""
    global _warned
    if _warned:
        return
    _warned = True
    warnings.warn(
        "compiled kernels cannot be cached, so each process compiles them anew (slower start): "
        f"no writable cache directory ({'; '.join(_tried) or 'none'}); set {ENV_VAR} to a "
        "writable directory", KernelCacheWarning, stacklevel=2)


def _no_disk_cache():
    """A Numba cache that stores nothing and warns once, at the first compilation."""
    from numba.core.caching import NullCache

    class NoDiskCache(NullCache):
        def load_overload(self, sig, target_context):
            _warn_no_cache()

    return NoDiskCache()


def _wrap_enable_caching() -> None:
    """Make ``cache=True`` of this package's kernels compile in memory when no root is
    writable, instead of Numba's "no locator available" (or a cache folder in the package)."""
    from numba.core.dispatcher import Dispatcher

    original = Dispatcher.enable_caching

    def enable_caching(self):
        try:
            ours = _inside_package(inspect.getfile(self.py_func))
        except TypeError:  # no source file (built in, exec'd): not ours
            ours = False
        if not ours:
            return original(self)
        if cache_root() is None:
            self._cache = _no_disk_cache()
            return None
        try:
            return original(self)
        except _NoWritableCache:
            self._cache = _no_disk_cache()
            return None

    enable_caching.__doc__ = original.__doc__
    Dispatcher.enable_caching = enable_caching


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

        if not config.CACHE_DIR and cache_root() is not None:
            config.CACHE_DIR = str(cache_root())
        _wrap_enable_caching()
        _installed = True
        return

    class PackageCacheLocator(base):
        """Numba cache locator for the source files of meanfield_pde (per-user directory)."""

        _root: str | None = None

        def __init__(self, py_func, py_file):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            if PackageCacheLocator._root is None:
                root = cache_root()
                if root is None:
                    raise _NoWritableCache
                PackageCacheLocator._root = str(root)
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
                except OSError as exc:  # nothing writable at all: compiled in memory
                    _tried.append(f"{PackageCacheLocator._root}: {exc.strerror or exc}")
                    raise _NoWritableCache from exc
            return loc

    locators.insert(0, PackageCacheLocator)
    _wrap_enable_caching()
    _installed = True

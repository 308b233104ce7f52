"""What a result file records about the software that wrote it: library versions and, when the
package runs from a git checkout, its revision and whether the work tree has uncommitted
changes (the root attributes ``versions``, ``git_revision``, ``git_dirty``; see
:mod:`meanfield_pde.io.layout`).  Imports nothing of the package: the io writer uses it.

Git is asked with a short timeout; when git is missing, slow, or the package is not tracked by
a git work tree (an installed package), the two git attributes are simply absent.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = ["LIBRARIES", "git_state", "library_versions", "run_environment"]

#: the libraries whose versions every result file records (besides Python, meanfield-pde, HDF5)
LIBRARIES = ("numpy", "numba", "scipy", "h5py")
_GIT_TIMEOUT_SECONDS = 2.0
_PACKAGE_DIR = Path(__file__).resolve().parent


@functools.cache
def library_versions() -> dict[str, str]:
    """Versions of Python, the HDF5 library and :data:`LIBRARIES` (a library that is not
    installed is left out)."""
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    try:
        import h5py

        out["hdf5"] = h5py.version.hdf5_version
    except ImportError:  # pragma: no cover - h5py is a dependency
        pass
    return out


def _git(directory: Path, *args: str) -> str | None:
    """stdout of ``git -C directory args`` (stripped), or None on any failure or timeout."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}  # status must not lock
    try:
        done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True,
                              text=True, timeout=_GIT_TIMEOUT_SECONDS, env=env, check=False)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(directory: str | os.PathLike | None = None) -> dict[str, Any]:
    """``{"git_revision": <40 hex>, "git_dirty": bool}`` of the git work tree holding the
    package source ``directory`` (default: this package's directory), or ``{}`` when that
    directory is not tracked by git (an installed package), git is missing or too slow.

    ``git_dirty`` is true when tracked files differ from that revision (untracked files do not
    count)."""
    where = Path(directory) if directory is not None else _PACKAGE_DIR
    if not where.is_dir() or not _git(where, "ls-files", "--", "__init__.py"):
        return {}  # not a checkout of the package (e.g. installed inside another repository)
    revision = _git(where, "rev-parse", "HEAD")
    if not revision:
        return {}
    status = _git(where, "status", "--porcelain", "--untracked-files=no")
    out: dict[str, Any] = {"git_revision": revision}
    if status is not None:
        out["git_dirty"] = bool(status)
    return out


def run_environment() -> dict[str, Any]:
    """The provenance attributes of a new result file: ``versions`` (dict, stored as JSON; the
    writer adds meanfield-pde's own) and, from a git checkout, ``git_revision`` and
    ``git_dirty``."""
    return {"versions": dict(library_versions()), **git_state()}

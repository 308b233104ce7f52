"""The disk guard: every write first checks that the file system keeps
:data:`DISK_RESERVE_BYTES` free beyond what the write adds, and that the file stays that far
below the process's file-size limit (``ulimit -f``, RLIMIT_FSIZE: a write past it fails with
EFBIG just as one on a full disk fails with ENOSPC).

libhdf5 does not survive a failed write (the file is left with a superblock pointing past its
end, and releasing the objects of the failed file crashes the process: h5py/h5py#914, closed
as a bug of the external library; reproduced with h5py 3.16 / HDF5 2.0), so "disk full" must
be caught before HDF5 sees it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from ..errors import DiskFull

__all__ = ["DISK_RESERVE_BYTES", "check_space"]

DISK_RESERVE_BYTES = 4 * 2**20
_METADATA_BYTES = 64 * 2**10  # generous bound on the metadata one write adds


def _free_bytes(path: Path) -> float:
    """Bytes available to this user on the file system holding ``path`` (its directory)."""
    st = os.statvfs(path if path.is_dir() else path.parent)
    return float(st.f_bavail) * float(st.f_frsize)


def _size_limit_room(path: Path) -> float:
    """Bytes the file ``path`` may still grow by under RLIMIT_FSIZE (inf: no limit).  HDF5
    writes inside the address space it has allocated, which can run ahead of the file's size
    by up to about a MiB: the reserve covers that."""
    try:
        import resource
    except ImportError:  # not a Unix
        return math.inf
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft == resource.RLIM_INFINITY:
        return math.inf
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    return float(soft) - float(size)


def check_space(path: Path, need: float, what: str, *, resumable: bool = True) -> None:
    """Refuse (:class:`~meanfield_pde.errors.DiskFull`, nothing written) a write of about
    ``need`` bytes that would leave less than DISK_RESERVE_BYTES free on the disk or below the
    file-size limit; ``resumable`` tells the error whether the run can be continued from the
    file."""
    need = float(need) + _METADATA_BYTES
    room = _size_limit_room(path)
    if room - need < DISK_RESERVE_BYTES:
        raise DiskFull(path, f"{path} is {max(room, 0.0) / 2**20:.3g} MiB below the file-size "
                       f"limit of this process, {what} needs {need / 2**20:.3g} MiB and "
                       f"{DISK_RESERVE_BYTES / 2**20:.3g} MiB are kept in reserve", resumable,
                       fix="raise the file-size limit (RLIMIT_FSIZE, set by the shell's "
                       "ulimit) or write elsewhere",
                       what="file-size limit reached")
    try:
        free = _free_bytes(path)
    except OSError:
        return  # unknown (e.g. a file system without statvfs): let the write try
    if free - need < DISK_RESERVE_BYTES:
        raise DiskFull(path, f"{free / 2**20:.3g} MiB free where {path} is written, {what} "
                       f"needs {need / 2**20:.3g} MiB and {DISK_RESERVE_BYTES / 2**20:.3g} MiB "
                       "are kept in reserve", resumable)

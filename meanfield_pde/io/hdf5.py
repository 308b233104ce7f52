"""Raw HDF5 primitives: create a file in the 1.8 format, open it for a write, read it without
ever blocking a writer, write rows of a resizable dataset, and the one-line errors of failed
writes.

Nobody takes HDF5's own file locks (``locking=False``): one writer per file is the writer's
``filelock`` (:func:`~.writer.writer_lock`), and a reader must never stop it — with HDF5's locks
a reader polling a running solve held the file often enough that the solve's next write waited
and gave up.  A reader instead checks that the file did not change while it read it (its size,
modification time and inode before and after, a sequence lock) and reads again if it did
(:func:`read_file`): what it returns is a state of the file between two writes.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import h5py
import numpy as np

from ..errors import CorruptFile, DataError, OutputExists
from .layout import one_line

__all__ = ["READ_QUIET_SECONDS", "READ_RETRY_SECONDS", "check_new_output", "create_file",
           "open_file", "read_file", "vanished_error", "write_error", "write_row",
           "writer_lock_path"]

# HDF5 1.8 file format: checksummed superblock, object headers and link storage, so
# corrupted metadata is detected instead of being parsed, and (unlike the 1.10 format) no
# "file is already open for write" flag that makes a file unreadable after a writer crash.
_LIBVER = (h5py.h5f.LIBVER_V18, h5py.h5f.LIBVER_V18)
# Keep every root attribute in the (checksummed) object header: HDF5 moves them to "dense"
# storage (a fractal heap) beyond 8 by default.
_MAX_COMPACT_ATTRIBUTES = 4096
READ_RETRY_SECONDS = 10.0  # how long a reader tries again while a writer changes the file
READ_QUIET_SECONDS = 1.0  # a failed read of a file written more recently is tried again
_T = TypeVar("_T")


def check_new_output(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse, before any work, an output ``path`` that is a directory, a dangling symlink
    (whatever ``overwrite``) or below a regular file (DataError), or that exists while
    ``overwrite`` is false (:class:`~meanfield_pde.errors.OutputExists`); returns it as a Path.
    The writer checks again when it creates the file."""
    p = Path(path)
    if p.is_symlink() and not p.exists():
        raise DataError(f"output {p} is a dangling symlink to {os.readlink(p)} (nothing is "
                        "there); remove the link or choose another path")
    if p.is_dir():
        raise DataError(f"output {p} is a directory; choose a file path inside it or "
                        "another path")
    parent = next((q for q in p.parents if q.exists()), None)
    if parent is not None and not parent.is_dir():
        raise DataError(f"cannot write {p}: {parent} is a file, not a directory; choose "
                        "another path")
    if p.exists() and not overwrite:
        raise OutputExists(p)
    return p


def create_file(path: Path, overwrite: bool) -> h5py.File:
    """Create ``path`` in the HDF5 1.8 format with every root attribute kept compact (no HDF5
    file lock: module docstring)."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(*_LIBVER)
    fapl.set_file_locking(False, True)
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_attr_phase_change(_MAX_COMPACT_ATTRIBUTES, 0)
    flags = h5py.h5f.ACC_TRUNC if overwrite else h5py.h5f.ACC_EXCL
    return h5py.File(h5py.h5f.create(os.fsencode(path), flags, fapl=fapl, fcpl=fcpl))


@contextmanager
def open_file(path: Path, mode: str) -> Iterator[h5py.File]:
    """Open ``path`` with h5py for the writer (``"r+"``), without HDF5's file lock (module
    docstring); reads go through :func:`read_file`."""
    f = h5py.File(path, mode, locking=False)
    try:
        yield f
    finally:
        f.close()


def _stamp(path: Path) -> tuple[int, int, int, int] | None:
    """What changes when the file is written or replaced (None: it is gone)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def writer_lock_path(path: Path) -> Path:
    """The lock file a writer of ``path`` holds for its whole run (:func:`~.writer.
    writer_lock`)."""
    return Path(f"{path}.lock")


def _writer_active(path: Path) -> bool | None:
    """Whether a writer holds the lock of ``path`` now (None: cannot tell).  A probe: a shared
    ``flock`` (the lock ``filelock`` takes on Unix), released at once; a writer starting in
    that instant waits for it (its lock has a short timeout), it is never refused."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fd = os.open(writer_lock_path(path), os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _recent(stamp: tuple[int, int, int, int] | None) -> bool:
    """Whether the file was written less than :data:`READ_QUIET_SECONDS` ago (or is gone)."""
    return stamp is None or time.time_ns() - stamp[2] < READ_QUIET_SECONDS * 1e9


def read_file(path: Path, read: Callable[[h5py.File], _T],
              retry_seconds: float = READ_RETRY_SECONDS) -> _T:
    """``read(f)`` on ``path`` opened read-only, without any lock, so a writer is never blocked
    or slowed: read again when the file changed during the read (a writer wrote meanwhile),
    and when the read failed on a file written less than :data:`READ_QUIET_SECONDS` ago while
    a writer holds its lock (it may be between two of the HDF5 writes of one update, so that
    the file stayed the same during a read of a half-updated state).  What it returns, or the
    error it lets through, belongs to one state of the file.

    Raises:
        whatever ``read`` or h5py raise for a file that stayed the same while it was read and
        had been quiet for :data:`READ_QUIET_SECONDS`; DataError if that did not happen within
        ``retry_seconds``.
    """
    deadline = time.monotonic() + retry_seconds
    delay = 0.002
    while True:
        before = _stamp(path)
        try:
            with h5py.File(path, "r", locking=False) as f:
                out = read(f)
        except Exception as exc:
            stable = _stamp(path) == before
            logical = isinstance(exc, DataError) and not isinstance(exc, CorruptFile)
            if stable and (logical or not _recent(before) or _writer_active(path) is False):
                raise  # a consistent state's own error
            if time.monotonic() > deadline:
                if stable:
                    raise
                raise _unsettled(path, retry_seconds) from None
        else:
            if _stamp(path) == before:
                return out
            if time.monotonic() > deadline:
                raise _unsettled(path, retry_seconds)
        time.sleep(delay)
        delay = min(2 * delay, 0.05)


def _unsettled(path: Path, seconds: float) -> DataError:
    return DataError(f"{path} changed while it was read, again and again for {seconds:g} s "
                     "(a run writing it without pause); read it again later")


def write_row(f: h5py.File, name: str, k: int, arr: np.ndarray) -> None:
    """Resize the (K, *shape) dataset ``name`` to k + 1 rows and write row k (h5py's low-level
    API: the same HDF5 calls as ``ds.resize(k + 1, axis=0); ds[k] = arr`` in half the time)."""
    arr = np.asarray(arr, dtype=np.float64, order="C")  # (ascontiguousarray makes 0-d 1-d)
    write_rows(f, name, k, arr.reshape(1, *arr.shape))


def write_rows(f: h5py.File, name: str, k: int, rows: np.ndarray) -> None:
    """Resize the (K, *shape) dataset ``name`` to k + m rows and write ``rows`` (m, *shape) as
    rows k … k + m − 1, in one HDF5 write."""
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    m, shape = rows.shape[0], rows.shape[1:]
    dsid = h5py.h5d.open(f.id, name.encode("utf-8"))
    dsid.set_extent((k + m, *shape))
    if rows.size == 0:
        return
    fspace = dsid.get_space()
    fspace.select_hyperslab((k, *([0] * len(shape))), (m, *shape))
    dsid.write(h5py.h5s.create_simple((m, *shape)), fspace, rows)


def write_error(path: Path, exc: BaseException) -> DataError:
    """One-line DataError for a failed write: the cause named when the error number tells it
    (no permission, read-only file system, disk full), else the location to check."""
    denied = "permission denied: choose a location your user may write or change its permissions"
    fix = {errno.EACCES: denied, errno.EPERM: denied,
           errno.EROFS: "the file system is read-only: choose a location on a writable one",
           errno.ENOSPC: "the disk is full: free some disk space",
           errno.EDQUOT: "the disk quota is exceeded: free some space or raise the quota"}
    hint = fix.get(getattr(exc, "errno", None),
                   "check that the location is writable and the disk is not full")
    return DataError(f"cannot write {path}: {one_line(exc)}; {hint}")


def vanished_error(path: Path) -> DataError:
    """The DataError of an output file removed while a run writes it."""
    return DataError(
        f"output {path} disappeared during the run; do not move or delete it while solving"
    )

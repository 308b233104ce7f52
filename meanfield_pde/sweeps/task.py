"""One point of a sweep, run where Dask puts it (a worker process, local or remote).

:func:`run_point` is a top-level function (it pickles by reference) that takes only small
arguments — the command, the point's resolved config as a dict, the path of its result file —
and returns a small record: the results stay in the file it writes, nothing large travels
through the scheduler.  It holds the point's lock while it works, looks at the point's files
again (a retried task finds the file its lost worker left: it resumes from the checkpoint), runs
the package's own ``solve`` / ``solve_gibbs`` / ``solve_sgd`` (or ``resume``), and catches every
:class:`~meanfield_pde.errors.MeanFieldError` (invalid value, wall contact, non-finite state...)
into the record, so one failing point never stops the others.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import config_from_json
from ..errors import DataError, MeanFieldError, SolverError
from ..io.layout import one_line
from .files import PointState, lock_path, point_state, read_record, write_record

__all__ = ["LOCK_TIMEOUT", "run_point"]

#: seconds a task waits for the lock of its point (held by another task writing that file)
LOCK_TIMEOUT = 3600.0


def _worker_address() -> str:
    """The Dask worker running this task ("" outside a worker)."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return ""


def _run(command: str, cfg, path: Path, state: PointState) -> None:
    """Run (or resume) the point; raises the package's errors."""
    from ..runner.gibbs import solve_gibbs
    from ..runner.pde import solve
    from ..runner.resume import resume
    from ..runner.sgd import solve_sgd

    if state is PointState.RESUMABLE:
        try:
            resume(path)
            return
        except SolverError:
            raise
        except DataError:  # a checkpoint this version cannot continue: start again
            pass
    runner = {"solve": solve, "gibbs": solve_gibbs, "sgd": solve_sgd}[command]
    runner(cfg, path, overwrite=True)


def run_point(command: str, config: dict[str, Any], path: str, run_id: str, *,
              retry_failed: bool = False, overwrite: bool = False,
              lock_timeout: float = LOCK_TIMEOUT) -> dict[str, Any]:
    """Bring the point with the resolved ``config`` to an end in the result file ``path``.

    A finished point (and a failed one, unless ``retry_failed``) is left as it is; an
    interrupted one is resumed from its checkpoint; otherwise the run starts afresh
    (``overwrite`` also replaces a file of another config).  Returns the point's record:
    ``status`` ("ok" or "failed"), ``message`` (the one-line error), ``ran`` (whether this call
    computed it), ``worker``, ``pid``, ``host``, ``run_id``, ``seconds``; a run that this call
    ended also writes the record next to the file.
    """
    from filelock import FileLock, Timeout

    cfg = config_from_json(config["problem"], config)
    p = Path(path)
    lock = lock_path(p)
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(lock), timeout=lock_timeout):
            return _run_locked(command, cfg, p, run_id, retry_failed, overwrite)
    except Timeout:
        return {"status": "failed", "ran": False, "run_id": run_id, "message": (
            f"{p.name} is locked by another task for more than {lock_timeout:g} s ({lock}); "
            "wait for it, or delete the lock file if no other sweep runs")}


def _run_locked(command: str, cfg, p: Path, run_id: str, retry_failed: bool,
                overwrite: bool) -> dict[str, Any]:
    state = point_state(p, cfg, command)
    if state is PointState.FINISHED or (state is PointState.FAILED and not retry_failed):
        rec = read_record(p) or {"status": "ok", "message": ""}
        return {**rec, "ran": False}
    if state is PointState.FOREIGN and not overwrite:
        return {"status": "failed", "ran": False, "run_id": run_id,
                "message": f"{p} holds a run of another config or command; not overwritten"}
    t0 = time.perf_counter()
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        _run(command, cfg, p, state)
        status, message = "ok", ""
    except MeanFieldError as exc:
        status, message = "failed", one_line(exc)
    record = {"status": status, "message": message, "command": command,
              "config": cfg.to_dict(), "worker": _worker_address(), "pid": os.getpid(),
              "host": socket.gethostname(), "run_id": run_id, "started_utc": started,
              "resumed": state is PointState.RESUMABLE,
              "seconds": time.perf_counter() - t0}
    write_record(p, record)
    return {**record, "ran": True}

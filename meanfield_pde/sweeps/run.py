"""The sweep engine: one Dask task per point, a progress bar over points, the table at the end.

:func:`sweep` resolves the points (:mod:`.points`), looks at their files (:mod:`.files`: what is
finished, failed, interrupted), hands one :func:`~.task.run_point` task per point still to do
to a Dask client (:func:`meanfield_pde.cluster.open_client`: a local cluster of single-threaded
worker processes, or a running cluster by address) as its worker threads come free
(:func:`_dispatch`), collects the small records as the tasks end, and collates
``DIR/sweep.nc`` from the files (:mod:`.table`).

Fault tolerance comes from the files, not from the client: every point file is complete on its
own and checkpointed, so a worker lost mid-task is retried by Dask (the retry resumes the
file), a client killed with SIGKILL loses no finished point (the rerun skips it and rebuilds
the table), and SIGINT / SIGTERM (``stop``) cancel what is pending, close the cluster, write the
table of what is done and raise :class:`SweepInterrupted`.
"""

from __future__ import annotations

import queue
import signal
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..errors import ConfigError
from ..io.layout import one_line
from ..runner.trackers import NEVER, SignalStopped, StopFlag
from .files import COMMANDS, PointState, point_state
from .points import Point, make_points
from .table import TABLE_NAME, build_table, point_paths, point_row, write_table
from .task import run_point

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["SweepCounts", "SweepInterrupted", "sweep"]

#: times Dask reruns a task whose function raised (a lost worker's task is rescheduled anyway)
RETRIES = 2
#: seconds between looks at the stop flag while waiting for tasks
POLL_SECONDS = 0.25
#: seconds between asking the scheduler whether it has workers
WORKER_CHECK_SECONDS = 5.0
#: a sweep gives up (keeping what is done) after this long without any worker
NO_WORKERS_TIMEOUT = 600.0


class SweepInterrupted(SignalStopped):
    """A sweep stopped by SIGINT / SIGTERM: the finished points are kept and the table written;
    running the same sweep again continues it.  :attr:`exit_code` is 128 + the signal."""

    def __init__(self, out_dir: Path, signum: int, n_done: int, n_points: int):
        self.out_dir, self.signum, self.n_done, self.n_points = out_dir, signum, n_done, n_points
        super().__init__(f"interrupted by {self.signal_name}: {n_done} of {n_points} points "
                         f"finished, kept in {out_dir} (table {out_dir / TABLE_NAME}); continue "
                         "by calling the same sweep(...) again")


@dataclass
class SweepCounts:
    """What one call did: points computed, failed (this time, or invalid), skipped (finished
    or failed before)."""

    ran: int = 0
    failed: int = 0
    skipped: int = 0

    def add(self, record: Mapping[str, Any]) -> None:
        if not record.get("ran"):
            self.skipped += 1
        elif record.get("status") == "ok":
            self.ran += 1
        else:
            self.failed += 1


def _plan(points: Sequence[Point], paths: Sequence[Path], command: str, overwrite: bool,
          retry_failed: bool, counts: SweepCounts) -> list[tuple[Point, Path]]:
    """The points to submit; the others counted (invalid: failed; done: skipped)."""
    todo, foreign = [], []
    for p, path in zip(points, paths, strict=True):
        if p.config is None:
            counts.add({"ran": True, "status": "failed", "message": p.error})
            continue
        state = point_state(path, p.config, command)
        if state is PointState.FOREIGN and not overwrite:
            foreign.append(path)
        if state is PointState.FINISHED or (state is PointState.FAILED and not retry_failed):
            counts.add({"ran": False, "status": "ok" if state is PointState.FINISHED
                                   else "failed", "message": "(failed before)"})
        else:
            todo.append((p, path))
    if foreign:
        raise ConfigError(
            f"{foreign[0]}{f' and {len(foreign) - 1} more point files' if len(foreign) > 1 else ''}"
            " hold runs of another base config or command; rerun with the original settings, "
            "choose another output directory, or overwrite them (--force / overwrite=True)")
    return todo


def _warm_table_imports() -> None:
    """Import what writing the table needs (xarray, h5netcdf: 0.4 s of CPU) ahead of time:
    once the last point is sent, when a worker is about to fall idle.  (Earlier, the imports
    would take the GIL from the client starting the cluster, or a core from a running point.)"""
    import h5netcdf  # noqa: F401
    import xarray  # noqa: F401


def _threads(client) -> int:
    """Worker threads the cluster has now (0: no worker connected)."""
    return sum(client.nthreads().values())


def _dispatch(client, submit: Callable[[Point, Path], Any], todo: list[tuple[Point, Path]],
              counts: SweepCounts, bar, stop: StopFlag, no_workers_timeout: float,
              ended: Callable[[Point, Path], None] = lambda p, path: None) -> str:
    """Hand the points to the cluster as its worker threads come free, count their records as
    they complete and call ``ended(point, path)`` for each.  Returns "done", or "stopped" when
    ``stop`` was set first, or "no_workers" when the cluster had no worker for
    ``no_workers_timeout`` seconds (then the tasks in flight are cancelled).

    At most one task per worker thread is in flight (at least one, so that a cluster without
    workers yet is noticed): points differ in cost by orders of magnitude, and Dask assigns a
    task to a worker when it is submitted (a group of distinct tasks is not queued on the
    scheduler), so a point submitted early could wait behind a long one while another worker
    idles.  Dispatched this way, the points run in their order on whichever worker is free.
    """
    done: queue.Queue = queue.Queue()
    waiting = deque(todo)
    running: dict = {}  # future -> (point, path)
    threads = _threads(client)
    last_worker = last_check = time.monotonic()

    def top_up() -> None:
        while waiting and len(running) < max(threads, 1):
            item = waiting.popleft()
            fut = submit(*item)
            running[fut] = item
            fut.add_done_callback(done.put)  # called in the client's thread

    top_up()
    while running:
        now = time.monotonic()
        if now - last_check >= WORKER_CHECK_SECONDS:
            last_check, threads = now, _threads(client)
            if threads:
                last_worker = now
            top_up()
        if stop or now - last_worker >= no_workers_timeout:
            client.cancel(list(running))
            return "stopped" if stop else "no_workers"
        try:
            fut = done.get(timeout=POLL_SECONDS)
        except queue.Empty:
            continue
        point, path = running.pop(fut)
        try:
            record = fut.result()
        except Exception as exc:  # noqa: BLE001 - KilledWorker, a bug: one point's failure
            record = {"ran": True, "status": "failed",
                      "message": f"task failed: {type(exc).__name__}: {one_line(exc)}"}
        counts.add(record)
        ended(point, path)
        bar.update(1)
        bar.set_postfix_str(f"ran {counts.ran}, failed {counts.failed}, skipped "
                            f"{counts.skipped}", refresh=False)
        if not stop:
            threads = _threads(client) or threads
            top_up()
    return "done"


def sweep(cfg: Config, vary: Mapping[str, Sequence[Any]], command: str = "solve",
          out_dir: str | Path | None = None, *, scheduler: str | None = None,
          workers: int | None = None, overwrite: bool = False, retry_failed: bool = False,
          progress: bool = False, stop: StopFlag = NEVER, retries: int = RETRIES,
          no_workers_timeout: float = NO_WORKERS_TIMEOUT) -> xr.Dataset:
    """Run ``command`` (``"solve"``, ``"gibbs"`` or ``"sgd"``) at every point of the Cartesian
    product of ``vary`` (dotted key -> values) applied to ``cfg``, one Dask task per point, and
    return the collated table (an ``xarray.Dataset``, also written to ``out_dir/sweep.nc``; see
    :mod:`meanfield_pde.sweeps.table`).

    Parameters
    ----------
    out_dir: the sweep directory (default ``runs/sweep-<problem>``): one result file per point
        plus the table.  Calling again with the same arguments skips the finished points,
        resumes the interrupted ones from their checkpoints and rebuilds the table; new values
        add points.
    scheduler: address of a running Dask scheduler (``tcp://HOST:PORT``); its workers must see
        ``out_dir`` at the same path.  None: a local cluster of ``workers`` single-threaded
        processes (default one per core).
    overwrite: recompute point files holding a run of another config or command (else a
        :class:`~meanfield_pde.errors.ConfigError` before anything runs).
    retry_failed: run again the points whose earlier run failed (else they are kept as failed).
    progress: a progress bar over points on stderr (on a terminal).
    stop: a flag set by a signal handler (:func:`~meanfield_pde.runner.trackers.trap_signals`):
        cancel what is pending and raise :class:`SweepInterrupted`.
    retries: times Dask reruns a task whose function raised.
    no_workers_timeout: give up after this many seconds without any worker on the cluster
        (workers never started, or all lost), keeping what is done.

    A point failing with a :class:`~meanfield_pde.errors.MeanFieldError` (a value the schema
    refuses, mass at a wall, a non-finite state, ...) is recorded with its one-line message
    (``status``/``message`` in the table) and the others go on.  The table's attributes
    ``n_ran``, ``n_failed``, ``n_skipped`` count what this call did (:class:`SweepCounts`).

    Raises:
        ConfigError: unknown command or key, malformed values, point files of another config
            (without ``overwrite``), an unreachable scheduler, a cluster without workers for
            ``no_workers_timeout`` seconds (the table of what is done is written first).
        SweepInterrupted: ``stop`` was set; finished points and the table are kept.
    """
    from tqdm import tqdm

    from ..cluster import open_client

    if command not in COMMANDS:
        raise ConfigError(f"command {command!r} cannot be swept; choose one of "
                          f"{', '.join(COMMANDS)}")
    vary = {k: list(v) for k, v in vary.items()}
    points = make_points(cfg, vary)
    out = Path(out_dir if out_dir is not None else Path("runs") / f"sweep-{cfg.problem}")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; give the sweep a directory with -o DIR")
    out = out.resolve()  # the workers may run elsewhere: absolute paths
    paths = point_paths(points, list(vary), out)
    counts = SweepCounts()
    todo = _plan(points, paths, command, overwrite, retry_failed, counts)
    status, known = "done", {}
    with ThreadPoolExecutor(1) as background:
        closing = None
        if todo:
            with ExitStack() as stack:
                client = stack.enter_context(open_client(scheduler, workers))
                bar = stack.enter_context(tqdm(
                    total=len(points), initial=len(points) - len(todo), unit="point",
                    desc="sweep", disable=None if progress else True, leave=False))
                out.mkdir(parents=True, exist_ok=True)  # once the cluster is there

                def submit(p: Point, path: Path):
                    fut = client.submit(run_point, command, p.config.to_dict(), str(path),
                                        uuid.uuid4().hex, retry_failed=retry_failed,
                                        overwrite=overwrite, retries=retries, pure=False,
                                        key=f"sweep-point-{path.stem}-{uuid.uuid4().hex[:8]}")
                    if path == todo[-1][1]:  # the last point sent (_dispatch keeps their
                        # order): a worker falls idle next; the imports take its core
                        background.submit(_warm_table_imports)
                    return fut

                def ended(p: Point, path: Path) -> None:  # its row, read while others run
                    known[path] = point_row(p, path, command)

                status = _dispatch(client, submit, todo, counts, bar, stop,
                                   no_workers_timeout, ended)
                # the cluster shuts down while the table is written (an error above closes
                # it at once, by the with block)
                closing = background.submit(stack.pop_all().close)
        out.mkdir(parents=True, exist_ok=True)
        ds = build_table(cfg, vary, points, out, command, known)
        ds.attrs.update(n_ran=counts.ran, n_failed=counts.failed, n_skipped=counts.skipped)
        write_table(ds, out)
        if closing is not None:
            closing.result()
    if status == "stopped":
        n_done = int((ds["status"] != "pending").sum())
        raise SweepInterrupted(out, stop.signum or signal.SIGINT, n_done, len(points))
    if status == "no_workers":
        where = scheduler or "the local cluster"
        raise ConfigError(f"no Dask worker was connected to {where} for {no_workers_timeout:g} s;"
                          f" start workers (`dask worker {scheduler or 'ADDRESS'}`, seeing {out}) "
                          "and run the same sweep again: finished points are kept")
    return ds

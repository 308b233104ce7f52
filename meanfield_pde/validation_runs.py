"""The SGD ensemble of :func:`~meanfield_pde.validation.validate`: one Dask task and one
checkpointed result file per run.

Each run (width N, seed S) is the package's ordinary SGD run (:func:`~.runner.sgd.solve_sgd`, the
file ``meanfield-pde sgd`` writes) of the validated config with ``sgd.n_neurons = N``,
``sgd.seed = S`` and the comparison's output times as ``time.outputs`` (so that the file holds the
risk and the particle coordinates exactly where the comparison needs them), written to
``DIR/sgd/n{N}-seed{S}.h5``.  Those files are the ensemble's cache:

* a complete file whose stored config is the run's is reused (not recomputed);
* an incomplete one (an interrupted validate) is continued from its last checkpoint
  (:func:`~.runner.resume.resume`: bit for bit the uninterrupted run); one that cannot be resumed
  (no readable checkpoint: killed while being created) is run again, as is a missing one;
* a readable file of another config is refused before any work (:class:`OutputExists`, like an
  existing report), or, with ``overwrite``, run again.

The runs are submitted to a ``distributed.Client`` (:func:`~.cluster.open_client`: a local
cluster of single-threaded worker processes, or a running scheduler whose workers can read and
write DIR): the task function :func:`run_sgd_file` is importable at top level, writes its file
itself (nothing but a small dict travels back) and is retried (:data:`RETRIES`) when it fails
for a reason other than a user error (a lost worker is rescheduled by Dask itself).  A task holds
a lock on ``DIR/sgd/n{N}-seed{S}.h5.task.lock`` while it works, so a task left running by a
killed client (on a remote cluster) and the task of a rerun never write one file at once.

:func:`execute` waits for the tasks with a progress bar over runs and polls a
:class:`~.runner.trackers.StopFlag`.  On SIGINT / SIGTERM it sets a Dask ``Event`` that the tasks
poll (:class:`EventFlag`, through the runner's own signal tracker): each running task writes a
checkpoint at its next output and returns, tasks not started return at once; after at most
:data:`GRACE_SECONDS` the client is closed (workers of the local cluster still busy are killed:
their files keep their last checkpoint) and :class:`ValidateInterrupted` is raised.  The local
cluster's workers ignore SIGINT (:class:`~.cluster.IgnoreSigint`): Ctrl-C reaches the whole
process group, and the client alone decides.  Workers of a remote cluster are left alone.
"""

from __future__ import annotations

import json
import logging
import queue
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from .config import Config, build_config
from .errors import ConfigError, DataError, MeanFieldError, OutputExists, SolverError
from .io import load
from .runner.trackers import NEVER, Interrupted, SignalStopped, StopFlag

__all__ = ["GRACE_SECONDS", "RETRIES", "SGD_DIR", "EventFlag", "SGDRun",
           "ValidateInterrupted", "execute", "file_state", "in_process", "make_sgd_file",
           "plan_runs", "run_sgd_file", "sgd_config"]

SGD_DIR = "sgd"  # the runs' subdirectory of validate's output directory
RETRIES = 2  # extra attempts of a task that raised something other than a user error
POLL_SECONDS = 0.2  # how often the client looks at the stop flag while tasks run
EVENT_POLL_SECONDS = 0.25  # how often a task asks whether the client wants it to stop
GRACE_SECONDS = 10.0  # how long a stopped client waits for its tasks to checkpoint and return


class ValidateInterrupted(SignalStopped):
    """validate stopped by the signal ``signum``; the finished SGD files are kept and a rerun
    with the same arguments continues.  The CLI exits with :attr:`exit_code`."""

    def __init__(self, signum: int, done: int, total: int, directory: object):
        self.signum, self.done, self.total = int(signum), int(done), int(total)
        self.directory = directory
        super().__init__(f"interrupted by {self.signal_name}: {done} of {total} SGD runs "
                         f"finished in {directory} (kept, interrupted ones resume from their "
                         "checkpoints)")


@dataclass(frozen=True)
class SGDRun:
    """One run of the ensemble: its width, seed, result file, resolved config and whether its
    file is already complete (``done``: reused, no task)."""

    n: int
    seed: int
    path: Path
    config: Config
    done: bool


def sgd_config(cfg: Config, n: int, seed: int, times: list[float]) -> Config:
    """The config of the run (n, seed): ``cfg`` with that width and seed and outputs at ``times``
    (``time.t_end`` = the last of them)."""
    return cfg.replace({"sgd.n_neurons": int(n), "sgd.seed": int(seed),
                        "time.outputs": [float(t) for t in times],
                        "time.t_end": float(times[-1])})


def _stored(cfg: Config) -> dict:
    """The config as a result file stores it (JSON round trip)."""
    return json.loads(json.dumps(cfg.to_dict()))


def file_state(path: Path, cfg: Config) -> str:
    """``"missing"``, ``"unreadable"``, ``"foreign"`` (a result of another config),
    ``"complete"`` or ``"partial"`` (the run's file, not finished)."""
    if not path.exists():
        return "missing"
    try:
        res = load(path)
    except DataError:
        return "unreadable"
    if res.attrs.get("kind") != "sgd" or res.config != _stored(cfg):
        return "foreign"
    return "complete" if res.complete else "partial"


def plan_runs(cfg: Config, widths: list[int], seeds: list[int], times: list[float],
              directory: Path, *, overwrite: bool = False) -> list[SGDRun]:
    """The runs (n outer, seed inner) and the state of their files in ``directory``.

    Raises:
        OutputExists: a file holds a result of another config and ``overwrite`` is not set
            (checked before any work; nothing is changed).
    """
    runs = []
    for n in widths:
        for s in seeds:
            path = directory / f"n{n}-seed{s}.h5"
            run_cfg = sgd_config(cfg, n, s, times)
            state = file_state(path, run_cfg)
            if state == "foreign" and not overwrite:
                raise OutputExists(path, "SGD result of another config")
            runs.append(SGDRun(n, s, path, run_cfg, state == "complete"))
    return runs


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """The task's lock on ``path.task.lock`` for the block (filelock, blocking: a retried task
    waits for a copy left running by a lost worker; the result file's own writer lock,
    ``path.lock``, refuses instead of waiting)."""
    with FileLock(f"{path}.task.lock", thread_local=False):
        yield


def _user_error(exc: MeanFieldError) -> dict:
    """A user error as plain data (the typed errors with extra constructor arguments do not
    survive pickling): its message and the first of ConfigError/DataError/SolverError it is."""
    base = next((c for c in (ConfigError, DataError, SolverError) if isinstance(exc, c)),
                SolverError)
    return {"error": base.__name__, "message": str(exc)}


class EventFlag(StopFlag):
    """A stop flag inside a task: set once the client sets the Dask ``Event`` named ``name``
    (asked of the scheduler at most every :data:`EVENT_POLL_SECONDS`)."""

    def __init__(self, name: str):
        super().__init__()
        self.name, self._next, self._event = name, 0.0, None

    def __bool__(self) -> bool:
        if self.signum is None and time.monotonic() >= self._next:
            self._next = time.monotonic() + EVENT_POLL_SECONDS
            try:
                from distributed import Event

                self._event = self._event or Event(self.name)
                if self._event.is_set():
                    self.signum = signal.SIGINT
            except (ValueError, OSError, TimeoutError):  # outside a worker: nobody can set it
                pass
        return self.signum is not None


def run_sgd_file(problem: str, config: dict, path: str, stop_event: str | None = None) -> dict:
    """Dask task: make ``path`` a complete SGD result of ``config`` (:func:`make_sgd_file`),
    stopping at the next output when the client sets the Dask Event ``stop_event``."""
    result = make_sgd_file(problem, config, path, EventFlag(stop_event) if stop_event else NEVER)
    return {**result, "worker": _worker_address()}


def make_sgd_file(problem: str, config: dict, path: str, stop: StopFlag = NEVER) -> dict:
    """Make ``path`` a complete SGD result of ``config`` (reuse, resume or run: the module
    docstring) and return ``{"path", "status"}``, status ``"reused" | "resumed" | "ran"``, or
    ``"interrupted"`` when ``stop`` was set (a checkpoint written), or ``{"path", "error",
    "message"}`` for a user error (not retried by Dask: it would fail again)."""
    from .runner.resume import resume
    from .runner.sgd import solve_sgd

    p = Path(path)
    try:
        cfg = build_config(problem, config)
        with _locked(p):
            state = file_state(p, cfg)
            status = "reused" if state == "complete" else "ran"
            if stop and status == "ran":
                return {"path": path, "status": "interrupted"}
            if state == "partial":
                try:
                    resume(p, stop=stop)
                    status = "resumed"
                except Interrupted:
                    raise
                except DataError:  # no readable checkpoint: killed while being created
                    pass
            if status == "ran":
                solve_sgd(cfg, p, overwrite=True, stop=stop)
    except Interrupted:
        return {"path": path, "status": "interrupted"}
    except MeanFieldError as exc:
        return {"path": path, **_user_error(exc)}
    return {"path": path, "status": status}


def _worker_address() -> str | None:
    """The Dask worker running this task (None outside one)."""
    try:
        from distributed import get_worker

        return get_worker().address
    except ValueError:
        return None


def _raise_user_error(result: dict) -> None:
    cls = {c.__name__: c for c in (ConfigError, DataError, SolverError)}[result["error"]]
    raise cls(result["message"])


def execute(runs: list[SGDRun], *, scheduler: str | None = None, workers: int | None = None,
            stop: StopFlag = NEVER, progress: bool = False) -> dict[Path, dict]:
    """Run the unfinished ``runs`` as Dask tasks and wait for them (module docstring).

    Returns, per file, what its task returned (``{"status": "reused"}`` for a run that needed
    none).  A user error of one task cancels the others and is raised in this process.

    Raises:
        ValidateInterrupted: ``stop`` was set (SIGINT / SIGTERM under
            :func:`~.runner.trackers.trap_signals`).
        SolverError: a run's worker died again and again (Dask's ``allowed-failures``).
    """
    from tqdm import tqdm

    results = {r.path: {"path": str(r.path), "status": "reused", "worker": None}
               for r in runs if r.done}
    pending = [r for r in runs if not r.done]
    if not pending:
        return results
    if stop:  # before starting a cluster for nothing
        raise ValidateInterrupted(stop.signum, len(results), len(runs), runs[0].path.parent)
    bar = tqdm(total=len(runs), initial=len(results), desc="SGD runs", unit="run", leave=False,
               disable=None if progress else True)
    try:
        results.update(_on_dask(pending, scheduler, workers, stop, bar, len(results),
                                len(runs)))
    finally:
        bar.close()
    return results


def _on_dask(runs: list[SGDRun], scheduler: str | None, workers: int | None, stop: StopFlag,
             bar, done: int, total: int) -> dict[Path, dict]:
    """Submit ``runs`` (``done`` of ``total`` runs need none); collect their results.  When
    ``stop`` is set: ask the tasks to stop (a Dask Event they poll: each writes a checkpoint and
    returns), wait for them up to :data:`GRACE_SECONDS`, close the client (the local cluster's
    workers still busy are killed: their files keep their last checkpoint) and raise."""
    from .cluster import default_workers, open_client

    if scheduler is None and workers is None:
        workers = min(len(runs), default_workers())
    tag = uuid.uuid4().hex[:8]
    event = f"validate-stop-{tag}"
    results: dict[Path, dict] = {}
    finished: queue.Queue = queue.Queue()
    nanny_log = logging.getLogger("distributed.nanny")
    level = nanny_log.level
    try:
        with open_client(scheduler, workers) as client:
            futures = {client.submit(run_sgd_file, r.config.problem, r.config.to_dict(),
                                     str(r.path), event, key=f"sgd-n{r.n}-seed{r.seed}-{tag}",
                                     retries=RETRIES, pure=False): r for r in runs}
            for fut in futures:
                fut.add_done_callback(finished.put)
            try:
                while futures:  # each pass ends a task or polls the flag
                    if stop:
                        _stop_tasks(client, event, futures, finished, results)
                        nanny_log.setLevel(logging.ERROR)  # "still alive ... killing": meant
                        ran = sum(r["status"] != "interrupted" for r in results.values())
                        raise ValidateInterrupted(stop.signum, done + ran, total,
                                                  runs[0].path.parent)
                    try:
                        fut = finished.get(timeout=POLL_SECONDS)
                    except queue.Empty:
                        continue
                    # popped: the future is released, so a worker lost later does not make the
                    # scheduler recompute a task whose result is already here
                    run = futures.pop(fut)
                    results[run.path] = _collect(fut, run)
                    del fut
                    bar.update(1)
            finally:
                client.cancel(list(futures))
    finally:
        nanny_log.setLevel(level)
    return results


def _stop_tasks(client, event: str, futures: dict, finished: queue.Queue,
                results: dict[Path, dict]) -> None:
    """Set the tasks' stop Event and collect what they return within :data:`GRACE_SECONDS`
    (tasks not yet started return at once; errors no longer matter)."""
    from distributed import Event

    Event(event, client=client).set()
    end = time.monotonic() + GRACE_SECONDS
    while futures and (left := end - time.monotonic()) > 0:
        try:
            fut = finished.get(timeout=left)
        except queue.Empty:
            return
        run = futures.pop(fut)
        try:
            results[run.path] = _collect(fut, run)
        except MeanFieldError:
            pass


def _collect(fut, run: SGDRun) -> dict:
    """The result of a finished future; a user error or a lost run raised as a one-line error."""
    from distributed import KilledWorker

    try:
        result = fut.result()
    except KilledWorker as exc:
        raise SolverError(f"the SGD run N = {run.n}, seed {run.seed} ({run.path}) lost its "
                          f"worker again and again ({exc}); check the workers' memory and logs, "
                          "then rerun to continue") from None
    if "error" in result:
        _raise_user_error(result)
    return result


def in_process(runs: list[SGDRun], *, stop: StopFlag = NEVER, **_: object) -> dict[Path, dict]:
    """:func:`execute` without Dask: the runs one after another in this process (debugging,
    and tests that run validate many times, where starting workers would dominate)."""
    out = {}
    for i, r in enumerate(runs):
        result = ({"path": str(r.path), "status": "reused"} if r.done else
                  make_sgd_file(r.config.problem, r.config.to_dict(), str(r.path), stop))
        if "error" in result:
            _raise_user_error(result)
        if result["status"] == "interrupted":
            raise ValidateInterrupted(stop.signum or signal.SIGINT, i, len(runs),
                                      r.path.parent)
        out[r.path] = {**result, "worker": None}
    return out

"""Where many runs execute: a Dask (``dask.distributed``) client, local or on a cluster.

Sweeps and the SGD ensemble of ``validate`` are sets of independent tasks.  They run on Dask's
distributed scheduler rather than a home-made process pool: the same code then runs on a laptop
(a ``LocalCluster``) and on any cluster started with ``dask scheduler`` / ``dask worker``, and
Dask retries a task whose worker died.

* ``scheduler=None``: a ``LocalCluster`` of ``workers`` (default: the number of cores) worker
  *processes* with one thread each, and the kernels' and BLAS' own thread pools set to one thread
  inside them (:data:`SINGLE_THREAD_ENV`): n tasks on n cores, no oversubscription.  Loopback
  only; the dashboard on a free port (``None`` still binds 8787, and a second cluster on the
  machine then fails to start).  Its workers ignore SIGINT (:class:`IgnoreSigint`): Ctrl-C
  reaches the whole process group, and the client alone decides what to keep.
  The cluster's background work is kept out of the solvers' way (:data:`LOCAL_CONFIG`, the
  settings Dask's own test clusters use): no statistical profiler (it samples the running
  task's stack every 10 ms, taking the GIL from the solver's Python loop), event-loop health
  ticks every 500 ms instead of 20 ms, memory checks every second instead of every 100 ms, the
  system monitor every 2 s without disk counters, no GIL monitor.  Every local process runs
  an event loop (the scheduler and the nannies in the client, one in each worker); with the
  defaults, those wake-ups took 5 s of CPU time in a 47 s sweep of 8 points on 2 cores and
  preempted the solver threads 100–170 times a second (measured: 0.4 s and 20–50 times a
  second with these settings; the points then run as fast in a worker as in a plain process).
* ``scheduler="tcp://HOST:PORT"``: the running cluster at that address.  Tasks must then be able
  to read and write the paths they are given (a shared file system); the client checks nothing
  about the workers' machines.

A scheduler that cannot be reached is a one-line :class:`~meanfield_pde.errors.ConfigError`
naming the address and how to start one.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from distributed.diagnostics.plugin import WorkerPlugin

from .errors import ConfigError, OptionError
from .io.layout import one_line

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["CONNECT_TIMEOUT", "LOCAL_CONFIG", "SINGLE_THREAD_ENV", "IgnoreSigint",
           "default_workers", "open_client"]

#: seconds the client waits for a scheduler given by address
CONNECT_TIMEOUT = 20.0
#: Dask settings of the local cluster (passed to its workers by their nannies)
LOCAL_CONFIG = {"distributed.worker.profile.enabled": False,
                "distributed.admin.tick.interval": "500ms",
                "distributed.worker.memory.monitor-interval": "1s",
                "distributed.admin.system-monitor.interval": "2s",
                "distributed.admin.system-monitor.disk": False,
                "distributed.admin.system-monitor.gil.enabled": False}
#: environment of the local worker processes: one thread per worker in every thread pool
SINGLE_THREAD_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                     "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class IgnoreSigint(WorkerPlugin):
    """Worker plugin of the local cluster: its workers ignore SIGINT.  Ctrl-C reaches the whole
    process group; the client alone handles it (stops the tasks at a checkpoint, closes the
    cluster) instead of every worker dying with a traceback mid-task."""

    def setup(self, worker) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_workers() -> int:
    """The number of local worker processes when none is asked for: the cores we may use."""
    from .fv.threads import usable_cores

    return usable_cores()


@contextmanager
def open_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Client]:
    """A ``distributed.Client`` for the duration of the ``with`` block (module docstring).

    Args:
        scheduler: Address of a running scheduler (``tcp://HOST:PORT``); None for a local
            cluster.
        workers: Local worker processes (None: one per core); refused with ``scheduler``.

    Raises:
        ConfigError: ``workers`` < 1, both arguments given, or the scheduler cannot be reached.
    """
    import dask
    from distributed import Client, LocalCluster

    if workers is not None and workers < 1:
        raise OptionError("workers", f"{{opt}} = {workers}: give at least 1 worker process")
    if scheduler is not None:
        if workers is not None:
            raise OptionError("workers", "{opt} applies to the local cluster only; with a "
                              "scheduler, start workers with `dask worker ADDRESS` on the "
                              "cluster")
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(
                f"cannot reach the Dask scheduler at {scheduler!r} ({one_line(exc)}); start one "
                "with `dask scheduler` and give its tcp://HOST:PORT address") from exc
        try:
            yield client
        finally:
            client.close()
        return
    n = workers or default_workers()
    with dask.config.set(LOCAL_CONFIG):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=":0",
                               env=dict(SINGLE_THREAD_ENV))
    with cluster, Client(cluster, set_as_default=False) as client:
        client.register_plugin(IgnoreSigint(), name="meanfield-pde-ignore-sigint")
        yield client

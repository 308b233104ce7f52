"""The sweep's dispatch: one task in flight per worker thread, points in their order, on a
stand-in client (a thread pool) so that what is in flight can be counted exactly."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from meanfield_pde.runner.trackers import NEVER, StopFlag
from meanfield_pde.sweeps.run import SweepCounts, _dispatch


class _Bar:
    def update(self, n): pass

    def set_postfix_str(self, s, refresh=False): pass


class _PoolClient:
    """What ``_dispatch`` uses of a ``distributed.Client``, over a pool of ``threads``."""

    def __init__(self, threads: int):
        self.n = threads
        self.pool = ThreadPoolExecutor(threads)
        self.cancelled = []

    def nthreads(self):
        return {f"w{i}": 1 for i in range(self.n)}

    def cancel(self, futures):
        self.cancelled += futures
        for f in futures:
            f.cancel()


@pytest.mark.parametrize("threads,points", [(1, 3), (2, 8), (3, 7), (4, 2)])
def test_one_task_in_flight_per_worker_thread_in_point_order(threads, points):
    client = _PoolClient(threads)
    lock = threading.Lock()
    state = SimpleNamespace(in_flight=0, most=0, submitted=[])
    first_wave = threading.Barrier(min(threads, points))  # all threads busy at once

    def task(i):
        with lock:
            state.most = max(state.most, state.in_flight)
        if i < first_wave.parties:
            first_wave.wait(timeout=60)
        return {"ran": True, "status": "ok" if i % 2 else "failed"}

    def submit(p, path):
        with lock:
            state.in_flight += 1
            state.submitted.append(p)
        fut = client.pool.submit(task, p)

        def finished(_):
            with lock:
                state.in_flight -= 1
        fut.add_done_callback(finished)
        return fut

    counts = SweepCounts()
    todo = [(i, f"p{i}.h5") for i in range(points)]
    assert _dispatch(client, submit, todo, counts, _Bar(), NEVER, 60.0) == "done"
    assert state.submitted == list(range(points))
    assert state.most <= threads
    assert (counts.ran, counts.failed, counts.skipped) == (points // 2, points - points // 2, 0)


def test_a_stop_cancels_what_is_in_flight_and_submits_nothing_more():
    client = _PoolClient(2)
    release = threading.Event()
    stop = StopFlag()
    submitted = []

    def submit(p, path):
        submitted.append(p)
        if len(submitted) == 2:
            stop.signum = 2  # as the SIGINT handler does, while two points run
        return client.pool.submit(release.wait, 30)

    status = _dispatch(client, submit, [(i, "") for i in range(6)], SweepCounts(), _Bar(),
                       stop, 60.0)
    release.set()
    assert status == "stopped" and submitted == [0, 1] and len(client.cancelled) == 2


def test_a_cluster_without_workers_has_one_task_in_flight_then_gives_up():
    client = _PoolClient(1)
    client.nthreads = dict  # no worker connected
    release = threading.Event()
    submitted = []

    def submit(p, path):
        submitted.append(p)
        return client.pool.submit(release.wait, 30)

    status = _dispatch(client, submit, [(i, "") for i in range(3)], SweepCounts(), _Bar(),
                       NEVER, 0.0)
    release.set()
    assert status == "no_workers" and submitted == [0]

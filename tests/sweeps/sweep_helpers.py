"""Helpers of the sweep tests: small fast configs, polling with a deadline, and a real Dask
cluster of separate local processes (``dask scheduler`` + ``dask worker``, loopback only)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import python_env

from meanfield_pde import default_config
from meanfield_pde.cluster import SINGLE_THREAD_ENV

#: a quick noiseless point: ~0.1 s of solver on one core
QUICK = ["time.t_end=1", "time.n_outputs=11", "lagrangian.mass_cells=20"]
#: a point long enough (~0.8 s on one idle core) to be caught running; checkpoints every 0.2 s
SLOW = ["time.t_end=10", "time.n_outputs=11", "lagrangian.mass_cells=20",
        "checkpoint.wall_seconds=0.2"]
#: LocalCluster's scheduler (meanfield_pde/cluster.py) serves HTTP on port 8787 even without a
#: dashboard; when another cluster on the machine holds that port, distributed leaks the socket of
#: the failed attempt (ResourceWarning) and warns before taking another port: noise, not a failure
LOCAL_CLUSTER_NOISE = [
    pytest.mark.filterwarnings("ignore:Port 8787 is already in use:UserWarning"),
    pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning"),
]
DEADLINE = 120.0  # seconds any wait on another process may take on a busy machine

def quick_config(*extra: str):
    return default_config("gaussians").with_overrides([*QUICK, *extra])


def slow_config(*extra: str):
    return default_config("gaussians").with_overrides([*SLOW, *extra])


def wait_for(condition, what: str, timeout: float = DEADLINE, interval: float = 0.05):
    """Poll ``condition()`` until it returns a true value (returned), or fail after
    ``timeout`` seconds naming ``what``."""
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def worker_env() -> dict[str, str]:
    """The environment of worker processes: this repository on the path, one thread each."""
    return {**python_env(), **SINGLE_THREAD_ENV}


class DaskProcesses:
    """A scheduler and workers as separate processes on 127.0.0.1, each killed at teardown."""

    def __init__(self, tmp: Path):
        self.tmp, self.procs, self.workers, self.client = tmp, [], {}, None
        self.scheduler_file = tmp / "scheduler.json"

    def start_scheduler(self) -> None:
        self._start([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host",
                     "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file",
                     str(self.scheduler_file)], "scheduler")
        self.address = wait_for(self._address, "the scheduler file")
        from distributed import Client

        self.client = Client(self.address, set_as_default=False, timeout=DEADLINE)

    def _address(self) -> str | None:
        try:
            return json.loads(self.scheduler_file.read_text())["address"]
        except (OSError, ValueError, KeyError):
            return None

    def _start(self, argv: list[str], name: str) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "w")  # noqa: SIM115 - closed by the process end
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=worker_env(),
                                start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def start_worker(self, name: str) -> subprocess.Popen:
        """A single-threaded worker without nanny (killing it loses it for good)."""
        proc = self._start([sys.executable, "-m", "distributed.cli.dask_worker",
                            "--scheduler-file", str(self.scheduler_file), "--nthreads", "1",
                            "--no-nanny", "--name", name, "--host", "127.0.0.1",
                            "--no-dashboard"], name)
        self.workers[name] = proc
        return proc

    def worker_addresses(self) -> dict[str, int]:
        """address -> pid of the workers the scheduler knows."""
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        return {addr: int(self.workers[w["name"]].pid) for addr, w in info.items()
                if w["name"] in self.workers}

    def wait_workers(self, n: int) -> dict[str, int]:
        """address -> pid once exactly ``n`` of our workers are connected."""
        def ready():
            workers = self.worker_addresses()
            return workers if len(workers) == n else None

        return wait_for(ready, f"{n} workers to connect")

    def close(self) -> None:
        try:
            if self.client is not None:
                self.client.close()
        finally:
            for proc in reversed(self.procs):
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

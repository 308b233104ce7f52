"""Fixtures of the sweep tests (helpers in sweep_helpers.py)."""

from __future__ import annotations

import pytest
from sweep_helpers import DaskProcesses


@pytest.fixture(scope="module")
def dask_processes(tmp_path_factory):
    """A scheduler and two workers (``w1``, ``w2``) as separate local processes."""
    cluster = DaskProcesses(tmp_path_factory.mktemp("dask"))
    try:
        cluster.start_scheduler()
        cluster.start_worker("w1")
        cluster.start_worker("w2")
        cluster.wait_workers(2)
        yield cluster
    finally:
        cluster.close()

"""Run control shared by every long run: signals, checkpoint timing, the config hash.

* :func:`trap_signals` turns SIGINT / SIGTERM into a flag that the time loops poll between
  compiled chunks (a Numba loop cannot be interrupted mid-step); the loop then writes a
  checkpoint and raises :class:`Interrupted`, which the CLI turns into exit code 128 + signal
  (130 for SIGINT, 143 for SIGTERM).  A second signal interrupts at once.
* :class:`CheckpointClock` decides when to checkpoint: every ``checkpoint.every`` of simulated
  time and/or ``checkpoint.wall_seconds`` of wall time (0 disables a trigger; with both 0 only the
  checkpoints at the start, at the end and on a signal are written).
* :func:`config_hash` fingerprints the resolved config without the keys a resume may change
  (``time.t_end``, ``time.n_outputs``, the ``checkpoint`` section).
"""

from __future__ import annotations

import hashlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import MeanFieldError

RESUMABLE_KEYS = (("time", "t_end"), ("time", "n_outputs"))
SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class Interrupted(MeanFieldError):
    """A run stopped by a signal after writing a checkpoint."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopFlag:
    """Set by the signal handlers; polled by the time loops."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None


NEVER = StopFlag()  # a flag nobody sets (library calls without signal handling)


@contextmanager
def trap_signals() -> Iterator[StopFlag]:
    """Within the block, SIGINT and SIGTERM set the yielded flag instead of killing the process
    (a second signal raises KeyboardInterrupt at once).  Outside the main thread: no-op."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, _frame):
        if flag.signum is not None:
            raise KeyboardInterrupt
        flag.signum = signum

    old = {s: signal.signal(s, handler) for s in SIGNAL_NAMES}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def interrupted(flag: StopFlag, path, t: float) -> Interrupted:
    """The exception a loop raises after checkpointing on a signal."""
    name = SIGNAL_NAMES.get(flag.signum, f"signal {flag.signum}")
    return Interrupted(
        flag.signum,
        f"interrupted by {name} at t = {t:.6g}; checkpoint written, continue with: "
        f"meanfield-pde resume {path}",
    )


class CheckpointClock:
    """When to write the next checkpoint: ``every`` of simulated time, ``wall_seconds`` of wall
    time (either 0 = that trigger off)."""

    def __init__(self, every: float, wall_seconds: float, t: float):
        self.every, self.wall = float(every), float(wall_seconds)
        self.reset(t)

    def reset(self, t: float) -> None:
        self.t_last, self.wall_last = float(t), time.monotonic()

    def due(self, t: float) -> bool:
        if self.every > 0 and t - self.t_last >= self.every:
            return True
        return self.wall > 0 and time.monotonic() - self.wall_last >= self.wall


def config_hash(config: dict) -> str:
    """SHA-256 of the resolved config (as stored in result files), ignoring the keys a resume
    may change: ``time.t_end``, ``time.n_outputs`` and the ``checkpoint`` section."""
    c = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.items()}
    c.pop("checkpoint", None)
    for section, key in RESUMABLE_KEYS:
        if isinstance(c.get(section), dict):
            c[section].pop(key, None)
    text = json.dumps(c, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()

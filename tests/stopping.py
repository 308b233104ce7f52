"""A stop flag for tests: a signal that 'arrives' at the n-th poll of a time loop."""

from __future__ import annotations

import signal

from meanfield_pde.runner.trackers import StopFlag


class StopAfter(StopFlag):
    """Set (as if by ``signum``) at the n-th time the loop polls it."""

    def __init__(self, n: int, signum: int = signal.SIGTERM):
        super().__init__()
        self.n, self.calls, self.sig = n, 0, signum

    def __bool__(self) -> bool:
        self.calls += 1
        if self.calls >= self.n:
            self.signum = self.sig
        return self.signum is not None

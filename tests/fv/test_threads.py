"""The serial/threaded chooser (meanfield_pde/fv/threads.py) on a fake clock, and chunked 3-D runs
that switch between the serial and the threaded kernels (bit-identical to pure serial runs).
No wall-clock timing here: the clock is simulated (the measurements are in benchmarks/threads.py).
"""

import numpy as np
import pytest
from helpers import NEURON_TIGHT_BOX

from meanfield_pde.config import default_config
from meanfield_pde.fv.threads import FixedThreads, ThreadChooser, passive_wait_default
from meanfield_pde.problems.single_neuron import SingleNeuronProblem


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class Simulated(ThreadChooser):
    """A chooser whose calls take ``cost(parallel, t)`` fake seconds per step."""

    def __init__(self, allowed, cost, **kw):
        self.clk = FakeClock()
        super().__init__(allowed, self.clk, **kw)
        self.cost_fn = cost
        self.log: list[tuple[bool, int, float]] = []  # (parallel, steps, start time)

    def run(self, call, max_steps):
        def timed(parallel, steps):
            out = call(parallel, steps)
            self.log.append((parallel, out[1], self.clk.t))
            self.clk.t += out[1] * self.cost_fn(parallel, self.clk.t)
            return out
        return super().run(timed, max_steps)


def _drive(ch, total_seconds, chunk=50):
    """Calls of up to ``chunk`` steps until ``total_seconds`` of fake time."""
    while ch.clk.t < total_seconds:
        ch.run(lambda parallel, steps: (None, steps), chunk)
    return ch


def _seconds(ch, parallel):
    return sum(s * ch.cost_fn(p, t) for p, s, t in ch.log if p == parallel)


def test_parallel_false_forces_serial():
    ch = _drive(Simulated(False, lambda p, t: 0.01 if p else 1.0), 100.0)
    assert not any(p for p, _, _ in ch.log)
    assert all(s == 50 for _, s, _ in ch.log)
    assert ch.plan(7) == (False, 7)


def test_fixed_threads_is_fixed():
    for par in (False, True):
        ch = FixedThreads(par)
        for seconds in (1.0, 100.0):
            assert ch.plan(9) == (par, 9)
            ch.record(par, 9, seconds)


def test_picks_the_faster_threads_and_ramps_up():
    """Threads twice as fast: one short probe, then chunks doubling up to the full size."""
    ch = _drive(Simulated(True, lambda p, t: 0.005 if p else 0.01), 20.0)
    first_par = next(i for i, (p, _, _) in enumerate(ch.log) if p)
    assert ch.log[first_par][1] == 1  # the probe: probe_seconds of serial work, one step
    assert [s for _, s, _ in ch.log[first_par + 1:first_par + 6]] == [2, 4, 8, 16, 32]
    assert ch.best
    assert _seconds(ch, True) > 0.9 * ch.clk.t
    assert ch.switches == 1
    # serial is re-probed, less and less often
    serial_probes = [t for p, s, t in ch.log[first_par:] if not p]
    assert 2 <= len(serial_probes) <= 12
    gaps = np.diff(serial_probes)  # (rounded up to whole chunks of 0.25 s)
    assert np.all(np.diff(gaps) >= 0) and gaps[-1] >= 8 * gaps[0]


def test_slow_threads_are_probed_with_backoff_within_the_budget():
    """Threads 20× slower (the other core busy): probes only, spaced out, few per cent lost."""
    ch = _drive(Simulated(True, lambda p, t: 0.2 if p else 0.01), 200.0)
    probes = [t for p, _, t in ch.log if p]
    assert all(s == 1 for p, s, _ in ch.log if p)
    assert not ch.best and ch.switches == 0
    assert 2 <= len(probes) <= 10
    gaps = np.diff(probes)  # loss / budget, doubling, capped at max_wait
    assert gaps[0] >= (0.2 - 0.01) / ch.budget and gaps[1] >= 1.9 * gaps[0]
    assert np.all(np.diff(gaps) >= -0.5) and gaps.max() <= ch.max_wait + 1.0
    loss = _seconds(ch, True) - 0.01 * sum(s for p, s, _ in ch.log if p)
    first = 0.2 - 0.01
    assert loss <= first + ch.budget * ch.clk.t * 1.5


def test_reprobes_and_follows_the_load():
    """Busy, then idle, then busy again: serial, threads, serial."""
    def cost(p, t):
        busy = t < 30.0 or t >= 80.0
        return (0.05 if busy else 0.004) if p else 0.01

    ch = _drive(Simulated(True, cost, max_wait=8.0), 120.0)
    in_phase = [[p for p, s, t in ch.log if lo <= t < hi and s > 1]
                for lo, hi in ((0, 30), (50, 80), (100, 120))]
    assert not any(in_phase[0])
    assert all(in_phase[1])  # whole chunks threaded once idle
    assert not any(in_phase[2])
    assert ch.switches >= 2


def test_threaded_chunk_slower_than_serial_switches_back_at_once():
    """A lucky probe (threads fast for one step) costs one short chunk, not a long run."""
    calls = {"n": 0}

    def cost(p, t):
        if not p:
            return 0.01
        calls["n"] += 1
        return 0.001 if calls["n"] == 1 else 0.1

    ch = _drive(Simulated(True, cost), 30.0)
    par = [s for p, s, _ in ch.log if p]
    assert par[:2] == [1, 2]  # the probe, then one ramp chunk of 2 steps, then serial
    assert not ch.best
    assert sum(par) <= 12


def test_passive_wait_default_keeps_the_users_choice():
    env = {}
    assert passive_wait_default(env) and env == {"OMP_WAIT_POLICY": "PASSIVE"}
    for key, value in (("OMP_WAIT_POLICY", "active"), ("GOMP_SPINCOUNT", "1000"),
                       ("KMP_BLOCKTIME", "200"), ("OMP_WAIT_POLICY", "")):
        env = {key: value}
        assert not passive_wait_default(env) and env == {key: value}


# ------------------------------------------------------------------------------ bit identity
NEURON = ["grid.n_a=6", "grid.n_s=10", "grid.n_r=10", *NEURON_TIGHT_BOX, "time.t_end=0.4",
          "solver.method=fv"]  # the finite-volume kernels are what switches threads
NOISY = ["noise.beta=200", "noise.lam=0.05"]


@pytest.mark.parametrize("extra", [[], NOISY], ids=["noiseless", "noisy"])
def test_switching_run_is_bit_identical_to_serial(extra):
    cfg = default_config("single-neuron").with_overrides(NEURON + extra)
    p = SingleNeuronProblem(cfg)

    def run(threads, chunk):
        rho, st, t = p.initial_state(), p.make_stepper(), 0.0
        st.threads = threads
        for t_stop in (0.1, 0.2, 0.4):
            while t < t_stop:
                rep = st.advance(rho, t, t_stop, chunk)
                assert rep.status in (0, 1)
                t = rep.t
        return rho, threads

    ref, _ = run(FixedThreads(False), 10**6)

    def cost(par, t):  # threads faster, then slower, then faster (fake seconds per step)
        return (0.5 if 0.5 <= t < 1.0 else 0.05) if par else 0.1

    rho, ch = run(Simulated(True, cost, first_wait=0.05, max_wait=0.1, budget=100.0), 1)
    assert ch.switches >= 3, ch.log
    assert np.array_equal(rho, ref)
    # whole advance calls of up to 50 steps, which the chooser splits (probes, ramp-up): each
    # piece must continue from the time the previous one reached
    rho, ch = run(Simulated(True, cost, first_wait=0.05, max_wait=0.1, budget=100.0), 50)
    assert ch.probes >= 2, ch.log
    assert np.array_equal(rho, ref)

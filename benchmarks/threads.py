"""Serial, always-threaded and adaptive 3-D kernels, on an idle machine and with a core busy.

``solve`` of the default single-neuron problem (box pinned, so no pilot run; the wall time is the
time loop only, compile/load and setup apart) with

* serial: ``solver.parallel = false``;
* always parallel: the ``prange`` kernels on every call (the behaviour before
  :mod:`meanfield_pde.fv.threads`; forced here with its ``FixedThreads``);
* adaptive: ``solver.parallel = true``, the :class:`~meanfield_pde.fv.threads.ThreadChooser`,

each ``repeat`` times, the three interleaved (so a change in the background load hits all three),
first as the machine is ("idle": nothing of ours running, but other users' processes may be), then
with a busy loop (``python -c "while True: pass"``, not pinned) started before and killed after.
Medians are reported; the load average before each block is recorded.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

from meanfield_pde import default_config, load, solve
from meanfield_pde.fv import threads as threads_mod
from meanfield_pde.problems import single_neuron as sn

from .common import neuron_box

MODES = ("serial", "always", "adaptive")
LABELS = {"serial": "serial", "always": "always parallel (before)", "adaptive": "adaptive (new)"}


@contextlib.contextmanager
def busy_core():
    """A busy-loop process for the duration of the block (its pid); killed after."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        stat = Path(f"/proc/{proc.pid}/stat")
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 5.0:  # until it has run 0.2 s of CPU (it is running)
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[11]) >= 20:
                    break
            except (OSError, IndexError, ValueError):
                time.sleep(0.5)
                break
            time.sleep(0.05)
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def _solve(mode: str, path: str, t_end: float | None) -> dict:
    over = [*neuron_box(), f"solver.parallel={'false' if mode == 'serial' else 'true'}"]
    if t_end is not None:
        over.append(f"time.t_end={t_end!r}")
    made: list = []

    def factory(allowed: bool):
        c = threads_mod.FixedThreads(allowed) if mode == "always" else threads_mod.ThreadChooser(
            allowed)
        made.append(c)
        return c

    with mock.patch.object(sn, "ThreadChooser", factory):
        s = solve(default_config("single-neuron").with_overrides(over), path, overwrite=True)
    ch = made[-1].summary()
    return {"wall_seconds": s.wall_seconds, "n_steps": s.n_steps,
            "serial_seconds": ch["serial_seconds"], "parallel_seconds": ch["parallel_seconds"],
            "probes": ch["probes"], "switches": ch["switches"], "risk": load(path)["risk"]}


def measure(repeat: int = 3, t_end: float | None = None) -> dict:
    out: dict = {"repeat": repeat, "t_end": t_end, "layer": None}
    with tempfile.TemporaryDirectory() as tmp:
        _solve("adaptive", f"{tmp}/warm.h5", 0.1)  # compile/load, start the thread pool
        import numba

        out["layer"] = numba.threading_layer()
        out["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "")
        ref = None
        for state in ("idle", "busy"):
            ctx = busy_core() if state == "busy" else contextlib.nullcontext()
            runs: dict[str, list] = {m: [] for m in MODES}
            with ctx:
                load_before = os.getloadavg()[0]
                for _ in range(repeat):
                    for m in MODES:
                        r = _solve(m, f"{tmp}/{m}.h5", t_end)
                        ref = r["risk"] if ref is None else ref
                        r["identical"] = bool(np.array_equal(r.pop("risk"), ref))
                        runs[m].append(r)
                        print(f"  {state} {m}: {r['wall_seconds']:.2f} s", file=sys.stderr,
                              flush=True)
            med = {m: statistics.median(r["wall_seconds"] for r in runs[m]) for m in MODES}
            out[state] = {"load1_before": load_before, "runs": runs, "median": med,
                          "ratio_to_serial": {m: med[m] / med["serial"] for m in MODES}}
        out["identical"] = all(r["identical"] for s in ("idle", "busy")
                               for m in MODES for r in out[s]["runs"][m])
    return out


def run(quick: bool = False) -> dict:
    return measure(repeat=3, t_end=4.0 if quick else None)


def render(data: dict) -> str:
    t_end = data["t_end"] if data["t_end"] is not None else 8
    lines = [f"## Threads: serial, always parallel and adaptive 3-D kernels (single-neuron "
             f"defaults, t ∈ [0, {t_end:g}])", "",
             f"Wall time of the time loop of `solve` (box pinned; median of {data['repeat']} "
             f"interleaved runs; Numba threading layer `{data['layer']}`). *Busy*: a "
             "`python -c \"while True: pass\"` process runs throughout; *idle*: none of ours, "
             "but this machine is shared, so other processes may run (1-min load average "
             "before each block given). All runs give bit-identical risks: "
             f"{'yes' if data['identical'] else 'NO'}.", "",
             "| machine | " + " | ".join(LABELS[m] for m in MODES)
             + " | adaptive / serial | adaptive: seconds serial + threaded, probes |",
             "|---|---|---|---|---|---|"]
    for state in ("idle", "busy"):
        d = data[state]
        last = d["runs"]["adaptive"][len(d["runs"]["adaptive"]) // 2]
        cells = " | ".join(f"{d['median'][m]:.2f} s" for m in MODES)
        lines.append(f"| {state} (load {d['load1_before']:.2f}) | {cells} | "
                     f"{d['ratio_to_serial']['adaptive']:.2f} | {last['serial_seconds']:.2f} + "
                     f"{last['parallel_seconds']:.2f} s, {last['probes']} |")
    lines.append("")
    return "\n".join(lines)

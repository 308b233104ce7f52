"""Serial, always-threaded and adaptive 3-D kernels, on an idle machine and with a core busy.

``solve`` of the default single-neuron problem (box pinned, so no pilot run; the wall time is the
time loop only, compile/load and setup apart) with

* serial: ``solver.parallel = false``;
* always parallel: the ``prange`` kernels on every call (``FixedThreads(True)`` of
  :mod:`meanfield_pde.fv.threads`);
* adaptive: ``solver.parallel = true``, the :class:`~meanfield_pde.fv.threads.ThreadChooser`;

each under two OpenMP wait policies, each policy in its own process (OpenMP reads it once):
libgomp's default (spin, then sleep; ``OMP_WAIT_POLICY`` unset) and passive (the package's
default since the chooser).  "Always parallel, default wait" is the behaviour before.  Each
``repeat`` times, the modes interleaved (so a change in the background load hits all of them),
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

from .common import call_in_subprocess, neuron_box

MODES = ("serial", "always", "adaptive")
# (wait policy, mode) columns of the table; libgomp's default wait is the behaviour before
COLUMNS = (("passive", "serial"), ("libgomp", "always"), ("passive", "always"),
           ("libgomp", "adaptive"), ("passive", "adaptive"))
LABELS = {("passive", "serial"): "serial",
          ("libgomp", "always"): "always parallel, default wait (before)",
          ("passive", "always"): "always parallel, passive wait",
          ("libgomp", "adaptive"): "adaptive, default wait",
          ("passive", "adaptive"): "adaptive, passive wait (new default)"}


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


def measure(repeat: int = 3, t_end: float | None = None, modes: tuple[str, ...] = MODES,
            wait: str = "passive") -> dict:
    """``modes`` interleaved, ``repeat`` times, idle then busy, in this process; ``wait``:
    "passive" (the package default) or "libgomp" (OMP_WAIT_POLICY unset, libgomp's default
    spin-then-sleep: the behaviour before).  Must run before this process's first parallel
    region (OpenMP reads the policy once), so use a fresh process (:func:`run` does)."""
    if wait == "libgomp":
        os.environ.pop("OMP_WAIT_POLICY", None)
    else:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    out: dict = {"repeat": repeat, "t_end": t_end, "wait": wait}
    with tempfile.TemporaryDirectory() as tmp:
        _solve("adaptive", f"{tmp}/warm.h5", 0.1)  # compile/load
        import numba

        out["layer"] = numba.threading_layer()
        ref = None
        for state in ("idle", "busy"):
            ctx = busy_core() if state == "busy" else contextlib.nullcontext()
            runs: dict[str, list] = {m: [] for m in modes}
            with ctx:
                load_before = os.getloadavg()[0]
                for _ in range(repeat):
                    for m in modes:
                        r = _solve(m, f"{tmp}/{m}.h5", t_end)
                        ref = r["risk"] if ref is None else ref
                        r["identical"] = bool(np.array_equal(r.pop("risk"), ref))
                        runs[m].append(r)
                        print(f"  {wait} {state} {m}: {r['wall_seconds']:.2f} s", file=sys.stderr,
                              flush=True)
            out[state] = {"load1_before": load_before, "runs": runs,
                          "median": {m: statistics.median(r["wall_seconds"] for r in runs[m])
                                     for m in modes}}
        out["identical"] = all(r["identical"] for st in ("idle", "busy")
                               for m in modes for r in out[st]["runs"][m])
    return out


def run(quick: bool = False) -> dict:
    """Both wait policies, each in a fresh process with its own serial runs; ``quick``:
    t ∈ [0, 2] instead of [0, 8].  Ratios to serial are medians over the repetitions of the
    ratio to the serial run of the same repetition and process (adjacent in time)."""
    kw = {"repeat": 5, "t_end": 2.0 if quick else None}
    parts = {w: call_in_subprocess("threads", "measure", {**kw, "modes": modes, "wait": w}, {})
             for w, modes in (("libgomp", MODES), ("passive", MODES))}
    out: dict = {**kw, "layer": parts["passive"]["layer"], "parts": parts,
                 "identical": all(p["identical"] for p in parts.values())}
    for state in ("idle", "busy"):
        med, ratio = {}, {}
        for w, m in COLUMNS:
            runs = parts[w][state]["runs"]
            med[f"{w}/{m}"] = parts[w][state]["median"][m]
            ratio[f"{w}/{m}"] = statistics.median(
                r["wall_seconds"] / s["wall_seconds"]
                for r, s in zip(runs[m], runs["serial"], strict=True))
        adaptive = parts["passive"][state]["runs"]["adaptive"]
        mid = sorted(adaptive, key=lambda r: r["wall_seconds"])[len(adaptive) // 2]
        out[state] = {"median": med, "ratio_to_serial": ratio, "adaptive_median_run": mid,
                      "serial_median_libgomp": parts["libgomp"][state]["median"]["serial"],
                      "load1_before": {w: parts[w][state]["load1_before"] for w in parts}}
    return out


def render(data: dict) -> str:
    t_end = data["t_end"] if data["t_end"] is not None else 8
    lines = [f"## Threads: serial, always parallel and adaptive 3-D kernels (single-neuron "
             f"defaults, t ∈ [0, {t_end:g}])", "",
             f"Wall time of the time loop of `solve` (box pinned; median of {data['repeat']} "
             f"interleaved runs; Numba threading layer `{data['layer']}`; each wait policy in its "
             "own process). *Busy*: a `python -c \"while True: pass\"` process runs throughout; "
             "*idle*: none of ours, but this machine is shared and other processes may run (the "
             "1-min load average before each block is given). All runs give bit-identical risks: "
             f"{'yes' if data['identical'] else 'NO'}.", "",
             "| machine | " + " | ".join(LABELS[c] for c in COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    for state in ("idle", "busy"):
        d = data[state]
        load = ", ".join(f"{v:.1f}" for v in d["load1_before"].values())
        cells = " | ".join(f"{d['median'][f'{w}/{m}']:.2f} s "
                           f"({d['ratio_to_serial'][f'{w}/{m}']:.2f})" for w, m in COLUMNS)
        lines.append(f"| {state} (load {load}) | {cells} |")
    lines += ["", "In brackets: the median over the repetitions of the ratio to the serial run of "
              "the same repetition and process (the libgomp-default columns have their own serial "
              "runs, median " + ", ".join(f"{st} {data[st]['serial_median_libgomp']:.2f} s"
                                          for st in ("idle", "busy")) + ").  "
              "The adaptive (passive) run of median time spent "
              + "; ".join(f"{st}: {data[st]['adaptive_median_run']['serial_seconds']:.2f} s serial "
                          f"and {data[st]['adaptive_median_run']['parallel_seconds']:.2f} s "
                          f"threaded, {data[st]['adaptive_median_run']['probes']} probes"
                          for st in ("idle", "busy")) + ".", ""]
    return "\n".join(lines)

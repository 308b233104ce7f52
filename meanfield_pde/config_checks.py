"""Cross-key checks of a configuration that every problem shares (the time grid and the
schedule), run by :func:`~meanfield_pde.config.build_config` after every key is checked alone."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import ConfigError


def check_common(values: dict[str, dict[str, Any]]) -> None:
    """Cross-key checks shared by every problem (time grid and schedule)."""
    time = values.get("time")
    if time is not None:
        outs = time["outputs"]
        if isinstance(outs, list):
            bad = [t for t in outs if t > time["t_end"]]
            if bad:
                raise ConfigError(
                    f"time.outputs contains {bad[0]:g} > time.t_end = {time['t_end']:g}; "
                    "remove it or raise time.t_end"
                )
        if outs == "log" and time["t_first"] >= time["t_end"]:
            raise ConfigError(
                f"time.t_first = {time['t_first']:g} must be < time.t_end = {time['t_end']:g}"
            )
        check_distinct_outputs(time)
    sched = values.get("schedule")
    if sched is not None and sched["kind"] == "piecewise":
        times, vals = sched["times"], sched["values"]
        if len(vals) != len(times) + 1:
            raise ConfigError(
                f"schedule.kind = 'piecewise' needs one more entry in schedule.values than in "
                f"schedule.times (breakpoints); got {len(vals)} and {len(times)}"
            )
        if any(b <= a for a, b in zip(times, times[1:], strict=False)):
            raise ConfigError("schedule.times must be strictly increasing")


#: the smallest spacing of uniform output times: the smallest normal double, below which the
#: times k * t_end / (n_outputs - 1) lose their relative precision and coincide
MIN_OUTPUT_SPACING = 2.2250738585072014e-308


def check_distinct_outputs(time: dict[str, Any]) -> None:
    """Uniform or log output times that floating point cannot tell apart are refused (a
    ``time.t_end`` of 5e-324 would store 2 snapshots of the 201 asked for)."""
    t_end, n = time["t_end"], time["n_outputs"]
    least = (n - 1) * MIN_OUTPUT_SPACING
    if time["outputs"] == "uniform" and t_end < least:
        step = 10.0 ** (math.floor(math.log10(least)) - 2)  # 3 digits, rounded up: accepted
        shown = float(f"{math.ceil(least / step) * step:.3g}")
        raise ConfigError(
            f"time.t_end = {t_end:g} is too small for time.n_outputs = {n} distinct output "
            f"times; accepted: time.t_end >= {shown:g}; raise time.t_end"
            f"{' or lower time.n_outputs' if n > 2 else ''} (the spacing t_end / (n_outputs - 1) "
            f"must be at least the smallest normal double, {MIN_OUTPUT_SPACING:.4g})")
    if time["outputs"] == "log":
        times = np.geomspace(time["t_first"], t_end, n - 1)
        if not np.all(np.diff(times) > 0.0):
            raise ConfigError(
                f"time.t_first = {time['t_first']:g} and time.t_end = {t_end:g} are too close "
                f"for time.n_outputs = {n} distinct log-spaced output times; lower "
                "time.t_first or time.n_outputs, or raise time.t_end")

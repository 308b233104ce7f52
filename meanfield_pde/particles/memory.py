"""Memory checks of particle SGD: refuse, before allocating, a run that does not fit."""

from __future__ import annotations

import math
import os

from ..errors import ConfigError


def available_bytes() -> float:
    """Memory available to this process: MemAvailable of /proc/meminfo, else physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except (OSError, ValueError, IndexError):
        pass
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return math.inf


def check_memory(n: int, d: int, dim: int, batch: int) -> None:
    """Refuse, before allocating, a run whose arrays do not fit in memory: the N x N Gram
    matrix W Wᵀ of the population risk, about four N x D copies of the parameters (θ, its
    transpose, a batch work array, the snapshot) and the standard normals of one step."""
    need = 8.0 * (float(n) * n + 4.0 * n * dim + 2.0 * batch * (d + 1))
    have = available_bytes()
    if need > have:
        raise ConfigError(
            f"particle SGD with sgd.n_neurons = {n} in model.d = {d} needs about "
            f"{need / 2**30:.3g} GiB of memory (the N x N Gram matrix of the risk and the N x d "
            f"parameters), more than the {have / 2**30:.3g} GiB available; lower sgd.n_neurons "
            "or model.d")


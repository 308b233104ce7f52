"""Synthetic result files for the figure and movie tests (written in milliseconds, no solve):
a radial run (gaussians), noisy or not, with a mass spike near r = 0; a single-neuron run with
or without Lagrangian particles; the SGD files that go with them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from meanfield_pde.io import Result, ResultWriter, load

N_R = 200
R_EDGES = np.linspace(0.0, 4.0, N_R + 1)
LINEAR_TIMES = np.linspace(0.0, 2.0, 11)
LOG_TIMES = np.concatenate([[0.0], np.geomspace(1e-3, 1e2, 26)])
BETA, LAM = 50.0, 0.02


def radial_density(t: float, t_end: float) -> np.ndarray:
    """A bump moving right plus a fraction of mass, growing in time, in the first cell
    (the r -> 0 concentration of the noiseless flow), normalised on R_EDGES."""
    c = 0.5 * (R_EDGES[1:] + R_EDGES[:-1])
    h = np.diff(R_EDGES)
    s = t / t_end if t_end > 0 else 0.0
    rho = np.exp(-0.5 * ((c - 1.0 - 1.5 * s) / 0.3) ** 2)
    rho *= (1.0 - 0.3 * s) / (rho * h).sum()
    rho[0] += 0.3 * s / h[0]
    return rho


def gaussians_run(path: Path, times: np.ndarray = LINEAR_TIMES, noisy: bool = False,
                  risk_error: float = 1e-9) -> Result:
    """A 'gaussians' run; ``noisy`` adds noise.beta/lam to the config and a free-energy field."""
    noise = {"beta": BETA, "lam": LAM} if noisy else {"beta": "inf", "lam": 0.0}
    fields = {"risk": (), "risk_error": (), "mass": (), "density": (N_R,)}
    if noisy:
        fields["free_energy"] = ()
    w = ResultWriter(path, problem="gaussians", fields=fields,
                     config={"model": {"d": 10, "delta": 0.8}, "noise": noise},
                     grid={"r_edges": R_EDGES, "r_centers": 0.5 * (R_EDGES[1:] + R_EDGES[:-1])})
    for t in times:
        risk = 0.5 * np.exp(-t) + 0.1
        row = {"risk": risk, "risk_error": risk_error, "mass": 1.0,
               "density": radial_density(t, times[-1])}
        if noisy:
            row["free_energy"] = risk - 0.05 * t
        w.append(float(t), row)
    w.finish(wall_seconds=0.1)
    return load(path)


def gaussians_sgd(path: Path, times: np.ndarray, n: int = 300, seed: int = 0) -> Result:
    """Particle 'SGD' of gaussians: |w| of n neurons drawn from the radial density at each time."""
    rng = np.random.default_rng(seed)
    w = ResultWriter(path, problem="gaussians", fields={"r": (n,), "risk": ()},
                     config={"model": {"d": 10, "delta": 0.8}}, grid={},
                     attrs={"kind": "sgd"})
    for t in times:
        rho = radial_density(t, times[-1]) * np.diff(R_EDGES)
        cells = rng.choice(N_R, size=n, p=rho / rho.sum())
        w.append(float(t), {"r": R_EDGES[cells] + rng.random(n) * np.diff(R_EDGES)[cells],
                            "risk": 0.5})
    w.finish(wall_seconds=0.1)
    return load(path)


SHAPE = (6, 10, 12)  # cells in a, s, r
N_PARTICLES = 40


def neuron_run(path: Path, times: np.ndarray = LINEAR_TIMES, particles: bool = False,
               sgd: bool = False, n: int = 200) -> Result:
    """A 'single-neuron' run (a Gaussian blob drifting in s), with weighted particles when
    asked; with ``sgd`` an SGD file of n neurons of the same problem instead."""
    lo, hi = (0.0, -1.0, 0.0), (2.0, 1.0, 1.0)
    grid = {f"{x}_edges": np.linspace(lo[i], hi[i], SHAPE[i] + 1) for i, x in enumerate("asr")}
    ca, cs, cr = (0.5 * (grid[f"{x}_edges"][1:] + grid[f"{x}_edges"][:-1]) for x in "asr")
    h = [float(np.diff(grid[f"{x}_edges"])[0]) for x in "asr"]
    rng = np.random.default_rng(1)
    if sgd:
        fields: dict = {"z": (n, 3), "risk": ()}
        w = ResultWriter(path, problem="single-neuron", fields=fields, grid={},
                         config={"model": {"d": 10}}, attrs={"kind": "sgd"})
    else:
        fields = {"risk": (), "mass": (), "density": SHAPE,
                  **{f"marginal_{x}": (SHAPE[i],) for i, x in enumerate("asr")}}
        if particles:
            fields["particles"] = (N_PARTICLES, 3)
            grid["particle_weights"] = np.full(N_PARTICLES, 1.0 / N_PARTICLES)
        w = ResultWriter(path, problem="single-neuron", fields=fields, grid=grid,
                         config={"model": {"d": 10}})
    for t in times:
        m = -0.5 + 0.8 * t / times[-1]
        if sgd:
            z = np.column_stack([1.0 + 0.1 * rng.standard_normal(n),
                                 m + 0.1 * rng.standard_normal(n),
                                 np.abs(0.5 + 0.1 * rng.standard_normal(n))])
            w.append(float(t), {"z": z, "risk": 0.3})
            continue
        rho = np.exp(-((ca[:, None, None] - 1.0) ** 2) / 0.02
                     - (cs[None, :, None] - m) ** 2 / 0.02 - (cr[None, None, :] - 0.5) ** 2 / 0.02)
        rho /= rho.sum() * h[0] * h[1] * h[2]
        row = {"risk": 0.3 * np.exp(-t), "mass": 1.0,
               "density": rho * (1.0 + t),  # peaks differ between snapshots
               "marginal_a": rho.sum(axis=(1, 2)) * h[1] * h[2],
               "marginal_s": rho.sum(axis=(0, 2)) * h[0] * h[2],
               "marginal_r": rho.sum(axis=(0, 1)) * h[0] * h[1]}
        if particles:
            row["particles"] = np.column_stack([1.0 + 0.1 * t + 0.05 * rng.standard_normal(
                N_PARTICLES), m + 0.05 * rng.standard_normal(N_PARTICLES),
                0.5 + 0.05 * rng.standard_normal(N_PARTICLES)])
        w.append(float(t), row)
    w.finish(wall_seconds=0.1)
    return load(path)

"""Quantities derived from a :class:`~meanfield_pde.io.reader.Result`: fields at any time between
outputs, marginal densities, moments (the methods ``Result.at``, ``Result.marginal`` and
``Result.moments``).

Everything is computed from the stored datasets alone (no problem class is built): the file's
coordinates are those of :data:`~.layout.COORDINATES` whose cell edges and centres its grid
holds; a density's axes follow that order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError
from .layout import COORDINATES, VARIABLES

__all__ = ["coordinates", "interpolate", "marginal", "marginal_values", "moments", "points"]

#: weighted-point representations of ρ_t a file may hold: (positions field, weights grid array,
#: coordinates of the last axis); the Lagrangian solvers' exact states
_WEIGHTED_POINTS = (("nodes", "node_weights", ("r",)),
                    ("particles", "particle_weights", ("a", "s", "r")))
#: SGD results (attribute kind = "sgd"): positions field -> coordinates (equal weights 1/N)
_SGD_POINTS = {"r": ("r",), "z": ("a", "s", "r")}


def coordinates(res: Any) -> tuple[str, ...]:
    """The coordinates the grid of ``res`` discretises, in density-axis order: ``("r",)`` for
    the radial problem, ``("a", "s", "r")`` for single-neuron, ``()`` for SGD results."""
    return tuple(x for x in COORDINATES
                 if f"{x}_edges" in res.grid and f"{x}_centers" in res.grid)


def interpolate(res: Any, t: float) -> dict[str, np.ndarray]:
    """Every field of ``res`` at time ``t``: (1 − w) f_k + w f_(k+1) with w = (t − t_k) /
    (t_(k+1) − t_k) between the bracketing outputs t_k <= t <= t_(k+1); the stored snapshot
    itself when t is an output time.  A lazy result reads the two bracketing rows only.

    Raises:
        DataError: ``t`` is not a number in [t_0, t_(K-1)], or the file has no snapshot.
    """
    times = res.t
    if times.size == 0:
        raise DataError(f"{res.path} has no snapshot yet; wait for the solve to write one")
    try:
        t = float(t)
    except (TypeError, ValueError):
        raise DataError(f"time {t!r} is not a number; pass a time in [{times[0]!r}, "
                        f"{times[-1]!r}]") from None
    if not times[0] <= t <= times[-1]:
        raise DataError(f"time {t!r} is outside the output times [{times[0]!r}, "
                        f"{times[-1]!r}] of {res.path}; pass a time in that range")
    k = int(np.searchsorted(times, t, side="right")) - 1  # t_k <= t < t_(k+1), or k = K-1
    if times[k] == t:
        return res.snapshot(k)
    lo, hi = res.snapshot(k), res.snapshot(k + 1)
    w = (t - times[k]) / (times[k + 1] - times[k])
    return {name: (1.0 - w) * lo[name] + w * hi[name] for name in lo}


def _no_density(res: Any, what: str) -> DataError:
    """The one-line error of asking a file without a density grid (SGD) for ``what``."""
    kind = "an SGD result (its neurons are fields, see Result.moments())" \
        if res.attrs.get("kind") == "sgd" else "a result without a density grid"
    return DataError(f"{res.path} is {kind}: it has no {what}; pass a PDE or Gibbs result")


def marginal_values(res: Any, name: str) -> np.ndarray:
    """The (K, n) cell averages of the marginal density of coordinate ``name``: the stored
    ``marginal_<name>`` field, else the density summed over the other axes times their cell
    widths (the radial problem's density is the marginal of r).

    Raises:
        DataError: ``name`` is not a coordinate of the file.
    """
    coords = coordinates(res)
    if not coords:
        raise _no_density(res, "marginal densities")
    if name not in coords:
        raise DataError(f"{name!r} is not a coordinate of {res.path}; pass one of "
                        f"{', '.join(coords)}")
    if f"marginal_{name}" in res.fields:
        return np.asarray(res.fields[f"marginal_{name}"])
    rho = np.asarray(res.fields["density"])
    out = rho
    for axis in reversed(range(len(coords))):  # sum the other axes, innermost first
        if coords[axis] != name:
            widths = np.diff(res.grid[f"{coords[axis]}_edges"])
            out = np.tensordot(out, widths, axes=([axis + 1], [0]))
    return out


def marginal(res: Any, name: str):
    """The marginal density of coordinate ``name`` at every output as an ``xarray.DataArray``
    of dims (t, name) with the cell centres as coordinate; Σ_i m_i Δx_i equals the mass (the
    cell edges are ``res.grid[name + "_edges"]``).  See :func:`marginal_values`."""
    import xarray as xr

    values = marginal_values(res, name)
    centres = VARIABLES[f"grid/{name}_centers"]
    return xr.DataArray(
        values, dims=("t", name), name=f"marginal_{name}",
        coords={"t": ("t", res.t, _cf("t")),
                name: (name, res.grid[f"{name}_centers"],
                       {"units": centres.units, "long_name": centres.long_name})},
        attrs={"units": "1", "long_name": f"marginal density of {name} (cell averages)"})


def _cf(name: str) -> dict[str, str]:
    """CF ``units`` and ``long_name`` of dataset ``name`` from the table."""
    var = VARIABLES[name]
    return {"units": var.units, "long_name": var.long_name}


def points(res: Any) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str] | None:
    """The weighted-point representation of ρ_t if the file holds one: (positions (K, P, C),
    weights (P,), coordinate names (C), source description); None otherwise.  Lagrangian runs
    store their exact state (nodes or particles with fixed weights); SGD runs their neurons
    (weights 1/N)."""
    for field, weights, coords in _WEIGHTED_POINTS:
        if field in res.fields and weights in res.grid:
            x = np.asarray(res.fields[field])
            return (x.reshape(*x.shape[:2], len(coords)), np.asarray(res.grid[weights]),
                    coords, f"quadrature of the weighted {field} (grid/{weights})")
    if res.attrs.get("kind") == "sgd":
        for field, coords in _SGD_POINTS.items():
            if field in res.fields:
                x = np.asarray(res.fields[field])
                n = x.shape[1]
                return (x.reshape(x.shape[0], n, len(coords)), np.full(n, 1.0 / n), coords,
                        f"average over the {n} neurons of field {field!r}")
    return None


def moments(res: Any):
    """Mass, mean and variance of each coordinate at every output, as an ``xarray.Dataset`` of
    dim t with variables ``mass``, ``mean_<x>``, ``var_<x>``.

    From the file's most exact representation of ρ_t: the weighted points of a Lagrangian run
    (mass Σ w_p, mean Σ w_p X_p / mass) or an SGD run's neurons; else the marginal cell averages
    m_i with the midpoint rule (mass Σ m_i Δx_i, mean Σ x_i m_i Δx_i / mass) — the rules the
    solvers use for their ``mass`` and ``mean_*`` fields, which these reproduce to round-off.
    The dataset's ``source`` attribute names the representation used.
    """
    import xarray as xr

    out: dict[str, np.ndarray] = {}
    pts = points(res)
    if pts is not None:
        x, w, coords, source = pts
        mass = np.full(res.n_snapshots, float(np.sum(w)))
        for c, name in enumerate(coords):
            mean = x[:, :, c] @ w / mass
            out[f"mean_{name}"] = mean
            out[f"var_{name}"] = (x[:, :, c] - mean[:, None]) ** 2 @ w / mass
    else:
        coords = coordinates(res)
        if not coords:
            raise _no_density(res, "density to take moments of")
        source = "midpoint rule on the marginal cell averages"
        for name in coords:
            m = marginal_values(res, name) * np.diff(res.grid[f"{name}_edges"])
            centres = res.grid[f"{name}_centers"]
            mass = m.sum(axis=1)
            mean = m @ centres / mass
            out[f"mean_{name}"] = mean
            out[f"var_{name}"] = ((centres[None, :] - mean[:, None]) ** 2 * m).sum(axis=1) / mass
    data = {"mass": ("t", mass, _cf("mass"))}
    for key, values in out.items():
        name = key.split("_", 1)[1]
        what = "mean" if key.startswith("mean_") else "variance"
        data[key] = ("t", values, {"units": "1", "long_name": f"{what} of {name}"})
    return xr.Dataset(data, coords={"t": ("t", res.t, _cf("t"))}, attrs={"source": source})

"""A phase diagram from a parameter sweep: where training succeeds, over (δ, κ).

:func:`meanfield_pde.sweep` solves the ``gaussians`` PDE (classes of covariance (1 ± δ)² I_d)
at every point of a grid of class separations δ (``model.delta``) and initial scales κ
(``init.kappa``: w ~ N(0, κ²/d I_d)), one Dask task and one result file per point in
``out_dir/phase_diagram_sweep``, collated into the ``xarray.Dataset`` ``sweep.nc``;
:func:`meanfield_pde.sweeps.plot.plot_sweep` draws the final risk over the two keys (heatmap and
curves) and risk(t) of every point.  Running the script again reuses the finished points.

    python examples/phase_diagram.py              # docs/examples/phase_diagram.png (~1 min)
    python examples/phase_diagram.py --small --out /tmp/ex
"""

from __future__ import annotations

from pathlib import Path

import meanfield_pde as mf
from meanfield_pde.sweeps.plot import plot_sweep

VARY = {"model.delta": [0.3, 0.5, 0.7, 0.9], "init.kappa": [0.2, 0.8, 3.0]}
SMALL_VARY = {"model.delta": [0.5, 0.8], "init.kappa": [0.8]}
T_END = 10.0
SWEEP_DIR = "phase_diagram_sweep"  # the point files and sweep.nc, under --out
WORKERS = 1  # one worker process: the example stays light on a shared machine


def main(out_dir: str | Path, small: bool = False) -> Path:
    """Run (or continue) the sweep in ``out_dir/phase_diagram_sweep`` and write
    ``out_dir/phase_diagram.png``
    (returns its path)."""
    out_dir = Path(out_dir)
    cfg = mf.default_config("gaussians").replace({"time.t_end": T_END, "time.outputs": "log",
                                                  "time.n_outputs": 41, "time.t_first": 0.01})
    if small:
        cfg = cfg.replace({"time.t_end": 1.0, "time.n_outputs": 3, "lagrangian.mass_cells": 20,
                           "grid.n": 200})
    table = mf.sweep(cfg, vary=SMALL_VARY if small else VARY,
                     out_dir=out_dir / SWEEP_DIR, workers=WORKERS)
    if table.attrs.get("n_failed"):
        print(f"{table.attrs['n_failed']} point(s) failed; see {out_dir / SWEEP_DIR}/*.json")
    return plot_sweep(out_dir / SWEEP_DIR, out_dir / "phase_diagram.png")


if __name__ == "__main__":
    from _cli import run

    run(main, __doc__)

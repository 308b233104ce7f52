"""MMN18 Fig. 1: the PDE law of |w| against the neurons of an SGD-trained network.

The ``gaussians`` problem at its defaults (two isotropic Gaussian classes in d = 40, ramp
activation): the PDE is solved with :func:`meanfield_pde.solve` and one network of N neurons is
trained by one-pass SGD (:func:`meanfield_pde.sgd`); :func:`meanfield_pde.plot` with
``overlay=`` draws the histogram of the neurons' radii r = |w| over the PDE density of r at a few
times (Mei, Montanari & Nguyen 2018, Fig. 1).

    python examples/mmn18_fig1.py                 # docs/examples/mmn18_fig1.png (~1 min)
    python examples/mmn18_fig1.py --small --out /tmp/ex
"""

from __future__ import annotations

from pathlib import Path

import meanfield_pde as mf

TIMES = (0.5, 2.0, 5.0, 20.0)
N_NEURONS = 3200  # the overlay bins follow N^(1/3): a wider network gives finer histograms


def main(out_dir: str | Path, small: bool = False) -> Path:
    """Solve, train, and write ``out_dir/mmn18_fig1.png``; returns its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = mf.default_config("gaussians")
    times = TIMES
    if small:
        cfg = cfg.replace({"time.t_end": 2.0, "time.n_outputs": 5, "lagrangian.mass_cells": 20,
                           "grid.n": 200})
        times = (0.0, 1.0, 2.0)
    pde = mf.solve(cfg).result
    # step eps = 1e-4 per sample (the default); small: 100 neurons and large steps
    sgd_cfg = cfg.replace({"sgd.n_neurons": 100, "sgd.eps": 1e-2} if small
                          else {"sgd.n_neurons": N_NEURONS})
    sgd = mf.sgd(sgd_cfg).result
    path = out_dir / "mmn18_fig1.png"
    mf.plot(pde, path, overlay=sgd, times=list(times))
    return path


if __name__ == "__main__":
    from _cli import run

    run(main, __doc__)

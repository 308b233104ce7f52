"""The single-neuron problem: how the student's neurons align with the teacher.

Data y = f_*(<w_*, x>) with x ~ N(0, I_d); the student is a two-layer network whose neurons are
reduced to z = (a, s, r): output weight a, overlap s = <w, w_*> with the teacher and r = |w_⊥|,
the norm of the rest.  Starting from w independent of w_* (s ≈ 0), the PDE moves the mass to
s > 0 while r shrinks: the neurons align with the teacher.  The figure shows the marginal of s
over time (:meth:`Result.marginal`, as a heatmap and at chosen times), the means of a, s and r
(:meth:`Result.moments`) and the risk.

    python examples/single_neuron_alignment.py    # docs/examples/single_neuron_alignment.png
    python examples/single_neuron_alignment.py --small --out /tmp/ex
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import rc_context

import meanfield_pde as mf
from meanfield_pde import plotting

SMALL = {"time.t_end": 1.0, "time.n_outputs": 5, "lagrangian.n_s": 8, "lagrangian.n_r": 8,
         "lagrangian.table_s": 12, "lagrangian.table_r": 6}
"""Tiny sizes for tests: few nodes and outputs, a short horizon."""


def main(out_dir: str | Path, small: bool = False) -> Path:
    """Solve the default single-neuron problem and write ``out_dir/single_neuron_alignment.png``
    (returns its path)."""
    cfg = mf.default_config("single-neuron")
    if small:
        cfg = cfg.replace(SMALL)
    res = mf.solve(cfg).result
    t = np.asarray(res.t)
    shown = [float(x) for x in np.quantile(t, [0.0, 0.1, 0.3, 1.0])]

    with rc_context(plotting.STYLE):  # the package's print fonts for this script's text too
        fig = plotting.new_figure("double", height=4.6)
        (heat, prof), (mom, risk) = fig.subplots(2, 2)
        plotting.plot_heatmap(res, "s", ax=heat)
        heat.set_title("marginal of the overlap s over time")
        plotting.plot_profiles(res, "s", times=shown, ax=prof)
        _moments_panel(mom, res)
        plotting.plot_energy(res, "risk", ax=risk)
        risk.set_title("population risk")
        fig.suptitle(plotting.figure_title(res, plotting.SIZES["double"]))
    path = Path(out_dir) / "single_neuron_alignment.png"
    plotting.save_figure(fig, path)
    return path


def _moments_panel(ax, res) -> None:
    """Mean ± standard deviation of a, s and r against t."""
    t, moments = np.asarray(res.t), res.moments()
    for name, colour, style in (("a", "C0", "-"), ("s", "C3", "-"), ("r", "C2", "--")):
        mean, sd = moments[f"mean_{name}"].values, np.sqrt(moments[f"var_{name}"].values)
        ax.plot(t, mean, style, color=colour, label=name)
        ax.fill_between(t, mean - sd, mean + sd, color=colour, alpha=0.15, linewidth=0)
    plotting.time_axis(ax, t)
    ax.set_ylabel("mean ± std over the neurons")
    ax.set_title("output weight a, overlap s, orthogonal norm r")
    ax.legend(loc="lower right", ncol=3)
    ax.set_ylim(bottom=min(ax.get_ylim()[0], -0.3))
    ax.grid(True, alpha=0.3)


if __name__ == "__main__":
    from _cli import run

    run(main, __doc__)

"""Accuracy against cost (issue 14): the finite-volume and the Lagrangian solvers side by side.

For each problem at its defaults (gaussians: MMN18 Fig. 1, t ∈ [0, 20]; single-neuron: t ∈ [0, 8])
and each method, a ladder of resolutions is solved with the public ``solve`` (the companion run
behind ``risk_error`` included, as a user runs it; kernels compiled beforehand).  Per run:

* the risk error ``max_k |R_k − R_ref(t_k)|`` over all outputs against a reference — the
  Lagrangian solver at a resolution beyond the ladder with ``solver.rtol = 1e-12``, checked
  against its own next-coarser level (``reference_spread``);
* the wall time of the solve (after compilation);
* the honesty of the error estimate, which bounds the error of the risk curve so far
  (runner/companion.py): ``max_k curve_error_k / risk_error_k`` (must be <= 3) and
  ``risk_error_K / (curve_error_K + 1e-10)`` at t_end (must be <= 100), with curve_error_k =
  max_{j<=k} |R_j − R_ref(t_j)|.

The figure ``frontier.png`` plots risk error against wall time, one panel per problem.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from meanfield_pde import default_config, load, solve
from meanfield_pde.runner.companion import curve_error

from . import common

#: problem -> method -> list of (label, overrides); coarse to fine
LADDERS: dict[str, dict[str, list[tuple[str, dict]]]] = {
    "gaussians": {
        "fv": [(f"n = {n}", {"grid.n": n}) for n in (600, 1200, 2400, 4800, 9600)],
        "lagrangian": [(f"{c} cells", {"lagrangian.mass_cells": c}) for c in (25, 50, 100, 200)],
    },
    "single-neuron": {
        "fv": [(f"{a}×{s}×{s}", {"grid.n_a": a, "grid.n_s": s, "grid.n_r": s})
               for a, s in ((24, 48), (36, 72), (48, 96))],  # coarser: a point mass in a
        # leaks through the default box's walls (cells of 1/12 of the box are too wide)
        "lagrangian": [(f"{n}×{n} nodes, table {ts}×{tr}",
                        {"lagrangian.n_s": n, "lagrangian.n_r": n, "lagrangian.table_s": ts,
                         "lagrangian.table_r": tr})
                       for n, ts, tr in ((8, 16, 8), (12, 24, 12), (16, 32, 16), (32, 48, 24))],
    },
}
QUICK = {"gaussians": {"fv": 3, "lagrangian": 3}, "single-neuron": {"fv": 2, "lagrangian": 3}}
#: the reference run of each problem (Lagrangian, beyond the ladder, tight tolerance)
REFERENCE: dict[str, list[dict]] = {
    "gaussians": [{"solver.method": "lagrangian", "lagrangian.mass_cells": c,
                   "solver.rtol": 1e-13} for c in (480, 640)],
    "single-neuron": [{"solver.method": "lagrangian", "lagrangian.n_s": n, "lagrangian.n_r": n,
                       "lagrangian.table_s": 2 * n, "lagrangian.table_r": n, "solver.rtol": 1e-12}
                      for n in (48, 64)],
}


def _solve(problem: str, overrides: dict, tmp: Path, name: str) -> dict:
    cfg = default_config(problem).replace(overrides)
    s = solve(cfg, tmp / f"{name}.h5", overwrite=True)
    res = load(s.path)
    out = {"t": res.t.tolist(), "risk": res["risk"].tolist(),
           "wall_seconds": s.wall_seconds, "setup_seconds": s.setup_seconds,
           "n_steps": s.n_steps, "method": str(res.attrs.get("method", ""))}
    if "risk_error" in res.fields:
        out["risk_error"] = res["risk_error"].tolist()
    return out


def _score(run: dict, ref: dict) -> dict:
    actual = np.abs(np.asarray(run["risk"]) - np.asarray(ref["risk"]))
    curve = curve_error(run["risk"], ref["risk"])
    row = {"max_error": float(actual.max()), "final_error": float(actual[-1]),
           "wall_seconds": run["wall_seconds"], "setup_seconds": run["setup_seconds"]}
    if "risk_error" in run:
        est = np.asarray(run["risk_error"])
        row["under"] = float(np.max(curve / np.maximum(est, 1e-300)))
        row["over"] = float(est[-1] / (curve[-1] + 1e-10))
        row["max_estimate"] = float(est.max())
    return row


def run(quick: bool = False) -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for problem, methods in LADDERS.items():
            refs = [_solve(problem, o, tmp, f"ref{i}") for i, o in
                    enumerate(REFERENCE[problem])]
            ref = refs[-1]
            spread = (float(np.max(np.abs(np.asarray(refs[-1]["risk"])
                                          - np.asarray(refs[-2]["risk"]))))
                      if len(refs) > 1 else None)
            entry = {"reference": REFERENCE[problem][-1], "reference_spread": spread,
                     "methods": {}}
            for method, ladder in methods.items():
                rungs = ladder[: QUICK[problem][method]] if quick else ladder
                if problem == "single-neuron" and method == "fv":
                    # one box for every rung: the default's (its pilot costs ~20 s per run)
                    box = dict(kv.split("=") for kv in common.neuron_box())
                    rungs = [(lab, {**o, **{k: float(v) for k, v in box.items()}})
                             for lab, o in rungs]
                rows = []
                for i, (label, o) in enumerate(rungs):
                    _solve(problem, {**o, "solver.method": method, "time.t_end": 0.01}, tmp,
                           "warm")  # compile / load the kernels outside the timing
                    r = _solve(problem, {**o, "solver.method": method}, tmp, f"{method}{i}")
                    rows.append({"label": label, "overrides": o, **_score(r, ref)})
                entry["methods"][method] = rows
            out[problem] = entry
    return out


def _figure(data: dict) -> Path:
    plt, path = common.figure("frontier")
    problems = [p for p in LADDERS if p in data]
    fig, axes = plt.subplots(1, len(problems), figsize=(5.2 * len(problems), 4.2),
                             constrained_layout=True)
    for ax, problem in zip(np.atleast_1d(axes), problems, strict=True):
        for method, rows in data[problem]["methods"].items():
            if not rows:
                continue
            x = [r["wall_seconds"] for r in rows]
            y = [r["max_error"] for r in rows]
            ax.loglog(x, y, "o-" if method == "lagrangian" else "s--",
                      label="Lagrangian" if method == "lagrangian" else "finite volumes")
            for r, xi, yi in zip(rows, x, y, strict=True):
                ax.annotate(r["label"], (xi, yi), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)
        from matplotlib.ticker import NullFormatter, ScalarFormatter

        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("wall time of the solve (s, kernels compiled)")
        ax.set_ylabel("max over outputs of |R − R_ref|")
        ax.set_title(problem)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def render(data: dict) -> str:
    path = _figure(data)
    lines = ["## Accuracy against cost: finite volumes and Lagrangian solvers", "",
             "Risk error (max over all outputs, against a converged Lagrangian reference) "
             "against the wall time of `solve` at its defaults, companion run for `risk_error` "
             "included. `risk_error` bounds the error of the risk curve so far: `under` = max over "
             "outputs of max_{j≤k}|actual_j| / risk_error_k (≤ 3 is honest), `over` = the final "
             "risk_error / (the run's largest |actual| + 1e-10) (≤ 100).", "",
             f"![risk error against wall time]({path.parent.name}/{path.name})", ""]
    for problem in (p for p in LADDERS if p in data):
        entry = data[problem]
        spread = entry["reference_spread"]
        lines += [f"**{problem}** (reference {entry['reference']}"
                  + (f", changes by {spread:.1e} from its next-coarser level" if spread is not None
                     else "") + ")", "",
                  "| method | resolution | max risk error | at t_end | wall | estimate under / "
                  "over |", "|---|---|---|---|---|---|"]
        for method, rows in entry["methods"].items():
            for r in rows:
                hon = (f"{r['under']:.2f} / {r['over']:.1f}" if "under" in r else "–")
                lines.append(f"| {method} | {r['label']} | {r['max_error']:.1e} | "
                             f"{r['final_error']:.1e} | {r['wall_seconds']:.2f} s | {hon} |")
        lines.append("")
    return "\n".join(lines)

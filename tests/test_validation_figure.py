"""validate's figure (meanfield_pde.validation_figure.draw) from a report of synthetic SGD runs
over a small real PDE result: one width and one seed (no spread, no fit), and several of each,
both draw a double-column-wide PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import meanfield_pde as mf
from meanfield_pde.validation_figure import draw

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def pde():
    cfg = mf.default_config("gaussians").replace(
        {"time.t_end": 1.0, "time.n_outputs": 5, "lagrangian.mass_cells": 20, "grid.n": 200})
    return mf.solve(cfg).result


def _report(pde, widths: list[int], seeds: list[int]) -> tuple[dict, list[dict]]:
    """A report and runs whose SGD risk is the PDE's plus a gap ~ N^-1/2 (seed-dependent) and
    whose neurons are the PDE law's quantiles, jittered."""
    rng = np.random.default_rng(0)
    t = np.asarray(pde.t)
    edges, dens = pde.grid["r_edges"], pde["density"]
    runs, per_run = [], []
    for n in widths:
        for s in seeds:
            risk = pde["risk"] + (1 + 0.1 * s) * n ** -0.5
            coords = []
            for k in range(t.size):
                cdf = np.concatenate([[0.0], np.cumsum(dens[k] * np.diff(edges))])
                u = (np.arange(n) + rng.uniform(size=n)) / n
                coords.append(np.interp(u * cdf[-1], cdf, edges))
            runs.append({"n": n, "seed": s, "t": t.tolist(), "risk": risk.tolist(),
                         "coords": np.array(coords)})
            per_run.append({"n": n, "seed": s, "sup_risk_gap": float(np.max(risk - pde["risk"]))})
    p = (0.5, 0.01) if len(widths) >= 3 else (None, None)
    report = {"problem": "gaussians", "widths": widths, "seeds": seeds, "eps": 1e-4,
              "runs": per_run, "gap_decay_exponent": p[0], "gap_decay_exponent_stderr": p[1]}
    return report, runs


@pytest.mark.parametrize(("widths", "seeds"), [([30], [0]), ([20, 80, 320], [0, 1, 2])])
def test_validation_figure_draws(pde, tmp_path: Path, widths, seeds) -> None:
    report, runs = _report(pde, widths, seeds)
    out = draw(report, pde, np.arange(pde.t.size), runs, {"r": "density"},
               tmp_path / "validation.png")
    assert out.read_bytes()[:8] == PNG_MAGIC
    from PIL import Image

    with Image.open(out) as img:  # 7.2 in wide at the package's DPI
        assert img.size[0] == pytest.approx(7.2 * mf.plotting.DPI, abs=2)

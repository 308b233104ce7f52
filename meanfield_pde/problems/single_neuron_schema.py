"""The configuration schema of the problem "single-neuron" (MATH.md §3): every key and its default.

Kept apart from :mod:`.single_neuron` so that it reads without the numerics; the problem class
declares it (``SingleNeuronProblem.schema``).
"""

from __future__ import annotations

from ..config import (
    Bool,
    Choice,
    Float,
    FloatOr,
    Int,
    Params,
    Schema,
    Text,
)
from ..config_sections import T_END_DOC, shared_sections
from .gaussians_schema import KERNEL, MAX_D

SCHEMA: Schema = {
    "model": {
        "d": Int(30, lo=3, hi=MAX_D, allow_inf=True, doc="input dimension (or inf)"),
        "activation": Text("tanh", doc="name of the student's sigma"),
        "activation_params": Params({}, doc="parameters of sigma"),
        "target": Text("same", doc='name of the teacher link f_* ("same" = sigma)'),
        "target_params": Params({}, doc="parameters of f_*"),
        "label_noise": Float(0.0, lo=0.0, lo_closed=True, doc="variance nu^2 of the label noise"),
    },
    "kernel": {
        **KERNEL,
        "max_terms": Int(512, lo=1, hi=100_000, doc="at most this many even Hermite terms"),
        "max_nodes": Int(1200, lo=2, hi=4000, doc="at most this many Gauss-Hermite nodes in G1"),
    },
    "init": {
        "a_law": Choice("point", options=("point", "gaussian", "uniform"),
                        doc="law of a: point mass at init.a (held in one cell), gaussian, uniform"),
        "a": Float(1.0, doc="centre of the law of a"),
        "a_std": Float(0.1, lo=0.0, doc="standard deviation of a (gaussian)"),
        "a_halfwidth": Float(0.1, lo=0.0, doc="half width of a (uniform)"),
        "kappa": Float(0.5, lo=0.0, doc="w ~ N(0, kappa^2/d I_d): s ~ N(0, kappa^2/d), "
                                        "r ~ (kappa/sqrt(d)) chi_{d-1}"),
        "s0": Float(0.0, doc="mean of s (0: w independent of w_*; > 0: a warm start)"),
        "d": Int(0, lo=0, hi=MAX_D, doc="dimension used by the initial law; 0 = model.d"),
    },
    "grid": {
        "n_a": Int(24, lo=4, hi=4096, doc="cells in a"),
        "n_s": Int(48, lo=8, hi=4096, doc="cells in s"),
        "n_r": Int(48, lo=8, hi=4096, doc="cells in r"),
        "a_min": FloatOr("auto", keywords=("auto",), number=Float(0.0),
                         doc='lower wall in a, or "auto"'),
        "a_max": FloatOr("auto", keywords=("auto",), number=Float(0.0),
                         doc='upper wall in a, or "auto"'),
        "s_min": FloatOr("auto", keywords=("auto",), number=Float(0.0),
                         doc='lower wall in s, or "auto"'),
        "s_max": FloatOr("auto", keywords=("auto",), number=Float(0.0),
                         doc='upper wall in s, or "auto"'),
        "r_max": FloatOr("auto", keywords=("auto",), number=Float(1.0, lo=0.0),
                         doc='outer wall in r, or "auto"'),
        "wall_cells": Int(2, lo=1, doc="cells next to each wall that must stay empty"),
        "wall_tol": Float(1e-6, lo=0.0, hi=1.0, doc="mass allowed in those cells"),
    },
    "lagrangian": {
        "n_a": Int(8, lo=1, hi=256, doc="solver.method = lagrangian: quadrature nodes in a "
                                         "(Gauss-Hermite / Gauss-Legendre; 1 for a point mass)"),
        "n_s": Int(32, lo=2, hi=512, doc="lagrangian: Gauss-Hermite nodes in s"),
        "n_r": Int(32, lo=2, hi=512, doc="lagrangian: generalised Gauss-Laguerre nodes in r"),
        "table_s": Int(48, lo=4, hi=512, doc="lagrangian: Chebyshev nodes of the feature table "
                                              "in s"),
        "table_r": Int(24, lo=2, hi=512, doc="lagrangian: Chebyshev nodes of the feature table "
                                              "in r^2"),
    },
    **shared_sections(
        time={"t_end": Float(8.0, lo=0.0, doc=T_END_DOC),
              "n_outputs": Int(81, lo=2, hi=1_000_000,
                               doc="number of output times (uniform / log)")},
        solver={"parallel": Bool(True, doc="use both cores (prange) in the 3-D kernels when "
                                           "measured faster; false: serial only")},
    ),
}

"""The configuration schema of the problem "gaussians" (MATH.md §2): every key and its default.

Kept apart from :mod:`.gaussians` so that it reads without the numerics; the problem class
declares it (``GaussiansProblem.schema``).
"""

from __future__ import annotations

from ..config import (
    Choice,
    Float,
    FloatOr,
    Int,
    Params,
    Schema,
    Text,
)
from ..config_sections import shared_sections

MAX_D = 10**18  # finite dimensions beyond: the O(1/d) corrections are below double precision

KERNEL = {
    "tol": Float(1e-12, lo=0.0, hi=1e-2, hi_closed=True,
                 doc="relative truncation tolerance of the Hermite series of the kernel"),
    "max_terms": Int(2048, lo=1, hi=100_000,
                     doc="at most this many even Hermite terms per data scale"),
}

SCHEMA: Schema = {
    "model": {
        "delta": Float(0.8, lo=0.0, hi=1.0, doc="tau_+- = 1 +- delta"),
        "d": Int(40, lo=2, hi=MAX_D, allow_inf=True, doc="input dimension (or inf)"),
        "activation": Text("ramp", doc="name of sigma"),
        "activation_params": Params({}, doc="parameters of sigma (e.g. s1, s2, t1, t2)"),
    },
    "kernel": KERNEL,
    "init": {
        "kind": Choice("chi", options=("chi", "gaussian", "from_file"),
                       doc="chi: r ~ (kappa/sqrt(d)) chi_d; gaussian in r; from_file"),
        "kappa": Float(0.8, lo=0.0, doc="scale of the chi law (w ~ N(0, kappa^2/d I_d))"),
        "d": Int(0, lo=0, hi=MAX_D, allow_inf=False,
                 doc="degrees of freedom of the chi law; 0 = model.d"),
        "mean": Float(0.8, lo=0.0, doc="mean of the gaussian law of r"),
        "std": Float(0.1, lo=0.0, doc="standard deviation of the gaussian law of r"),
        "file": Text("", doc="HDF5 file of this package (from_file)"),
        "time": FloatOr("last", keywords=("last",),
                        number=Float(0.0, lo=0.0, lo_closed=True),
                        doc='snapshot time in init.file, or "last"'),
    },
    "grid": {
        "n": Int(2400, lo=8, hi=10_000_000, doc="number of cells in r"),
        "r_max": FloatOr("auto", keywords=("auto",), number=Float(1.0, lo=0.0),
                         doc='outer wall, or "auto"'),
        "wall_cells": Int(4, lo=1, doc="cells next to the outer wall that must stay empty"),
        "wall_tol": Float(1e-9, lo=0.0, hi=1.0, doc="mass allowed in those cells"),
    },
    "lagrangian": {  # solver.method = "lagrangian" (MATH.md §6)
        "mass_cells": Int(100, lo=2, hi=1_000_000,
                          doc="cells of fixed mass (graded by a pilot run)"),
        "cell_order": Int(8, lo=3, hi=16,
                          doc="Gauss-Lobatto nodes per mass cell (edges included)"),
        "pilot_t_end": FloatOr("auto", keywords=("auto",), number=Float(0.0, lo=0.0),
                               doc='horizon of the pilot run that grades the mass '
                                   'cells, "auto" = time.t_end (a resume keeps the original)'),
    },
    **shared_sections(),
}

"""Parameter sweeps on Dask: the Cartesian product of varied config values, one task per point.

Modules: :mod:`.points` (the points, parsed and checked), :mod:`.files` (a point's result file,
record and lock; what is finished), :mod:`.task` (one point, run on a worker), :mod:`.table`
(``DIR/sweep.nc``), :mod:`.run` (the engine, :func:`sweep`), :mod:`.plot` (the phase diagram).
"""

from .points import parse_vary, parse_vary_args
from .run import SweepInterrupted, sweep
from .table import TABLE_NAME, read_table

__all__ = ["TABLE_NAME", "SweepInterrupted", "parse_vary", "parse_vary_args", "read_table",
           "sweep"]

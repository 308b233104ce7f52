"""Runs without a result file: ``solve(cfg)``, ``solve_gibbs(cfg)``, ``solve_sgd(cfg)`` with no
output path.

The run writes through the ordinary :class:`~meanfield_pde.io.ResultWriter` into a file in a new
temporary directory, which is read back whole (:func:`~meanfield_pde.io.load`) and deleted; the
summary carries that :class:`~meanfield_pde.io.Result` as ``summary.result`` and ``path = None``.
A temporary file rather than an in-memory HDF5 file (h5py's ``driver="core"``,
``backing_store=False``) because the writer opens and closes the file for every snapshot and
checkpoint (so that a crash loses nothing written and readers can follow a run): an in-memory file
would be dropped at the first close, and keeping one open would need a second writer.  The
snapshots are therefore checked, digested and read exactly as for a file the user asked for.

If the run fails with a :class:`~meanfield_pde.errors.MeanFieldError` after writing snapshots,
the temporary file is kept, since the message names it as holding the snapshots so far;
otherwise (success, nothing written, or any other exception) the directory is removed.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..errors import MeanFieldError

_S = TypeVar("_S")

#: what ``Result.path`` of an in-memory result says (error messages name it)
MEMORY_PATH = "<in memory: {problem} result>"


def run_in_memory(problem: str, run: Callable[[Path], _S]) -> _S:
    """``run(path)`` into a temporary file, then its summary with ``path = None`` and
    ``result`` = the file read into memory (``Result.path`` reads ``<in memory: ...>``).

    ``run`` returns a summary dataclass with ``path`` and ``result`` fields (:mod:`.summary`).
    """
    from ..io import load

    tmp = Path(tempfile.mkdtemp(prefix="meanfield-pde-"))
    path = tmp / f"{problem}.h5"
    try:
        summary = run(path)
        result = load(path)
    except MeanFieldError:
        if not path.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    result = dataclasses.replace(result, path=Path(MEMORY_PATH.format(problem=problem)))
    return dataclasses.replace(summary, path=None, _result=result)

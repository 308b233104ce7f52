"""Session-wide setup of the test suite, and the fixtures shared by several test files.

Plain helpers live in modules next to this file (helpers.py: configs, grids, running the CLI;
fuzzing.py: hypothesis strategies; roundoff.py, stopping.py, brute.py, brute_neuron.py): this
file puts the folder on the import path, so that test files in subfolders import them too.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

# On a failure, hypothesis' pytest plugin imports hypothesis.extra._patching (to suggest a patch),
# which imports libcst when it is installed; libcst's DeprecationWarning (from mypy_extensions)
# then becomes an INTERNALERROR under filterwarnings = error and hides the failing example.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:  # hypothesis or libcst not installed: nothing to pre-import
        pass


@pytest.fixture
def in_process_pool(monkeypatch) -> None:
    """``validate`` runs its SGD runs in this process, one after another, instead of as Dask
    tasks (starting worker processes costs seconds per call)."""
    from meanfield_pde import validation_runs

    monkeypatch.setattr(validation_runs, "execute", validation_runs.in_process)

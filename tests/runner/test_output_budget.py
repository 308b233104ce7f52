"""Every loop has a budget checked up front: extending a run to a far t_end is refused before
any list of output times is built (``resume --t-end 1e9`` was a MemoryError, 1e300 a hang)."""

import numpy as np
import pytest
from helpers import config

from meanfield_pde import load, solve
from meanfield_pde.errors import OptionError
from meanfield_pde.runner.plan import MAX_OUTPUTS, extend
from meanfield_pde.runner.resume import resume


@pytest.mark.parametrize("t_end", [1e9, 1e300])
def test_a_far_t_end_is_refused_up_front_and_the_file_is_untouched(tmp_path, t_end):
    cfg = config("gaussians", "time.t_end=0.5", "time.n_outputs=6", "lagrangian.mass_cells=10")
    path = tmp_path / "r.h5"
    solve(cfg, path)
    before = path.read_bytes()
    with pytest.raises(OptionError) as err:
        resume(path, t_end=t_end)
    msg = str(err.value)
    assert "t_end" in msg and "snapshots" in msg and "--" not in msg  # the API's own words
    assert path.read_bytes() == before and load(path).t.size == 6


def test_the_budget_allows_up_to_max_outputs():
    cfg = config("gaussians", "time.t_end=1", "time.n_outputs=11")  # spacing 0.1
    ok = extend(cfg, 0.1 * (MAX_OUTPUTS - 1))
    assert ok["time.n_outputs"] == MAX_OUTPUTS
    with pytest.raises(OptionError):
        extend(cfg, 0.1 * (MAX_OUTPUTS + 10))
    assert np.isclose(extend(cfg, 2.05)["time.t_end"], 2.05)  # listed outputs: unaffected

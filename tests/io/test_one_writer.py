"""One writer per result file (issue 18): a second writer — another run with overwrite, or a
resume — is refused at once with a one-line error before it touches the file, and the file's
config always belongs to its data.  The lock is an OS lock (filelock): the kernel drops it when
the holding process dies, so a killed run leaves nothing stale."""

import subprocess
import sys

import numpy as np
import pytest

from meanfield_pde import load
from meanfield_pde.errors import DataError
from meanfield_pde.io import ResultWriter


def _writer(path, tag, overwrite=False):
    return ResultWriter(path, problem="gaussians", config={"tag": tag}, grid={"x": np.zeros(2)},
                        fields={"risk": ()}, overwrite=overwrite)


def test_a_second_writer_is_refused_and_the_file_stays_the_first_ones(tmp_path):
    path = tmp_path / "r.h5"
    first = _writer(path, "first")
    first.append(0.0, {"risk": 1.0})
    with pytest.raises(DataError) as err:
        _writer(path, "second", overwrite=True)
    assert "being written by another run" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DataError):
        ResultWriter.reopen(path, 1)
    first.append(1.0, {"risk": 0.5})
    first.finish()
    res = load(path)
    assert res.config == {"tag": "first"} and res.t.tolist() == [0.0, 1.0]
    second = _writer(path, "second", overwrite=True)  # free again once the first finished
    second.finish()
    assert load(path).config == {"tag": "second"}


def test_a_killed_writer_leaves_no_stale_lock(tmp_path):
    path = tmp_path / "r.h5"
    code = ("import os, numpy as np\n"
            "from meanfield_pde.io import ResultWriter\n"
            f"w = ResultWriter({str(path)!r}, problem='gaussians', config={{'tag': 'dead'}}, "
            "grid={'x': np.zeros(2)}, fields={'risk': ()})\n"
            "w.append(0.0, {'risk': 1.0})\n"
            "os._exit(9)  # dies holding the lock, like kill -9\n")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 9
    ResultWriter.reopen(path, 1).finish()  # the lock went with the process
    assert load(path).complete

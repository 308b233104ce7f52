#!/bin/sh
# Writes the legacy fixture files of this folder with the code BEFORE issue 13's I/O split
# (meanfield-pde at commit 0853f80, whose meanfield_pde/storage.py wrote them).
# Run from this folder with that tree first on the path, e.g.
#   PYTHONPATH=/path/to/old/tree sh make.sh
set -e
PY=${PY:-python}
M="$PY -m meanfield_pde"
$M solve single-neuron --set grid.n_a=6 --set grid.n_s=8 --set grid.n_r=8 --set time.t_end=0.1 \
   --set time.n_outputs=2 --set kernel.max_nodes=200 --set grid.a_min=-2 --set grid.a_max=6 --set grid.s_min=-3 --set grid.s_max=3 --set grid.wall_tol=0.5 -q -o single-neuron.h5 --force
$M sgd gaussians --set model.d=8 --set sgd.n_neurons=20 --set time.t_end=0.02 --set time.n_outputs=2 -q -o sgd-gaussians.h5 --force
$M gibbs gaussians --set grid.n=100 --set noise.beta=20 --set noise.lam=0.1 -o gibbs.h5 --force
# A gaussians solve (grid.n=100, time.t_end=0.5, time.n_outputs=6) stopped (as by SIGTERM) at the 3rd poll of its time loop: an
# incomplete file with a checkpoint, to be resumed.
rm -f gaussians-interrupted.h5
$PY - <<'PYEOF'
import signal
from meanfield_pde import default_config
from meanfield_pde.runcontrol import Interrupted, StopFlag
from meanfield_pde.solver import solve


class StopAfter(StopFlag):
    def __init__(self, n):
        super().__init__()
        self.n, self.calls = n, 0

    def __bool__(self):
        self.calls += 1
        if self.calls >= self.n:
            self.signum = signal.SIGTERM
        return self.signum is not None


cfg = default_config("gaussians").with_overrides(
    ["grid.n=100", "time.t_end=0.5", "time.n_outputs=6"])
try:
    solve(cfg, "gaussians-interrupted.h5", stop=StopAfter(3))
except Interrupted as exc:
    print("interrupted:", exc)
PYEOF
ls -l *.h5
$PY expected.py

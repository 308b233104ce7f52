"""`meanfield-pde sgd` and `validate`: files, reproducibility, and the PDE–SGD agreement."""

import json

import numpy as np
import pytest

from meanfield_pde import load
from meanfield_pde.cli import main
from meanfield_pde.config import default_config
from meanfield_pde.runner.sgd import solve_sgd
from meanfield_pde.validation import validate


def test_sgd_command_writes_reduced_coordinates(tmp_path, capsys):
    out = tmp_path / "sgd.h5"
    args = ["sgd", "gaussians", "-q", "-o", str(out), "--set", "sgd.n_neurons=64",
            "--set", "sgd.eps=1e-3", "--set", "time.t_end=1", "--set", "time.n_outputs=11"]
    assert main(args) == 0
    res = load(out)
    assert res.complete and res.attrs["kind"] == "sgd" and res.attrs["seed"] == 0
    assert res["r"].shape == (11, 64) and res["risk"].shape == (11,)
    assert np.allclose(res.t, np.linspace(0, 1, 11), atol=1e-12)
    # the same seed and the same compiled code give bit-identical data (same operations on the
    # same inputs in one process); --force is needed to overwrite
    assert main(args) == 2 and "--force" in capsys.readouterr().err
    again = tmp_path / "again.h5"
    assert main([*args[:4], str(again), *args[5:]]) == 0
    assert np.array_equal(load(again)["r"], res["r"])
    assert np.array_equal(load(again)["risk"], res["risk"])


def test_sgd_single_neuron_coordinates(tmp_path):
    cfg = default_config("single-neuron").with_overrides(
        ["sgd.n_neurons=32", "sgd.eps=1e-3", "time.t_end=0.5", "time.n_outputs=3"])
    s = solve_sgd(cfg, tmp_path / "z.h5")
    res = load(s.path)
    z = res["z"]
    assert z.shape == (3, 32, 3)
    assert np.all(z[0, :, 0] == 1.0)  # a = 1 at t = 0 (point law)
    assert np.all(z[..., 2] >= 0.0)  # r = |P w| >= 0
    assert s.risk_final < s.risk_initial


def test_validate_small(tmp_path):
    cfg = default_config("gaussians").with_overrides(
        ["time.t_end=1", "time.n_outputs=11", "sgd.eps=5e-4", "grid.n=600"])
    rep = validate(cfg, [50, 400], [0, 1], tmp_path, workers=2)
    data = json.loads((tmp_path / "validation.json").read_text())
    assert (tmp_path / "validation.png").stat().st_size > 20_000
    assert data["widths"] == [50, 400] and len(data["runs"]) == 4
    gaps = [s["sup_risk_gap_mean"] for s in rep["summary"]]
    assert gaps[1] < gaps[0]  # the gap shrinks with N
    assert rep["gap_decay_exponent"] is None  # two widths: a line through two points is no fit
    assert all(r["sup_risk_gap_std"] > 0 for r in rep["summary"])  # two seeds: a spread
    w1 = rep["summary"][1]["w1_mean"]["r"]
    assert len(w1) == 11 and max(w1) < 0.2


@pytest.mark.slow
def test_mmn18_fig1_agreement(tmp_path):
    """MMN18 Fig. 1 (issue 5's acceptance), eps = 2.5e-5, stratified initial radii, 3 seeds:
    sup_t≤20 |R_SGD − R_PDE| < 0.02 and W1(r) < 0.05 at t = 5, 10, 20 for N = 800, and the gap
    shrinks from N = 200 to 800 to 3200 (measured 0.041, 0.0119 ± 0.0012, 0.0055; ~15 min on
    2 cores: `pytest -m slow`).  With i.i.d. initial neurons the sup at N = 800 is
    0.020 ± 0.012, all of it the t = 0 sampling term R_N(θ⁰) − R(ρ̄_0) (sup over t > 0: 0.011)."""
    cfg = default_config("gaussians").with_overrides(["sgd.eps=2.5e-5",
                                                      "sgd.init_sampling='stratified'"])
    rep = validate(cfg, [200, 800, 3200], [0, 1, 2], tmp_path)
    by_n = {s["n"]: s for s in rep["summary"]}
    assert by_n[800]["sup_risk_gap_mean"] < 0.02
    times = np.array(by_n[800]["t"])
    for t in (5.0, 10.0, 20.0):
        k = int(np.argmin(np.abs(times - t)))
        assert by_n[800]["w1_mean"]["r"][k] < 0.05
    gaps = [by_n[n]["sup_risk_gap_mean"] for n in (200, 800, 3200)]
    assert gaps[0] > gaps[1] > gaps[2]


def test_noise_amplitude_is_validated_against_the_noisy_pde():
    """Noisy SGD with sqrt(4 s/β) matches the noisy PDE's law of r at t = 3; with half that
    amplitude (the same as β → 4β in SGD only) the mismatch is 20× larger (measured W1 0.04–0.06
    against 1.5)."""
    from scipy.stats import wasserstein_distance

    from meanfield_pde.particles import run_sgd
    from meanfield_pde.problems.gaussians import GaussiansProblem
    from meanfield_pde.validation import _quantiles

    cfg = default_config("gaussians").with_overrides(
        ["noise.beta=20", "noise.lam=0.1", "grid.n=800", "grid.r_max=6", "time.t_end=3",
         "solver.dt_max=1e-3", "sgd.n_neurons=400", "sgd.eps=2e-4"])
    p = GaussiansProblem(cfg)
    rho = p.initial_state()
    p.make_stepper().advance(rho, 0.0, 3.0, 10**8)
    pde = _quantiles(p.edges, rho)

    def w1(beta_sgd):
        res = run_sgd(cfg.with_overrides([f"noise.beta={beta_sgd}"]), seed=0,
                      times=np.array([0.0, 3.0]))
        return wasserstein_distance(res.coords[-1], pde)

    right, halved = w1(20.0), w1(80.0)
    assert right < 0.1  # N = 400 fluctuations and the O(ε) bias
    assert halved > 10 * right


def test_decay_exponent_fit_and_its_standard_error():
    """The fitted p of gap = C N^-p with multiplicative noise is within 3 standard errors of the
    truth, and the standard error matches the scatter (independent check: many noisy draws)."""
    from meanfield_pde.validation import _decay_exponent

    widths = [100, 200, 400, 800, 1600, 3200]
    rng = np.random.default_rng(7)
    ps, ses = [], []
    for _ in range(400):
        gaps = 3.0 * np.asarray(widths, float) ** -0.7 * np.exp(0.1 * rng.standard_normal(6))
        p, se = _decay_exponent(widths, gaps)
        ps.append(p)
        ses.append(se)
    ps, ses = np.array(ps), np.array(ses)
    assert abs(ps.mean() - 0.7) < 4 * ps.std() / np.sqrt(ps.size)
    # se estimates the std of p: sd(p) = 0.1 / sqrt(sum (log N - mean)^2) exactly
    x = np.log(widths)
    sd_true = 0.1 / np.sqrt(np.sum((x - x.mean()) ** 2))
    assert abs(ps.std() / sd_true - 1) < 0.15 and abs(np.sqrt(np.mean(ses**2)) / sd_true - 1) < 0.15
    assert _decay_exponent([100, 400], np.array([0.1, 0.05])) == (None, None)
    assert _decay_exponent([100, 100, 400], np.array([0.1, 0.1, 0.05])) == (None, None)


def test_validate_refuses_to_overwrite_without_force(tmp_path, capsys):
    (tmp_path / "validation.json").write_text("{}")
    cfg = default_config("gaussians")
    from meanfield_pde.errors import OutputExists

    with pytest.raises(OutputExists, match="overwrite=True"):  # the API's words
        validate(cfg, [10], [0], tmp_path)
    assert (tmp_path / "validation.json").read_text() == "{}"  # untouched, nothing else ran
    assert not (tmp_path / "pde.h5").exists()
    args = ["validate", "gaussians", "-o", str(tmp_path), "--widths", "10", "--seeds", "0"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--force" in err


def test_validate_one_seed_reports_no_spread(tmp_path, capsys):
    args = ["validate", "gaussians", "-o", str(tmp_path), "--widths", "20", "40", "--seeds", "0",
            "--workers", "1", "--set", "time.t_end=0.2", "--set", "time.n_outputs=3",
            "--set", "grid.n=200", "--set", "sgd.eps=1e-3"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "±" not in out and "one seed" in out and "needs three or more widths" in out
    data = json.loads((tmp_path / "validation.json").read_text())
    assert data["summary"][0]["sup_risk_gap_std"] is None and data["gap_decay_exponent"] is None
    assert main([*args, "--force"]) == 0  # --force replaces the report

"""Configuration: defaults, overrides, and one-line errors naming the key and the range."""

import math

import numpy as np
import pytest

from meanfield_pde.config import build_config, default_config, load_config, parse_value
from meanfield_pde.errors import ConfigError
from meanfield_pde.schedule import Schedule, output_times, stop_times


def test_defaults_are_the_mmn18_setting():
    cfg = default_config("gaussians")
    assert (cfg["model.delta"], cfg["model.d"], cfg["init.kappa"]) == (0.8, 40, 0.8)
    assert cfg["model.activation"] == "ramp" and cfg["time.t_end"] == 20.0
    assert cfg["schedule.kind"] == "constant" and cfg["schedule.xi0"] == 1.0
    times = output_times(cfg)
    for t in (0, 0.5, 1, 2, 5, 10, 20):
        assert np.any(times == t), t


def test_overrides_parse_toml_values_and_bare_strings():
    cfg = default_config("gaussians").with_overrides(
        ["model.delta=0.5", "model.d=inf", "model.activation=tanh", "time.outputs=[0, 1.5, 3]",
         "time.t_end=3", "model.activation_params.s1=-2"])
    assert cfg["model.delta"] == 0.5 and math.isinf(cfg["model.d"])
    assert cfg["model.activation"] == "tanh"
    assert cfg["model.activation_params"] == {"s1": -2.0}
    assert list(output_times(cfg)) == [0.0, 1.5, 3.0]
    assert cfg.to_dict()["model"]["d"] == "inf"  # JSON-safe
    assert parse_value("'a b'") == "a b" and parse_value("1e-3") == 1e-3


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("model.delta=1.2", "model.delta = 1.2 is out of range; accepted: 0 < x and x < 1"),
        ("model.delta=0", "model.delta = 0 is out of range"),
        ("model.delta=nan", "is not finite"),
        ("model.d=1", "model.d = 1 is out of range"),
        ("model.d=2.5", "is not an integer"),
        ("init.kappa=-1", "init.kappa = -1 is out of range"),
        ("init.kappa=0", "init.kappa = 0 is out of range"),
        ("grid.n=7", "grid.n = 7 is out of range; accepted: an integer 8 <= n"),
        ("grid.r_max=-3", "grid.r_max"),
        ("model.dleta=0.3", "unknown key model.dleta; known keys of [model]: delta"),
        ("modle.delta=0.3", "unknown section [modle]"),
        ("time.t_end=inf", "time.t_end = inf is not finite"),
        ("init.kind=uniform", "one of 'chi', 'gaussian', 'from_file'"),
        ("time.outputs=[0, 30]", "time.outputs contains 30 > time.t_end"),
        ("delta", "is malformed"),
        ("schedule.kind=piecewise", "needs one more entry in schedule.values"),
        ("model.delta=true", "is a boolean"),
    ],
)
def test_bad_values_give_one_line_errors(override, fragment):
    with pytest.raises(ConfigError) as err:
        default_config("gaussians").with_overrides([override])
    msg = str(err.value)
    assert fragment in msg and "\n" not in msg


def test_toml_files(tmp_path):
    good = tmp_path / "a.toml"
    good.write_text('problem = "gaussians"\n[model]\ndelta = 0.3\nd = "inf"\n')
    cfg = load_config(good, ["grid.n=64"])
    assert cfg["model.delta"] == 0.3 and math.isinf(cfg["model.d"]) and cfg["grid.n"] == 64
    # round trip through the TOML writer
    again = tmp_path / "b.toml"
    again.write_text(cfg.to_toml())
    assert load_config(again).values == cfg.values
    bad = tmp_path / "bad.toml"
    bad.write_text("problem = \n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(bad)
    noprob = tmp_path / "np.toml"
    noprob.write_text("[model]\ndelta = 0.3\n")
    with pytest.raises(ConfigError, match="has no 'problem' key"):
        load_config(noprob)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="unknown problem 'xor'"):
        build_config("xor", {})


def test_schedules_and_stop_times():
    cfg = default_config("gaussians").with_overrides(
        ["schedule.kind=power", "schedule.t0=2", "schedule.p=0.5", "schedule.xi0=3"])
    s = Schedule.from_config(cfg)
    assert s(6.0) == pytest.approx(3.0 * 4.0**-0.5, rel=1e-15)
    # ∫ξ against the trapezoid rule
    tt = np.linspace(0, 5, 200001)
    xs = np.array([s(t) for t in tt[::1000]])
    assert s.integral(5.0) == pytest.approx(np.trapezoid(
        [s(t) for t in tt], tt), rel=1e-9) and xs[0] == 3.0
    pw = default_config("gaussians").with_overrides(
        ["schedule.kind=piecewise", "schedule.times=[1.25, 7]", "schedule.values=[1, 0.5, 2]"])
    s = Schedule.from_config(pw)
    assert [s(t) for t in (0.0, 1.2499, 1.25, 6.9, 7.0, 19.0)] == [1, 1, 0.5, 0.5, 2, 2]
    assert s.integral(10.0) == pytest.approx(1.25 + 0.5 * 5.75 + 2 * 3)
    stops = stop_times(pw, s)
    assert 1.25 in stops and 7.0 in stops and stops[-1] == 20.0
    logcfg = default_config("gaussians").with_overrides(
        ["time.outputs=log", "time.n_outputs=5", "time.t_first=0.01"])
    t = output_times(logcfg)
    assert t[0] == 0 and t[-1] == 20.0 and len(t) == 5
    assert np.allclose(np.diff(np.log(t[1:])), np.log(2000) / 3)


def test_replace_sets_keys_and_resets_sections():
    cfg = default_config("gaussians").with_overrides(["time.t_end=3.0", "model.d=80"])
    new = cfg.replace({"grid.n": 100, "time.outputs": [0.0, 1.0]}, reset=("model",))
    assert new["grid.n"] == 100 and new["time.outputs"] == [0.0, 1.0]
    assert new["model.d"] == 40 and new["time.t_end"] == 3.0  # reset / kept
    assert cfg["grid.n"] == 2400  # the original is unchanged
    with pytest.raises(ConfigError, match="grid.n"):
        cfg.replace({"grid.n": 1})


@pytest.mark.parametrize("t_end, n", [(20.0, 201), (0.5, 6), (8.0, 81), (7.3, 1001), (1.0, 4)])
def test_uniform_output_times_are_the_nearest_doubles_to_k_h(t_end, n):
    """Uniform outputs k·t_end/(n−1) are the doubles nearest to the exact times (linspace gave
    0.30000000000000004 and 19.700000000000003 for t_end = 20, n = 201)."""
    from fractions import Fraction

    cfg = default_config("gaussians").replace({"time.t_end": t_end, "time.n_outputs": n})
    t = output_times(cfg)
    exact = [float(Fraction(repr(t_end)) * k / (n - 1)) for k in range(n)]
    if n == 4:  # h = 1/3 is no short decimal: within one rounding of the exact time
        assert np.allclose(t, exact, rtol=2**-52, atol=0)
    else:
        assert t.tolist() == exact
    assert f"{t[3]:g}" == str(exact[3]) or n == 4


def test_schemas_come_from_the_problems_and_aliases_resolve(tmp_path):
    """Each problem declares its schema; config finds it through the registry, by name or alias
    (the Config and the files it writes carry the problem's name)."""
    from meanfield_pde.config import PROBLEMS, SCHEMAS
    from meanfield_pde.problems import registry

    assert PROBLEMS == registry.names() and set(SCHEMAS) == set(PROBLEMS)
    for name in PROBLEMS:
        assert SCHEMAS[name] is registry.get(name).schema
    cfg = default_config("single_neuron")
    assert cfg.problem == "single-neuron" and cfg.to_dict()["problem"] == "single-neuron"
    alias = tmp_path / "alias.toml"
    alias.write_text('problem = "single_neuron"\n[grid]\nn_a = 8\n')
    assert load_config(alias).problem == "single-neuron" and load_config(alias)["grid.n_a"] == 8
    with pytest.raises(ConfigError, match="for problem 'single-neuron', not 'gaussians'"):
        build_config("gaussians", {"problem": "single-neuron"})


def test_importing_the_package_imports_no_problem():
    """The built-in problems are imported on the first registry lookup, not with the package."""
    from helpers import run_python

    code = ("import sys, meanfield_pde, meanfield_pde.config, meanfield_pde.problems\n"
            "loaded = [m for m in sys.modules if m.startswith('meanfield_pde.problems.')]\n"
            "assert {m.rsplit('.', 1)[1] for m in loaded} <= {'base', 'registry'}, loaded\n"
            "from meanfield_pde.problems import registry\n"
            "assert 'meanfield_pde.problems.gaussians' not in sys.modules\n"
            "registry.names()\n"
            "assert 'meanfield_pde.problems.gaussians' in sys.modules\n")
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr

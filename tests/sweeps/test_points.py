"""The points of a sweep (--vary parsing against the schema), their file names and states, and
the table of a sweep nothing has run yet: no processes, no solves."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import one_line_cli_error
from sweep_helpers import quick_config

from meanfield_pde.errors import ConfigError
from meanfield_pde.sweeps.files import PointState, point_name, point_state
from meanfield_pde.sweeps.points import dim_names, make_points, parse_vary, parse_vary_args
from meanfield_pde.sweeps.table import build_table, point_paths, read_table, write_table


@pytest.fixture(scope="module")
def cfg():
    return quick_config()


@pytest.mark.parametrize("item, key, values", [
    ("model.delta=0.6,0.8", "model.delta", [0.6, 0.8]),
    ("model.d=20, 40 ,inf", "model.d", [20, 40, math.inf]),
    ("model.delta=0.5:0.9:5", "model.delta", [0.5, 0.6, 0.7, 0.8, 0.9]),
    ("model.d=20:80:4", "model.d", [20, 40, 60, 80]),
    ("model.d=30:30:1", "model.d", [30]),
    ("solver.method=fv,lagrangian", "solver.method", ["fv", "lagrangian"]),
    ("schedule.times=[1, 2],[3]", "schedule.times", [[1, 2], [3]]),
])
def test_parse_vary(cfg, item, key, values):
    k, v = parse_vary(item, cfg)
    assert k == key
    assert v == pytest.approx(values) if isinstance(values[0], float) else v == values


@pytest.mark.parametrize("item, fragment", [
    ("model.delta", "malformed"),
    ("delta=0.6", "malformed"),
    ("model.dd=1,2", "cannot vary model.dd: no such key"),
    ("nosection.x=1", "cannot vary nosection.x"),
    ("model.d=20:50:5", "model.d is an integer"),
    ("model.delta=0.5:0.9:0", "start:stop:num"),
    ("model.delta=a:0.9:3", "start:stop:num"),
    ("model.delta=0.6,,0.8", "empty value"),
])
def test_parse_vary_refuses_with_one_line(cfg, item, fragment):
    with pytest.raises(ConfigError, match=fragment) as info:
        parse_vary(item, cfg)
    assert "\n" not in str(info.value)


def test_a_key_varied_twice_or_repeated_values_are_refused(cfg):
    with pytest.raises(ConfigError, match="given twice"):
        parse_vary_args(["model.d=20", "model.d=40"], cfg)
    with pytest.raises(ConfigError, match="repeats a value"):
        make_points(cfg, {"model.d": [20, 20.0]})
    with pytest.raises(ConfigError, match="at least one"):
        make_points(cfg, {})


def test_points_are_the_cartesian_product_and_an_invalid_value_only_marks_its_points(cfg):
    pts = make_points(cfg, {"model.delta": [0.6, 0.8], "model.d": [20.0, -3]})
    assert [p.index for p in pts] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert pts[0].values == {"model.delta": 0.6, "model.d": 20}
    assert isinstance(pts[0].values["model.d"], int)  # the schema's type, not the float given
    assert pts[2].config["model.delta"] == 0.8 and pts[2].config["time.t_end"] == 1.0
    assert [p.config is None for p in pts] == [False, True, False, True]
    assert "model.d = -3 is out of range" in pts[1].error


def test_point_names_are_unique_file_names(cfg):
    assert dim_names(["model.d", "init.d", "model.delta"]) == {
        "model.d": "model_d", "init.d": "init_d", "model.delta": "delta"}
    vary = {"model.delta": [0.6, 0.8], "model.activation": ["ramp", "a/b", "a b"]}
    pts = make_points(cfg, vary)
    names = [point_name(p, list(vary)) for p in pts]
    assert names[0] == "delta=0.6__activation=ramp"
    assert len(set(names)) == len(names)
    assert all("/" not in n and " " not in n for n in names)


def test_table_of_a_sweep_not_run_yet(cfg, tmp_path):
    vary = {"model.delta": [0.6, 0.8], "model.d": [20, -3]}
    pts = make_points(cfg, vary)
    for path, p in zip(point_paths(pts, list(vary), tmp_path), pts, strict=True):
        if p.config is not None:
            assert point_state(path, p.config, "solve") is PointState.MISSING
    ds = build_table(cfg, vary, pts, tmp_path, "solve")
    write_table(ds, tmp_path)
    back = read_table(tmp_path)
    assert back["status"].dims == ("delta", "d")
    assert back["status"].values.tolist() == [["pending", "failed"], ["pending", "failed"]]
    assert np.isnan(back["risk_final"].values).all()
    assert back.attrs["varied_keys"] == '["model.delta", "model.d"]'
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize("args, fragment", [
    (["--vary", "model.dd=1,2"], "cannot vary model.dd: no such key"),
    (["--vary", "model.d=20", "--vary", "model.d=40"], "given twice"),
    ([], "--vary"),
    (["--vary", "model.d=20", "--command", "validate"], "--command"),
    (["--vary", "model.d=20", "--workers", "0"], "--workers = 0"),
    (["--vary", "model.d=20", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"],
     "not allowed with"),
])
def test_cli_refuses_with_one_line_before_any_work(tmp_path, capsys, args, fragment):
    one_line_cli_error(["sweep", "gaussians", *args, "-o", tmp_path / "sw"], capsys, fragment)
    assert not (tmp_path / "sw").exists()

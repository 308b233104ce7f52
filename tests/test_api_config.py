"""``Config.with_overrides`` from a dict or from ``"k=v"`` strings: the same checked Config; a
malformed entry is a one-line ConfigError naming the entry and the Python argument, while the
command line keeps naming ``--set``."""

from __future__ import annotations

import math

import pytest
from helpers import one_line_cli_error

from meanfield_pde import ConfigError, default_config
from meanfield_pde.errors import OptionError


@pytest.fixture(scope="module")
def base():
    return default_config("gaussians")


def test_dict_and_strings_give_the_same_config(base):
    from_dict = base.with_overrides({"model.d": 20, "time.t_end": 2, "noise.beta": math.inf,
                                     "schedule.times": [1.0], "schedule.values": [1.0, 0.5],
                                     "schedule.kind": "piecewise"})
    from_text = base.with_overrides(["model.d=20", "time.t_end=2", "noise.beta=inf",
                                     "schedule.times=[1.0]", "schedule.values=[1.0, 0.5]",
                                     "schedule.kind=piecewise"])
    assert from_dict == from_text
    assert from_dict["model.d"] == 20 and from_dict["time.t_end"] == 2.0
    assert base.with_overrides("model.d=20") == base.with_overrides({"model.d": 20})
    assert base.with_overrides({"model": {"d": 20}})["model.d"] == 20  # a whole section
    assert base.with_overrides({}) == base and base["model.d"] != 20  # copies, base unchanged


@pytest.mark.parametrize("overrides, fragment", [
    ({"model": 20}, "overrides key 'model' is malformed"),
    ({"model.": 20}, "overrides key 'model.' is malformed"),
    ({"": 1}, "overrides key '' is malformed"),
    ({3: 1}, "overrides key 3 is malformed"),
    ({"model.d.x": 1}, "overrides key 'model.d.x': d is a value"),
    (["model.d"], "overrides entry 'model.d' is malformed"),
    ([("model.d", 3)], "overrides entry ('model.d', 3) is malformed"),
    ("delta", "overrides entry 'delta' is malformed"),
])
def test_malformed_entries_name_the_entry_and_the_argument(base, overrides, fragment):
    with pytest.raises(OptionError) as err:
        base.with_overrides(overrides)
    msg = str(err.value)
    assert msg.startswith(fragment) and "\n" not in msg and "--" not in msg, msg


@pytest.mark.parametrize("overrides, fragment", [
    ({"model.d": 1}, "model.d = 1 is out of range"),
    ({"model.d": "x"}, "model.d = 'x'"),
    ({"model.delta": True}, "is a boolean"),
    ({"time.t_end": float("nan")}, "time.t_end = nan is not finite"),
    ({"model.dleta": 0.3}, "unknown key model.dleta"),
    ({"modle.delta": 0.3}, "unknown section [modle]"),
    ({"time.outputs": [0, 30]}, "time.outputs contains 30 > time.t_end"),
])
def test_values_are_checked_by_the_schema(base, overrides, fragment):
    with pytest.raises(ConfigError) as err:
        base.with_overrides(overrides)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_replace_names_its_own_argument(base):
    with pytest.raises(OptionError, match="^updates key 'model' is malformed"):
        base.replace({"model": 3})


def test_the_command_line_keeps_naming_set(capsys):
    for item, words in (("delta", "--set 'delta' is malformed; write --set SECTION.KEY=VALUE"),
                        ("model.d.x=1", "--set model.d.x: d is a value, not a table")):
        one_line_cli_error(["config", "gaussians", "--set", item], capsys, words)


def test_load_config_takes_a_dict_too(tmp_path):
    from meanfield_pde import load_config

    path = tmp_path / "a.toml"
    path.write_text('problem = "gaussians"\n[model]\ndelta = 0.3\n')
    cfg = load_config(path, {"model.d": 20, "grid.n": 64})
    assert cfg == load_config(path, ["model.d=20", "grid.n=64"])
    assert cfg["model.delta"] == 0.3 and cfg["model.d"] == 20
    with pytest.raises(OptionError, match="^overrides key 'grid' is malformed"):
        load_config(path, {"grid": 64})

"""Sweeps on the default local cluster: the acceptance 2 x 2 sweep against separate solves, the
table, a rerun that skips everything, and the phase diagram of the directory."""

from __future__ import annotations

import numpy as np
import xarray as xr
from helpers import one_line_cli_error
from sweep_helpers import LOCAL_CLUSTER_NOISE, quick_config

from meanfield_pde import load, solve, sweep
from meanfield_pde.cli import main

pytestmark = LOCAL_CLUSTER_NOISE

VARY = {"model.delta": [0.6, 0.8], "model.d": [20, 40]}


def test_2x2_sweep_equals_four_solves_and_rerun_skips(tmp_path):
    cfg = quick_config()
    out = tmp_path / "sw"
    ds = sweep(cfg, VARY, out_dir=out, workers=2)
    assert (ds.attrs["n_ran"], ds.attrs["n_failed"], ds.attrs["n_skipped"]) == (4, 0, 0)

    table = xr.open_dataset(out / "sweep.nc", engine="h5netcdf")
    try:
        assert table["risk_final"].dims == ("delta", "d")
        assert table["risk"].dims == ("delta", "d", "t")
        assert table["delta"].attrs["key"] == "model.delta"
        np.testing.assert_array_equal(table["d"].values, [20, 40])
        assert (table["status"].values == "ok").all()
        for delta in VARY["model.delta"]:
            for d in VARY["model.d"]:
                ref = tmp_path / f"ref-{delta}-{d}.h5"
                solve(cfg.replace({"model.delta": delta, "model.d": d}), ref)
                r = load(ref)
                point = table.sel(delta=delta, d=d)
                # the same solver on the same config: equal up to the last bits (<= 1e-12)
                tol = 1e-12 * np.max(np.abs(r["risk"]))
                np.testing.assert_allclose(point["risk"].values, r["risk"], rtol=0, atol=tol)
                np.testing.assert_array_equal(table["t"].values, r.t)
                assert abs(float(point["risk_final"]) - r["risk"][-1]) <= tol
                assert abs(float(point["risk_error_final"]) - r["risk_error"][-1]) <= 1e-12
                assert float(point["mass_drift"]) <= 1e-12
                assert str(point["worker"].values).startswith("tcp://127.0.0.1:")
                assert load(out / str(point["file"].values)).complete
        run_ids = table["run_id"].values.copy()
    finally:
        table.close()

    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.h5")}
    again = sweep(cfg, VARY, out_dir=out, workers=2)  # nothing to do: no cluster starts
    assert (again.attrs["n_ran"], again.attrs["n_failed"], again.attrs["n_skipped"]) == (0, 0, 4)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.h5")} == mtimes
    np.testing.assert_array_equal(again["run_id"].values, run_ids)
    np.testing.assert_array_equal(again["risk_final"].values, ds["risk_final"].values)

    fig = tmp_path / "phase.png"  # the phase diagram of the sweep directory
    assert main(["plot", str(out), "-o", str(fig)]) == 0
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_of_a_directory_without_a_sweep_is_one_line(tmp_path, capsys):
    one_line_cli_error(["plot", tmp_path, "-o", tmp_path / "p.png"], capsys, "sweep.nc")


def _settings(keys: list[str]) -> dict:
    import dask

    return {k: dask.config.get(k) for k in keys}


def _tick_interval(dask_scheduler=None, dask_worker=None) -> float:
    return (dask_scheduler or dask_worker)._tick_interval


def test_local_cluster_keeps_its_background_work_out_of_the_solvers_way():
    """Every local process runs an event loop; with Dask's defaults their wake-ups (health ticks
    every 20 ms, memory checks every 100 ms, the profiler sampling the task every 10 ms) took
    5 s of CPU in a 47 s 8-point sweep and preempted the solver threads 100-170 times a second.
    The local cluster's scheduler (in the client process) and its workers run with
    ``LOCAL_CONFIG``, and the caller's own Dask config is left as it was."""
    import dask

    from meanfield_pde.cluster import LOCAL_CONFIG, open_client

    before = _settings(list(LOCAL_CONFIG))
    with open_client(workers=1) as client:
        assert list(client.run(_settings, list(LOCAL_CONFIG)).values()) == [LOCAL_CONFIG]
        assert list(client.run(_tick_interval).values()) == [0.5]
        assert client.run_on_scheduler(_tick_interval) == 0.5
        assert _settings(list(LOCAL_CONFIG)) == before
    assert dask.config.get("distributed.admin.tick.interval") != "500ms"

"""Result files as xarray/netCDF (io/xarray_export.py), lazy reading, and the Result helpers
``at``, ``marginal``, ``moments`` (io/derived.py), on small solves of both problems: the radial
problem with the Lagrangian and the finite-volume method, the single-neuron problem (Lagrangian)."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr
from helpers import NEURON_SMALL, NEURON_TIGHT_BOX, config, one_line_cli_error, quiet_main

from meanfield_pde import DataError, load
from meanfield_pde.cli import main
from meanfield_pde.io.derived import coordinates
from meanfield_pde.io.layout import VARIABLES
from meanfield_pde.io.xarray_export import export_netcdf
from meanfield_pde.runner.pde import solve

RUNS = {
    "radial-lagrangian": ("gaussians", ["grid.n=120", "lagrangian.mass_cells=12",
                                        "time.t_end=0.2", "time.n_outputs=5"]),
    "radial-fv": ("gaussians", ["solver.method=fv", "grid.n=120", "time.t_end=0.2",
                                "time.n_outputs=5"]),
    "single-neuron": ("single-neuron", [*NEURON_SMALL, *NEURON_TIGHT_BOX, "lagrangian.n_a=4",
                                        "lagrangian.n_s=6", "lagrangian.n_r=6",
                                        "lagrangian.table_s=16", "lagrangian.table_r=8",
                                        "time.t_end=0.05", "time.n_outputs=4"]),
}
ROUND_OFF = 64 * np.finfo(float).eps  # sums of O(100) terms of size O(1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One small result file per entry of RUNS."""
    d = tmp_path_factory.mktemp("xr")
    out = {}
    for name, (problem, overrides) in RUNS.items():
        out[name] = d / f"{name}.h5"
        solve(config(problem, *overrides), out[name], progress=False)
    return out


def _hdf5(path: Path, name: str) -> np.ndarray:
    with h5py.File(path, "r") as f:
        k = int(f.attrs["n_snapshots"])
        ds = f[name]
        return ds[:k] if not name.startswith("grid/") else ds[()]


@pytest.mark.parametrize("name", list(RUNS))
def test_netcdf_round_trip(runs, tmp_path, name):
    """The exported file opens with xarray: right dims, coordinates, CF units, and every HDF5
    field and grid array with the same values."""
    src = runs[name]
    nc = export_netcdf(src, tmp_path / "out.nc")
    res = load(src)
    coords = ("a", "s", "r") if name == "single-neuron" else ("r",)
    assert coordinates(res) == coords
    with xr.open_dataset(nc, engine="h5netcdf") as ds:
        assert ds["density"].dims == ("t", *coords)
        for x in coords:
            np.testing.assert_array_equal(ds[x].values, res.grid[f"{x}_centers"])
            np.testing.assert_array_equal(ds[f"{x}_edges"].values, res.grid[f"{x}_edges"])
            bounds = ds[ds[x].attrs["bounds"]].values
            np.testing.assert_array_equal(bounds[:, 0], res.grid[f"{x}_edges"][:-1])
            np.testing.assert_array_equal(bounds[:, 1], res.grid[f"{x}_edges"][1:])
        np.testing.assert_array_equal(ds["t"].values, res.t)
        seen = set()
        for var in [*ds.data_vars.values(), *ds.coords.values()]:
            source = var.attrs.get("hdf5_dataset")
            if source is None:
                continue
            seen.add(source.lstrip("/"))
            np.testing.assert_array_equal(var.values, _hdf5(src, source.lstrip("/")))
            assert var.attrs["units"] == "1" and var.attrs["long_name"]
        assert seen == {"t", *res.fields, *(f"grid/{g}" for g in res.grid)}
        # every stored dataset has its entry in the one table
        assert {k for k in seen if k not in VARIABLES} == set()
        if name == "radial-lagrangian":
            assert ds["cell_edges"].dims == ("t", "cell_edge")
            assert ds["nodes"].dims == ("t", "node") and ds["node_weights"].dims == ("node",)
            assert ds["cell_masses"].dims == ("cell",)
        if name == "single-neuron":
            assert ds["particles"].dims == ("t", "particle", "coord")
            assert list(ds["coord"].values) == ["a", "s", "r"]
            assert ds["marginal_s"].dims == ("t", "s")
        assert ds.attrs["problem"] == res.problem and ds.attrs["Conventions"] == "CF-1.8"
        assert "[model]" in ds.attrs["config"]
        assert ds.attrs["version_numpy"] == np.__version__
        assert ds.attrs["seed"] == res.attrs["seed"]


def test_result_files_record_versions_and_git(runs, capsys):
    """versions of numpy, numba, scipy, h5py; the git revision of this checkout; `info`
    shows them."""
    attrs = load(runs["radial-fv"]).attrs
    assert main(["info", str(runs["radial-fv"])]) == 0
    assert f"numpy {np.__version__}" in capsys.readouterr().out
    assert set(attrs["versions"]) >= {"numpy", "numba", "scipy", "h5py", "python"}
    assert attrs["versions"]["numpy"] == np.__version__
    if (Path(__file__).resolve().parents[2] / ".git").exists():
        assert len(attrs["git_revision"]) == 40 and isinstance(attrs["git_dirty"], bool)


def test_export_refuses_existing_output_and_the_input(runs, tmp_path, capsys):
    src = runs["radial-fv"]
    out = tmp_path / "x.nc"
    out.write_text("precious")
    one_line_cli_error(["export", src, "--netcdf", out], capsys, "--force")
    assert out.read_text() == "precious"
    before = src.read_bytes()
    one_line_cli_error(["export", src, "--netcdf", src, "--force"], capsys, "is the input")
    one_line_cli_error(["export", src, "--netcdf", src.parent / "." / src.name], capsys,
                       "is the input")
    assert src.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))
    assert quiet_main(["export", str(src), "--netcdf", str(out), "--force"]) == 0
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds.sizes["t"] == load(src).n_snapshots


@pytest.mark.parametrize("lazy", [False, True])
def test_at_is_exact_at_outputs_and_linear_between(runs, lazy):
    """at(t_k) is snapshot k; at(t) between is (1 − w) f_k + w f_(k+1), w = (t − t_k)/Δt."""
    res = load(runs["radial-lagrangian"], lazy=lazy)
    t = res.t
    for k in (0, 2, len(t) - 1):
        got = res.at(t[k])
        for name, value in res.snapshot(k).items():
            np.testing.assert_array_equal(got[name], value)
    w = 0.3
    tm = t[1] + w * (t[2] - t[1])
    got = res.at(tm)
    w_exact = (tm - t[1]) / (t[2] - t[1])
    for name in ("risk", "density", "cell_edges"):
        a, b = res.fields[name][1], res.fields[name][2]
        want = (1 - w_exact) * a + w_exact * b
        np.testing.assert_allclose(got[name], want, rtol=0, atol=4 * ROUND_OFF * np.max(
            np.abs([a, b])))
    for bad in (t[0] - 1e-3, t[-1] * (1 + 1e-9), math.nan, "x"):
        with pytest.raises(DataError, match="pass a time") as exc:
            res.at(bad)
        assert "\n" not in str(exc.value)


@pytest.mark.parametrize("name", list(RUNS))
def test_marginals_and_moments_agree_with_the_stored_fields(runs, name):
    """∫ marginal = mass and the moments reproduce the stored mass/mean fields to round-off."""
    res = load(runs[name])
    lazy = load(runs[name], lazy=True)
    for x in coordinates(res):
        m = lazy.marginal(x)
        assert m.dims == ("t", x)
        mass = (m.values * np.diff(res.grid[f"{x}_edges"])).sum(axis=1)
        np.testing.assert_allclose(mass, res["mass"], rtol=ROUND_OFF)
    if name == "radial-fv":
        np.testing.assert_array_equal(lazy.marginal("r").values, res["density"])
    mom = lazy.moments()
    np.testing.assert_allclose(mom["mass"].values, res["mass"], rtol=ROUND_OFF)
    for x in coordinates(res):
        scale = np.max(np.abs(res.grid[f"{x}_edges"]))
        np.testing.assert_allclose(mom[f"mean_{x}"].values, res[f"mean_{x}"], rtol=0,
                                   atol=ROUND_OFF * scale)
        assert np.all(mom[f"var_{x}"].values >= 0)
    with pytest.raises(DataError, match="not a coordinate"):
        res.marginal("q")


def test_lazy_reads_what_is_asked_and_never_holds_the_file(runs):
    """A lazy result reads on access and closes the file: a writer can open it in between."""
    path = runs["radial-fv"]
    res = load(path, lazy=True)
    assert res.lazy and not load(path).lazy
    snap = res.snapshot(-1)
    np.testing.assert_array_equal(snap["density"], _hdf5(path, "density")[-1])
    with h5py.File(path, "r+"):  # no reader holds it: opening for writing succeeds at once
        pass
    np.testing.assert_array_equal(res["density"], _hdf5(path, "density"))
    with pytest.raises(DataError, match="out of range"):
        res.snapshot(res.n_snapshots)


def test_a_lazy_reader_follows_a_running_writer(tmp_path):
    """Loaded lazily while a writer appends: the writer is never blocked, the reader keeps the
    K snapshots it saw; a file replaced since is a one-line error."""
    from meanfield_pde.io import ResultWriter

    path = tmp_path / "growing.h5"
    w = ResultWriter(path, problem="gaussians", config={"problem": "gaussians"},
                     grid={"r_edges": np.linspace(0, 1, 5), "r_centers": np.arange(4) / 4 + 0.125},
                     fields={"mass": (), "density": (4,)})
    for k in range(3):
        w.append(float(k), {"mass": 1.0, "density": np.full(4, k + 1.0)})
    res = load(path, lazy=True)
    assert res.n_snapshots == 3
    np.testing.assert_array_equal(res.snapshot(1)["density"], np.full(4, 2.0))
    w.append(3.0, {"mass": 1.0, "density": np.full(4, 4.0)})  # not blocked by the reader
    np.testing.assert_array_equal(res["density"][:, 0], [1.0, 2.0, 3.0])
    np.testing.assert_allclose(res.at(1.25)["density"], np.full(4, 2.25), rtol=ROUND_OFF)
    w.close()  # the run ended (one writer per file)
    ResultWriter.reopen(path, 2).finish()  # a resume that ended before the third row drops it
    with pytest.raises(DataError, match="fewer than the 3"):
        res.snapshot(2)
    path.unlink()
    ResultWriter(path, problem="gaussians", config={"problem": "gaussians", "x": 1},
                 grid={}, fields={"mass": ()})
    with pytest.raises(DataError, match="replaced since it was loaded"):
        res.snapshot(2)


def test_large_files_are_streamed_block_by_block(runs, tmp_path, monkeypatch):
    """Above VERIFY_BYTES the export reads lazily (Dask blocks of a few rows): same netCDF
    content; a lazy result's Dataset holds Dask arrays until computed."""
    import meanfield_pde.io.xarray_export as xe

    src = runs["single-neuron"]
    whole = xe.export_netcdf(src, tmp_path / "whole.nc")
    monkeypatch.setattr(xe, "VERIFY_BYTES", 0)
    monkeypatch.setattr(xe, "_BLOCK_BYTES", 3 * 8 * load(src)["density"][0].size)
    lazy_ds = load(src, lazy=True).to_xarray()
    assert lazy_ds["density"].chunks[0][0] == 3  # rows per block
    streamed = xe.export_netcdf(src, tmp_path / "streamed.nc")
    with (xr.open_dataset(whole, engine="h5netcdf") as a,
          xr.open_dataset(streamed, engine="h5netcdf") as b):
        assert set(a.variables) == set(b.variables)
        for name in a.variables:
            np.testing.assert_array_equal(a[name].values, b[name].values)


def test_sgd_results_export_their_neurons(tmp_path):
    """An SGD file: neurons on dim `neuron`, moments averaged over them, no marginal."""
    from meanfield_pde.runner.sgd import solve_sgd

    path = tmp_path / "sgd.h5"
    solve_sgd(config("gaussians", "sgd.n_neurons=40", "sgd.eps=1e-3", "time.t_end=0.05",
                     "time.n_outputs=3"), path)
    res = load(path)
    ds = res.to_xarray()
    assert ds["r"].dims == ("t", "neuron") and ds["r"].attrs["long_name"].startswith("radius")
    np.testing.assert_array_equal(ds["r"].values, res["r"])
    mom = res.moments()
    np.testing.assert_allclose(mom["mean_r"].values, res["r"].mean(axis=1), rtol=ROUND_OFF)
    with pytest.raises(DataError, match="SGD result"):
        res.marginal("r")


def test_the_layout_coordinates_are_the_problems():
    """COORDINATES orders every registered problem's coordinates as its density axes, and each
    marginal field is one the export knows."""
    from meanfield_pde.io.layout import COORDINATES
    from meanfield_pde.problems import registry

    for name in registry.names():
        cls = registry.get(name)
        coords = tuple(cls.particle_coords)
        assert coords == tuple(x for x in COORDINATES if x in coords), name
        for field in cls.marginal_fields.values():
            assert field in VARIABLES, (name, field)

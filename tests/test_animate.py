"""`meanfield-pde animate`: GIF frames, the frame budget, refusing existing outputs and the
input, and the one-line error when ffmpeg is missing for MP4 (meanfield_pde.animation)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from helpers import one_line_cli_error, quiet_main
from PIL import Image
from plotting_results import LINEAR_TIMES, gaussians_run, neuron_run

from meanfield_pde.animation import animate, frame_indices
from meanfield_pde.errors import ConfigError, OutputExists


def _frames(path: Path) -> int:
    with Image.open(path) as im:
        return im.n_frames


def test_gif_has_one_frame_per_snapshot(tmp_path: Path) -> None:
    result = gaussians_run(tmp_path / "run.h5")
    out = animate(result, tmp_path / "movie.gif", fps=5)
    assert out == tmp_path / "movie.gif" and _frames(out) == LINEAR_TIMES.size
    names = sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".lock")
    assert names == ["movie.gif", "run.h5"]  # no partial


def test_frame_budget_subsamples(tmp_path: Path) -> None:
    result = neuron_run(tmp_path / "n.h5")
    assert quiet_main(["animate", str(result.path), "-o", str(tmp_path / "m.gif"),
                       "--max-frames", "4", "--view", "cdf"]) == 0
    assert _frames(tmp_path / "m.gif") == 4
    assert list(frame_indices(11, 4)) == [0, 3, 7, 10]
    with pytest.raises(ConfigError, match="frame budget"):
        frame_indices(11, 1)


def test_refuses_existing_output_and_the_input(tmp_path: Path, capsys) -> None:
    result = gaussians_run(tmp_path / "run.h5")
    out = tmp_path / "m.gif"
    out.write_bytes(b"keep")
    with pytest.raises(OutputExists):
        animate(result, out)
    one_line_cli_error(["animate", result.path, "-o", out], capsys, "--force")
    assert out.read_bytes() == b"keep"
    digest = hashlib.sha256(Path(result.path).read_bytes()).hexdigest()
    with pytest.raises(ConfigError):
        animate(result, result.path, force=True)
    assert hashlib.sha256(Path(result.path).read_bytes()).hexdigest() == digest
    assert quiet_main(["animate", str(result.path), "-o", str(out), "--force",
                       "--max-frames", "3"]) == 0
    assert _frames(out) == 3


def test_mp4_without_ffmpeg_is_a_one_line_error(tmp_path: Path, capsys, monkeypatch) -> None:
    from matplotlib import animation

    monkeypatch.setattr(animation.writers, "is_available", lambda name: False)
    result = gaussians_run(tmp_path / "run.h5")
    one_line_cli_error(["animate", result.path, "-o", tmp_path / "m.mp4"], capsys,
                       "install ffmpeg or write a .gif")
    assert not (tmp_path / "m.mp4").exists()


@pytest.mark.parametrize("name", ["m.avi", "m"])
def test_unknown_movie_extension(tmp_path: Path, capsys, name: str) -> None:
    result = gaussians_run(tmp_path / "run.h5")
    one_line_cli_error(["animate", result.path, "-o", tmp_path / name], capsys, ".gif or .mp4")

"""Movies of a run: the marginals of the density over time (``meanfield-pde animate``).

:func:`animate` draws every marginal the problem declares (``marginal_fields``: r for
"gaussians"; a, s and r for "single-neuron") in one row of panels, one frame per snapshot
(subsampled to at most ``max_frames``), with fixed axes so that motion is visible and the time
in the title.  GIF is written by Pillow (no external program); MP4 by ffmpeg when Matplotlib finds
it.  The movie is written to a temporary file next to the output and renamed at the end, so an
interrupted or failed write leaves no partial movie; the input is never overwritten.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from .errors import ConfigError, DataError, OptionError, OutputExists
from .io import Result
from .plotting import (
    _style,
    coord_label,
    default_view,
    marginal,
    mass_range,
    new_figure,
    view_label,
    view_values,
)

__all__ = ["FORMATS", "animate", "frame_indices"]

FORMATS = (".gif", ".mp4")
MAX_FRAMES = 120  # default frame budget
DPI = 100  # of movie frames


def frame_indices(n_snapshots: int, max_frames: int) -> np.ndarray:
    """Snapshot indices of the frames: all, or ``max_frames`` evenly spread (first and last
    kept)."""
    if max_frames < 2:
        raise OptionError("max_frames", f"the frame budget {{opt}} = {max_frames} must be >= 2")
    if n_snapshots <= max_frames:
        return np.arange(n_snapshots)
    return np.unique(np.round(np.linspace(0, n_snapshots - 1, max_frames)).astype(int))


def _check_paths(result: Result, out: Path, force: bool) -> str:
    """The writer name for ``out``; refuse an unknown extension, the input file, an existing
    output without ``force`` and MP4 without ffmpeg."""
    from matplotlib import animation

    from .io import check_new_output

    check_new_output(out, overwrite=True)  # a directory, a dangling link, below a file
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"cannot tell the movie format of {out} from its extension; "
                          f"use {' or '.join(FORMATS)}")
    if out.exists() and Path(result.path).exists() and os.path.samefile(out, result.path):
        raise ConfigError(f"{out} is the input file; choose another output path")
    if out.exists() and not force:
        raise OutputExists(out)
    if suffix == ".mp4" and not animation.writers.is_available("ffmpeg"):
        raise ConfigError("writing MP4 needs the ffmpeg program, which Matplotlib cannot find; "
                          "install ffmpeg or write a .gif")
    return "pillow" if suffix == ".gif" else "ffmpeg"


def animate(result: Result, out: str | os.PathLike, *, fps: float = 10.0,
            max_frames: int = MAX_FRAMES, view: str | None = None, size: str = "double",
            force: bool = False) -> Path:
    """Write a movie of the marginals of ``result`` over time.

    Args:
        result: A loaded time-dependent PDE result.
        out: ``.gif`` (Pillow) or ``.mp4`` (ffmpeg) file.
        fps: Frames per second (> 0).
        max_frames: Frame budget: the snapshots are subsampled evenly down to it.
        view: ``density``, ``cdf`` or ``logdensity`` (:data:`meanfield_pde.plotting.VIEWS`);
            None: the problem's default (that of ``meanfield-pde plot``).
        size: ``single`` or ``double`` figure width.
        force: Overwrite an existing ``out`` (never the input file).

    Returns:
        The path written.

    Raises:
        ConfigError: Bad extension, fps, frame budget or view; ``out`` is the input; MP4
            without ffmpeg.
        OutputExists: ``out`` exists and ``force`` is false.
        DataError: An SGD or Gibbs file, a problem without marginals, an unwritable path.
    """
    from matplotlib import animation

    out = Path(out)
    writer_name = _check_paths(result, out, force)
    if not (np.isfinite(fps) and fps > 0):
        raise ConfigError(f"fps {fps} must be a positive number")
    frames = frame_indices(result.t.size, max_frames)
    fig, update = _movie_figure(result, view or default_view(result), size)
    writer = (animation.PillowWriter(fps=fps) if writer_name == "pillow"
              else animation.FFMpegWriter(fps=fps))
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with _style():
            movie = animation.FuncAnimation(fig, update, frames=list(frames), blit=False,
                                            cache_frame_data=False)
            movie.save(tmp, writer=writer, dpi=DPI)
        os.replace(tmp, out)
    except OSError as exc:
        raise DataError(f"cannot write {out}: {' '.join(str(exc).split())}; check that the "
                        "location is writable and the disk is not full") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return out


def _movie_figure(result: Result, view: str, size: str):
    """(figure, update(k)) of the movie: one panel per marginal, fixed limits over all frames."""
    from .plotting import PlotOptions
    from .problems import registry

    PlotOptions(view=view, size=size)  # validates both
    if result.attrs.get("kind") == "sgd" or result.attrs.get("solution") == "gibbs_fixed_point":
        raise DataError(f"{result.path} is not a time-dependent PDE run (an SGD or Gibbs "
                        "result); animate the result of a PDE solve")
    coords = list(registry.get(result.problem).marginal_fields)
    if not coords or result.t.size == 0:
        raise DataError(f"{result.path} has no marginals or no snapshots to animate")
    fig = new_figure(size, 2.4 if size == "double" or len(coords) == 1 else 1.9 * len(coords))
    with _style():
        axes = (fig.subplots(1, len(coords), squeeze=False) if size == "double"
                else fig.subplots(len(coords), 1, squeeze=False)).ravel()
        steps = []
        for ax, coord in zip(axes, coords, strict=True):
            edges, values = marginal(result, coord)
            shown = view_values(values, edges, view)
            if view == "cdf":  # the CDF at the cell edges, as a line
                shown = np.concatenate([np.zeros((shown.shape[0], 1)), shown], axis=1)
                artist = ax.plot(edges, shown[0], color="C0")[0]
            else:
                artist = ax.stairs(shown[0], edges, color="C0")
            steps.append((artist, shown))
            top = float(np.nanmax(shown)) if np.isfinite(shown).any() else 1.0
            if view == "logdensity":
                ax.set_yscale("log")
                ax.set_ylim(top * 1e-4, top * 2)
            else:
                ax.set_ylim(0.0, 1.05 * top if top > 0 else 1.0)
            ax.set_xlim(*mass_range(edges, values))
            ax.set_xlabel(coord_label(result, coord))
            ax.set_ylabel(view_label(view, coord))
        title = fig.suptitle("")

    def update(k: int):
        """Draw snapshot ``k``: new curves, the time in the title."""
        for artist, shown in steps:
            if hasattr(artist, "set_ydata"):
                artist.set_ydata(shown[k])
            else:
                artist.set_data(shown[k])
        title.set_text(f"{result.problem}: t = {result.t[k]:.4g}")
        return [p for p, _ in steps] + [title]

    return fig, update

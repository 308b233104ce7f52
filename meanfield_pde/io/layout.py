"""The layout of the HDF5 result files: names, constants and the file-format description.

The bottom module of :mod:`meanfield_pde.io`: every other io module uses it, none of them is
imported here (so the reader and the writer never import each other).

A solve writes one HDF5 file. Its layout (``FORMAT_VERSION = 1``) is::

    /                          root group
      attrs:
        format_version   int    layout version (1); readers refuse newer versions
        package_version  str    meanfield-pde version that wrote the file
        problem          str    problem name, e.g. "gaussians"
        config           str    resolved config as JSON text
                                (json.dumps(config, sort_keys=True, allow_nan=False))
        config_sha256    str    SHA-256 of that text
        complete         bool   False until the run ends normally (ResultWriter.finish)
        created_utc      str    creation time, ISO 8601 in UTC
        n_snapshots      int    number of finished snapshots K; written after each
                                snapshot's data, so readers trust it (rows >= K of a
                                dataset are debris of an interrupted write and are ignored)
        rows_sha256      str    "K h_K h_(K-1)": the hash chain of the snapshot rows,
                                h_0 = SHA-256(""), h_(k+1) = SHA-256(h_k || row k), with
                                h_k as its 64 hex characters and row k the float64
                                little-endian bytes of t[k] and of every field's row k in
                                sorted name order;
                                written with the rows, flushed before n_snapshots
        grid_sha256      str    SHA-256 over the grid arrays (name, dtype, shape, bytes
                                in sorted name order)
        json_attrs       str    JSON list naming the extra attributes below that hold
                                JSON text (dicts and lists); bookkeeping only
        versions         str    JSON object: versions of python, meanfield-pde, numpy,
                                numba, scipy, h5py and the HDF5 library that wrote the file
                                (files written before this attribute existed lack it)
        git_revision     str    `git rev-parse HEAD` of the package source when it ran from
                                a git checkout (absent otherwise), with
        git_dirty        bool   whether tracked files differed from that revision
        <extra>          scalar or str, e.g. seed, wall_seconds, compile_seconds, n_steps;
                                dicts and lists are stored as JSON text
      t                  (K,)          float64  output times, strictly increasing
      <scalar field>     (K,)          float64  e.g. risk, mass
      <array field>      (K, *shape)   float64  e.g. density (K, n) or (K, n_a, n_s, n_r)
      risk_error         (K,)          float64  a-posteriori estimate of |risk − R(ρ_t)|
                                                (runner/companion.py), with risk_companion
                                                (K,) the risk of the coarser companion run
      cell_edges         (K, n_c+1)    float64  Lagrangian radial runs: the mass cells' edges
      particles          (K, P, 3)     float64  Lagrangian single-neuron runs: (a, s, r) of
                                                the weighted characteristics
      grid/              group of fixed arrays, e.g. grid/r_edges (n+1,), grid/r_centers (n,);
                         Lagrangian runs add their fixed weights: grid/cell_masses (n_c,) or
                         grid/particle_weights (P,)
      checkpoint/        the state to resume from (see below)
        current   (1,)   int64   slot of the last complete checkpoint (0 or 1; -1: none)
        slot0/, slot1/   two checkpoint slots, written alternately
          meta    (CHECKPOINT_META_BYTES,) uint8  JSON text of the scalars (t, step counts,
                                  dt, position in the output plan, RNG state, config hash,
                                  n_snapshots at that moment, slot, arrays_sha256 = the SHA-256
                                  of each array of the slot, ...), zero padded
          <array> e.g. state (n,) or (n_a, n_s, n_r) for finite-volume runs, the flat
                  positions of the cells' points or particles for Lagrangian runs (followed
                  by the companion's state when the run has one), theta (N, D) for SGD

A checkpoint is written into the slot ``current`` does not point to; after a flush the pointer
is flipped (one 8-byte chunk write). Slot datasets keep their shapes, so a rewrite overwrites the
same bytes and changes no HDF5 metadata: a crash or ``kill -9`` at any moment leaves the slot the
pointer names intact. Every checkpoint dataset carries the Fletcher-32 filter; a reader that finds
the current slot damaged falls back to the other one. Each slot's meta also records the SHA-256
of its arrays, which makes a slot prove itself complete: the reader then takes the newest valid
slot whatever the pointer says (see :func:`~meanfield_pde.io.checkpoint.load_checkpoint`).

``t`` and every field dataset are resizable along axis 0 (``maxshape=(None, ...)``),
chunked one snapshot per chunk, filled with NaN where nothing was written, and carry the
Fletcher-32 checksum filter (as do the non-empty grid arrays), so a corrupted chunk is
reported on read instead of returning wrong numbers. The file uses the HDF5 1.8 format
(``libver="v108"``, readable by HDF5 >= 1.8): its superblock and object headers are
checksummed too, and unlike the HDF5 >= 1.10 format it stays readable after a writer is
killed while the file is open.

Integrity beyond HDF5's own checksums. Two structures of the 1.8 format carry none: the
v1 B-trees that index the chunks of a dataset (a damaged entry can point a row at other
bytes, e.g. zeros, which pass Fletcher-32) and the global heap of variable-length strings
(a damaged size field there makes libhdf5 loop forever). Hence every string attribute is a
fixed-length UTF-8 byte string, kept with all other attributes in the root's checksummed
object header (the root never switches to dense attribute storage), and the content of the
rows, the grid and each checkpoint slot is covered by the SHA-256 digests above, which
the reader (``load``, ``load_checkpoint``) verifies. Files without the digests (written before
they existed) are read without that check.

Writing follows the Dedalus pattern: every operation of the writer (``ResultWriter``) opens the
file, writes, flushes and closes it. A crash or ``kill -9`` of the solver therefore leaves
every finished snapshot readable, and other processes can read the file between writes.

Reading (``load``) loads everything into memory and closes the file; ``load(path,
lazy=True)`` reads only the header, ``t`` and the grid, and each later access to a field or
snapshot opens the file, reads those rows and closes it again (a reader never holds the file
open between accesses, so it never blocks a solve appending to it); every problem (missing,
not HDF5, not ours, too new, truncated, corrupt) becomes a
:class:`~meanfield_pde.errors.DataError` with a one-line message (truncated or corrupt files:
its subclass :class:`~meanfield_pde.errors.CorruptFile`).

Modules of the package: ``layout`` (this one), ``attrs`` (attribute and JSON encoding),
``integrity`` (SHA-256 digests, the row hash chain), ``hdf5`` (create/open with lock retries, row
writes), ``space`` (the disk guard), ``writer``, ``reader``, ``checkpoint`` (the two slots).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["CHECKPOINT_GROUP", "CHECKPOINT_META_BYTES", "CONFIG_BEFORE_EXTENSION", "COORDINATES",
           "DENSITY_DIMS", "FORMAT_VERSION", "GRID_GROUP", "JSON_ATTRS", "RESERVED_ATTRS",
           "RESERVED_NAMES", "SGD_FIELDS", "TIME_DATASET", "VARIABLES", "Variable", "check_name",
           "one_line"]

FORMAT_VERSION: int = 1
"""Version of the HDF5 layout written by this package; the reader refuses newer ones."""

TIME_DATASET = "t"
GRID_GROUP = "grid"
CHECKPOINT_GROUP = "checkpoint"
CHECKPOINT_META_BYTES = 16384  # fixed size of a slot's JSON metadata
JSON_ATTRS = "json_attrs"
CONFIG_BEFORE_EXTENSION = "config_before_extension"
"""The config a resume past ``time.t_end`` extended (JSON text): the checkpoints written before the
extension's first one belong to it, so a run killed in between still resumes."""
RESERVED_ATTRS = frozenset(
    {
        "format_version",
        "package_version",
        "problem",
        "config",
        "config_sha256",
        "complete",
        "created_utc",
        "n_snapshots",
        "rows_sha256",
        "grid_sha256",
        "versions",
        "git_revision",
        "git_dirty",
        JSON_ATTRS,
        CONFIG_BEFORE_EXTENSION,
    }
)
"""Root attributes of the layout itself; every other root attribute describes the run."""
RESERVED_NAMES = frozenset({TIME_DATASET, GRID_GROUP, CHECKPOINT_GROUP})


# ------------------------------------------------------------------ what the datasets mean
COORDINATES = ("a", "s", "r")
"""The reduced coordinates of one neuron (MATH.md §2, §3), in the order of a density's axes: a
file discretises those whose ``grid/<x>_edges`` and ``grid/<x>_centers`` it holds (the radial
problem r; the single-neuron problem a, s, r)."""
DENSITY_DIMS = "<coordinates>"
"""Placeholder in :data:`VARIABLES` for the file's coordinates (``("r",)`` or
``("a", "s", "r")``)."""


class Variable(NamedTuple):
    """The meaning of one dataset: its dimension names (without the leading ``t`` of a snapshot
    field), CF ``units`` ("1": dimensionless; the model has no physical units) and ``long_name``."""

    dims: tuple[str, ...]
    units: str
    long_name: str


_D = (DENSITY_DIMS,)
VARIABLES: dict[str, Variable] = {
    # snapshot fields (K, *dims)
    TIME_DATASET: Variable((), "1", "time t of the mean-field flow (t = k eps after k SGD steps)"),
    "risk": Variable((), "1", "population risk R(rho_t)"),
    "risk_error": Variable((), "1", "a-posteriori estimate of |risk - R(rho_t)|"),
    "risk_companion": Variable((), "1", "population risk of the coarser companion run"),
    "free_energy": Variable((), "1", "free energy F(rho_t)"),
    "mass": Variable((), "1", "total mass of rho_t"),
    "mean_a": Variable((), "1", "mean of the output weight a"),
    "mean_s": Variable((), "1", "mean of the alignment s = <w, w_*>"),
    "mean_r": Variable((), "1", "mean of the radius r"),
    "density": Variable(_D, "1", "density of rho_t (cell averages on the output grid)"),
    "marginal_a": Variable(("a",), "1", "marginal density of a (cell averages)"),
    "marginal_s": Variable(("s",), "1", "marginal density of s (cell averages)"),
    "marginal_r": Variable(("r",), "1", "marginal density of r (cell averages)"),
    "cell_edges": Variable(("cell_edge",), "1", "positions X(m_i, t) of the mass cells' edges"),
    "nodes": Variable(("node",), "1", "positions of the tracked Gauss-Lobatto nodes"),
    "particles": Variable(("particle", "coord"), "1",
                          "(a, s, r) of the weighted characteristics"),
    "z": Variable(("neuron", "coord"), "1", "(a, s, r) of every SGD neuron"),
    # the radial SGD field "r" (K, N) is named like the coordinate: see SGD_FIELDS
    # grid arrays (GRID_GROUP/<name>)
    **{f"{GRID_GROUP}/{x}_edges": Variable((f"{x}_edge",), "1", f"cell edges of {x}")
       for x in COORDINATES},
    **{f"{GRID_GROUP}/{x}_centers": Variable((x,), "1", f"cell centres of {x}")
       for x in COORDINATES},
    f"{GRID_GROUP}/cell_masses": Variable(("cell",), "1", "fixed masses of the mass cells"),
    f"{GRID_GROUP}/cell_labels": Variable(("cell_edge",), "1",
                                          "initial positions of the mass cells' edges"),
    f"{GRID_GROUP}/node_weights": Variable(("node",), "1",
                                           "quadrature weights of the tracked nodes"),
    f"{GRID_GROUP}/particle_weights": Variable(("particle",), "1",
                                               "fixed weights of the characteristics"),
}
"""Dataset name (grid arrays as ``grid/<name>``) -> :class:`Variable`: the one table of
dimension names, CF units and long names (used by :mod:`.xarray_export`)."""
SGD_FIELDS: dict[str, Variable] = {
    "r": Variable(("neuron",), "1", "radius |w| of every SGD neuron"),
}
"""Snapshot fields of SGD results (``kind = "sgd"``) whose names are also coordinates."""


def one_line(exc: BaseException | str) -> str:
    """Return the text of ``exc`` with all whitespace (newlines included) collapsed."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def check_name(name: object, what: str) -> str:
    """Validate a dataset/attribute name (non-empty str without '/')."""
    if not isinstance(name, str) or not name or "/" in name or name == ".":
        raise ValueError(f"invalid {what} name {name!r}: use a non-empty string without '/'")
    return name

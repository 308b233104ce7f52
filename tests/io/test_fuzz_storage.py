"""Property-based fuzzing (hypothesis) of damaged result files: truncated, bit-flipped and
overwritten HDF5 files, finished and interrupted, give one-line errors in ``info``, ``plot`` and
``resume`` (exit 2, never a traceback), and no flip changes what load() reads: each is detected,
harmless, or (for a checkpoint) a fallback to the older slot. Shared checks: fuzzing.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fuzzing import assert_one_line, fuzz_settings, run_cli
from helpers import quiet_main
from hypothesis import given
from hypothesis import strategies as st
from stopping import StopAfter

from meanfield_pde.config import default_config
from meanfield_pde.errors import DataError
from meanfield_pde.io import load, load_checkpoint
from meanfield_pde.runner.pde import solve
from meanfield_pde.runner.trackers import Interrupted


@pytest.fixture(scope="module")
def result_file(tmp_path_factory) -> tuple[Path, bytes]:
    """A small real result file (gaussians, 201 snapshots of 64 cells) and its bytes."""
    where = tmp_path_factory.mktemp("fuzz-h5")
    path = where / "result.h5"
    assert quiet_main(["solve", "gaussians", "--set", "time.t_end=0.05", "--set", "grid.n=64",
                        "--set", "grid.r_max=6", "-o", str(path), "-q"]) == 0
    return where, path.read_bytes()


@pytest.fixture(scope="module")
def interrupted_file(tmp_path_factory) -> tuple[Path, bytes]:
    """A run stopped by a signal half way (gaussians, 64 cells; a checkpoint every 0.001, so
    both slots hold one), which ``resume`` finishes, and its bytes."""
    where = tmp_path_factory.mktemp("fuzz-h5-interrupted")
    path = where / "interrupted.h5"
    cfg = default_config("gaussians").with_overrides(
        ["time.t_end=0.01", "time.n_outputs=21", "grid.n=64", "grid.r_max=6",
         "checkpoint.every=0.001"])
    with pytest.raises(Interrupted):
        solve(cfg, path, stop=StopAfter(20))
    res, ck = load(path), load_checkpoint(path)
    assert not res.complete and 5 < res.n_snapshots < 21 and ck.meta["seq"] >= 2, ck.meta
    return where, path.read_bytes()


# what resume is asked to do: finish the interrupted run, or extend the finished one by two
# output intervals (the last checkpoint of a finished run is at its end)
RESUME_ARGS = {"result_file": ["--t-end", "0.0505"], "interrupted_file": []}


@pytest.fixture(params=sorted(RESUME_ARGS))
def damage_target(request) -> tuple[Path, bytes, list[str]]:
    """Each file to damage: (directory, bytes, the arguments of resume)."""
    where, good = request.getfixturevalue(request.param)
    return where, good, RESUME_ARGS[request.param]


def _read_damaged(data: bytes, where: Path, resume_args: list[str], capsys) -> tuple[int, ...]:
    """Write ``data`` as a result file and run ``info``, ``plot`` and ``resume`` on it (the last
    writes to the file): exit codes, each 0 or 2 with a one-line error."""
    path = where / "damaged.h5"
    path.write_bytes(data)
    return tuple(run_cli(argv, capsys) for argv in (
        ["info", str(path)], ["plot", str(path), "-o", str(where / "x.png")],
        ["resume", str(path), "-q", *resume_args]))


@fuzz_settings(20)
@given(data=st.data())
def test_truncated_result_file(data, damage_target, capsys):
    where, good, resume_args = damage_target
    cut = data.draw(st.one_of(st.integers(0, len(good) - 1),
                              st.integers(int(0.9 * len(good)), len(good) - 1)), label="cut")
    codes = _read_damaged(good[:cut], where, resume_args, capsys)
    if cut < 0.9 * len(good):
        assert codes == (2, 2, 2), cut


def _flip(good: bytes, offset: int, bit: int) -> bytes:
    damaged = bytearray(good)
    damaged[offset] ^= 1 << bit
    return bytes(damaged)


@fuzz_settings(20)
@given(data=st.data())
def test_bit_flipped_result_file(data, damage_target, capsys):
    where, good, resume_args = damage_target
    offset = data.draw(st.integers(0, len(good) - 1), label="offset")
    bit = data.draw(st.integers(0, 7), label="bit")
    _read_damaged(_flip(good, offset, bit), where, resume_args, capsys)


@fuzz_settings(8)
@given(data=st.data())
def test_garbage_in_result_file(data, damage_target, capsys):
    where, good, resume_args = damage_target
    junk = data.draw(st.binary(min_size=2, max_size=64), label="junk")
    offset = data.draw(st.integers(0, len(good) - len(junk)), label="offset")
    _read_damaged(good[:offset] + junk + good[offset + len(junk):], where, resume_args, capsys)


def _raw_data_ranges(path: Path) -> list[tuple[int, int, str]]:
    """(start, stop, dataset) of every stored chunk / contiguous block of raw data."""
    import h5py

    ranges = []

    def visit(name, obj):
        if not isinstance(obj, h5py.Dataset):
            return
        if obj.chunks is None:
            off = obj.id.get_offset()
            if off is not None:
                ranges.append((off, off + obj.id.get_storage_size(), name))
            return
        for i in range(obj.id.get_num_chunks()):
            info = obj.id.get_chunk_info(i)
            ranges.append((info.byte_offset, info.byte_offset + info.size, name))

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return ranges


def _targets(good: bytes, path: Path) -> list[tuple[int, int, str]]:
    """(start, stop, what) of the places where damage used to pass unnoticed: the text of each
    string attribute (kept in the global heap, without a checksum, until they became
    fixed-length) and the nodes of the v1 B-trees that index the chunks of a dataset ("TREE",
    node type 1: a 24-byte header, then keys and child addresses; keys of at most 32 bytes
    here), which the HDF5 1.8 format keeps without a checksum: the rows_sha256 and grid_sha256
    digests cover them."""
    import h5py

    with h5py.File(path, "r") as f:
        strings = {k: v for k, v in f.attrs.items() if isinstance(v, bytes)}
    ranges = []
    for name, text in strings.items():
        at = good.find(text)
        if at >= 0:
            ranges.append((at, at + len(text), f"attr {name}"))
    at = good.find(b"TREE")
    while at >= 0:
        if good[at + 4] == 1:  # a chunk index node
            entries = int.from_bytes(good[at + 6:at + 8], "little")
            ranges.append((at, at + 24 + entries * 40 + 32, "chunk index"))
        at = good.find(b"TREE", at + 4)
    return ranges


def _changes(a, b) -> list[str]:
    """What differs between two loaded results: "problem", "config", "complete", "attr <name>",
    "<name>: shape", "<name>: zero rows" (the rows that differ now read as zeros; for a grid
    array: its elements) or "<name>: values"."""
    out = [name for name, x, y in (("problem", a.problem, b.problem),
                                   ("config", a.config, b.config),
                                   ("complete", a.complete, b.complete)) if x != y]
    out += [f"attr {k}" for k in sorted({*a.attrs, *b.attrs} - {"config"})
            if a.attrs.get(k) != b.attrs.get(k)]
    pairs = [("t", a.t, b.t)]
    pairs += [(k, a.fields.get(k), b.fields.get(k)) for k in {*a.fields, *b.fields}]
    pairs += [(f"grid/{k}", a.grid.get(k), b.grid.get(k)) for k in {*a.grid, *b.grid}]
    for name, x, y in pairs:
        if x is None or y is None or np.shape(x) != np.shape(y):
            out.append(f"{name}: shape")
        elif not np.array_equal(x, y, equal_nan=True):
            x2, y2 = np.reshape(x, (len(x), -1)), np.reshape(y, (len(y), -1))
            differ = np.any((x2 != y2) & ~(np.isnan(x2) & np.isnan(y2)), axis=1)
            out.append(f"{name}: zero rows" if np.all(y2[differ] == 0) else f"{name}: values")
    return sorted(out)


@pytest.mark.slow  # ~16 s; test_bit_flipped_result_file flips the same kinds of bytes
def test_bit_flip_sweep(result_file):
    """Single-bit flips read with load(): 400 at random offsets, 100 in the text of the string
    attributes and 200 in the chunk indexes (where flips used to pass unnoticed: config text,
    other attribute texts, chunk addresses pointing at zeros, which pass Fletcher-32). Each
    flip is detected (a one-line DataError) or harmless (the same content: unused bytes)."""
    where, good = result_file
    src = where / "result.h5"
    unchecked = _targets(good, src)
    rng = np.random.default_rng(12345)

    def inside(tree: bool, n: int) -> list[int]:
        pool = np.concatenate([np.arange(lo, hi) for lo, hi, what in unchecked
                               if (what == "chunk index") == tree])
        return rng.choice(pool, n).tolist()

    offsets = [*rng.integers(0, len(good), 400).tolist(), *inside(False, 100),
               *inside(True, 200)]
    bits = rng.integers(0, 8, len(offsets)).tolist()
    _sweep(good, src, where / "flipped.h5", list(zip(offsets, bits, strict=True)))


def _sweep(good: bytes, src: Path, path: Path, flips: list[tuple[int, int]]) -> dict:
    """Flip each (offset, bit) of ``good`` (the bytes of ``src``) alone and read the copy
    ``path`` with load() and load_checkpoint(): each flip must be detected (one-line
    DataError), harmless (the same content) or, for the checkpoint alone, a fallback to the
    older slot (the pointer or the newer slot damaged). Returns the tally."""
    ranges = _raw_data_ranges(src)
    original, ck0 = load(src), load_checkpoint(src)
    tally = {"detected": 0, "harmless": 0, "checkpoint fallback": 0, "silent": 0}
    silent = []
    for offset, bit in flips:
        path.write_bytes(_flip(good, offset, bit))
        try:
            res = load(path)
            ck = load_checkpoint(path)
        except DataError as exc:
            assert_one_line(str(exc))
            tally["detected"] += 1
            continue
        changes = _changes(original, res)
        same_ck = ck.meta == ck0.meta and ck.arrays.keys() == ck0.arrays.keys() and all(
            np.array_equal(ck.arrays[k], ck0.arrays[k]) for k in ck.arrays)
        if not changes and same_ck:
            tally["harmless"] += 1
        elif not changes and ck.fallback and ck.meta["seq"] < ck0.meta["seq"]:
            tally["checkpoint fallback"] += 1
        else:
            region = next((name for lo, hi, name in ranges if lo <= offset < hi), "metadata")
            tally["silent"] += 1
            silent.append((offset, bit, region, changes or ["checkpoint"]))
    n = sum(tally.values())
    print(f"\n{n} bit flips in a {len(good)}-byte result file: "
          + ", ".join(f"{k} {v} ({v / n:.1%})" for k, v in tally.items())
          + "".join(f"\n  silent: byte {o} bit {b} in {r}: {c}" for o, b, r, c in silent))
    assert not silent, silent
    return tally


@pytest.mark.slow
def test_exhaustive_metadata_bit_flips(tmp_path):
    """One bit of every byte that is not raw chunk data (superblock, object headers, B-trees,
    free space) of a 10-snapshot file: every flip is detected, harmless or a fallback to the
    older checkpoint; none changes what is read, none hangs. Measured: 42382 flips, 15.4 %
    detected, 83.7 % harmless, 0.9 % fallback, in 9.4 minutes (a flip that made slot 1 read slot
    0's arrays and meta, consistently, is why each slot's meta records its slot number)."""
    src = tmp_path / "result.h5"
    assert quiet_main(["solve", "gaussians", "--set", "time.t_end=0.05", "--set",
                        "time.n_outputs=10", "--set", "grid.n=64", "--set", "grid.r_max=6",
                        "-o", str(src), "-q"]) == 0
    where, good = tmp_path, src.read_bytes()
    raw = np.zeros(len(good), dtype=bool)
    for lo, hi, _ in _raw_data_ranges(src):
        raw[lo:hi] = True
    offsets = np.flatnonzero(~raw).tolist()
    tally = _sweep(good, src, where / "flipped.h5", [(o, o % 8) for o in offsets])
    assert tally["detected"] > 0.05 * len(offsets)  # the damage was read, not skipped

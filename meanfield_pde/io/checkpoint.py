"""Checkpoint slots: the state a run resumes from (layout: see :mod:`.layout`).

``checkpoint/current`` names the slot (0 or 1) of the last complete checkpoint (-1: none yet).
A checkpoint is written into the other slot, flushed, and then the pointer is flipped (one
8-byte chunk write), so an interruption at any moment leaves the previous checkpoint in force.
Each slot's meta records the SHA-256 of its arrays and a sequence number, which makes a slot
prove itself complete: :func:`load_checkpoint` takes the newest valid slot whatever the
pointer says.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import CorruptFile, DataError
from .attrs import to_json
from .hdf5 import read_file
from .integrity import digest_arrays
from .layout import CHECKPOINT_GROUP, CHECKPOINT_META_BYTES, one_line
from .reader import load

__all__ = ["Checkpoint", "load_checkpoint", "write_slot"]

_SLOT_ERRORS = (OSError, KeyError, ValueError, TypeError, UnicodeDecodeError)


@dataclass
class Checkpoint:
    """The last complete checkpoint of a result file (see :func:`load_checkpoint`)."""

    path: Path
    slot: int
    meta: dict
    arrays: dict[str, np.ndarray]
    fallback: bool = False  # the pointed-to slot was damaged; this is the other, older one


def slot_meta(g: h5py.Group) -> dict:
    """The JSON metadata of the slot group ``g`` (ValueError if it is not a JSON object)."""
    raw = np.asarray(g["meta"][()], dtype=np.uint8).tobytes().rstrip(b"\0")
    meta = json.loads(raw.decode("utf-8"))
    if not isinstance(meta, dict):
        raise ValueError("checkpoint metadata is not a JSON object")
    return meta


# --------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------


def _meta_buffer(text: str) -> np.ndarray:
    """The JSON text ``text`` as the zero-padded (CHECKPOINT_META_BYTES,) uint8 meta array."""
    raw = text.encode("utf-8")
    if len(raw) > CHECKPOINT_META_BYTES:
        raise ValueError(f"checkpoint metadata is {len(raw)} bytes, more than "
                         f"{CHECKPOINT_META_BYTES}")
    buf = np.zeros(CHECKPOINT_META_BYTES, dtype=np.uint8)
    buf[: len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    return buf


def _next_seq(g: h5py.Group) -> int:
    """One more than the sequence number of any readable slot (0 if none)."""
    seq = 0
    for name in ("slot0", "slot1"):
        try:
            seq = max(seq, int(slot_meta(g[name])["seq"]) + 1)
        except _SLOT_ERRORS:
            pass
    return seq


def _store(sg: h5py.Group, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` into the slot group ``sg``: datasets of the same shape and dtype are
    overwritten in place (same bytes, no metadata change), others recreated, stale ones
    deleted."""
    for name, arr in arrays.items():
        ds = sg.get(name)
        if ds is not None and ds.shape == arr.shape and ds.dtype == arr.dtype:
            ds[...] = arr
        else:
            if ds is not None:
                del sg[name]
            sg.create_dataset(name, data=arr, fletcher32=arr.size > 0,
                              chunks=arr.shape if arr.size > 0 else None)
    for name in [n for n in sg if n not in arrays]:
        del sg[name]


def write_slot(f: h5py.File, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any],
               n_snapshots: int) -> int:
    """Write a checkpoint (arrays + JSON ``meta``) into the open file ``f`` atomically; return
    the slot used.

    The arrays and the metadata go into the slot the pointer ``checkpoint/current`` does not
    name; the file is flushed, then the pointer is flipped and flushed again.  ``meta`` gets
    ``n_snapshots``, a sequence number, the slot and the arrays' SHA-256 added.
    """
    g = f.require_group(CHECKPOINT_GROUP)
    if "current" not in g:
        g.create_dataset("current", data=np.array([-1], dtype=np.int64),
                         chunks=(1,), fletcher32=True)
    current = int(g["current"][0])
    slot = 0 if current != 0 else 1
    seq = _next_seq(g)
    stored = {}
    for name, value in arrays.items():
        arr = np.ascontiguousarray(value)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float64, copy=False)
        stored[name] = arr
    text = to_json({**meta, "n_snapshots": n_snapshots, "seq": seq, "slot": slot,
                    "arrays_sha256": digest_arrays(stored)}, "checkpoint meta")
    buf = _meta_buffer(text)
    _store(g.require_group(f"slot{slot}"), {**stored, "meta": buf})
    f.flush()
    g["current"][0] = slot  # the flip: from here on this slot is in force
    f.flush()
    return slot


# --------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------


def _read_slot(g: h5py.Group, slot: int) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of slot ``slot`` of the checkpoint group ``g``; ValueError (or an h5py
    error) if the slot is damaged or incomplete."""
    sg = g[f"slot{slot}"]
    meta = slot_meta(sg)
    arrays = {n: np.asarray(sg[n][()]) for n in sg if n != "meta"}
    digest = meta.get("arrays_sha256")
    if digest is not None and digest != digest_arrays(arrays):
        raise ValueError("its arrays do not match their SHA-256 digest")
    if not isinstance(meta.get("seq"), int) or meta["seq"] < 0:
        raise ValueError("no sequence number")
    if meta.get("slot", slot) != slot:  # a damaged index led to the other slot
        raise ValueError(f"it holds the checkpoint of slot {meta['slot']}")
    return meta, arrays


def _choose(p: Path, g: h5py.Group) -> Checkpoint:
    """The checkpoint to resume from in the checkpoint group ``g`` of ``p`` (see
    :func:`load_checkpoint`)."""
    try:
        current = int(g["current"][0])
    except (OSError, ValueError, IndexError) as exc:
        current, pointer_error = -2, one_line(exc)
    else:
        pointer_error = ""
    valid: dict[int, tuple[dict, dict[str, np.ndarray]]] = {}
    errors = []
    for slot in (0, 1):
        if f"slot{slot}" not in g:
            continue
        try:
            valid[slot] = _read_slot(g, slot)
        except _SLOT_ERRORS as exc:
            errors.append(f"slot {slot}: {one_line(exc)}")
    proven = [s for s, (m, _) in valid.items() if "arrays_sha256" in m]
    if proven:
        slot = max(proven, key=lambda s: valid[s][0]["seq"])
    elif current in valid:
        slot = current
    elif current in (0, 1) and 1 - current in valid:
        slot = 1 - current
    elif current == -1 and not errors:
        raise DataError(f"{p} has no complete checkpoint yet (the run was stopped "
                        "before its first one); run the solve again")
    else:
        if pointer_error:
            errors.insert(0, f"pointer: {pointer_error}")
        raise CorruptFile(p, f"no readable checkpoint in {p} ({'; '.join(errors) or 'no slot'})")
    meta, arrays = valid[slot]
    return Checkpoint(p, slot, meta, arrays, fallback=slot != current)


def _checkpoint_of(p: Path, f: h5py.File) -> Checkpoint:
    """The checkpoint in force in the open file ``f`` (see :func:`load_checkpoint`)."""
    if CHECKPOINT_GROUP not in f or "current" not in f[CHECKPOINT_GROUP]:
        raise DataError(f"{p} has no checkpoint (it was written before checkpoints "
                        "existed, or killed before the first one); run the solve again")
    return _choose(p, f[CHECKPOINT_GROUP])


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read the last complete checkpoint.

    A slot whose meta records ``arrays_sha256`` proves itself complete (its arrays are written
    before its meta, under Fletcher-32 and that digest): of such slots the newest (highest
    ``seq``) is used, so a damaged pointer or a kill between a slot's flush and the pointer's
    flip costs nothing. Slots of files written before the digests existed are chosen by the
    pointer, the other slot serving if the named one is damaged. ``fallback`` is set when the
    slot used is not the one the pointer names.

    Raises:
        DataError: (one line) the file has no checkpoint; :class:`~meanfield_pde.errors.
            CorruptFile` if it has no readable one.
    """
    p = Path(path)
    load(p)  # the snapshots must be readable too; raises the one-line errors of load()
    try:
        return read_file(p, lambda f: _checkpoint_of(p, f))
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise CorruptFile(p, f"cannot read the checkpoint of {p}: {one_line(exc)}") from exc

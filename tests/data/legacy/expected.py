"""Writes expected.json: what the reader of the code that wrote the legacy files returned for
them (run with that tree first on the path, after make.sh)."""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from meanfield_pde.storage import load, load_checkpoint


def digest(arr):
    arr = np.ascontiguousarray(arr)
    return [list(arr.shape), arr.dtype.str, hashlib.sha256(arr.tobytes()).hexdigest()]


def plain(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(type(obj))


here = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
out = {}
for path in sorted(here.glob("*.h5")):
    res = load(path)
    attrs = {k: v for k, v in res.attrs.items() if k != "config"}  # config: config_sha256
    entry = {"problem": res.problem, "complete": res.complete, "attrs": attrs, "t": res.t.tolist(),
             "fields": {k: digest(v) for k, v in res.fields.items()},
             "grid": {k: digest(v) for k, v in res.grid.items()}}
    try:
        ck = load_checkpoint(path)
    except Exception as exc:  # noqa: BLE001 - recorded as the expected outcome
        entry["checkpoint"] = {"error": type(exc).__name__}
    else:
        entry["checkpoint"] = {"slot": ck.slot, "meta": ck.meta, "fallback": ck.fallback,
                               "arrays": {k: digest(v) for k, v in ck.arrays.items()}}
    out[path.name] = json.loads(json.dumps(entry, default=plain))
(here / "expected.json").write_text(json.dumps(out, indent=0, sort_keys=True) + "\n")

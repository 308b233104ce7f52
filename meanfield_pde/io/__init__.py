"""Result files (HDF5): layout, attribute encoding, integrity, writer, reader, checkpoints.

Modules, bottom up (each imports only those above it in this list):

* :mod:`.layout`     dataset/group names, constants and the file-format description
* :mod:`.attrs`      attribute and JSON encoding/decoding, :func:`package_version`
* :mod:`.integrity`  SHA-256 digests of the grid and checkpoint slots, the row hash chain
* :mod:`.hdf5`       create/open with lock retries, row writes, :func:`check_new_output`
* :mod:`.space`      the disk guard
* :mod:`.derived`    ``Result.at``, ``Result.marginal``, ``Result.moments``
* :mod:`.reader`     :class:`Result`, :func:`load` (``lazy=True``: on demand), :func:`read_attrs`
* :mod:`.xarray_export` ``Result.to_xarray``, :func:`export_netcdf` (imports xarray on use)
* :mod:`.checkpoint` the two checkpoint slots, :class:`Checkpoint`, :func:`load_checkpoint`
* :mod:`.writer`     :class:`ResultWriter`

Errors are typed (:mod:`meanfield_pde.errors`): ``OutputExists``, ``DiskFull``, ``CorruptFile``
and other ``DataError``; their messages speak the Python API's language (``overwrite=True``,
``meanfield_pde.resume(path)``), and the CLI words its own hints.
"""

from .attrs import package_version
from .checkpoint import Checkpoint, load_checkpoint
from .hdf5 import check_new_output
from .layout import FORMAT_VERSION
from .reader import Result, load, read_attrs
from .space import DISK_RESERVE_BYTES
from .writer import ResultWriter
from .xarray_export import export_netcdf

__all__ = ["DISK_RESERVE_BYTES", "FORMAT_VERSION", "Checkpoint", "Result", "ResultWriter",
           "check_new_output", "export_netcdf", "load", "load_checkpoint", "package_version",
           "read_attrs"]

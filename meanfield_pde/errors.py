"""Errors a user can cause. The CLI prints their message on one line and exits with code 2."""

from __future__ import annotations


class MeanFieldError(Exception):
    """Base class of every user-facing error (one-line message naming the cause and the fix)."""


class ConfigError(MeanFieldError, ValueError):
    """A configuration value, key or file is invalid."""


class DataError(MeanFieldError):
    """An input or output file is missing, unreadable, corrupt or not written by this package."""


class SolverError(MeanFieldError):
    """The numerical solution cannot continue (non-finite state, mass at a wall, ...)."""


class WallReached(SolverError):
    """Mass reached a wall of the domain: ``key`` is the ``[grid]`` key of the wall, ``new`` a
    value that moves it far enough.  The message suggests ``cfg.replace({"grid.<key>": new})``;
    the CLI words the same fix as ``--set grid.<key>=new``."""

    def __init__(self, key: str, value: float, mass: float, t: float, cells: int, tol: float,
                 new: float):
        self.key, self.value, self.mass, self.t = key, value, mass, t
        self.cells, self.tol, self.new = cells, tol, new
        super().__init__(self.words(f'cfg.replace({{"grid.{key}": {new:.3g}}})'))

    def words(self, fix: str) -> str:
        """The message with ``fix`` as the way to move the wall."""
        verb = "lower" if self.new < self.value else "raise"
        return (f"mass {self.mass:.3g} reached the wall grid.{self.key} = {self.value:.4g} at "
                f"t = {self.t:.4g} (within {self.cells} cells, tolerance grid.wall_tol = "
                f"{self.tol:g}); {verb} it, e.g. {fix}")


class OptionError(ConfigError):
    """An argument of a run function (not a config key) is refused.  ``template`` names the
    argument as ``{opt}``: the message fills in its Python name (``t_end``, ``steady=True``); the
    CLI fills in its flag (``--t-end``, ``--steady``), in ``cli_template`` when one is given
    (a message whose example differs too: ``overrides`` entries against ``--set KEY=VALUE``)."""

    def __init__(self, option: str, template: str, cli_template: str | None = None):
        self.option, self.template = option, template
        self.cli_template = cli_template  # the CLI's own wording, when more than the name differs
        super().__init__(template.replace("{opt}", option))


class OutputExists(DataError):
    """An output path exists and overwriting was not asked for.  The message speaks the Python
    API's language (``overwrite=True``); the CLI words its own hint (``--force``, ``-o``)."""

    def __init__(self, path: object, what: str = "output"):
        self.path, self.what = path, what
        super().__init__(f"{what} {path} exists; pass overwrite=True to replace it or choose "
                         "another path")


class DiskFull(DataError):
    """A write would leave less free space than the reserve; nothing was written.  The message
    names the Python API's way to continue (``resume(path)``) when the file is resumable; the
    CLI words its own (``meanfield-pde resume FILE``)."""

    def __init__(self, path: object, detail: str, resumable: bool,
                 fix: str = "free some disk space", what: str = "disk full"):
        self.path, self.detail, self.resumable = path, detail, resumable
        self.fix, self.what = fix, what
        cont = f", then continue with meanfield_pde.resume({str(path)!r})" if resumable else ""
        super().__init__(f"{what}: {detail}; {fix}{cont}")


class CorruptFile(DataError):
    """A result file is truncated or corrupt: a checksum or digest fails, a dataset or attribute
    is missing or malformed, rows are not stored.  ``detail`` names what was found; the message
    adds the fix (re-run the solve)."""

    FIX = "the file is truncated or corrupt (re-run the solve)"

    def __init__(self, path: object, detail: str):
        self.path, self.detail = path, detail
        super().__init__(f"{detail}; {self.FIX}")

"""The problem registry: problem name (or alias) -> the :class:`~.base.Problem` subclass.

A problem module declares everything about its reduction in its class (``name``, ``aliases``,
``schema``, ``walls``, particle coordinates, plotters) and registers the class::

    @register
    class HeatProblem(Problem):
        name = "heat"
        aliases = ("heat-equation",)
        schema = {...}

The runner, the CLI, configuration, validation and plotting look problems up here and never
compare problem names.  The built-in problems are *declared* by module (see
:func:`declare_builtin`) and imported on the first lookup, so importing the package does not pay
for the problems' numerics.  A problem defined elsewhere (a test, a plug-in) is registered with
:func:`register` and removed with :func:`unregister`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, TypeVar

from ..errors import ConfigError

if TYPE_CHECKING:
    from .base import Problem

P = TypeVar("P", bound="type[Problem]")

_classes: dict[str, type[Problem]] = {}  # name -> class, in registration order
_aliases: dict[str, str] = {}  # alias -> name
_pending: list[str] = []  # modules whose import registers built-in problems


def declare_builtin(*modules: str) -> None:
    """Modules (absolute names) whose import registers problems; imported on the first lookup."""
    _pending.extend(m for m in modules if m not in _pending)


def _load_pending() -> None:
    while _pending:
        module = _pending.pop(0)  # first: a lookup during the import does not import it again
        try:
            importlib.import_module(module)  # its classes call register()
        except BaseException:
            _pending.insert(0, module)
            raise


def register(cls: P) -> P:
    """Register the problem class ``cls`` under ``cls.name`` and its ``cls.aliases``.

    Usable as a class decorator.  Registering the same class again does nothing; another class
    under a taken name or alias is a ValueError (unregister the old one first)."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{cls.__name__} declares no problem name (class attribute 'name')")
    aliases = tuple(getattr(cls, "aliases", ()))
    for key in (name, *aliases):
        owner = _classes.get(_aliases.get(key, key))
        if owner is not None and owner is not cls:
            raise ValueError(f"problem name {key!r} is taken by {owner.__module__}."
                             f"{owner.__qualname__}; unregister it first")
    _classes[name] = cls
    for alias in aliases:
        if alias != name:
            _aliases[alias] = name
    return cls


def unregister(name: str) -> None:
    """Remove the problem ``name`` (or the problem an alias names) and its aliases."""
    name = _aliases.get(name, name)
    cls = _classes.pop(name, None)
    if cls is None:
        raise KeyError(name)
    for alias in [a for a, n in _aliases.items() if n == name]:
        del _aliases[alias]


def canonical(name: str) -> str | None:
    """The registered name ``name`` stands for (itself or an alias's target), else None."""
    _load_pending()
    if name in _classes:
        return name
    return _aliases.get(name)


def get(name: str) -> type[Problem]:
    """The class of problem ``name`` (a name or an alias).

    Raises:
        ConfigError: no such problem; the message names the known ones."""
    key = canonical(name) if isinstance(name, str) else None
    if key is None:
        raise ConfigError(f"unknown problem {name!r}; known problems: {', '.join(names())}")
    return _classes[key]


def names() -> tuple[str, ...]:
    """The registered problem names (without aliases), built-ins first."""
    _load_pending()
    return tuple(_classes)

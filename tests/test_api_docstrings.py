"""Every public object has a docstring, and the top-level API shows real signatures.

``python tests/test_api_docstrings.py`` lists the public functions, classes and methods of
``meanfield_pde/**/*.py`` without a docstring (names not starting with ``_``, methods of public
classes; found with :mod:`ast`, nothing is imported).
"""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import meanfield_pde

PACKAGE = Path(meanfield_pde.__file__).resolve().parent

# modules documented by the session that owns them (issue 16, plotting and xarray/sweeps parts)
OWNED_ELSEWHERE = ("plotting.py", "problems/gaussians_plots.py",
                   "problems/single_neuron_plots.py", "sweeps/")


def _public_defs(body: list[ast.stmt], prefix: str = ""):
    """(qualified name, node) of the public functions and classes in ``body``, and of the public
    methods of those classes."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and \
                not node.name.startswith("_"):
            yield prefix + node.name, node
            if isinstance(node, ast.ClassDef):
                yield from _public_defs(node.body, f"{prefix}{node.name}.")


def _inherits_doc(module: str, qualname: str) -> bool:
    """Whether the method ``qualname`` of ``module`` shows a docstring in ``help()``: its own or
    that of the method it overrides (:func:`inspect.getdoc` walks the class's MRO)."""
    import importlib

    cls_name, _, attr = qualname.rpartition(".")
    if not cls_name:
        return False
    cls = importlib.import_module(module)
    for part in cls_name.split("."):
        cls = getattr(cls, part)
    member = inspect.getattr_static(cls, attr)
    if not isinstance(member, property):
        member = getattr(cls, attr)
    return bool(inspect.getdoc(member))


def undocumented(root: Path = PACKAGE, skip: tuple[str, ...] = ()) -> list[str]:
    """``module.py:line name`` of every public object under ``root`` without a docstring (a
    method overriding a documented one counts as documented, as ``help()`` shows that one)."""
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if any(rel == s or rel.startswith(s) for s in skip if s.endswith("/")) or rel in skip:
            continue
        module = ".".join(("meanfield_pde", *path.relative_to(root).with_suffix("").parts))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        out += [f"{rel}:{node.lineno} {name}" for name, node in _public_defs(tree.body)
                if not ast.get_docstring(node) and not _inherits_doc(module, name)]
    return out


def _api_objects():
    """(name, object) of the top-level API and, for its classes, their public methods."""
    for name in meanfield_pde.__all__:
        obj = getattr(meanfield_pde, name)
        if not callable(obj):
            continue
        yield name, obj
        if isinstance(obj, type) and obj.__module__.startswith("meanfield_pde"):
            for attr, member in vars(obj).items():
                fn = member.fget if isinstance(member, property) else member
                if not attr.startswith("_") and callable(fn):
                    yield f"{name}.{attr}", fn


def test_top_level_api_is_documented_with_real_signatures():
    missing, hidden = [], []
    for name, obj in _api_objects():
        if not (inspect.getdoc(obj) or "").strip():
            missing.append(name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            continue
        try:
            params = inspect.signature(obj).parameters.values()
        except (TypeError, ValueError):  # a builtin without a signature
            continue
        if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
            hidden.append(name)
    assert not missing, f"no docstring: {missing}"
    assert not hidden, f"*args/**kwargs in the signature: {hidden}"


def test_top_level_api_has_type_hints():
    """Every parameter and the return of the API's functions and of its classes' methods."""
    unhinted = []
    for name, obj in _api_objects():
        if isinstance(obj, type) or not inspect.isfunction(obj):
            continue
        sig = inspect.signature(obj)
        if sig.return_annotation is sig.empty or any(
                p.annotation is p.empty for p in sig.parameters.values()
                if p.name not in ("self", "cls")):
            unhinted.append(f"{name}{sig}")
    assert not unhinted, f"without type hints: {unhinted}"


def test_run_functions_document_arguments_and_errors():
    """The run functions' docstrings state their contract: what ``output=None`` does and what
    they raise; their parameters are keyword arguments with defaults after ``cfg``/``output``."""
    for name in ("solve", "solve_gibbs", "solve_sgd"):
        fn = getattr(meanfield_pde, name)
        doc = inspect.getdoc(fn)
        assert "Raises" in doc and "in memory" in doc, name
        params = list(inspect.signature(fn).parameters.values())
        assert [p.name for p in params[:2]] == ["cfg", "output"], name
        assert params[1].default is None
        assert all(p.kind is p.KEYWORD_ONLY and p.default is not p.empty for p in params[2:])
        assert all(p.annotation is not p.empty for p in params), name


def test_every_public_object_of_the_package_has_a_docstring():
    missing = undocumented(skip=OWNED_ELSEWHERE)
    assert not missing, "public objects without a docstring:\n" + "\n".join(missing)


if __name__ == "__main__":
    found = undocumented()
    print("\n".join(found) or "every public object has a docstring")
    print(f"{len(found)} undocumented", file=sys.stderr)

"""The key tables of a problem's schema: ``meanfield-pde config --keys [--markdown]`` and the
README's key tables (generated from the schema, checked by ``tests/test_repo.py``)."""

from __future__ import annotations

from .config import _fmt, _json_safe, problem_schema


def keys_markdown(problem: str) -> str:
    """The table of every key of ``problem`` (default, accepted values, meaning) in Markdown."""
    lines = ["| key | default | accepted | meaning |", "|---|---|---|---|"]
    for key, default, accepted, doc in schema_rows(problem):
        lines.append(f"| `{key}` | `{default}` | {accepted} | {doc} |")
    return "\n".join(lines) + "\n"


def schema_rows(problem: str) -> list[tuple[str, str, str, str]]:
    """(key, default, accepted, doc) for every key (``meanfield-pde config --keys``, README)."""
    rows = []
    for section, specs in problem_schema(problem).items():
        for key, spec in specs.items():
            default = _json_safe(spec.default)
            rows.append((f"{section}.{key}", _fmt(default), spec.describe(), spec.doc))
    return rows

"""The examples gallery (examples/*.py) runs: each script's ``main(out_dir, small=True)`` writes
its figure, a PNG, in a few seconds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load(name: str):
    """The example script ``name`` as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gallery_lists_the_four_examples() -> None:
    assert SCRIPTS == ["gibbs_vs_beta", "mmn18_fig1", "phase_diagram",
                       "single_neuron_alignment"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_writes_its_figure(name: str, tmp_path: Path) -> None:
    path = Path(_load(name).main(tmp_path, small=True))
    assert path == tmp_path / f"{name}.png"
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size > 10_000  # a drawn figure, not an empty canvas


@pytest.mark.parametrize("name", SCRIPTS)
def test_readme_shows_the_example(name: str) -> None:
    readme = (EXAMPLES.parent / "README.md").read_text()
    assert f"examples/{name}.py" in readme
    assert f"docs/examples/{name}.png" in readme
    assert (EXAMPLES.parent / "docs" / "examples" / f"{name}.png").exists()

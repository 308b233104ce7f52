"""meanfield_pde/provenance.py: library versions and the git state recorded in result files."""

from __future__ import annotations

import numpy as np

from meanfield_pde import provenance


def test_library_versions_name_the_libraries():
    versions = provenance.library_versions()
    assert versions["numpy"] == np.__version__
    assert set(provenance.LIBRARIES) <= set(versions) and "python" in versions


def test_git_state_is_silent_outside_a_checkout(tmp_path, monkeypatch):
    """No work tree, no git: no git attributes and no error."""
    assert provenance.git_state(tmp_path) == {}
    assert provenance.git_state(tmp_path / "missing") == {}
    monkeypatch.setenv("PATH", str(tmp_path))  # git not found
    assert provenance.git_state() == {}


def test_git_state_of_this_checkout():
    state = provenance.git_state()
    if state:  # run from a git checkout (an installed package has none)
        assert len(state["git_revision"]) == 40 and isinstance(state["git_dirty"], bool)

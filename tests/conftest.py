"""Shared fixtures: real SQLMesh projects on DuckDB in temporary folders."""

from __future__ import annotations

import sys
import typing as t
from pathlib import Path

import pytest

from tests.projects import Project

# Tests rewrite project files within the same second; a cached .pyc of the old text would
# hide the edit (Python compares whole-second mtimes and sizes).
sys.dont_write_bytecode = True


@pytest.fixture
def project(tmp_path: Path) -> t.Iterator[Project]:
    """An empty SQLMesh project on a DuckDB file, with analytics switched off."""
    created = Project(tmp_path / "project")
    yield created
    created.close()
    # Project modules (python.shared...) are cached by name; the next project has its own.
    for name in [m for m in sys.modules if m == "python" or m.startswith(("python.", "macros"))]:
        del sys.modules[name]

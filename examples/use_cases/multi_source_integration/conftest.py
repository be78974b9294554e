"""The project folder on pytest's path (tests import python.keys, as SQLMesh does), and
``built``: a copy of the project planned with SQLMesh on DuckDB, so tests never write here."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixmesh.testing import planned_copy

PROJECT = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """The project's SQLMesh Context after `plan` (which runs its YAML tests first), in a copy
    worked in (its DuckDB path is relative), so tests never write here."""
    with planned_copy(PROJECT, tmp_path_factory.mktemp("project") / PROJECT.name) as context:
        yield context

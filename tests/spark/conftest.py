"""SQLMesh projects on the tests' SparkSession (the ``spark`` fixture of tests/conftest.py: one
per test process, shared with tests/parity)."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from tests.projects import forget_project_modules
from tests.spark.session import drop_databases
from tests.spark.projects import SparkProject


@pytest.fixture
def spark_project(spark: t.Any, tmp_path: Path) -> t.Iterator[SparkProject]:
    """An empty SQLMesh project on a spark gateway, run in this process on the shared session;
    what it built is dropped afterwards, so the next project starts from an empty catalog."""
    project = SparkProject(tmp_path / "project")
    yield project
    project.close()
    drop_databases(spark)
    forget_project_modules()

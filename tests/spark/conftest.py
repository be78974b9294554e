"""One SparkSession per test process (each xdist worker starts its own JVM once), and SQLMesh
projects on it."""

from __future__ import annotations

import sys
import typing as t
from pathlib import Path

import pytest

from tests.spark import session as spark_session
from tests.spark.projects import SparkProject


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[t.Any]:
    """A local[2] SparkSession: executors are separate Python worker processes."""
    session = spark_session.start(tmp_path_factory.mktemp("spark"))
    yield session
    session.stop()


@pytest.fixture
def spark_project(spark: t.Any, tmp_path: Path) -> t.Iterator[SparkProject]:
    """An empty SQLMesh project on a spark gateway, run in this process on the shared session;
    what it built is dropped afterwards, so the next project starts from an empty catalog."""
    project = SparkProject(tmp_path / "project")
    yield project
    project.close()
    for database in spark.catalog.listDatabases():
        if database.name != "default":
            spark.sql(f"DROP DATABASE `{database.name}` CASCADE")  # names from Spark's own catalog
    for name in [m for m in sys.modules if m == "python" or m.startswith(("python.", "macros"))]:
        del sys.modules[name]  # the next project has modules of the same names

"""SQLMesh projects on the tests' SparkSession (the ``spark`` fixture of tests/conftest.py: one
per test process, shared with tests/parity)."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from tests.projects import forget_project_modules
from tests.spark import cluster
from tests.spark.session import drop_databases, require_java
from tests.spark.projects import SparkProject


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[cluster.Cluster]:
    """A Spark standalone cluster (a master, two workers), started once per test process and
    stopped at its end, also when tests fail; its tests share one xdist group."""
    require_java()
    started = cluster.start(tmp_path_factory.mktemp("spark-cluster"))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def spark_project(spark: t.Any, tmp_path: Path) -> t.Iterator[SparkProject]:
    """An empty SQLMesh project on a spark gateway, run in this process on the shared session;
    what it built is dropped afterwards, so the next project starts from an empty catalog."""
    project = SparkProject(tmp_path / "project")
    yield project
    project.close()
    drop_databases(spark)
    forget_project_modules()

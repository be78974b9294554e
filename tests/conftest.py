"""Shared fixtures: real SQLMesh projects on DuckDB in temporary folders."""

from __future__ import annotations

import sys
import typing as t
from pathlib import Path

import pytest

from tests.projects import Project, forget_project_modules

# Tests rewrite project files within the same second; a cached .pyc of the old text would
# hide the edit (Python compares whole-second mtimes and sizes).
sys.dont_write_bytecode = True


# Tests on one expensive per-process resource run on one xdist worker (`make test` runs
# `--dist loadgroup`), which then starts it once for all of them: a JVM for the `spark` fixture.
ONE_WORKER_FIXTURES = {"spark": "spark"}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: t.List[pytest.Item]) -> None:
    for item in items:
        for fixture, group in ONE_WORKER_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture
def project(tmp_path: Path) -> t.Iterator[Project]:
    """An empty SQLMesh project on a DuckDB file, with analytics switched off."""
    created = Project(tmp_path / "project")
    yield created
    created.close()
    forget_project_modules()


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[t.Any]:
    """A local[2] SparkSession, one per test process (each xdist worker starts its own JVM once,
    for tests/spark and tests/parity alike): executors are separate Python worker processes."""
    from tests.spark import session as spark_session

    session = spark_session.start(tmp_path_factory.mktemp("spark"))
    yield session
    session.stop()

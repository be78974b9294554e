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


# With `--dist loadgroup` (`make test`), the tests of a module sharing a module- or
# class-scoped fixture (a built project, a browser) run on one xdist worker, which then makes
# it once; other tests are shared out one by one.
SHARED_SCOPES = ("module", "class")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: t.List[pytest.Item]) -> None:
    sharing = {_module(item) for item in items if _shares_a_set_up(item)}
    for item in items:
        if _module(item) in sharing:
            item.add_marker(pytest.mark.xdist_group(_module(item)))


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::")[0]


def _shares_a_set_up(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)  # pytest's record of the fixtures a test uses
    definitions = info.name2fixturedefs.values() if info else ()
    return any(definition.scope in SHARED_SCOPES for chain in definitions for definition in chain)


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

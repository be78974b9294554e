"""Shared fixtures: real SQLMesh projects on DuckDB in temporary folders."""

from __future__ import annotations

import faulthandler
import os
import sys
import typing as t
from pathlib import Path

import pytest

from tests.projects import Project, forget_project_modules

# Tests rewrite project files within the same second; a cached .pyc of the old text would
# hide the edit (Python compares whole-second mtimes and sizes).
sys.dont_write_bytecode = True


# A test still running after this long (its set-up included) is taken for hung: every
# thread's stack is written to the worker's stderr and the worker exits, so the run fails
# with the stacks in its log instead of waiting for CI's limit. The longest test, the Spark
# cluster's set-up included, takes under 1.5 minutes on 2 cores.
HUNG_AFTER_S = float(os.environ.get("MIXMESH_TEST_HUNG_AFTER_S", "900"))  # shorter in its own test
_stderr: t.Optional[int] = None  # the run's own stderr, kept before tests capture it


def pytest_configure(config: pytest.Config) -> None:
    global _stderr
    _stderr = os.dup(2)  # capturing is suspended while plugins configure


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> t.Iterator[None]:
    # faulthandler's watchdog is a thread of C code: it fires even when a thread holds the
    # GIL and waits on a lock, where a Python timer (pytest-timeout's) would wait too.
    if _stderr is not None:
        faulthandler.dump_traceback_later(HUNG_AFTER_S, exit=True, file=_stderr)
    try:
        return (yield)
    finally:
        faulthandler.cancel_dump_traceback_later()


# With `--dist loadgroup` (`make test`), the tests of a module sharing a module- or
# class-scoped fixture (a built project, a browser) run on one xdist worker, which then makes
# it once; other tests are shared out one by one.
SHARED_SCOPES = ("module", "class")


@pytest.hookimpl(wrapper=True)  # around every other plugin's hook, xdist's among them
def pytest_collection_modifyitems(config: pytest.Config, items: t.List[pytest.Item]) -> t.Iterator[None]:
    sharing = {_module(item) for item in items if _shares_a_set_up(item)}
    for item in items:
        if _module(item) in sharing:
            item.add_marker(pytest.mark.xdist_group(_module(item)))
    yield  # xdist reads the groups here
    _name_groups_in_node_ids(config, items)


def _name_groups_in_node_ids(config: pytest.Config, items: t.List[pytest.Item]) -> None:
    """``--dist loadgroup`` sends the tests of one group to one worker by the ``@group`` suffix
    of their node ids, which pytest-xdist 3.8 writes where pytest 9.2 no longer reads it
    (pytest-xdist issue 1386): the groups were silently ignored, and each worker made every
    shared set-up (two Spark clusters, the example trained twice). Where the suffix is missing,
    it is written where pytest keeps node ids now, as xdist names it (group names sorted, joined
    by ``_``)."""
    if not getattr(config.option, "loadgroup", False):  # set on xdist's workers with --dist loadgroup
        return
    for item in items:
        names = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                        for mark in item.iter_markers("xdist_group")})
        if names and "@" not in item.nodeid and hasattr(item, "_id"):
            from _pytest.nodeid import NodeId  # pytest 9.2+: structured node ids

            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(names)}")


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


@pytest.fixture(scope="session")
def example_on_duckdb(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project built once on DuckDB for the whole run, shared by xdist's workers
    (tests/spark/reference.py): the reference the Spark builds are compared with; read only."""
    from tests.spark import reference

    return reference.example_on_duckdb(reference.shared_folder(request, tmp_path_factory))

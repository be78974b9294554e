"""One SparkSession per test process (each xdist worker starts its own JVM once)."""

from __future__ import annotations

import typing as t

import pytest

from tests.spark import session as spark_session


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[t.Any]:
    """A local[2] SparkSession: executors are separate Python worker processes."""
    session = spark_session.start(tmp_path_factory.mktemp("spark"))
    yield session
    session.stop()

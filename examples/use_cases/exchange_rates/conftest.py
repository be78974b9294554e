"""The project folder on pytest's path (tests import python.rates and service, as SQLMesh
and the benchmark do), the exchange-rate service the model calls, and ``built``: a copy of
the project planned with SQLMesh on DuckDB, so tests never write here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mixmesh.testing import planned_copy
from python.rates import URL_VARIABLE
from service import ExchangeRateService

PROJECT = Path(__file__).resolve().parent
# January 2024's intervals, all of them complete.
EXECUTION_TIME = "2024-02-01"


@pytest.fixture(scope="session")
def service():
    """The service as the issue describes it: 20 ms per answer, the first request of 2% of
    the keys answered 503, 1% of the keys always 404."""
    with ExchangeRateService(latency_ms=20, transient_rate=0.02, permanent_rate=0.01) as running:
        previous = os.environ.get(URL_VARIABLE)
        os.environ[URL_VARIABLE] = running.url
        try:
            yield running
        finally:
            if previous is None:
                os.environ.pop(URL_VARIABLE, None)
            else:
                os.environ[URL_VARIABLE] = previous


@pytest.fixture(scope="module")
def built(service, tmp_path_factory: pytest.TempPathFactory):
    """The project's SQLMesh Context after `plan` over January 2024 (its YAML test first), and
    what the service counted while it ran."""
    service.reset_counts()
    with planned_copy(PROJECT, tmp_path_factory.mktemp("project") / PROJECT.name, execution_time=EXECUTION_TIME) as context:
        yield context, service.stats()

"""``@udf(concurrency=N)`` and ``@udf(rate_limit=...)`` on Spark's executors (local[2]): each
Python worker process runs its batches' rows through its own runner and its own limiter.

The functions call a real HTTP service the test starts on 127.0.0.1 (tests/http_service.py),
which the executors, on this machine, reach as the driver does. With two worker processes
the service sees up to 2 x N requests at once, and 2 x the limit per second: a limit is per
process (README, "Functions that call services").
"""

from __future__ import annotations

import os
import typing as t

import pytest

from mixmesh import Retry, udf
from mixmesh.engines import spark as spark_engine
from mixmesh.monitor.store import DEFAULT_PATH, MetricsStore
from tests.call_site_projects import plan
from tests.http_service import HANG, HttpService, fails, value_of
from tests.spark.projects import SparkProject

pytestmark = pytest.mark.slow

WORKERS = 2  # local[2]: two tasks at once, each in its own Python worker process


def looked_up(spark: t.Any, function: t.Any, keys: t.Sequence[str], partitions: int = WORKERS) -> t.List[t.Any]:
    """``function(key)`` for each key, in the keys' order, over ``partitions`` tasks."""
    name = spark_engine.register(spark, function)
    frame = spark.createDataFrame([(i, key) for i, key in enumerate(keys)], "i BIGINT, key STRING").repartition(partitions)
    frame.createOrReplaceTempView("keys")
    # Sorted here, not by ORDER BY: Spark's sort samples its input first, which would call
    # the function a second time per row (and the service would count both).
    return [value for _, value in sorted(tuple(row) for row in spark.sql(f"SELECT i, {name}(key) FROM keys").collect())]


def lookup_function(url: str, name: str, **options: t.Any) -> t.Any:
    """A function calling the service (urllib: nothing to pickle but the address)."""

    def lookup(key: str) -> float:
        import json
        import urllib.error
        import urllib.parse
        import urllib.request

        try:
            with urllib.request.urlopen(f"{url}/value?key={urllib.parse.quote(key)}", timeout=30) as response:
                return json.load(response)["value"]
        except urllib.error.HTTPError as error:
            if error.code == 503:
                raise ConnectionError(f"the service asked to try {key!r} again") from None
            raise ValueError(f"the service has no value for {key!r} ({error.code})") from None

    lookup.__name__ = name
    return udf(name=name, **options)(lookup)


@pytest.fixture
def service() -> t.Iterator[HttpService]:
    running = HttpService(latency=0.02).start()
    yield running
    running.stop()


def test_results_with_concurrency_equal_results_without_it_on_spark(spark: t.Any) -> None:
    def mixed(a: int, b: str) -> t.Optional[str]:
        import time

        time.sleep((a % 3) / 1000)  # rows finish out of order
        return None if a % 7 == 0 else f"{b}:{a * 3}"

    async def mixed_async(a: int, b: str) -> t.Optional[str]:
        import asyncio

        await asyncio.sleep((a % 3) / 1000)
        return None if a % 7 == 0 else f"{b}:{a * 3}"

    functions = [
        udf(name="mixed_one")(mixed), udf(name="mixed_many", concurrency=8)(mixed),
        udf(name="mixed_async", concurrency=8)(mixed_async),
    ]
    calls = ", ".join(f"{spark_engine.register(spark, function)}(a, b)" for function in functions)
    rows = [(i, None if i % 11 == 0 else i * 7 - 300, None if i % 13 == 0 else f"r{i}") for i in range(500)]
    spark.createDataFrame(rows, "i BIGINT, a BIGINT, b STRING").repartition(3).createOrReplaceTempView("mixed_rows")
    found = sorted(tuple(row) for row in spark.sql(f"SELECT i, {calls} FROM mixed_rows").collect())
    expected = [None if a is None or b is None else mixed(a, b) for _, a, b in rows]
    for column in (1, 2, 3):
        assert [row[column] for row in found] == expected


def test_each_worker_process_keeps_up_to_n_calls_in_flight(spark: t.Any, service: HttpService) -> None:
    function = lookup_function(service.url, "spark_lookup", concurrency=8)
    keys = [f"k{i}" for i in range(400)]
    assert looked_up(spark, function, keys) == [value_of(key) for key in keys]
    assert service.requests == 400
    # Each worker process keeps its 8 in flight; two of them run at once at most.
    assert 8 <= service.max_in_flight <= 8 * WORKERS


def test_two_percent_transient_failures_are_retried_to_success_on_spark(spark: t.Any) -> None:
    service = HttpService(latency=0.002, transient_rate=0.02).start()
    try:
        function = lookup_function(
            service.url, "spark_flaky", concurrency=8, retry=Retry(attempts=3, backoff=[0.05], on=(ConnectionError,))
        )
        keys = [f"t{i}" for i in range(500)]
        transient = {key for key in keys if fails(key, 0.02, "transient")}
        assert transient
        assert looked_up(spark, function, keys) == [value_of(key) for key in keys]
        assert service.requests == len(keys) + len(transient)
    finally:
        service.stop()


def test_permanent_failures_get_on_error_on_spark(spark: t.Any) -> None:
    service = HttpService(latency=0.002, permanent_rate=0.01).start()
    try:
        function = lookup_function(service.url, "spark_broken", concurrency=8, on_error=None)
        keys = [f"p{i}" for i in range(400)]
        permanent = {key for key in keys if fails(key, 0.01, "permanent")}
        assert permanent
        assert looked_up(spark, function, keys) == [None if key in permanent else value_of(key) for key in keys]
    finally:
        service.stop()


def test_a_hung_row_with_a_timeout_does_not_stop_the_spark_query(spark: t.Any, service: HttpService) -> None:
    function = lookup_function(service.url, "spark_hangs", concurrency=4, timeout_s=1.0, on_error=-1.0)
    keys = [f"k{i}" for i in range(30)] + [HANG] + [f"m{i}" for i in range(30)]
    assert looked_up(spark, function, keys) == [-1.0 if key == HANG else value_of(key) for key in keys]


def test_a_rate_limit_holds_per_worker_process(spark: t.Any, service: HttpService) -> None:
    service.latency = 0.0

    def process_id(key: str) -> int:
        import os

        return os.getpid()

    pids = spark_engine.register(spark, udf(name="spark_pid")(process_id))
    function = lookup_function(service.url, "spark_paced", concurrency=4, rate_limit="20/s")
    keys = [f"r{i}" for i in range(120)]
    assert looked_up(spark, function, keys) == [value_of(key) for key in keys]
    arrivals = sorted(service.arrivals)
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    # Each of the two worker processes has its own limiter: the cluster's rate is at most 2 x 20/s.
    assert rate <= 20 * WORKERS * 1.05, rate
    workers = {row[0] for row in spark.sql(f"SELECT DISTINCT {pids}(key) FROM keys").collect()}
    assert 1 <= len(workers) <= WORKERS  # Python workers are reused across tasks (spark.python.worker.reuse)
    assert os.getpid() not in workers  # the functions ran in the executors' processes, not the driver


def test_a_concurrent_function_in_a_sqlmesh_plan_on_spark(spark_project: SparkProject, service: HttpService) -> None:
    spark_project.write(
        "macros/lookup.py",
        f'''
        import json
        import urllib.request

        from mixmesh import Retry, udf


        @udf(concurrency=8, rate_limit="200/s", retry=Retry(attempts=3, backoff=[0.01], on=(ConnectionError,)))
        def lookup(key: str) -> float:
            with urllib.request.urlopen("{service.url}/value?key=" + key, timeout=30) as response:
                return json.load(response)["value"]
        ''',
    )
    numbers = ", ".join(f"({i})" for i in range(200))
    spark_project.write(
        "models/looked_up.sql",
        "MODEL (name analytics.looked_up, kind FULL); "
        f"SELECT i, @lookup('s' || CAST(i AS VARCHAR)) AS value FROM (VALUES {numbers}) AS t(i)",
    )
    outcome = plan(spark_project)
    assert not outcome.failed, outcome.output
    rows = spark_project.fetch("SELECT i, value FROM analytics.looked_up ORDER BY i")
    assert rows == [[i, value_of(f"s{i}")] for i in range(200)]
    assert 1 < service.max_in_flight <= 8 * WORKERS
    # The executors' most calls in flight came back to the driver with their batches' figures.
    recorded = MetricsStore(spark_project.root / DEFAULT_PATH).function_runs()
    in_flight = [row.max_in_flight for row in recorded.itertuples() if row.function == "lookup"]
    assert in_flight and 1 < max(in_flight) <= 8

"""A vectorized function's failing rows are found without the search counting as failures of
the service (issue 16, defects 2 and 3): one bad row gives one NULL, wherever it sits and on
either path, and retries wait once per batch, not once per step of the search."""

from __future__ import annotations

import typing as t

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mixmesh import CircuitBreaker, Retry, udf
from mixmesh.runtime.batches import BatchFunction
from mixmesh.engines.duckdb import register

ROWS = 100_000


def failing_at(bad: t.Set[float], error: type = ValueError) -> t.Any:
    calls: t.List[int] = []

    def doubled(x: pa.Array) -> pa.Array:
        calls.append(len(x))
        if pc.any(pc.is_in(x, pa.array(sorted(bad), type=pa.float64()))).as_py():
            raise error(f"cannot score {sorted(bad)}")
        return pc.multiply(x, 2.0)

    doubled.calls = calls  # type: ignore[attr-defined]
    return doubled


@pytest.mark.parametrize("bad_row", [0, 1000, ROWS // 2, ROWS - 1])
def test_one_bad_row_gives_one_null_with_a_circuit_breaker(bad_row: int) -> None:
    function = udf(vectorized=True, circuit_breaker=CircuitBreaker(5, 60), on_error="null")(
        failing_at({float(bad_row)})
    )
    result = BatchFunction(function.spec, "analytics.m")(pa.array(range(ROWS), type=pa.float64()))
    assert result.null_count == 1 and result[bad_row].as_py() is None
    assert result[bad_row - 1 if bad_row else 1].as_py() == 2.0 * (bad_row - 1 if bad_row else 1)


def test_the_plain_binding_gives_the_same_one_null() -> None:
    function = udf(vectorized=True, circuit_breaker=CircuitBreaker(5, 60), on_error="null")(failing_at({1000.0}))
    connection = duckdb.connect()
    register(connection, function)
    nulls = connection.sql(f"SELECT count(*) FILTER (WHERE doubled(x::DOUBLE) IS NULL) FROM range({ROWS}) t(x)").fetchone()
    assert nulls == (1,)


def test_retries_wait_once_per_batch_and_the_search_after_them_does_not_wait() -> None:
    slept: t.List[float] = []
    retry = Retry(attempts=3, backoff=[1, 5], sleep=slept.append)
    inner = failing_at({7.0, 200_000.0}, error=ConnectionError)
    function = udf(vectorized=True, retry=retry, on_error="null")(inner)
    result = BatchFunction(function.spec, "analytics.m")(pa.array(range(262_144), type=pa.float64()))
    assert result.null_count == 2
    assert slept == [1, 5]  # the batch's own retries; none for the parts of the search
    # 3 calls of the batch, then the halving search: a few dozen calls, not one per row.
    assert len(inner.calls) < 3 + 4 * 19

"""``@udf(cache=...)``: results kept in the project's warehouse, shared by every run and process.

Calls are counted through a file the function appends a line to (a real side channel, read
back after each `sqlmesh` command run in a fresh process), on the fast path and on the plain
binding.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import typing as t
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixmesh.core import caching
from mixmesh.errors import FunctionDefinitionError
from mixmesh.functions import udf
from tests.projects import Project

FUNCTIONS = '''
import os
from datetime import date

from mixmesh import udf


@udf(cache={cache!r}, on_error="null")
def fx_rate(currency: str, day: date) -> float:
    with open(os.environ["FX_CALLS"], "a") as calls:
        calls.write(f"{{currency}} {{day}}\\n")
    if currency == "XXX":
        raise ValueError("no rate for XXX")
    return {rate} + len(currency) / 10 + day.day / 100
'''

SOURCE = """
MODEL (name raw.transactions, kind FULL);
SELECT * FROM (VALUES
  (1, DATE '2024-01-01', 'EUR', 10.0), (2, DATE '2024-01-01', 'EUR', 20.0), (3, DATE '2024-01-01', 'GBP', 5.0),
  (4, DATE '2024-01-02', 'EUR', 7.5), (5, DATE '2024-01-02', 'XXX', 1.0), (6, DATE '2024-01-02', NULL, 2.0),
  (7, DATE '2024-01-03', 'JPY', 300.0), (8, DATE '2024-01-03', 'GBP', 4.0)
) AS t(id, day, currency, amount)
"""

CONVERTED = """
MODEL (
  name analytics.converted,
  kind INCREMENTAL_BY_TIME_RANGE (time_column day),
  start '2024-01-01',
  end '2024-01-03',
  cron '@daily'
);
SELECT id, day, currency, amount, amount * @fx_rate(currency, day) AS amount_usd
FROM raw.transactions
WHERE day BETWEEN @start_date AND @end_date
"""

DISTINCT_CALLS = 6  # the distinct (currency, day) pairs with a currency, XXX included


def write_project(project: Project, cache: t.Any = True, rate: float = 1.0) -> None:
    project.write("macros/functions.py", FUNCTIONS.format(cache=cache, rate=rate))
    project.write("models/transactions.sql", SOURCE)
    project.write("models/converted.sql", CONVERTED)


@pytest.fixture(params=["on", "off"], ids=["fast-path", "plain-binding"])
def calls_file(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "calls.txt"
    monkeypatch.setenv("FX_CALLS", str(path))
    monkeypatch.setenv("MIXMESH_FAST_PATH", request.param)
    return path


def calls(path: Path) -> t.List[str]:
    return path.read_text().splitlines() if path.exists() else []


def converted(project: Project) -> t.List[t.Tuple[t.Any, ...]]:
    return project.query("SELECT id, amount_usd FROM analytics.converted ORDER BY id")


def expected(rate: float) -> t.List[t.Tuple[t.Any, ...]]:
    rows = [(1, 1, "EUR", 10.0), (2, 1, "EUR", 20.0), (3, 1, "GBP", 5.0), (4, 2, "EUR", 7.5), (5, 2, "XXX", 1.0),
            (6, 2, None, 2.0), (7, 3, "JPY", 300.0), (8, 3, "GBP", 4.0)]
    return [
        (id_, None if currency in (None, "XXX") else pytest.approx(amount * (rate + len(currency) / 10 + day / 100)))
        for id_, day, currency, amount in rows
    ]


RESTATE = ("plan", "--restate-model", "analytics.converted", "--auto-apply", "--no-prompts")


@pytest.mark.slow
def test_a_restatement_in_a_fresh_process_calls_the_function_only_for_what_failed(project: Project, calls_file: Path) -> None:
    write_project(project)
    project.cli("plan", "--auto-apply", "--no-prompts")
    assert len(calls(calls_file)) == DISTINCT_CALLS  # EUR on the 1st is called once for two rows
    assert converted(project) == expected(1.0)

    project.cli(*RESTATE)
    # Only XXX, whose row got on_error's NULL, is called again: failures are not kept.
    assert calls(calls_file)[DISTINCT_CALLS:] == ["XXX 2024-01-02"]
    assert converted(project) == expected(1.0)


@pytest.mark.slow
def test_editing_the_function_invalidates_its_entries(project: Project, calls_file: Path) -> None:
    write_project(project)
    project.cli("plan", "--auto-apply", "--no-prompts")
    write_project(project, rate=2.0)
    project.cli("plan", "--auto-apply", "--no-prompts")
    assert len(calls(calls_file)) == 2 * DISTINCT_CALLS
    assert converted(project) == expected(2.0)
    project.cli(*RESTATE)
    assert len(calls(calls_file)) == 2 * DISTINCT_CALLS + 1  # XXX only


@pytest.mark.slow
def test_an_expired_entry_is_a_miss_and_is_overwritten(project: Project, calls_file: Path) -> None:
    write_project(project, cache="2s")
    project.cli("plan", "--auto-apply", "--no-prompts")
    time.sleep(2.5)
    restated_at = dt.datetime.now(dt.timezone.utc)
    project.cli(*RESTATE)
    assert len(calls(calls_file)) == 2 * DISTINCT_CALLS
    (table,) = project.query("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'mixmesh_cache'")[0]
    total, distinct, rewritten, ttl = project.query(
        f"SELECT count(*), count(DISTINCT key), count(*) FILTER (WHERE cached_at >= ?), "
        f'max(expires_at - cached_at) FROM mixmesh_cache."{table}"'.replace("?", f"TIMESTAMPTZ '{restated_at.isoformat()}'")
    )[0]
    assert total == distinct == rewritten == DISTINCT_CALLS - 1  # overwritten, not added; XXX failed: not kept
    assert ttl == dt.timedelta(seconds=2)


# ------------------------------------------------------------------ declarations


def test_a_non_deterministic_function_cannot_be_cached() -> None:
    with pytest.raises(FunctionDefinitionError, match=r"@udf roll: cache= .* deterministic=False"):

        @udf(cache=True, deterministic=False)
        def roll(sides: int) -> int:
            return sides


def test_a_vectorized_function_is_called_with_its_misses_only_and_its_failing_rows_are_not_kept() -> None:
    import pyarrow.compute as pc

    from mixmesh.engines.duckdb.functions import register

    batches: t.List[t.List[int]] = []

    @udf(cache=True, vectorized=True, on_error="null")
    def tripled(x: t.Annotated[pa.Array, int]) -> t.Annotated[pa.Array, int]:
        batches.append(x.to_pylist())
        if 13 in x.to_pylist():  # a bad row: the batch is split until it stands alone
            raise ValueError("13 is unlucky")
        return pc.multiply(x, 3)

    expected = [None if x == 13 else 3 * x for x in range(20)]
    with duckdb.connect() as connection:
        register(connection, tripled)
        query = "SELECT tripled(x) FROM (SELECT range % 20 AS x FROM range(60)) ORDER BY x"

        def run() -> t.List[t.Any]:
            return [row[0] for row in connection.sql(query).fetchall()][::3]

        assert run() == expected
        assert sorted(x for batch in batches[:1] for x in batch) == list(range(20))  # each distinct value once
        batches.clear()
        assert run() == expected
        assert batches == [[13]]  # the failing row, not kept, is called again: alone


@pytest.mark.parametrize("ttl", ["7x", "0s", "-1d", 3, dt.timedelta(0)])
def test_a_time_to_live_must_be_a_positive_duration(ttl: t.Any) -> None:
    with pytest.raises(FunctionDefinitionError, match=r"@udf rate: cache= takes True, a time to live"):

        @udf(cache=ttl)
        def rate(currency: str) -> float:
            return 1.0


@pytest.mark.parametrize(
    ("given", "ttl"),
    [(True, None), ("7d", dt.timedelta(days=7)), ("12h", dt.timedelta(hours=12)), ("30min", dt.timedelta(minutes=30)),
     ("2.5s", dt.timedelta(seconds=2.5)), (dt.timedelta(hours=1), dt.timedelta(hours=1))],
)
def test_the_time_to_live_spellings(given: t.Any, ttl: t.Optional[dt.timedelta]) -> None:
    @udf(cache=given)
    def rate(currency: str) -> float:
        return 1.0

    assert rate.spec.cache == caching.CachePolicy(ttl)


def test_worker_processes_cannot_reach_the_cache() -> None:
    with pytest.raises(FunctionDefinitionError, match=r"@udf rate: parallel='processes' .* cache="):

        @udf(cache=True, parallel="processes")
        def rate(currency: str) -> float:
            return 1.0


# ------------------------------------------------------------------ keys


def _same(a: t.Any, b: t.Any) -> bool:
    """Whether two argument values are the same to a function: same kinds, same values."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (dt.datetime, dt.time)):
        return a == b and str(a.tzinfo) == str(b.tzinfo) and a.isoformat() == b.isoformat()
    return a == b and str(a) == str(b)


_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.decimals(allow_nan=False, places=2),
    st.decimals(allow_nan=False, places=3), st.text(max_size=5), st.binary(max_size=4), st.dates(),
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=8,
)


@given(st.lists(_VALUES, min_size=1, max_size=3), st.lists(_VALUES, min_size=1, max_size=3))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_two_different_argument_tuples_never_share_a_key(a: t.List[t.Any], b: t.List[t.Any]) -> None:
    same = len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    assert (caching.row_key("f", a) == caching.row_key("f", b)) == same


@pytest.mark.parametrize(
    ("a", "b"),
    [(None, float("nan")), (0.0, -0.0), (1, 1.0), (1, True), ("1", 1), ([[1], 2], [1, [2]]), ([1, 2], (1, 2)),
     ({"a": 1, "b": 2}, {"b": 2, "a": 1}), ("a,b", ["a", "b"]), (dt.date(2024, 1, 1), dt.datetime(2024, 1, 1)),
     (dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone.utc), dt.datetime(2024, 1, 1, 12)),
     (__import__("decimal").Decimal("1.10"), __import__("decimal").Decimal("1.1")), ("", None), ([], None)],
)
def test_values_that_look_alike_key_apart(a: t.Any, b: t.Any) -> None:
    assert caching.row_key("f", [a]) != caching.row_key("f", [b])


def test_the_key_depends_on_the_fingerprint() -> None:
    assert caching.row_key("f", [1]) != caching.row_key("g", [1])


# ------------------------------------------------------------------ results equal, in DuckDB


SHOWN_CALLS: t.List[t.Any] = []


def shown(x: t.Any) -> str:
    """Distinct text for distinct values: a result served under the wrong key shows."""
    SHOWN_CALLS.append(x)
    return repr(x)


SHOWN_CACHED = udf(name="shown_cached", cache=True, null_handling="call")(shown)
SHOWN_PLAIN = udf(name="shown_plain", null_handling="call")(shown)


def shown_batch(x: pa.Array) -> t.Annotated[pa.Array, str]:
    return pa.array([repr(value) for value in x.to_pylist()], pa.string())


SHOWN_BATCH_CACHED = udf(name="shown_batch_cached", cache=True, vectorized=True, null_handling="call")(shown_batch)
SHOWN_BATCH_PLAIN = udf(name="shown_batch_plain", vectorized=True, null_handling="call")(shown_batch)

_TYPED_VALUES = {
    "DOUBLE": (pa.float64(), st.floats(allow_nan=True, allow_infinity=True)),
    "DECIMAL(10, 2)": (pa.decimal128(10, 2), st.decimals(min_value=-10**7, max_value=10**7, places=2, allow_nan=False)),
    "TIMESTAMPTZ": (pa.timestamp("us", tz="UTC"), st.datetimes(
        min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.timezone.utc))),
    "STRUCT(a DOUBLE, b VARCHAR)[]": (
        pa.list_(pa.struct([("a", pa.float64()), ("b", pa.string())])),
        st.lists(st.fixed_dictionaries({"a": st.none() | st.floats(), "b": st.none() | st.text(max_size=3)}), max_size=3),
    ),
    "MAP(VARCHAR, INTEGER)": (
        pa.map_(pa.string(), pa.int32()),
        st.dictionaries(st.text(max_size=2), st.none() | st.integers(-(2**31), 2**31 - 1), max_size=3).map(
            lambda d: list(d.items())),
    ),
}


@pytest.mark.parametrize("sql_type", list(_TYPED_VALUES))
def test_results_with_the_cache_equal_results_without_it(sql_type: str) -> None:
    from mixmesh.engines.duckdb.functions import register

    arrow_type, values = _TYPED_VALUES[sql_type]

    @given(st.lists(st.none() | values, min_size=1, max_size=40))
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def check(rows: t.List[t.Any]) -> None:
        with duckdb.connect() as connection:
            register(connection, SHOWN_CACHED, args={"x": sql_type})
            register(connection, SHOWN_PLAIN, args={"x": sql_type})
            register(connection, SHOWN_BATCH_CACHED, args={"x": sql_type})
            register(connection, SHOWN_BATCH_PLAIN, args={"x": sql_type})
            connection.register("input", pa.table({"i": range(len(rows)), "x": pa.array(rows, arrow_type)}))
            query = "SELECT i, shown_cached(x), shown_plain(x), shown_batch_cached(x), shown_batch_plain(x) FROM input ORDER BY i"
            first = connection.sql(query).fetchall()
            SHOWN_CALLS.clear()
            second = connection.sql(query).fetchall()
            assert [row[1] for row in first] == [row[2] for row in first] == [row[1] for row in second]
            assert [row[3] for row in first] == [row[4] for row in first] == [row[3] for row in second]
            assert len(SHOWN_CALLS) == len(rows)  # the plain function's calls: the cached one made none

    check()


# ------------------------------------------------------------------ Spark


@pytest.mark.slow
def test_on_spark_a_cached_function_is_called_for_every_row_and_says_so(
    spark: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    from mixmesh.engines import spark as spark_engine

    @udf(cache=True)
    def spark_label(x: int) -> str:
        return f"#{x}"

    with caplog.at_level("WARNING", logger="mixmesh.runtime.cache"):
        name = spark_engine.register(spark, spark_label)
    assert "spark_label" in caplog.text and "Spark's executors do not reach the warehouse" in caplog.text
    result = [tuple(row) for row in spark.sql(f"SELECT id, {name}(id) FROM range(3) ORDER BY id").collect()]
    assert result == [(0, "#0"), (1, "#1"), (2, "#2")]


# ------------------------------------------------------------------ one process, one connection


def test_cleared_entries_are_called_and_kept_again_in_the_same_process() -> None:
    from mixmesh.engines.duckdb.functions import register
    from mixmesh.runtime.cache import Warehouse

    called: t.List[int] = []

    @udf(cache=True)
    def squared(x: int) -> int:
        called.append(x)
        return x * x

    with duckdb.connect() as connection:
        connection.execute("SET threads = 1")  # vectors one after another: the 2nd reads what the 1st kept
        register(connection, squared)
        query = "SELECT sum(squared(range % 7)) FROM range(5000)"
        runs = []
        for clear in (False, False, True, False):
            if clear:
                assert Warehouse(connection).clear("squared") == 7
            before = len(called)
            runs.append((connection.sql(query).fetchone()[0], len(called) - before))
    total = sum((i % 7) ** 2 for i in range(5000))
    assert runs == [(total, 7), (total, 0), (total, 7), (total, 0)]
    assert squared(3) == 9  # called from Python, it is the plain function


@pytest.mark.parametrize(
    ("returns", "result"),
    [
        ("STRUCT(rate DOUBLE, source VARCHAR)", lambda x: {"rate": x / 2, "source": f"s{x}"}),
        ("DOUBLE[]", lambda x: [float(x), float("nan")]),
        ("DECIMAL(12, 3)", lambda x: __import__("decimal").Decimal(x) / 8),
        ("TIMESTAMPTZ", lambda x: dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(hours=x)),
        ("MAP(VARCHAR, INTEGER)", lambda x: {"a": x, "b": None}),
    ],
)
def test_every_kind_of_result_is_kept_typed_and_read_back_the_same(returns: str, result: t.Callable[[int], t.Any]) -> None:
    from mixmesh.engines.duckdb.functions import register

    called: t.List[int] = []

    def compute(x: int) -> t.Any:
        called.append(x)
        return result(x)

    cached = udf(name="kept_result", returns=returns, cache=True)(compute)
    plain = udf(name="fresh_result", returns=returns)(compute)
    with duckdb.connect() as connection:
        register(connection, cached)
        register(connection, plain)
        query = "SELECT kept_result(range % 5)::VARCHAR, fresh_result(range % 5)::VARCHAR FROM range(12) ORDER BY range"
        first = connection.sql(query).fetchall()
        called.clear()
        second = connection.sql(query).fetchall()
        assert len(called) == 12  # the plain function's calls only
        assert [row[0] for row in first] == [row[1] for row in first] == [row[0] for row in second]
        (column_type,) = connection.sql(
            "SELECT data_type FROM duckdb_columns() WHERE schema_name = 'mixmesh_cache' AND column_name = 'value'"
        ).fetchone()
        assert column_type == connection.sql(f"SELECT typeof(NULL::{returns})").fetchone()[0]

"""The fast path: how statements are split, and that SQLMesh's plan and run take it.

Equality with the plain binding over many query shapes is in test_fast_path_differential.
"""

from __future__ import annotations

import os
import typing as t

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlglot
from sqlglot import exp

from mixmesh import engines, udf
from mixmesh import fastpath
from mixmesh.fastpath import hoisting
import mixmesh.sqlmesh as sqlmesh_integration
from mixmesh.core.names import binding_name
from mixmesh.core.errors import FunctionDefinitionError, FunctionRuntimeError
from mixmesh.monitor.store import DEFAULT_PATH, MetricsStore
from tests.projects import Project

F = "f__0123456789"
DOUBLE = exp.DataType.build("DOUBLE")


def split(sql: str) -> hoisting.Split:
    planned = hoisting.plan(sqlglot.parse_one(sql, read="duckdb"), {F: [DOUBLE]}, "stream")
    assert isinstance(planned, hoisting.Split), planned
    return planned


def declined(sql: str) -> str:
    planned = hoisting.plan(sqlglot.parse_one(sql, read="duckdb"), {F: [DOUBLE]}, "stream")
    assert isinstance(planned, hoisting.Declined), planned.statement_sql("duckdb", {})
    return planned.reason


# --- the split ---------------------------------------------------------------------------


def test_the_seed_shape_streams_the_cte_holding_the_call() -> None:
    """An aggregate CTE, the call in the next CTE, SQLMesh's own wrapper around the query."""
    planned = split(
        "INSERT INTO target (k, d, score) "
        "WITH agg AS (SELECT t.k AS k, t.d AS d, ARRAY_AGG(t.v) AS vs, SUM(t.v) AS total FROM t GROUP BY t.k, t.d), "
        "scored AS (SELECT agg.k AS k, agg.d AS d, agg.vs AS vs, CAST(f__0123456789(agg.total) AS DOUBLE) AS score FROM agg) "
        "SELECT k, d, score FROM (SELECT scored.k AS k, scored.d AS d, scored.score AS score FROM scored "
        "WHERE NOT scored.score IS NULL) AS _subquery WHERE d BETWEEN 1 AND 2"
    )
    inner = planned.inner.sql("duckdb")
    assert inner.startswith('WITH agg AS (SELECT t.k AS k')  # the CTE it reads, and only that
    streamed = [projection.alias for projection in planned.inner.expressions]
    assert streamed == ["__mixmesh_c0", "__mixmesh_c1", "__mixmesh_a0"]  # a list nobody reads stays behind
    assert [projection.this.sql() for projection in planned.inner.expressions[:2]] == ["agg.k", "agg.d"]
    assert "scored" not in inner
    outer = planned.statement_sql("duckdb", {})
    assert "agg" not in outer  # computed by the stream now
    assert '"__mixmesh_stage"."__mixmesh_r0"' in outer and "f__0123456789" not in outer.lower()
    assert [call.arguments for call in planned.calls] == [("__mixmesh_a0",)]


def test_the_same_call_twice_is_computed_once_and_other_arguments_apart() -> None:
    planned = split("SELECT f__0123456789(t.x) + 1 AS a, f__0123456789(t.x) AS b, f__0123456789(t.y) AS c FROM t")
    assert len(planned.calls) == 2


def test_a_cte_read_twice_is_materialized_so_the_stream_is_read_once() -> None:
    planned = split(
        "WITH s AS (SELECT t.k AS k, f__0123456789(t.x) AS y FROM t) SELECT a.k, b.y FROM s AS a JOIN s AS b ON a.k = b.k"
    )
    assert "AS MATERIALIZED" in planned.statement_sql("duckdb", {})


@pytest.mark.parametrize(
    "sql, reason",
    [
        ("SELECT CASE WHEN t.x > 0 THEN f__0123456789(t.x) END FROM t", "conditional"),
        ("SELECT COALESCE(t.y, f__0123456789(t.x)) FROM t", "conditional"),
        ("SELECT COUNT(*) FILTER (WHERE f__0123456789(t.x) > 0) FROM t", "conditional"),
        ("SELECT f__0123456789(SUM(t.x)) FROM t", "reads more than its row"),
        ("SELECT (SELECT f__0123456789(u.x) FROM u WHERE u.k = t.k) FROM t", "correlated"),
        ("SELECT *, f__0123456789(t.x) FROM t", "projects *"),
        ("SELECT t.k AS x, f__0123456789(t.x) AS y FROM t ORDER BY x", "alias"),
        ("CREATE VIEW v AS SELECT f__0123456789(t.x) FROM t", "not a query"),
    ],
)
def test_where_the_split_would_not_be_exact_it_declines(sql: str, reason: str) -> None:
    assert reason in declined(sql)


# --- through SQLMesh ---------------------------------------------------------------------

FUNCTIONS = '''
import os
import typing as t

import pyarrow as pa
import pyarrow.compute as pc

from mixmesh import udf


@udf(vectorized=True)
def doubled(x: pa.Array) -> pa.Array:
    return pc.multiply(x, 2.0)


@udf
def bucket(x: float) -> str:
    return "high" if x > 2500 else "low"


@udf(parallel="processes")
def worker(x: float) -> int:
    return os.getpid()
'''

MODEL = """
MODEL (name analytics.scored, kind FULL);
SELECT x, @doubled(x) AS twice, @bucket(x) AS level FROM (SELECT range::DOUBLE AS x FROM range(5000))
"""


@pytest.fixture
def scored(project: Project) -> Project:
    project.write("macros/functions.py", FUNCTIONS)
    project.write("models/scored.sql", MODEL)
    return project


def test_plan_takes_the_fast_path_and_a_fresh_run_too(scored: Project) -> None:
    fastpath.decisions.clear()
    scored.plan()
    staged = [decision for decision in fastpath.decisions if decision.staged]
    assert any(decision.functions == ("bucket", "doubled") for decision in staged), list(fastpath.decisions)
    assert scored.query("SELECT count(*), sum(twice), count(*) FILTER (WHERE level = 'high') FROM analytics.scored") == [
        (5000, 2 * sum(range(5000)), 2499)
    ]
    # A fresh process: one batch per function, where the plain binding hands over 2,048 rows at a time.
    scored.write("models/scored.sql", MODEL.replace("range(5000)", "range(6000)"))
    scored.cli("plan", "--auto-apply", "--no-prompts")
    functions = MetricsStore(scored.root / DEFAULT_PATH).function_runs()
    latest = functions[functions.rows == 6000]
    assert set(latest.function) == {"doubled", "bucket"} and set(latest.calls) == {1}


def test_statements_keep_the_plain_binding_when_switched_off(scored: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIXMESH_FAST_PATH", "off")
    fastpath.decisions.clear()
    scored.plan()
    assert fastpath.decisions and not any(decision.staged for decision in fastpath.decisions)
    assert scored.query("SELECT sum(twice) FROM analytics.scored") == [(2 * sum(range(5000)),)]


# --- worker processes --------------------------------------------------------------------


@pytest.fixture
def adapter() -> "t.Any":
    from sqlmesh.core.engine_adapter import DuckDBEngineAdapter

    sqlmesh_integration.install()
    connection = duckdb.connect()
    connection.execute("CREATE TABLE t AS SELECT range::DOUBLE AS x FROM range(100000)")
    yield DuckDBEngineAdapter(lambda: connection)
    connection.close()


def bound(adapter: "t.Any", function: "t.Any") -> str:
    name = binding_name(function.spec, "analytics.m")
    engines.register_call(function.spec, "analytics.m", name)
    return name


def test_functions_declared_for_processes_run_in_worker_processes(adapter: "t.Any", monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastpath.BatchComputer, "batch_rows", 10_000)

    @udf(parallel="processes")
    def worker_pid(x: float) -> int:
        return os.getpid()

    @udf(parallel="processes")
    def squared(x: float) -> float:
        return x * x

    pid, square = bound(adapter, worker_pid), bound(adapter, squared)
    pids = adapter.fetchall(f"SELECT DISTINCT {pid}(x) FROM t")
    assert fastpath.decisions[-1].staged
    assert pids and os.getpid() not in {row[0] for row in pids}
    assert adapter.fetchall(f"SELECT sum({square}(x)) FROM t") == [(float(sum(i * i for i in range(100000))),)]


def test_an_error_in_a_worker_names_the_function_and_the_model(adapter: "t.Any") -> None:
    @udf(parallel="processes")
    def brittle(x: float) -> float:
        if x == 777:
            raise ValueError("no sevens")
        return x

    name = bound(adapter, brittle)
    with pytest.raises(FunctionRuntimeError, match=r"function 'brittle' in model analytics.m raised ValueError: no sevens.*x=777"):
        adapter.fetchall(f"SELECT sum({name}(x)) FROM t")


def test_processes_do_not_go_with_policies_that_keep_state() -> None:
    with pytest.raises(FunctionDefinitionError, match="parallel='processes'.*on_error"):

        @udf(parallel="processes", on_error="null")
        def careful(x: float) -> float:
            return x


def test_a_non_deterministic_function_is_called_for_each_occurrence(adapter: "t.Any") -> None:
    import random

    @udf(deterministic=False)
    def noisy(x: float) -> float:
        return x + random.random()

    name = bound(adapter, noisy)
    rows = adapter.fetchall(f"SELECT {name}(x) AS a, {name}(x) AS b FROM t")
    assert len(rows) == 100000 and all(a != b for a, b in rows)  # never computed once for both
    assert not fastpath.decisions[-1].staged


def test_a_row_function_gets_maps_as_dicts_on_both_paths(adapter: "t.Any", monkeypatch: pytest.MonkeyPatch) -> None:
    @udf
    def total(m: dict[str, int]) -> int:
        return sum(m.values())

    name = bound(adapter, total)
    sql = f"SELECT sum({name}(MAP {{'a': 1, 'b': x::INT}})) FROM t"
    monkeypatch.setenv("MIXMESH_FAST_PATH", "off")
    plain = adapter.fetchall(sql)
    monkeypatch.setenv("MIXMESH_FAST_PATH", "on")
    assert adapter.fetchall(sql) == plain == [(100000 + sum(range(100000)),)]
    assert fastpath.decisions[-1].staged


@pytest.mark.parametrize("threads", ["abc", "1.5", "0", "-2"])
def test_a_thread_count_that_is_not_one_fails_naming_the_variable(
    adapter: "t.Any", monkeypatch: pytest.MonkeyPatch, threads: str
) -> None:
    @udf
    def halved(x: float) -> float:
        return x / 2

    name = bound(adapter, halved)
    adapter.execute("CREATE TABLE kept AS SELECT 1.0 AS y")
    monkeypatch.setenv(fastpath.VARIABLE, "on")  # a row function over scalars: plain by default
    monkeypatch.setenv(fastpath.THREADS_VARIABLE, threads)
    with pytest.raises(fastpath.FastPathSettingError) as raised:
        adapter.execute(f"INSERT INTO kept SELECT {name}(x) FROM t")
    assert str(raised.value) == (
        "MIXMESH_FAST_PATH_THREADS must be a whole number of threads, at least 1 (or unset: as many as the engine "
        f"runs); got {threads!r}"
    )
    assert adapter.fetchall("SELECT y FROM kept") == [(1.0,)]  # nothing was inserted
    monkeypatch.setenv(fastpath.THREADS_VARIABLE, "1")
    adapter.execute(f"INSERT INTO kept SELECT {name}(x) FROM t WHERE x < 2")
    assert adapter.fetchall("SELECT y FROM kept ORDER BY y") == [(0.0,), (0.5,), (1.0,)]
    assert fastpath.decisions[-1].staged


@pytest.mark.parametrize("setting", ["fast", "auot", "2", "enabled"])
def test_an_unknown_fast_path_setting_fails_naming_the_variable_and_the_accepted_values(
    adapter: "t.Any", monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    @udf
    def thirded(x: float) -> float:
        return x / 3

    name = bound(adapter, thirded)
    adapter.execute("CREATE TABLE kept_too AS SELECT 1.0 AS y")
    monkeypatch.setenv(fastpath.VARIABLE, setting)
    with pytest.raises(fastpath.FastPathSettingError) as raised:
        adapter.execute(f"INSERT INTO kept_too SELECT {name}(x) FROM t")
    assert str(raised.value) == (
        f"MIXMESH_FAST_PATH must be auto (the default), on or off (also 1, true, yes / 0, false, no); got {setting!r}"
    )
    assert adapter.fetchall("SELECT y FROM kept_too") == [(1.0,)]  # nothing was inserted


@pytest.mark.parametrize("setting, staged", [(" ON ", True), ("Off", False), ("", True), ("auto", True)])
def test_the_accepted_fast_path_settings_in_any_case(
    adapter: "t.Any", monkeypatch: pytest.MonkeyPatch, setting: str, staged: bool
) -> None:
    @udf(vectorized=True)
    def quartered(x: pa.Array) -> pa.Array:
        return pc.divide(x, 4.0)

    name = bound(adapter, quartered)
    monkeypatch.setenv(fastpath.VARIABLE, setting)
    assert adapter.fetchall(f"SELECT sum({name}(x)) FROM t") == [(sum(range(100000)) / 4,)]
    assert fastpath.decisions[-1].staged is staged


def test_row_functions_compute_on_one_thread_and_vectorized_ones_on_the_engines(adapter: "t.Any") -> None:
    """A row function holds the GIL: a second computing thread would only contend for it."""

    @udf
    def plus_one(x: float) -> float:
        return x + 1

    @udf(vectorized=True)
    def minus_one(x: pa.Array) -> pa.Array:
        return pc.subtract(x, 1.0)

    def computer(*functions: "t.Any") -> fastpath.BatchComputer:
        calls = [(hoisting.HoistedCall(f.spec.name, ("a",), f"r{i}"), engines.batch_function(engines.Binding(f.spec, None)))
                 for i, f in enumerate(functions)]
        return fastpath.BatchComputer(calls)

    assert computer(plus_one).stream(iter(()), engine_threads=2)._threads == 1
    assert computer(minus_one).stream(iter(()), engine_threads=2)._threads == 2
    assert computer(plus_one, minus_one).stream(iter(()), engine_threads=2)._threads == 2

"""Row functions with ``timeout_s`` (issue 16, defect 5's cost) and functions that stop the
process (defect 8's sys.exit and KeyboardInterrupt).

A row function with a timeout runs a batch's rows in one worker thread, watched by the
caller, on both paths: the plain binding (DuckDB hands the batch to an Arrow function) and
the fast path. Each row still has its own timeout: a hung row gets its on_error value (or
fails naming the row), a slow batch of quick rows times out nowhere, retries and the
circuit breaker see a hung row's attempt as they would any failed attempt, and a row given
up is never computed twice.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
import typing as t

import duckdb
import pyarrow as pa
import pytest
from sqlmesh.core.engine_adapter import DuckDBEngineAdapter

from mixmesh import engines, udf
import mixmesh.sqlmesh as sqlmesh_integration
from mixmesh.core.names import binding_name
from mixmesh.engines.duckdb import register
from mixmesh.core.resilience import CircuitBreaker, Retry, events, reset_events
from tests.call_site_projects import fast_path

MODEL = "tests.row_timeouts"
HUNG = 3.0
release = threading.Event()  # set at the end: the hung calls of this module return then


@pytest.fixture(autouse=True)
def fresh_counts() -> t.Iterator[None]:
    reset_events()
    yield
    reset_events()


def teardown_module() -> None:
    release.set()


@dataclasses.dataclass
class Paths:
    """One function, called on the plain binding or on the fast path (SQLMesh's adapter)."""

    function: t.Any
    model: t.Optional[str] = None

    def values(self, path: str, rows: int = 8) -> t.List[t.Any]:
        if path == "plain":
            connection = duckdb.connect()
            name = register(connection, self.function)
            sql = f"SELECT list({name}(i::DOUBLE) ORDER BY i) FROM range({rows}) AS t(i)"
            return connection.sql(sql).fetchone()[0]
        connection = duckdb.connect()
        sqlmesh_integration.install()
        name = binding_name(self.function.spec, MODEL)
        engines.register_call(self.function.spec, MODEL, name)
        adapter = DuckDBEngineAdapter(lambda: connection)
        sql = f"SELECT i, CAST({name}(i::DOUBLE) AS DOUBLE) AS v FROM range({rows}) AS t(i)"
        with fast_path("on"):
            rows_out = adapter.fetchall(sql)
        adapter.close()
        self.model = MODEL
        return [v for _, v in sorted(rows_out)]

    def count(self, event: str) -> int:
        return sum(n for (model, function, kind), n in events().items() if function == self.function.spec.name and kind == event)


PATHS = ["plain", "fast"]


@pytest.mark.parametrize("path", PATHS)
def test_a_hung_row_gets_its_on_error_value_and_the_others_theirs(path: str) -> None:
    calls: t.Counter[float] = collections.Counter()

    @udf(name="hangs_once", timeout_s=0.3, on_error=-1.0)
    def hangs_once(x: float) -> float:
        calls[x] += 1
        if x == HUNG:
            release.wait()
        return x * 2

    paths = Paths(hangs_once)
    started = time.monotonic()
    assert paths.values(path) == [0.0, 2.0, 4.0, -1.0, 8.0, 10.0, 12.0, 14.0]
    assert time.monotonic() - started < 10
    assert paths.count("timeouts") == 1 and paths.count("fallbacks") == 1
    assert all(n == 1 for n in calls.values()) and len(calls) == 8  # no row computed twice


@pytest.mark.parametrize("path", PATHS)
def test_a_hung_row_without_on_error_fails_naming_the_function_and_the_row(path: str) -> None:
    @udf(name="hangs_raise", timeout_s=0.3)
    def hangs_raise(x: float) -> float:
        if x == HUNG:
            release.wait()
        return x * 2

    with pytest.raises(Exception) as raised:
        Paths(hangs_raise).values(path)
    message = str(raised.value)
    assert "'hangs_raise'" in message and "gave no answer within 0.3 s" in message and "x=3.0" in message


@pytest.mark.parametrize("path", PATHS)
def test_the_timeout_is_per_row_not_per_batch(path: str) -> None:
    @udf(name="slowish", timeout_s=0.25, on_error=-1.0)
    def slowish(x: float) -> float:
        time.sleep(0.05)  # 16 rows: 0.8 s in all, each far below the timeout
        return x * 2

    assert Paths(slowish).values(path, rows=16) == [x * 2.0 for x in range(16)]
    assert Paths(slowish).count("timeouts") == 0


@pytest.mark.parametrize("path", PATHS)
def test_a_retry_runs_a_hung_rows_attempt_again(path: str) -> None:
    attempts: t.Counter[float] = collections.Counter()
    waits: t.List[float] = []

    @udf(name="hangs_first", timeout_s=0.3, retry=Retry(attempts=2, backoff=[0.5], sleep=waits.append), on_error=-1.0)
    def hangs_first(x: float) -> float:
        attempts[x] += 1
        if x == HUNG and attempts[x] == 1:
            release.wait()  # the first attempt hangs, the second answers
        return x * 2

    paths = Paths(hangs_first)
    assert paths.values(path) == [x * 2.0 for x in range(8)]
    assert attempts[HUNG] == 2 and waits == [0.5]
    assert paths.count("timeouts") == 1 and paths.count("retries") == 1 and paths.count("fallbacks") == 0


@pytest.mark.parametrize("path", PATHS)
def test_hung_rows_count_as_breaker_failures(path: str) -> None:
    reached: t.List[float] = []

    @udf(name="hangs_often", timeout_s=0.2, circuit_breaker=CircuitBreaker(fail_max=2, reset_timeout=600), on_error=-1.0)
    def hangs_often(x: float) -> float:
        reached.append(x)
        if x >= 2:
            release.wait()
        return x * 2

    paths = Paths(hangs_often)
    assert paths.values(path, rows=6) == [0.0, 2.0, -1.0, -1.0, -1.0, -1.0]
    assert reached == [0.0, 1.0, 2.0, 3.0]  # two timeouts opened the circuit: rows 4 and 5 never called
    assert paths.count("timeouts") == 2 and paths.count("breaker_transitions") == 1


def test_a_breaker_never_queues_calls_behind_a_slow_one() -> None:
    breaker = CircuitBreaker(fail_max=3, reset_timeout=60)
    entered = threading.Event()
    protected = breaker.protect(lambda wait: entered.set() or release.wait(wait), function="slow", model=None)
    threading.Thread(target=protected, args=(30,), daemon=True).start()
    assert entered.wait(5)
    started = time.monotonic()
    assert protected(0) is False  # the second call does not wait for the first
    assert time.monotonic() - started < 1


# --- sys.exit and KeyboardInterrupt inside a function -------------------------------------


def stopping(kind: str, **options: t.Any) -> t.Any:
    @udf(name=f"stops_{kind}", **options)
    def stops(x: float) -> float:
        if x == HUNG:
            if kind == "exit":
                raise SystemExit(3)
            raise KeyboardInterrupt
        return x * 2

    return stops


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "options",
    [{}, {"on_error": "null"}, {"timeout_s": 5, "on_error": "null"}, {"retry": Retry(sleep=lambda s: None)}],
    ids=["plain", "on_error", "timeout", "retry"],
)
@pytest.mark.parametrize("kind", ["exit", "interrupt"])
def test_a_function_that_stops_the_process_fails_naming_the_row(kind: str, options: t.Dict[str, t.Any], path: str) -> None:
    with pytest.raises(Exception) as raised:
        Paths(stopping(kind, **options)).values(path)
    message = str(raised.value)
    assert f"'stops_{kind}'" in message and "x=3.0" in message
    expected = "called sys.exit(3), which a function may not do" if kind == "exit" else "was interrupted (KeyboardInterrupt)"
    assert expected in message


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", ["exit", "interrupt"])
def test_a_vectorized_function_that_stops_the_process_fails_naming_the_batch(kind: str, path: str) -> None:
    @udf(name=f"stops_batch_{kind}", vectorized=True, on_error="null")
    def stops_batch(x: pa.Array) -> pa.Array:
        if kind == "exit":
            raise SystemExit(3)
        raise KeyboardInterrupt

    with pytest.raises(Exception) as raised:
        Paths(stops_batch).values(path)
    message = str(raised.value)
    assert f"'stops_batch_{kind}'" in message and "on a batch of 8 rows" in message and "x=0.0" in message


def test_a_row_function_with_a_timeout_and_several_arguments_binds_on_the_plain_binding() -> None:
    """Bound per batch (for the timeout), it declares one parameter per argument: DuckDB
    counts a *columns signature as one and refused a call with two or three."""

    @udf(timeout_s=5.0)
    def weighted(x: float, weight: float, label: str) -> str:
        return f"{label}:{x * weight:g}"

    connection = duckdb.connect()
    name = register(connection, weighted)
    assert connection.sql(f"SELECT {name}(i::DOUBLE, 2.0, 'w') FROM range(3) t(i) ORDER BY i").fetchall() == [
        ("w:0",), ("w:2",), ("w:4",)
    ]

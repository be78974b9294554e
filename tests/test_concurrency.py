"""``@udf(concurrency=N)``: up to N row calls in flight per process (issue 20, part 1), on
DuckDB's plain binding (per vector), on the fast path (per batch) and through a SQLMesh
plan; a plain function on a thread pool, an ``async def`` one on an event loop.

The calls go to a real HTTP service on 127.0.0.1 (tests/http_service.py) with latency and
failures decided by the key, so a test knows which rows fail; where no service is needed,
plain functions sleep.
"""

from __future__ import annotations

import asyncio
import collections
import json
import subprocess
import sys
import textwrap
import threading
import time
import typing as t
from pathlib import Path

import duckdb
import httpx
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmesh.core.engine_adapter import DuckDBEngineAdapter

import mixmesh.sqlmesh as sqlmesh_integration
from mixmesh import CircuitBreaker, Retry, engines, udf
from mixmesh.core.errors import FunctionDefinitionError
from mixmesh.core.names import binding_name
from mixmesh.core.resilience import events, reset_events
from mixmesh.engines.duckdb import register
from mixmesh.monitor.store import DEFAULT_PATH, MetricsStore
from mixmesh.runtime import concurrency
from tests.call_site_projects import fast_path
from tests.http_service import HANG, HttpService, fails, value_of
from tests.readme_blocks import named

MODEL = "tests.concurrency"
PATHS = ["plain", "fast"]
release = threading.Event()  # set at the end: hung calls of this module return then


@pytest.fixture(autouse=True)
def fresh_counts() -> t.Iterator[None]:
    reset_events()
    yield
    reset_events()


def teardown_module() -> None:
    release.set()


@pytest.fixture
def service() -> t.Iterator[HttpService]:
    running = HttpService(latency=0.02).start()
    yield running
    running.stop()


def keyed(function: t.Any, keys: t.Sequence[t.Optional[str]], path: str) -> t.List[t.Any]:
    """``function(key)`` for each key, in the keys' order, on the plain binding (DuckDB hands
    it vectors) or on the fast path (the adapter's statement, batches of the whole column)."""
    connection = duckdb.connect()
    connection.register("staged", pa.table({"i": list(range(len(keys))), "key": pa.array(keys, pa.string())}))
    connection.execute("CREATE TABLE input AS SELECT * FROM staged")  # seen by the adapter's cursors too
    if path == "plain":
        name = register(connection, function)
        return [row[0] for row in connection.sql(f"SELECT {name}(key) FROM input ORDER BY i").fetchall()]
    sqlmesh_integration.install()
    name = binding_name(function.spec, MODEL)
    engines.register_call(function.spec, MODEL, name)
    adapter = DuckDBEngineAdapter(lambda: connection)
    returns = function.spec.returns.sql("duckdb")
    with fast_path("on"):
        rows = adapter.fetchall(f"SELECT i, CAST({name}(key) AS {returns}) FROM input")
    adapter.close()
    return [value for _, value in sorted(rows)]


def count(function: t.Any, event: str) -> int:
    return sum(n for (_, name, kind), n in events().items() if name == function.spec.name and kind == event)


def peak_in_flight(function: t.Any) -> int:
    return concurrency.runner_of(function.spec).in_flight.peak


def fetch(service: HttpService, key: str, client: httpx.Client) -> float:
    """The service's value for ``key``: a 503 is a ConnectionError (worth a retry), another
    failure a ValueError (not)."""
    response = client.get(f"{service.url}/value", params={"key": key})
    if response.status_code == 503:
        raise ConnectionError(f"the service asked to try {key!r} again")
    if response.status_code != 200:
        raise ValueError(f"the service has no value for {key!r} ({response.status_code})")
    return response.json()["value"]


def service_function(service: HttpService, name: str, **policies: t.Any) -> t.Any:
    client = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=200))

    def lookup(key: str) -> float:
        return fetch(service, key, client)

    lookup.__name__ = name
    return udf(name=name, **policies)(lookup)


def async_service_function(service: HttpService, name: str, **policies: t.Any) -> t.Any:
    client = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200))

    async def lookup(key: str) -> float:
        response = await client.get(f"{service.url}/value", params={"key": key})
        if response.status_code == 503:
            raise ConnectionError(f"the service asked to try {key!r} again")
        if response.status_code != 200:
            raise ValueError(f"the service has no value for {key!r} ({response.status_code})")
        return response.json()["value"]

    lookup.__name__ = name
    return udf(name=name, **policies)(lookup)


KINDS = {"threads": service_function, "async": async_service_function}


# --- the same results ---------------------------------------------------------------------


def combine(a: int, b: str) -> t.Optional[str]:
    time.sleep((a % 3) / 2000)  # rows finish out of order
    return None if a % 7 == 0 else f"{b}:{a * 3}"


async def combine_async(a: int, b: str) -> t.Optional[str]:
    await asyncio.sleep((a % 3) / 2000)
    return None if a % 7 == 0 else f"{b}:{a * 3}"


VARIANTS = {
    "one_at_a_time": udf(name="combine_one")(combine),
    "eight_threads": udf(name="combine_threads", concurrency=8)(combine),
    "eight_coroutines": udf(name="combine_async", concurrency=8)(combine_async),
    "one_coroutine": udf(name="combine_async_one")(combine_async),
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.one_of(st.none(), st.integers(-(2**40), 2**40)), st.one_of(st.none(), st.text(max_size=8))),
        max_size=300,
    )
)
def test_results_with_concurrency_equal_results_without_it(rows: t.List[t.Tuple[t.Optional[int], t.Optional[str]]]) -> None:
    connection = duckdb.connect()
    connection.register(
        "input",
        pa.table({"i": list(range(len(rows))), "a": pa.array([a for a, _ in rows], pa.int64()),
                  "b": pa.array([b for _, b in rows], pa.string())}),
    )
    results = {}
    for variant, function in VARIANTS.items():
        name = register(connection, function)
        results[variant] = connection.sql(f"SELECT {name}(a, b) FROM input ORDER BY i").fetchall()
    expected = [(None if a is None or b is None else combine(a, b),) for a, b in rows]
    assert all(found == expected for found in results.values()), results


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", ["threads", "async"])
def test_calls_in_flight_reach_the_limit_and_never_pass_it(service: HttpService, path: str, kind: str) -> None:
    service.latency = 0.1  # long enough for all 16 to overlap at the service on a busy machine
    function = KINDS[kind](service, f"lookup_{kind}_{path}", concurrency=16)
    keys = [f"k{i}" for i in range(240)]
    assert keyed(function, keys, path) == [value_of(key) for key in keys]
    # The service saw exactly N requests at once, never more (a measurement of behaviour, not
    # of speed: the speed-up is the benchmark's, on idle cores).
    assert service.max_in_flight == 16
    assert peak_in_flight(function) == 16
    assert service.requests == 240


@pytest.mark.parametrize("path", PATHS)
def test_two_percent_transient_failures_are_retried_to_success(path: str) -> None:
    keys = [f"t{i}" for i in range(500)]
    transient = [key for key in keys if fails(key, 0.02, "transient")]
    assert 3 <= len(transient) <= 25  # about 2% of the keys
    retried = {}
    for concurrency_ in (1, 16):
        service = HttpService(latency=0.002, transient_rate=0.02).start()
        try:
            function = service_function(
                service, f"flaky_{concurrency_}_{path}", concurrency=concurrency_,
                retry=Retry(attempts=3, backoff=[0.05], on=(ConnectionError,)),
            )
            assert keyed(function, keys, path) == [value_of(key) for key in keys]
            assert service.requests == len(keys) + len(transient)
            assert {key for key, n in service.requests_by_key.items() if n == 2} == set(transient)
            retried[concurrency_] = count(function, "retries")
        finally:
            service.stop()
    assert retried == {1: len(transient), 16: len(transient)}  # monitoring counts the same


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", ["threads", "async"])
def test_permanent_failures_get_on_error_and_exactly_those_rows(path: str, kind: str) -> None:
    service = HttpService(latency=0.005, permanent_rate=0.01).start()
    try:
        function = KINDS[kind](
            service, f"broken_{kind}_{path}", concurrency=8, on_error=None,
            retry=Retry(attempts=2, backoff=[0], on=(ConnectionError,)),
        )
        keys = [f"p{i}" for i in range(400)]
        permanent = {key for key in keys if fails(key, 0.01, "permanent")}
        assert permanent
        expected = [None if key in permanent else value_of(key) for key in keys]
        assert keyed(function, keys, path) == expected
        assert count(function, "fallbacks") == len(permanent)
        assert count(function, "retries") == 0  # a ValueError is not worth a retry
    finally:
        service.stop()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", ["threads", "async"])
def test_an_error_names_the_function_and_the_first_failing_row(path: str, kind: str) -> None:
    service = HttpService(permanent_rate=0.01).start()
    try:
        function = KINDS[kind](service, f"raising_{kind}_{path}", concurrency=8)
        keys = [f"p{i}" for i in range(400)]
        first = next(key for key in keys if fails(key, 0.01, "permanent"))
        with pytest.raises(Exception) as raised:
            keyed(function, keys, path)
        message = str(raised.value)
        assert f"raising_{kind}_{path}" in message and "ValueError" in message
        assert f"key={first!r}" in message  # the row concurrency=1 would have named
        assert path == "plain" or f"in model {MODEL}" in message
    finally:
        service.stop()


def test_a_retry_s_backoff_sleeps_in_its_own_row_only(service: HttpService) -> None:
    finished: t.Dict[str, float] = {}
    attempts: t.Counter[str] = collections.Counter()

    @udf(name="backs_off", concurrency=4, retry=Retry(attempts=2, backoff=[1.0], on=(ConnectionError,)))
    def backs_off(key: str) -> str:
        attempts[key] += 1
        if key == "k0" and attempts[key] == 1:
            raise ConnectionError("try again in a second")
        time.sleep(0.02)
        finished[key] = time.monotonic()
        return key

    keys = [f"k{i}" for i in range(40)]
    started = time.monotonic()
    assert keyed(backs_off, keys, "plain") == keys
    # The 39 other rows (10 rounds of 20 ms on the 3 other slots) were done while k0 slept.
    assert max(finished[key] for key in keys[1:]) < finished["k0"]
    assert max(finished[key] for key in keys[1:]) - started < 0.9
    assert finished["k0"] - started >= 1.0


@pytest.mark.parametrize("path", PATHS)
def test_a_hung_row_with_a_timeout_is_given_up_and_the_others_go_on(path: str) -> None:
    calls: t.Counter[str] = collections.Counter()

    @udf(name=f"hangs_{path}", concurrency=4, timeout_s=0.3, on_error="gave up")
    def hangs(key: str) -> str:
        calls[key] += 1
        if key == HANG:
            release.wait()
        time.sleep(0.01)
        return key.upper()

    keys = [f"k{i}" for i in range(20)] + [HANG] + [f"m{i}" for i in range(20)]
    started = time.monotonic()
    expected = ["gave up" if key == HANG else key.upper() for key in keys]
    assert keyed(hangs, keys, path) == expected
    assert time.monotonic() - started < 10
    assert count(hangs, "timeouts") == 1 and count(hangs, "fallbacks") == 1
    assert all(n == 1 for n in calls.values()) and len(calls) == len(keys)  # no row computed twice


def test_an_async_hung_row_is_cancelled_at_its_timeout(service: HttpService) -> None:
    function = async_service_function(service, "hangs_async", concurrency=4, timeout_s=1.0, on_error=-1.0)
    keys = ["a", "b", HANG, "c"]
    assert keyed(function, keys, "plain") == [value_of("a"), value_of("b"), -1.0, value_of("c")]
    assert count(function, "timeouts") == 1


EXITING = textwrap.dedent(
    """
    import asyncio, threading
    import duckdb
    from mixmesh import udf
    from mixmesh.engines.duckdb import register

    forever = threading.Event()

    @udf(concurrency=4, timeout_s=0.5, on_error="null")
    def hangs(x: float) -> float:
        if x == 2.0:
            forever.wait()  # a call that never returns
        return x * 2

    @udf(concurrency=4, timeout_s=0.5, on_error="null")
    async def hangs_async(x: float) -> float:
        if x == 2.0:
            await asyncio.Event().wait()
        return x * 3

    connection = duckdb.connect()
    connection.execute("SET enable_progress_bar = false")
    register(connection, hangs)
    register(connection, hangs_async)
    query = "SELECT list(hangs(x::DOUBLE) ORDER BY x), list(hangs_async(x::DOUBLE) ORDER BY x) FROM range(4) t(x)"
    print(connection.sql(query).fetchone(), flush=True)
    """
)


def test_the_process_exits_once_the_statement_has_ended_despite_a_hung_concurrent_call() -> None:
    result = subprocess.run([sys.executable, "-c", EXITING], capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "([0.0, 2.0, None, 6.0], [0.0, 3.0, None, 9.0])"


def test_the_circuit_breaker_and_on_error_act_per_row() -> None:
    calls = []

    @udf(name="always_down", concurrency=4, circuit_breaker=CircuitBreaker(fail_max=3, reset_timeout=60), on_error=-1.0)
    def always_down(key: str) -> float:
        calls.append(key)
        time.sleep(0.01)
        raise ConnectionError("the service is down")

    keys = [f"k{i}" for i in range(100)]
    assert keyed(always_down, keys, "plain") == [-1.0] * 100
    # The circuit opens after 3 failures; calls already in flight then (at most 3 more) finish.
    assert 3 <= len(calls) <= 3 + 3
    assert count(always_down, "fallbacks") == 100
    assert count(always_down, "breaker_transitions") == 1


# --- declarations ---------------------------------------------------------------------------


def test_a_vectorized_function_with_concurrency_is_refused_naming_it() -> None:
    with pytest.raises(FunctionDefinitionError, match=r"batched_lookup.*vectorized function receives whole batches"):

        @udf(vectorized=True, concurrency=8)
        def batched_lookup(key: pa.Array) -> pa.Array:
            return key

    with pytest.raises(FunctionDefinitionError, match=r"async_batches.*vectorized function receives whole batches"):

        @udf(vectorized=True)
        async def async_batches(key: pa.Array) -> pa.Array:
            return key


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "8"])
def test_concurrency_must_be_a_whole_number_of_at_least_one(bad: t.Any) -> None:
    with pytest.raises(FunctionDefinitionError, match=r"lookup: concurrency must be a whole number"):

        @udf(concurrency=bad)
        def lookup(key: str) -> str:
            return key


def test_async_functions_are_plain_coroutine_functions_in_python() -> None:
    @udf(concurrency=4)
    async def doubled(x: float) -> float:
        return x * 2

    assert asyncio.run(doubled(2.0)) == 4.0  # a unit test awaits it as it is


def test_a_concurrent_function_in_a_sqlmesh_plan_and_run(project: t.Any, service: HttpService, monkeypatch: t.Any) -> None:
    monkeypatch.setenv("MIXMESH_TEST_SERVICE", service.url)
    project.write(
        "macros/lookup.py",
        '''
        import json
        import os
        import urllib.request

        from mixmesh import Retry, udf


        @udf(concurrency=12, retry=Retry(attempts=3, backoff=[0.01], on=(ConnectionError,)))
        def lookup(key: str) -> float:
            address = os.environ["MIXMESH_TEST_SERVICE"] + "/value?key=" + key
            with urllib.request.urlopen(address, timeout=30) as response:
                return json.load(response)["value"]
        ''',
    )
    project.write(
        "models/looked_up.sql",
        """
        MODEL (name analytics.looked_up, kind FULL);
        SELECT i, @lookup('s' || i::VARCHAR) AS value FROM range(300) AS t(i)
        """,
    )
    project.plan()
    rows = dict(project.query("SELECT i, value FROM analytics.looked_up"))
    assert rows == {i: value_of(f"s{i}") for i in range(300)}
    assert 1 < service.max_in_flight <= 12
    # Monitoring keeps the most calls in flight with the function's figures, and stats shows it.
    recorded = MetricsStore(project.root / DEFAULT_PATH).function_runs()
    in_flight = [row.max_in_flight for row in recorded.itertuples() if row.function == "lookup"]
    assert in_flight and 1 < max(in_flight) <= 12
    shown = subprocess.run(
        [str(Path(sys.executable).with_name("mixmesh")), "stats", "--json", "--project", str(project.root)],
        capture_output=True, text=True, check=True,
    )
    figures = [f for f in json.loads(shown.stdout)["functions"] if f["function"] == "lookup"]
    assert figures and figures[0]["max_in_flight"] == max(in_flight)


def test_the_readme_s_enrichment_functions_run_in_a_model(project: t.Any, monkeypatch: t.Any) -> None:
    """docs/resilience.md, "Functions that call services": both functions, against a service with 2%
    transient failures (503, retried) and 20 ms of latency."""
    service = HttpService(latency=0.02, transient_rate=0.02).start()
    try:
        monkeypatch.setenv("ENRICH_URL", service.url)
        functions, model = named("calls-in-flight", ["python", "sql"])
        project.write("macros/enrich.py", functions)
        project.write("models/enriched.sql", model)
        project.plan()
        rows = project.query("SELECT key, value, value_async FROM analytics.enriched ORDER BY key")
        assert rows == sorted((f"k{i}", value_of(f"k{i}"), value_of(f"k{i}")) for i in range(500))
        assert 1 < service.max_in_flight <= 32 + 64
    finally:
        service.stop()


FORKED = '''
import os, time
from mixmesh import udf
from mixmesh.runtime import concurrency


@udf(concurrency=4)
async def waits(x: int) -> int:
    return x


@udf(concurrency=4)
def blocks(x: int) -> int:
    return x


async def plus_one(x):
    return x + 1


def batch_of_both():
    rows = [[1, 2, 3]]
    return (concurrency.runner_of(waits.spec).run(plus_one, rows),
            concurrency.runner_of(blocks.spec).run(lambda x: x + 1, rows))


assert batch_of_both() == ([2, 3, 4], [2, 3, 4])  # the parent's loop and pool, started
child = os.fork()
if child == 0:
    os._exit(0 if batch_of_both() == ([2, 3, 4], [2, 3, 4]) else 1)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    done, status = os.waitpid(child, os.WNOHANG)
    if done:
        raise SystemExit(os.waitstatus_to_exitcode(status))
    time.sleep(0.05)
os.kill(child, 9)
raise SystemExit("the forked child's batch never finished")
'''


def test_a_forked_child_runs_batches_on_loops_and_threads_of_its_own() -> None:
    """A fork copies the runners' pools and the event loop but none of their threads: without
    new ones, the child's batch would wait for ever."""
    finished = subprocess.run([sys.executable, "-c", FORKED], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the loop's thread ends so
def test_a_call_that_ends_the_event_loop_fails_its_batch_and_the_next_batch_gets_a_new_loop() -> None:
    """SystemExit (or KeyboardInterrupt) raised by an async call ends the loop it runs on:
    its batch fails, naming the function, instead of waiting for ever."""

    @udf(concurrency=2)
    async def quits(x: int) -> int:
        return x

    async def exits(x: int) -> int:
        if x == 2:
            raise SystemExit(3)
        return x

    async def echoes(x: int) -> int:
        return x

    runner = concurrency.runner_of(quits.spec)
    raised: t.List[BaseException] = []

    def batch() -> None:
        try:
            runner.run(exits, [[1, 2, 3]])
        except Exception as error:
            raised.append(error)

    waiting = threading.Thread(target=batch, daemon=True)
    waiting.start()
    waiting.join(timeout=60)
    assert not waiting.is_alive(), "the batch waited on an event loop that had stopped"
    assert "quits: the event loop running its calls stopped" in str(raised[0])
    assert runner.run(echoes, [[1, 2, 3]]) == [1, 2, 3]

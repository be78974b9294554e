"""Error policies, retries and circuit breakers on real DuckDB queries, with exact counts."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import typing as t

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mixmesh import udf
from mixmesh.engines.duckdb import register
from mixmesh.core import resilience
from mixmesh.core.resilience import CircuitBreaker, CircuitOpenError, Retry, events, reset_events

ROWS = 10_000  # 1% of them fail: i % 100 == 7


@pytest.fixture(autouse=True)
def fresh_counts() -> t.Iterator[None]:
    reset_events()
    yield
    reset_events()


def bad(value: float) -> bool:
    return int(value) % 100 == 7


def query(function: t.Any, select: str) -> t.Tuple[t.Any, ...]:
    connection = duckdb.connect()
    name = register(connection, function)
    return connection.sql(select.format(f=name) + f" FROM range({ROWS}) AS t(i)").fetchone()


def fallbacks(name: str) -> int:
    return events().get((None, name, "fallbacks"), 0)


@pytest.mark.parametrize(
    "on_error, expected_value",
    [("null", None), (-1.0, -1.0), (lambda x: x * 1000, "x1000")],
    ids=["null", "constant", "fallback-function"],
)
def test_row_function_failing_on_one_percent_of_rows(on_error: t.Any, expected_value: t.Any) -> None:
    @udf(name="flaky_row", on_error=on_error)
    def flaky_row(x: float) -> float:
        if bad(x):
            raise ValueError(f"no {x}")
        return x * 2

    total, nulls, odd = query(
        flaky_row,
        "SELECT count(*), count(*) FILTER (WHERE {f}(i::DOUBLE) IS NULL), "
        "count(*) FILTER (WHERE {f}(i::DOUBLE) IS DISTINCT FROM i * 2)",
    )
    assert total == ROWS and odd == ROWS // 100  # rows in = rows out; only the failing rows differ
    assert nulls == (ROWS // 100 if expected_value is None else 0)
    assert fallbacks("flaky_row") >= ROWS // 100  # DuckDB may evaluate the call once per FILTER


def test_the_fallback_function_receives_the_row_s_arguments() -> None:
    seen: t.List[t.Tuple[float, str]] = []

    def rule_based(x: float, label: str) -> str:
        seen.append((x, label))
        return f"fallback:{label}"

    @udf(name="label_it", on_error=rule_based)
    def label_it(x: float, label: str) -> str:
        if bad(x):
            raise RuntimeError("model unavailable")
        return label

    (values,) = query(label_it, "SELECT list({f}(i::DOUBLE, 'L' || i) ORDER BY i)")
    assert values[7] == "fallback:L7" and values[8] == "L8"
    assert sorted(seen)[:2] == [(7.0, "L7"), (107.0, "L107")]


def test_raise_names_the_failing_row() -> None:
    @udf(name="strict_row")
    def strict_row(x: float) -> float:
        if bad(x):
            raise ValueError("no sevens")
        return x

    with pytest.raises(duckdb.Error, match=r"function 'strict_row' raised ValueError: no sevens; the row's arguments were x=7.0"):
        query(strict_row, "SELECT sum({f}(i::DOUBLE))")


def test_vectorized_failures_are_isolated_to_their_rows() -> None:
    calls: t.List[int] = []

    @udf(name="flaky_batch", vectorized=True, on_error="null")
    def flaky_batch(x: pa.Array) -> pa.Array:
        calls.append(len(x))
        if any(bad(v) for v in x.to_pylist()):
            raise ValueError("a bad row in the batch")
        return pc.multiply(x, 2)

    total, nulls, doubled = query(
        flaky_batch, "SELECT count(*), count(*) - count({f}(i::DOUBLE)), sum({f}(i::DOUBLE))"
    )
    assert total == ROWS and nulls == ROWS // 100
    assert doubled == 2 * sum(i for i in range(ROWS) if not bad(i))
    assert fallbacks("flaky_batch") == ROWS // 100
    assert 1 in calls  # the failing rows were reached one by one


class Waits:
    """An injected sleep: records the waits instead of waiting."""

    def __init__(self) -> None:
        self.seconds: t.List[float] = []

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


def test_a_transient_error_succeeds_on_the_third_attempt() -> None:
    waits = Waits()
    attempts: t.List[float] = []

    @udf(name="remote", retry=Retry(attempts=3, backoff=[1, 5, 15], on=(ConnectionError,), sleep=waits))
    def remote(x: float) -> float:
        attempts.append(x)
        if len(attempts) < 3:
            raise ConnectionError("the service hiccupped")
        return x + 1

    assert query(remote, "SELECT {f}(41.0)") == (42.0,)
    assert waits.seconds == [1, 5] and len(attempts) == 3
    assert events()[(None, "remote", "retries")] == 2


def test_errors_that_are_not_recoverable_are_not_retried() -> None:
    waits = Waits()

    @udf(name="broken", retry=Retry(attempts=5, sleep=waits), on_error="null")
    def broken(x: float) -> float:
        raise KeyError("a bug, not an outage")

    assert query(broken, "SELECT {f}(1.0)") == (None,)
    assert waits.seconds == [] and (None, "broken", "retries") not in events()


def test_exponential_backoff_with_a_cap() -> None:
    waits = Waits()

    @udf(name="slow_service", retry=Retry(attempts=5, backoff=Retry.exponential(start=1, maximum=5), sleep=waits), on_error=0.0)
    def slow_service(x: float) -> float:
        raise TimeoutError("still down")

    assert query(slow_service, "SELECT {f}(1.0)") == (0.0,)
    assert waits.seconds == [1, 2, 4, 5]


def test_a_circuit_opens_after_failures_and_closes_after_its_reset() -> None:
    reached: t.List[float] = []
    healthy = {"now": False}

    @udf(name="guarded", circuit_breaker=CircuitBreaker(fail_max=3, reset_timeout=0.2), on_error=-1.0)
    def guarded(x: float) -> float:
        reached.append(x)
        if not healthy["now"]:
            raise ConnectionError("down")
        return x

    connection = duckdb.connect()
    register(connection, guarded)
    values = [connection.sql(f"SELECT guarded({i}.0)").fetchone()[0] for i in range(6)]
    assert values == [-1.0] * 6
    assert len(reached) == 3  # after 3 failures the circuit opened: the last 3 calls never reached it
    time.sleep(0.25)  # the breaker's own clock (pybreaker) has no injection point
    healthy["now"] = True
    assert connection.sql("SELECT guarded(7.0)").fetchone() == (7.0,)
    transitions = events()[(None, "guarded", "breaker_transitions")]
    assert transitions == 3  # closed -> open -> half-open -> closed


def test_policies_combine_and_breakers_are_per_function() -> None:
    breaker = CircuitBreaker(fail_max=1, reset_timeout=60)
    combined = breaker & Retry(attempts=2, sleep=Waits())
    assert "CircuitBreaker" in repr(combined) and "Retry" in repr(combined)

    @udf(name="one", circuit_breaker=breaker, on_error="null")
    def one(x: float) -> t.Optional[float]:
        raise ConnectionError("down")

    @udf(name="two", circuit_breaker=breaker)
    def two(x: float) -> float:
        return x

    assert query(one, "SELECT {f}(1.0)") == (None,)
    assert query(two, "SELECT {f}(2.0)") == (2.0,)  # one's open circuit is not two's
    assert breaker.breaker(function="one", model=None).current_state == "open"
    with pytest.raises(CircuitOpenError):
        breaker.protect(lambda x: x, function="one", model=None)(1)


def test_a_constant_fallback_of_the_wrong_type_is_refused_early() -> None:
    from mixmesh import FunctionDefinitionError

    with pytest.raises(FunctionDefinitionError, match="on_error='n/a' is not a value of the declared DOUBLE"):

        @udf(on_error="n/a")
        def score(x: float) -> float:
            return x


def test_failures_are_logged_once_per_kind(caplog: pytest.LogCaptureFixture) -> None:
    @udf(name="noisy", on_error="null")
    def noisy(x: float) -> t.Optional[float]:
        raise ValueError("always")

    with caplog.at_level("WARNING", logger="mixmesh.core.resilience"):
        query(noisy, "SELECT count({f}(i::DOUBLE))")
    assert len([r for r in caplog.records if "noisy" in r.getMessage()]) == 1
    assert fallbacks("noisy") == ROWS


POLICY_FUNCTIONS = '''
from mixmesh import CircuitBreaker, Retry, udf


def rule_based(amount: float) -> float:
    return -amount


@udf(on_error=rule_based, retry=Retry(attempts=2, backoff=[0], on=(ConnectionError,)), circuit_breaker=CircuitBreaker(100, 60))
def scored(amount: float) -> float:
    if int(amount) % 100 == 7:
        raise ConnectionError("the scoring service dropped the request")
    return amount * 2
'''


@pytest.mark.slow
def test_policies_travel_with_the_function_into_sqlmesh_state(project: t.Any) -> None:
    project.write("macros/scoring.py", POLICY_FUNCTIONS)
    project.write(
        "models/scores.sql",
        "MODEL (name analytics.scores, kind FULL); SELECT i, @scored(i::DOUBLE) AS s FROM range(1000) AS t(i)",
    )
    project.cli("plan", "--auto-apply", "--no-prompts")  # a fresh process, from the stored source
    rows = dict(project.query("SELECT i, s FROM analytics.scores"))
    assert len(rows) == 1000
    assert rows[7] == -7.0 and rows[8] == 16.0
    assert sum(1 for i, s in rows.items() if s < 0) == 10
    payload = project.context().get_model("analytics.scores").python_env["scored"].payload
    assert "on_error=rule_based" in payload and "retry=Retry(" in payload


RESILIENT_MODEL = '''
import pandas as pd

from mixmesh import Retry, python_model

ATTEMPTS = []


class ModelLoadingError(RuntimeError):
    pass


def rule_based(context, **kwargs):
    return pd.DataFrame({"customer_id": [1, 2], "score": [0.5, 0.5], "source": ["rules", "rules"]})


def from_cache(context, **kwargs):
    return pd.DataFrame({"customer_id": [1, 2], "score": [0.1, 0.2], "source": ["cache", "cache"]})


@python_model(
    name="analytics.scores",
    columns={"customer_id": "INT", "score": "DOUBLE", "source": "VARCHAR"},
    retry=Retry(attempts=3, backoff=[0], on=(ConnectionError,)),
    fallbacks={ModelLoadingError: rule_based, ConnectionError: from_cache},
)
def scores(context, **kwargs):
    ATTEMPTS.append(1)
    if FAILURE == "transient" and len(ATTEMPTS) < 3:
        raise ConnectionError("the feature store timed out")
    if FAILURE == "connection":
        raise ConnectionError("the feature store is down")
    if FAILURE == "model":
        raise ModelLoadingError("model file unreadable")
    if FAILURE == "bug":
        raise KeyError("customer_id")
    return pd.DataFrame({"customer_id": [1, 2], "score": [0.9, 0.8], "source": [f"model after {len(ATTEMPTS)}", "model"]})
'''


@pytest.mark.parametrize(
    "failure, source, retries",
    [("transient", "model after 3", 2), ("connection", "cache", 2), ("model", "rules", 0)],
)
def test_models_retry_recoverable_errors_then_fall_back_by_kind(project: t.Any, failure: str, source: str, retries: int) -> None:
    project.write("models/scores.py", f"FAILURE = {failure!r}\n" + RESILIENT_MODEL)
    project.plan()
    assert project.query("SELECT source FROM analytics.scores WHERE customer_id = 1") == [(source,)]
    assert events("analytics.scores").get(("analytics.scores", "model", "retries"), 0) == retries
    assert events("analytics.scores").get(("analytics.scores", "model", "fallbacks"), 0) == (failure != "transient")


def test_a_model_error_without_a_fallback_fails_the_model_and_writes_nothing(project: t.Any) -> None:
    project.write("models/scores.py", "FAILURE = None\n" + RESILIENT_MODEL)
    project.plan()
    project.write("models/scores.py", "FAILURE = 'bug'\n" + RESILIENT_MODEL)
    result = project.cli("plan", "--auto-apply", "--no-prompts", check=False)
    assert result.returncode != 0 and "KeyError" in result.stdout
    assert project.query("SELECT count(*), min(source) FROM analytics.scores") == [(2, "model")]


def test_a_hanging_row_times_out_without_stopping_the_query() -> None:
    import threading

    release = threading.Event()

    @udf(name="external_api", timeout_s=0.2, on_error="null")
    def external_api(x: float) -> t.Optional[float]:
        if x == 3:
            release.wait(10)  # hangs until the test lets it go
        return x

    started = time.monotonic()
    try:
        (values,) = query(external_api, "SELECT list({f}(i::DOUBLE) ORDER BY i) FILTER (WHERE i < 6)")
    finally:
        release.set()
    assert values == [0.0, 1.0, 2.0, None, 4.0, 5.0]
    assert time.monotonic() - started < 5
    assert events()[(None, "external_api", "timeouts")] == 1


def test_a_timeout_is_retried_like_any_recoverable_error() -> None:
    answers = iter([0.5, 0.0])  # the first call hangs past the timeout, the second answers

    @udf(name="sometimes_slow", timeout_s=0.1, retry=Retry(attempts=2, backoff=[0]))
    def sometimes_slow(x: float) -> float:
        time.sleep(next(answers))
        return x

    assert query(sometimes_slow, "SELECT {f}(9.0)") == (9.0,)
    assert events()[(None, "sometimes_slow", "retries")] == 1



class _TakenSlowly:
    """The pool's queue, with the moment between a worker taking a call and starting it
    stretched: the window a call submitted then must still get a worker in."""

    def __init__(self, queue: t.Any) -> None:
        self.queue, self.taken, self.go_on = queue, threading.Event(), threading.Event()

    def put(self, item: t.Any) -> None:
        self.queue.put(item)

    def get(self) -> t.Any:
        item = self.queue.get()
        self.taken.set()
        self.go_on.wait(10)
        return item


def test_a_call_submitted_while_a_worker_takes_a_hanging_one_gets_a_worker_of_its_own() -> None:
    pool = resilience._DaemonPool(name="test-timeout")
    queue = _TakenSlowly(pool._work)
    pool._work = queue  # type: ignore[assignment]
    forever = threading.Event()
    pool.submit(forever.wait)
    assert queue.taken.wait(10)  # the only worker has taken the call that will hang
    answer = pool.submit(lambda: 42)
    queue.go_on.set()
    try:
        assert answer.result(timeout=10) == 42
    finally:
        forever.set()


FORKED_TIMEOUT = """
import os, threading, time
from mixmesh.core.resilience import Timeout

timed = Timeout(5).protect(lambda x: x + 1, function="plus_one", model=None)
forever = threading.Event()
Timeout._workers.submit(forever.wait)  # the parent's workers: one hung, one idle after this
assert timed(1) == 2
child = os.fork()
if child == 0:
    try:
        os._exit(0 if timed(2) == 3 else 1)
    except TimeoutError:
        os._exit(2)
_, status = os.waitpid(child, 0)
raise SystemExit(os.waitstatus_to_exitcode(status))
"""


def test_a_forked_child_runs_timed_calls_on_workers_of_its_own() -> None:
    """A fork copies the pool's count of idle workers but none of their threads."""
    finished = subprocess.run([sys.executable, "-c", FORKED_TIMEOUT], capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr

HANGING_MODEL = """
import time

import pandas as pd

from mixmesh import python_model


def from_cache(context, **kwargs):
    return pd.DataFrame({"x": [1.0], "source": ["cache"]})


@python_model(name="analytics.api", columns={"x": "DOUBLE", "source": "VARCHAR"}, timeout_s=0.3, fallbacks={TimeoutError: from_cache})
def api(context, **kwargs):
    time.sleep(1.5)  # an external API that does not answer in time
    return pd.DataFrame({"x": [2.0], "source": ["api"]})
"""


@pytest.mark.slow
def test_a_hanging_model_times_out_falls_back_and_leaves_no_staging_behind(project: t.Any) -> None:
    project.write("models/api.py", HANGING_MODEL)
    # The process ends once the abandoned run has finished in the background.
    output = " ".join(project.cli("plan", "--auto-apply", "--no-prompts").stdout.split())
    assert project.query("SELECT x, source FROM analytics.api") == [(1.0, "cache")]
    assert project.query("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'mixmesh_staging'") == [(0,)]
    assert "Traceback" not in output


def test_refused_artifacts_are_counted_with_every_other_event(tmp_path: t.Any) -> None:
    import pickle

    from mixmesh import load_artifact
    from mixmesh.runtime.resources import file_sha256

    artifact = tmp_path / "model.pkl"
    artifact.write_bytes(pickle.dumps({"weights": [1, 2]}))
    pinned = file_sha256(artifact)
    artifact.write_bytes(pickle.dumps({"weights": [6, 6]}))  # tampered after pinning
    assert load_artifact(artifact, sha256=pinned, fallback="rules", allowed_dirs=[tmp_path]) == "rules"
    assert events()[(None, "load_artifact", "refused_hash")] == 1
    assert events()[(None, "load_artifact", "fallbacks")] == 1

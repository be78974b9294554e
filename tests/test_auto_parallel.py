"""``@udf(parallel="auto")``, the default: row functions in worker processes where that is safe.

A randomized differential test, as the fast path's own (tests/test_fast_path_differential.py):
hypothesis draws a table (NULLs, NaN, lists of structs, sizes across batch edges) and a
query calling row functions of every kind ``auto`` places in workers (branches, None
results, strings, NULL-aware, a LIST<STRUCT> argument, one that raises on some rows, one
whose result the return rules refuse on some rows) and of kinds it keeps on threads
(``mixmesh.count``, ``on_error``); each query runs with ``MIXMESH_PARALLEL=threads`` and with
automatic parallelism, on small batches so that many of them cross to the workers, and the
rows, or the error, must be the same. Targeted tests then pin what ``auto`` decides and why,
that the workers really run the batches, that a small statement starts none, and the
settings' errors.

Everything runs on a real in-memory DuckDB behind SQLMesh's DuckDB adapter.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import typing as t

import duckdb
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from sqlmesh.core.engine_adapter import DuckDBEngineAdapter

import mixmesh
import mixmesh.sqlmesh as sqlmesh_integration
from mixmesh import engines, fastpath, resource, udf
from mixmesh.core.names import binding_name, short_name
from mixmesh.runtime import parallel, workers

MODEL = "analytics.scored"
SMALL = "threads (auto: no batch of 1 rows)"  # (MIN_ROWS is 1 in the differential test) an empty table

# ---------------------------------------------------------------------------------------
# The functions. Those ``auto`` places in worker processes:


@udf
def branchy(x: int, y: float) -> t.Optional[float]:
    # Several branches and None for some rows: a row given another row's value shows.
    if x % 3 == 0:
        return y * 2.0
    if x < 0:
        return -y
    if y > 50:
        return None
    return x + y


@udf(null_handling="call")
def null_aware(x: t.Optional[int]) -> int:
    return -1 if x is None else x * 10


ITEMS_TYPE = "STRUCT(sku VARCHAR, qty INTEGER, price DOUBLE)[]"


@udf(args=[ITEMS_TYPE])
def items_total(items: t.List[dict]) -> float:
    return sum((item["qty"] or 0) * item["price"] for item in items)


@udf
def label(s: str, k: int) -> str:
    return f"{s.upper()}#{k}"


@udf
def picky(x: int) -> float:
    # on_error="raise": the statement fails, naming the function, the model and the row.
    if x == 7:
        raise ValueError("seven")
    return x / 2.0


@udf
def oversized(x: int) -> int:
    # A BIGINT result out of range on some rows: refused by the return rules, naming the row.
    return 2**70 if x == 11 else x


# Those it keeps on threads, in the model's process:


@udf
def counted(x: float) -> float:
    mixmesh.count("negative", int(x < 0))
    return abs(x)


@udf(on_error="null")
def fragile(x: int) -> float:
    if x % 5 == 0:
        raise ValueError("a multiple of five")
    return x / 4.0


FUNCTIONS = (branchy, null_aware, items_total, label, picky, oversized, counted, fragile)
IN_WORKERS = {"branchy", "null_aware", "items_total", "label", "picky", "oversized"}


# ---------------------------------------------------------------------------------------
# The engine and the two modes.


class Engine(t.NamedTuple):
    connection: duckdb.DuckDBPyConnection
    adapter: t.Any
    sql_names: t.Dict[str, str]

    def call(self, function: str, *arguments: str) -> str:
        return f"{self.sql_names[function]}({', '.join(arguments)})"


@pytest.fixture(scope="module")
def engine() -> t.Iterator[Engine]:
    sqlmesh_integration.install()
    connection = duckdb.connect()
    sql_names = {}
    for function in FUNCTIONS:
        sql_names[function.spec.name] = binding_name(function.spec, MODEL)
        engines.register_call(function.spec, MODEL, sql_names[function.spec.name])
    started = Engine(connection, DuckDBEngineAdapter(lambda: connection), sql_names)
    _start_workers(started)
    yield started
    connection.close()


def _start_workers(engine: Engine) -> None:
    """The workers start in the background at a statement's first large batch, which runs in
    the model's process meanwhile: start them, and wait, so that the tests' batches use them."""
    load(engine, [(1, 1, 1.0, "a", [])])
    calls = ", ".join(call for call in all_calls(engine) if call.startswith(tuple(engine.sql_names[n] for n in IN_WORKERS)))
    with small_batches(2):
        assert run(engine, f"SELECT {calls} FROM l", None).error is None
    assert workers.ready([engine.sql_names[name] for name in IN_WORKERS], wait=True) is not None


@contextlib.contextmanager
def setting(**variables: t.Optional[str]) -> t.Iterator[None]:
    """Environment variables set (or, None, unset) for the block; read per statement."""
    before = {name: os.environ.get(name) for name in variables}
    try:
        for name, value in variables.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def small_batches(rows: int) -> t.Iterator[None]:
    """Batches of ``rows`` (half that in workers), every one of them worth a worker."""
    before = fastpath.BatchComputer.batch_rows, parallel.MIN_ROWS
    fastpath.BatchComputer.batch_rows, parallel.MIN_ROWS = rows, 1
    try:
        yield
    finally:
        fastpath.BatchComputer.batch_rows, parallel.MIN_ROWS = before


class Outcome(t.NamedTuple):
    rows: t.Optional[t.List[str]]  # each row's repr (NaN equals NaN, floats exactly)
    error: t.Optional[t.Tuple[str, str]]  # the error's type and message
    decision: t.Optional[fastpath.Decision]


def run(engine: Engine, sql: str, mode: t.Optional[str]) -> Outcome:
    """``sql`` on the fast path, with ``MIXMESH_PARALLEL`` = ``mode`` (None: unset, auto)."""
    fastpath.decisions.clear()
    with setting(MIXMESH_PARALLEL=mode, MIXMESH_FAST_PATH="on"):
        try:
            rows = [repr(row) for row in engine.adapter.fetchall(sql)]
        except Exception as error:  # noqa: BLE001 - compared between the modes
            return Outcome(None, (type(error).__name__, str(error)), _last_decision())
    return Outcome(rows, None, _last_decision())


def _last_decision() -> t.Optional[fastpath.Decision]:
    return fastpath.decisions[-1] if fastpath.decisions else None


# ---------------------------------------------------------------------------------------
# Random tables and queries.

small_ints = st.one_of(st.none(), st.integers(-8, 12))
quarters = st.integers(-200, 200).map(lambda i: i / 4)  # exact sums whatever the order
doubles = st.one_of(st.none(), quarters, st.just(math.nan))
strings = st.one_of(st.none(), st.sampled_from(["a", "b", "ab", "", "Zed", "é"]))
items = st.one_of(st.none(), st.lists(st.fixed_dictionaries({
    "sku": st.one_of(st.none(), st.sampled_from(["p", "q"])),
    "qty": st.one_of(st.none(), st.integers(0, 4)),
    "price": quarters,
}), max_size=3))
row = st.tuples(small_ints, small_ints, doubles, strings, items)


@st.composite
def tables(draw: st.DrawFn) -> t.Tuple[int, t.List[tuple]]:
    """A batch size and the rows: empty, one, small, or around the batch edges."""
    batch = draw(st.sampled_from([2, 4, 8, 64]))
    size = draw(st.one_of(st.sampled_from([0, 1, batch // 2, batch // 2 + 1, batch, 3 * batch]), st.integers(2, 60)))
    return batch, draw(st.lists(row, min_size=size, max_size=size))


def load(engine: Engine, rows: t.Sequence[tuple]) -> None:
    engine.connection.execute(
        f"CREATE OR REPLACE TABLE l (rid INTEGER, id INTEGER, k INTEGER, x DOUBLE, s VARCHAR, items {ITEMS_TYPE})"
    )
    if rows:
        engine.connection.executemany("INSERT INTO l VALUES (?, ?, ?, ?, ?, ?)", [(i, *r) for i, r in enumerate(rows)])


def all_calls(engine: Engine) -> t.List[str]:
    call = engine.call
    return [
        call("branchy", "id", "x"),
        call("branchy", "k", "x + 1"),
        call("null_aware", "k"),
        call("items_total", "items"),
        call("label", "s", "k"),
        call("picky", "id"),
        call("oversized", "k"),
        call("counted", "x"),
        call("fragile", "id"),
    ]


@st.composite
def queries(draw: st.DrawFn, engine: Engine) -> str:
    calls = draw(st.lists(st.sampled_from(all_calls(engine)), min_size=1, max_size=4))
    projections = ", ".join(f"{expression} AS c{i}" for i, expression in enumerate(calls))
    where = draw(st.sampled_from(["", "WHERE x > 0", "WHERE k IS NOT NULL", "WHERE s LIKE 'a%' OR id < 0"]))
    if draw(st.booleans()):
        return f"SELECT rid, {projections} FROM l {where} ORDER BY rid"
    # Grouped: aggregates that do not depend on the order rows arrive in.
    aggregates = ", ".join(f"count(c{i}), min(c{i}), max(c{i})" for i in range(len(calls)))
    return f"SELECT k, count(*), {aggregates} FROM (SELECT k, {projections} FROM l {where}) GROUP BY k ORDER BY k"


DIFFERENTIAL = settings(
    max_examples=int(os.environ.get("MIXMESH_DIFFERENTIAL_EXAMPLES", "80")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


@DIFFERENTIAL
@given(data=st.data(), drawn=tables())
def _same_in_both_modes(engine: Engine, data: st.DataObject, drawn: t.Any) -> None:
    batch, rows = drawn
    load(engine, rows)
    sql = data.draw(queries(engine), label="query")
    note(f"batches of {batch} rows, {len(rows)} rows:\n{sql}")
    with small_batches(batch):
        threads = run(engine, sql, "threads")
        auto = run(engine, sql, None)
    assert threads.decision is not None and threads.decision.staged, threads.decision
    assert auto.decision is not None and auto.decision.staged, auto.decision
    placed = dict(auto.decision.parallel)
    assert all(placed[name] in ("processes (auto)", SMALL) for name in placed if name in IN_WORKERS), placed
    assert all(placed[name].startswith("threads (auto:") for name in placed if name not in IN_WORKERS), placed
    assert all(where == "threads (auto: MIXMESH_PARALLEL=threads)" for _, where in threads.decision.parallel)
    event("failed" if auto.error else "rows")
    assert auto.error == threads.error
    assert auto.rows == threads.rows


def test_automatic_parallelism_gives_the_same_rows_and_errors_as_threads(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    crossed: t.List[int] = []  # the rows of each batch sent to a worker
    send = workers.InWorkers._in

    def counted(self: workers.InWorkers, pool: workers.Workers, arrays: t.List[t.Any]) -> t.Any:
        crossed.append(len(arrays[0]))
        return send(self, pool, arrays)

    monkeypatch.setattr(workers.InWorkers, "_in", counted)
    _same_in_both_modes(engine=engine)
    assert sum(crossed) >= 100, "the workers computed (almost) nothing: the comparison compared threads with threads"


# ---------------------------------------------------------------------------------------
# What auto decides, and why.


def test_the_workers_run_the_batches_of_a_safe_row_function(engine: Engine) -> None:
    @udf
    def where_it_ran(x: float) -> int:  # deterministic enough: the same worker per batch
        return os.getpid()

    name = binding_name(where_it_ran.spec, MODEL)
    engines.register_call(where_it_ran.spec, MODEL, name)
    engine.connection.execute("CREATE OR REPLACE TABLE big AS SELECT range::DOUBLE AS x FROM range(40000)")
    with small_batches(4000), setting(MIXMESH_FAST_PATH="on", MIXMESH_PARALLEL=None):
        engine.adapter.fetchall(f"SELECT DISTINCT {name}(x) FROM big")  # starts the workers
        workers.ready([name], wait=True)
        pids = {pid for (pid,) in engine.adapter.fetchall(f"SELECT DISTINCT {name}(x) FROM big")}
        assert dict(fastpath.decisions[-1].parallel) == {"where_it_ran": "processes (auto)"}
        assert pids and os.getpid() not in pids
        # MIXMESH_PARALLEL=threads: every batch in the model's process.
        with setting(MIXMESH_PARALLEL="threads"):
            assert engine.adapter.fetchall(f"SELECT DISTINCT {name}(x) FROM big") == [(os.getpid(),)]


def test_a_small_statement_runs_in_the_models_process_and_starts_no_worker(engine: Engine) -> None:
    @udf
    def small_where(x: float) -> int:
        return os.getpid()

    name = binding_name(small_where.spec, MODEL)
    engines.register_call(small_where.spec, MODEL, name)
    engine.connection.execute("CREATE OR REPLACE TABLE few AS SELECT range::DOUBLE AS x FROM range(1000)")
    pool = workers._current
    with setting(MIXMESH_FAST_PATH="on", MIXMESH_PARALLEL=None):
        assert engine.adapter.fetchall(f"SELECT DISTINCT {name}(x) FROM few") == [(os.getpid(),)]
    assert dict(fastpath.decisions[-1].parallel) == {"small_where": "threads (auto: no batch of 65,536 rows)"}
    assert workers._current is pool and workers._starting is None, "workers were started for a small statement"


def test_an_error_in_a_worker_names_the_function_the_model_and_the_row(engine: Engine) -> None:
    engine.connection.execute("CREATE OR REPLACE TABLE ids AS SELECT range::INTEGER AS id FROM range(100)")
    sql = f"SELECT sum({engine.call('picky', 'id')}) FROM ids"
    with small_batches(10):
        failed = run(engine, sql, None)
    assert dict(failed.decision.parallel) == {"picky": "processes (auto)"}
    assert failed.error == (
        "FunctionRuntimeError",
        f"function 'picky' in model {MODEL} raised ValueError: seven; the row's arguments were x=7",
    )


SHARED: t.List[float] = []
LOOKUP = {"a": 1}


@resource
def scorer() -> t.Callable[[float], float]:
    return lambda x: x * 2


def _remember(x: float) -> float:
    global LAST
    LAST = x
    return x


def declared(*, name: str = "f", **options: t.Any) -> t.Callable[[t.Callable[..., t.Any]], t.Any]:
    return udf(name=name, args=options.pop("args", ["DOUBLE"]), returns=options.pop("returns", "DOUBLE"), **options)


@pytest.mark.parametrize(("function", "where"), [
    (declared(vectorized=True)(lambda x: x), "threads (auto: vectorized)"),
    (declared(deterministic=False)(lambda x: x), "threads (auto: not deterministic)"),
    (declared(on_error="null")(lambda x: x), "threads (auto: on_error keeps state in the model's process)"),
    (declared(timeout_s=5)(lambda x: x),
     "threads (auto: retry, circuit_breaker or timeout_s keeps state in the model's process)"),
    (declared()(lambda x: scorer()(x)), "threads (auto: the @resource 'scorer')"),
    (counted, "threads (auto: mixmesh.count)"),
    (declared()(lambda x: SHARED.append(x) or x), "threads (auto: a change in place to 'SHARED')"),
    (declared()(lambda x: _remember(x)), "threads (auto: the global assignment to 'LAST' (in _remember))"),
    (declared(args=["VARCHAR"], returns="BIGINT")(lambda s: LOOKUP.get(s, 0)), "processes (auto)"),
    (declared(concurrency=1)(lambda x: x), "processes (auto)"),
    (declared(concurrency=4)(lambda x: x), "threads (auto: concurrency keeps state in the model's process)"),
    (declared(rate_limit="10/s")(lambda x: x), "threads (auto: rate_limit keeps state in the model's process)"),
    (declared(cache=True)(lambda x: x), "threads (auto: cache keeps state in the model's process)"),
    (declared(parallel="threads")(lambda x: x), "threads (declared)"),
    (declared(parallel="processes")(lambda x: x), "processes (declared)"),
], ids=lambda value: value if isinstance(value, str) else "")
def test_auto_says_where_a_function_runs_and_why(function: t.Any, where: str) -> None:
    with setting(MIXMESH_PARALLEL=None):
        assert parallel.place(function.spec, can_fork=True).reason == where


def test_a_function_that_keeps_state_in_a_closure_stays_on_threads() -> None:
    seen = []
    total = 0

    @udf
    def remembers(x: float) -> float:
        seen.append(x)
        return x

    @udf
    def adds(x: float) -> float:
        nonlocal total
        total += 1
        return x

    assert parallel.place(remembers.spec, can_fork=True).reason == "threads (auto: a change in place to 'seen')"
    assert parallel.place(adds.spec, can_fork=True).reason == "threads (auto: the nonlocal assignment to 'total')"


def test_where_processes_cannot_be_forked_batches_run_on_threads() -> None:
    assert parallel.place(branchy.spec, can_fork=False).reason == "threads (auto: processes cannot be forked here)"
    in_processes = declared(parallel="processes")(lambda x: x)
    assert parallel.place(in_processes.spec, can_fork=False).reason == "threads (processes cannot be forked here)"


def test_an_unknown_setting_fails_the_statement_naming_the_variable(engine: Engine) -> None:
    engine.connection.execute("CREATE OR REPLACE TABLE ids AS SELECT range::INTEGER AS id FROM range(10)")
    failed = run(engine, f"SELECT sum({engine.call('null_aware', 'id')}) FROM ids", "thread")
    assert failed.error == (
        "ParallelSettingError", "MIXMESH_PARALLEL must be one of ('auto', 'threads') (or unset: auto), got 'thread'"
    )


def test_the_debug_log_says_where_each_function_ran(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    engine.connection.execute("CREATE OR REPLACE TABLE ids AS SELECT range::INTEGER AS id FROM range(10)")
    with caplog.at_level("DEBUG", logger="mixmesh.fastpath"), small_batches(10):
        run(engine, f"SELECT sum({engine.call('null_aware', 'id')}) + sum({engine.call('fragile', 'id')}) FROM ids", None)
    logged = [record.getMessage() for record in caplog.records if record.name == "mixmesh.fastpath"]
    assert any(re.search(r"fast path taken for fragile, null_aware: .*; fragile on threads \(auto: on_error .*\); "
                         r"null_aware on processes \(auto\)", message) for message in logged), logged


HELPERS = """
from mixmesh import resource

@resource
def model():
    return lambda x: x * 2

def scaled(x):
    return model()(x)

def plain(x):
    return x + 1
"""


def test_the_projects_helpers_in_other_modules_are_read_too(tmp_path: t.Any, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "project_helpers.py").write_text(HELPERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import project_helpers
    from project_helpers import plain, scaled

    @udf
    def imported(x: float) -> float:
        return scaled(x)

    @udf
    def through_module(x: float) -> float:
        return project_helpers.scaled(x)

    @udf
    def harmless(x: float) -> float:
        return plain(x) + project_helpers.plain(x)

    assert parallel.place(imported.spec, can_fork=True).reason == "threads (auto: the @resource 'model' (in scaled))"
    assert parallel.place(through_module.spec, can_fork=True).reason == (
        "threads (auto: the @resource 'model' (in scaled))"
    )
    assert parallel.place(harmless.spec, can_fork=True).reason == "processes (auto)"


def test_a_thread_waiting_for_a_worker_counts_as_the_functions_python_time(engine: Engine) -> None:
    import threading
    import time

    from mixmesh import sink

    @udf
    def slow_step(x: float) -> float:
        time.sleep(0.0002)
        return x

    name = binding_name(slow_step.spec, MODEL)
    engines.register_call(slow_step.spec, MODEL, name)
    engine.connection.execute("CREATE OR REPLACE TABLE steps AS SELECT range::DOUBLE AS x FROM range(4000)")
    seen: t.Set[t.Any] = set()
    with small_batches(400), setting(MIXMESH_FAST_PATH="on", MIXMESH_PARALLEL=None):
        engine.adapter.fetchall(f"SELECT sum({name}(x)) FROM steps")  # starts the workers
        workers.ready([name], wait=True)
        query = threading.Thread(target=engine.adapter.fetchall, args=(f"SELECT sum({name}(x)) FROM steps",))
        query.start()
        while query.is_alive():  # what the monitor's sampler sees of the threads
            seen.update(sink.calling_function(frame) for frame in sys._current_frames().values())
            time.sleep(0.001)
        query.join()
    assert dict(fastpath.decisions[-1].parallel) == {"slow_step": "processes (auto)"}
    assert ("slow_step", "row", short_name(MODEL)) in seen, seen


class Tally:
    seen = 0


def test_a_function_changing_a_class_of_the_project_stays_on_threads() -> None:
    import datetime

    @udf
    def tallies(x: float) -> float:
        Tally.seen += 1
        return x

    @udf
    def dated(x: int) -> str:
        parts = {}
        parts["day"] = datetime.date(2024, 1, 1 + x % 28).isoformat()  # a library's class: not state
        return parts["day"]

    assert parallel.place(tallies.spec, can_fork=True).reason == "threads (auto: a change in place to 'Tally')"
    assert parallel.place(dated.spec, can_fork=True).reason == "processes (auto)"

"""Quarantined rows: every row whose call failed after its retries and got its on_error value
is written to ``mixmesh_quarantine.rows`` with its arguments, through real SQLMesh plans on
DuckDB; the ``quarantined_rows`` audit fails an interval over its limit; restating an
interval resolves its entries; a failed evaluation leaves none."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixmesh.runtime import quarantine
from tests.projects import Project

DAYS = 4
ROWS_PER_DAY = 250

# Transactions over DAYS days; ids whose value % 100 == 37 fail for good (1%), those % 50 == 11
# fail once and then succeed (2%): a retry repairs them.
EVENTS = f"""
MODEL (name raw.events, kind FULL);
SELECT i AS id, (DATE '2024-01-01' + (i // {ROWS_PER_DAY})::INT) AS day, (i % 7)::DOUBLE AS amount,
       'C' || (i % 3)::VARCHAR AS currency
FROM range({DAYS * ROWS_PER_DAY}) AS t(i)
"""

FUNCTIONS = '''
import datetime

from mixmesh import Retry, udf

SEEN = set()


class ServiceDown(ConnectionError):
    pass


@udf(retry=Retry(attempts=3, backoff=[0]), on_error=None)
def rate(id: int, currency: str, day: datetime.date) -> float:
    if id % 100 == 37:
        raise ServiceDown(f"no rate for {currency} on {day}")
    if id % 50 == 11 and id not in SEEN:
        SEEN.add(id)
        raise ServiceDown("try again")
    return 1.0 + (id % 3) / 10
'''

CONVERTED = """
MODEL (
  name analytics.converted,
  kind INCREMENTAL_BY_TIME_RANGE (time_column day, batch_size 1),
  start '2024-01-01',
  end '2024-01-{end:02d}',
  cron '@daily',
  audits (quarantined_rows(max_rows := {max_rows}))
);
SELECT id, day, amount * @rate(id, currency, day) AS converted
FROM raw.events
WHERE day BETWEEN @start_ds AND @end_ds
"""


def write_project(project: Project, max_rows: int = 10) -> None:
    project.write("models/events.sql", EVENTS)
    project.write("macros/functions.py", FUNCTIONS)
    project.write("models/converted.sql", CONVERTED.format(end=DAYS, max_rows=max_rows))


def quarantined(project: Project, where: str = "TRUE") -> list:
    return project.query(
        "SELECT model, function, arguments, error_type, error_message, attempts, row_count, "
        "interval_start, interval_end, run_id, resolved_at, resolved_by_run "
        f"FROM mixmesh_quarantine.rows WHERE {where} ORDER BY interval_start, arguments"
    )


@pytest.mark.slow
def test_exactly_the_rows_that_failed_for_good_are_quarantined_with_their_arguments(project: Project) -> None:
    write_project(project)
    project.plan()

    rows = quarantined(project)
    failed_ids = [i for i in range(DAYS * ROWS_PER_DAY) if i % 100 == 37]
    assert sorted(json.loads(row[2])["id"] for row in rows) == failed_ids  # the retried ones are not there
    first = next(row for row in rows if json.loads(row[2])["id"] == 37)
    assert first[:2] == ("analytics.converted", "rate")
    assert json.loads(first[2]) == {"id": 37, "currency": "C1", "day": "2024-01-01"}
    assert first[3:7] == ("ServiceDown", "no rate for C1 on 2024-01-01", 3, 1)  # three attempts, one row
    utc = dt.timezone.utc
    assert (first[7], first[8]) == (dt.datetime(2024, 1, 1, tzinfo=utc), dt.datetime(2024, 1, 2, tzinfo=utc))
    assert all(row[10] is None for row in rows)
    # The rows got their on_error value (NULL), and no other row did.
    nulls = project.query("SELECT id FROM analytics.converted WHERE converted IS NULL ORDER BY id")
    assert [row[0] for row in nulls] == failed_ids
    # The run id is the run monitoring filed the evaluation under (mixmesh stats).
    from mixmesh.monitor.store import MetricsStore

    runs = {row[0] for row in project.query("SELECT DISTINCT run_id FROM mixmesh_quarantine.rows")}
    monitored = MetricsStore.for_project(project.root).model_runs(model="analytics.converted")
    assert len(runs) == DAYS and runs == set(monitored["run_id"])


@pytest.mark.slow
def test_sqlmesh_run_in_a_fresh_process_quarantines_the_new_intervals_rows(project: Project) -> None:
    write_project(project)
    project.write("models/converted.sql", CONVERTED.format(end=DAYS, max_rows=10).replace(f"  end '2024-01-0{DAYS}',\n", ""))
    project.plan(execution_time="2024-01-03")  # the first two days
    assert len(quarantined(project)) == 5

    project.cli("run", "--end", "2024-01-04", "--ignore-cron")  # mixmesh is imported with the project's code

    by_day = project.query("SELECT CAST(interval_start AS DATE), COUNT(*) FROM mixmesh_quarantine.rows GROUP BY 1 ORDER BY 1")
    assert by_day == [(dt.date(2024, 1, day), n) for day, n in ((1, 3), (2, 2), (3, 3), (4, 2))]


@pytest.mark.slow
def test_restating_an_interval_resolves_its_entries_and_records_the_new_failures(project: Project) -> None:
    write_project(project)
    project.plan()
    before = quarantined(project, "interval_start = TIMESTAMPTZ '2024-01-02 00:00:00+00'")

    project.plan(restate_models=["analytics.converted"], start="2024-01-02", end="2024-01-02")

    after = quarantined(project, "interval_start = TIMESTAMPTZ '2024-01-02 00:00:00+00'")
    old = [row for row in after if row[9] == before[0][9]]
    new = [row for row in after if row[9] != before[0][9]]
    assert len(old) == len(new) == len(before)  # the failures happened again: recorded again
    assert all(row[10] is not None and row[11] == new[0][9] for row in old)  # resolved by the restatement
    assert all(row[10] is None for row in new)
    others = quarantined(project, "interval_start <> TIMESTAMPTZ '2024-01-02 00:00:00+00'")
    assert others and all(row[10] is None for row in others)  # other intervals untouched


@pytest.mark.slow
def test_the_audit_fails_an_interval_over_its_limit_and_passes_under_it(project: Project) -> None:
    from sqlmesh.utils.errors import PlanError

    write_project(project, max_rows=3)  # 2 or 3 failing rows a day: under the limit
    project.plan()

    write_project(project, max_rows=1)  # a new version of the model: its intervals are evaluated again
    with pytest.raises(PlanError):
        project.plan()
    audit = project.query(
        "SELECT COUNT(*) FROM mixmesh_quarantine.rows WHERE resolved_at IS NULL"
    )
    assert audit[0][0] > 0


@pytest.mark.slow
def test_the_audit_message_names_the_model_the_function_and_the_count(project: Project) -> None:
    write_project(project, max_rows=1)
    result = project.cli("plan", "--auto-apply", "--no-prompts", check=False)

    assert result.returncode != 0
    output = " ".join((result.stdout + result.stderr).split())  # the console wraps long lines
    assert "'quarantined_rows' audit error" in output
    assert re.search(r"model analytics.converted: function rate quarantined [23] rows of this interval", output)


@pytest.mark.slow
def test_a_failed_evaluation_leaves_no_quarantined_rows(project: Project) -> None:
    project.write("models/events.sql", EVENTS)
    project.write("macros/functions.py", FUNCTIONS)
    # The statement fails after the function ran on its rows (a NULL result cannot cast): its
    # data is never written, and neither are its quarantined rows.
    project.write("models/converted.sql", FAILING.format(end=DAYS))
    from mixmesh.core.resilience import events, reset_events

    reset_events()
    with pytest.raises(Exception, match="Plan application failed"):
        project.plan()
    assert events().get(("analytics.converted", "rate", "fallbacks"), 0) > 0  # rows did fail and get NULL
    assert quarantined(project) == []


FAILING = """
MODEL (
  name analytics.converted,
  kind INCREMENTAL_BY_TIME_RANGE (time_column day, batch_size 1),
  start '2024-01-01',
  end '2024-01-{end:02d}',
  cron '@daily'
);
SELECT id, day, converted, CAST(CASE WHEN converted IS NULL THEN 'x' ELSE '1' END AS INT) AS broken
FROM (SELECT id, day, amount * @rate(id, currency, day) AS converted FROM raw.events
      WHERE day BETWEEN @start_ds AND @end_ds)
"""


# ------------------------------------------------------------------------------ in-process


def test_a_run_where_everything_fails_records_the_cap_and_one_summary_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(quarantine.MAX_ROWS_VARIABLE, "5")
    with quarantine.collecting("analytics.scored") as collector:
        for i in range(12):
            quarantine.quarantine("analytics.scored", "score", ["x"], [i], ValueError(f"bad {i}"))
    rows = collector.rows()
    assert [json.loads(row.arguments)["x"] for row in rows[:5]] == [0, 1, 2, 3, 4]
    assert rows[5].error_type == quarantine.OVER_THE_CAP and rows[5].rows == 7 and rows[5].arguments is None
    assert "7 more failed rows of function 'score'" in rows[5].error_message
    assert len(rows) == 6


def test_a_row_outside_any_evaluation_is_not_kept() -> None:
    quarantine.quarantine("analytics.scored", "score", ["x"], [1], ValueError("bad"))
    with quarantine.collecting("analytics.other") as collector:
        pass
    assert collector.rows() == []


SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary()
    | st.decimals() | st.dates() | st.datetimes() | st.times() | st.timedeltas()
    | st.datetimes(timezones=st.timezones()) | st.uuids()
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text() | st.integers() | st.dates(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(VALUES, min_size=1, max_size=4))
def test_any_argument_value_encodes_as_json_by_name(values: list) -> None:
    names = [f"arg{i}" for i in range(len(values))]
    decoded = json.loads(quarantine.encode_arguments(names, values), parse_constant=_refuse)
    assert list(decoded) == names


def test_arguments_keep_their_meaning() -> None:
    encoded = quarantine.encode_arguments(
        ["day", "amount", "items", "nan", "other"],
        [dt.date(2024, 1, 2), decimal.Decimal("10.10"), [{"sku": "a", "n": 2}], math.nan, object()],
    )
    decoded = json.loads(encoded)
    assert decoded["day"] == "2024-01-02" and decoded["amount"] == "10.10"  # no precision lost
    assert decoded["items"] == [{"sku": "a", "n": 2}] and decoded["nan"] == "NaN"
    assert decoded["other"].startswith("<object object")


def _refuse(constant: str) -> None:
    raise AssertionError(f"not JSON: {constant}")


# --------------------------------------------------------------------- the example project

REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_example_passes_its_quarantine_audit_on_clean_data_and_fails_it_when_a_call_fails(tmp_path: Path) -> None:
    example = tmp_path / "example"
    built = _run(["mixmesh", "demo", str(example), "--customers", "60", "--transactions", "1500",
                  "--events", "600", "--days", "2"], cwd=tmp_path)
    assert built.returncode == 0, built.stdout + built.stderr
    with duckdb.connect(str(example / "demo.duckdb"), read_only=True) as connection:
        assert connection.sql("SELECT COUNT(*) FROM mixmesh_quarantine.rows").fetchall() == [(0,)]

    # The recommendation service goes down for sessions that viewed 3 products or more.
    functions = example / "python" / "shared" / "personalization.py"
    functions.write_text(functions.read_text().replace(
        '    """Content to show next, by what the session did and how engaged it was."""\n',
        '    """Content to show next, by what the session did and how engaged it was."""\n'
        '    if products_viewed >= 3:\n'
        '        raise ConnectionError("the recommendation service is down")\n',
    ))
    failed = _run(["sqlmesh", "plan", "--auto-apply", "--no-prompts", "--skip-tests",
                   "--execution-time", "2024-01-03 00:00:00"], cwd=example)

    assert failed.returncode != 0
    output = " ".join((failed.stdout + failed.stderr).split())
    assert re.search(r"model analytics.real_time_personalization: function python_content_recommendations "
                     r"quarantined \d+ rows of this interval", output), output[-3000:]
    with duckdb.connect(str(example / "demo.duckdb"), read_only=True) as connection:
        rows = connection.sql("SELECT DISTINCT function, error_type, error_message FROM mixmesh_quarantine.rows").fetchall()
        viewed = connection.sql("SELECT MIN(CAST(arguments::JSON->>'products_viewed' AS INT)) "
                                "FROM mixmesh_quarantine.rows").fetchall()
    assert rows == [("python_content_recommendations", "ConnectionError", "the recommendation service is down")]
    assert viewed[0][0] >= 3


def _run(command: list, cwd: Path) -> subprocess.CompletedProcess:
    executable = str(Path(sys.executable).with_name(command[0]))
    return subprocess.run([executable, *command[1:]], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"})


# ------------------------------------------------------------------ what each path records


def test_a_row_refused_by_an_open_circuit_is_quarantined_with_no_attempt() -> None:
    from mixmesh import CircuitBreaker, udf
    from mixmesh.runtime.rows import row_function

    @udf(on_error="null", circuit_breaker=CircuitBreaker(fail_max=2, reset_timeout=3600))
    def lookup(key: int) -> float:
        raise ConnectionError(f"down for {key}")

    call = row_function(lookup.spec, "analytics.m")
    with quarantine.collecting("analytics.m") as collector:
        assert [call(key) for key in range(4)] == [None] * 4
    rows = collector.rows()
    assert [(json.loads(r.arguments)["key"], r.error_type, r.attempts) for r in rows] == [
        (0, "ConnectionError", 1), (1, "ConnectionError", 1), (2, "CircuitOpenError", 0), (3, "CircuitOpenError", 0)
    ]


def test_only_the_failing_rows_of_a_vectorized_batch_are_quarantined() -> None:
    from mixmesh import udf
    from mixmesh.runtime.batches import BatchFunction

    @udf(vectorized=True, on_error=-1.0)
    def halve(x: pa.Array) -> pa.Array:
        if pc.any(pc.equal(x, 13)).as_py():
            raise ValueError("13 is refused")
        return pc.divide(x, 2.0)

    batch = BatchFunction(halve.spec, "analytics.m")
    with quarantine.collecting("analytics.m") as collector:
        result = batch(pa.array([10.0, 13.0, 20.0, 13.0, 4.0]))
    assert result.to_pylist() == [5.0, -1.0, 10.0, -1.0, 2.0]
    assert [(json.loads(r.arguments), r.error_message) for r in collector.rows()] == [
        ({"x": 13.0}, "13 is refused"), ({"x": 13.0}, "13 is refused")
    ]


def test_a_row_given_up_by_its_timeout_is_quarantined() -> None:
    import time

    from mixmesh import udf
    from mixmesh.runtime.rows import RowBatchFunction

    @udf(on_error="null", timeout_s=0.2)
    def slow(x: int) -> int:
        if x == 2:
            time.sleep(1)
        return x

    with quarantine.collecting("analytics.m") as collector:
        result = RowBatchFunction(slow.spec, "analytics.m")(pa.array([1, 2, 3]))
    assert result.to_pylist() == [1, None, 3]
    assert [(json.loads(r.arguments), r.error_type) for r in collector.rows()] == [({"x": 2}, "TimeoutError")]


def test_the_failed_rows_of_an_async_function_are_quarantined() -> None:
    from mixmesh import udf
    from mixmesh.runtime.rows import RowBatchFunction

    @udf(on_error="null", concurrency=4)
    async def looked_up(key: int) -> int:
        if key % 3 == 0:
            raise LookupError(f"no entry for {key}")
        return key * 10

    with quarantine.collecting("analytics.m") as collector:
        result = RowBatchFunction(looked_up.spec, "analytics.m")(pa.array([1, 3, 4, 6, 7]))
    assert result.to_pylist() == [10, None, 40, None, 70]
    assert sorted((json.loads(r.arguments)["key"], r.error_type) for r in collector.rows()) == [
        (3, "LookupError"), (6, "LookupError")
    ]


def test_an_async_functions_quarantined_row_records_its_attempts() -> None:
    """Retried rows of an async function say after how many calls they were given up, as
    the rows of a plain function do."""
    from mixmesh import Retry, udf
    from mixmesh.runtime.rows import RowBatchFunction

    @udf(on_error="null", concurrency=2, retry=Retry(attempts=3, backoff=[0], on=(ConnectionError,)))
    async def fetched(key: int) -> int:
        if key == 2:
            raise ConnectionError("service down")
        return key

    with quarantine.collecting("analytics.m") as collector:
        result = RowBatchFunction(fetched.spec, "analytics.m")(pa.array([1, 2]))
    assert result.to_pylist() == [1, None]
    assert [(json.loads(r.arguments), r.attempts) for r in collector.rows()] == [({"key": 2}, 3)]


def test_a_cached_functions_failed_call_counts_every_row_that_shared_it(tmp_path: Path) -> None:
    import duckdb

    from mixmesh import udf
    from mixmesh.runtime.cache import CachedRows, Warehouse

    @udf(on_error="null", cache=True)
    def priced(item: str) -> float:
        if item == "lost":
            raise LookupError("no price")
        return 1.5

    warehouse = Warehouse(duckdb.connect(str(tmp_path / "w.duckdb")))
    with quarantine.collecting("analytics.m") as collector:
        result = CachedRows(priced.spec, "analytics.m", warehouse=warehouse)(pa.array(["a", "lost", "a", "lost", "lost"]))
    assert result.to_pylist() == [1.5, None, 1.5, None, None]
    assert [(json.loads(r.arguments), r.rows) for r in collector.rows()] == [({"item": "lost"}, 3)]

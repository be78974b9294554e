"""``@udf(cache=...)``: results kept in the project's warehouse, shared by every run and process.

Calls are counted through a file the function appends a line to (a real side channel, read
back after each `sqlmesh` command run in a fresh process), on the fast path and on the plain
binding.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import time
import typing as t
from pathlib import Path

import duckdb
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

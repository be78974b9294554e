"""analytics.real_time_personalization run hour by hour while the events arrive, as in production.

About 5% of the demo's sessions cross an hour. The seed's model cut them at the hour (two
rows with one grain, each with part of the events) and dropped every session's first event;
a model that read past the hour's end but did not recompute the hour once the rest had
arrived would keep such sessions cut.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import duckdb
import pytest

from mixmesh.cli.demo_data import generate
from mixmesh.testing import copy_project

PROJECT = Path(__file__).resolve().parents[2]
DAY = datetime.datetime(2024, 1, 2)  # the second day of the data: the first is planned at once


@pytest.fixture
def run_hourly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "customer_analytics"
    copy_project(PROJECT, copy, leave_out=("artifacts", "tests"))
    monkeypatch.chdir(copy)  # SQLMesh reads the DuckDB path relative to the working directory
    database = str(copy / "demo.duckdb")
    with duckdb.connect(database) as connection:
        generate(connection, customers=60, transactions=300, events=1_500, days=2, end_date=DAY.date())
        # The second day's events arrive as they happen: held back here, released hour by hour.
        connection.execute(
            "CREATE TABLE raw.all_events AS FROM raw.raw_events; DELETE FROM raw.raw_events WHERE event_timestamp >= ?", [DAY]
        )
    from sqlmesh import Context

    context = Context(paths=str(copy))
    try:
        for hour in range(1, 25):
            now = DAY + datetime.timedelta(hours=hour)
            with duckdb.connect(database) as connection:
                connection.execute(
                    "INSERT INTO raw.raw_events SELECT * FROM raw.all_events WHERE event_timestamp >= ? AND event_timestamp < ?",
                    [now - datetime.timedelta(hours=1), now],
                )
            if hour == 1:
                context.plan(auto_apply=True, no_prompts=True, execution_time=now)
            else:
                context.run(execution_time=now, select_models=["analytics.real_time_personalization"])
    finally:
        context.close()
    return copy


def test_each_session_has_one_row_with_all_its_events(run_hourly: Path) -> None:
    with duckdb.connect(str(run_hourly / "demo.duckdb"), read_only=True) as connection:
        crossing, sessions = connection.sql(
            "SELECT count(*) FILTER (WHERE date_trunc('hour', first) <> date_trunc('hour', last)), count(*) "
            "FROM (SELECT min(event_timestamp) AS first, max(event_timestamp) AS last FROM raw.all_events GROUP BY session_id)"
        ).fetchone()
        assert crossing > 0  # the data has sessions across an hour, or this proves nothing
        expected = connection.sql(
            "SELECT user_id, session_id, min(event_timestamp), max(event_timestamp), count(*) "
            "FROM raw.all_events GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        actual = connection.sql(
            "SELECT user_id, session_id, session_start, session_end, total_events "
            "FROM analytics.real_time_personalization ORDER BY ALL"
        ).fetchall()
    assert len(expected) == sessions
    assert actual == expected

"""Quarantined rows on Spark (local mode): the executors' failed rows travel back to the driver
with their tasks' results and are written to the warehouse after the model's statement;
restating resolves them (Spark's file tables have no UPDATE: the table is rewritten); the
audit fails an interval over its limit. The same project as tests/test_quarantine.py."""

from __future__ import annotations

import json

import pytest

from tests.spark.projects import SparkProject
from tests.test_quarantine import CONVERTED, DAYS, FUNCTIONS, ROWS_PER_DAY

pytestmark = pytest.mark.slow

EVENTS = f"""
MODEL (name raw.events, kind FULL, dialect spark);
SELECT CAST(id AS INT) AS id, date_add(DATE '2024-01-01', CAST(FLOOR(id / {ROWS_PER_DAY}) AS INT)) AS day,
       CAST(id % 7 AS DOUBLE) AS amount, concat('C', CAST(id % 3 AS STRING)) AS currency
FROM range({DAYS * ROWS_PER_DAY})
"""

FAILED_IDS = [i for i in range(DAYS * ROWS_PER_DAY) if i % 100 == 37]


def write_project(project: SparkProject, max_rows: int) -> None:
    project.write("models/events.sql", EVENTS)
    project.write("macros/functions.py", FUNCTIONS)
    project.write("models/converted.sql", CONVERTED.format(end=DAYS, max_rows=max_rows))


def entries(project: SparkProject, where: str = "TRUE") -> list:
    return project.fetch(
        "SELECT model, function, arguments, error_type, attempts, row_count, run_id, "
        "CAST(resolved_at AS STRING), resolved_by_run, CAST(interval_start AS STRING) "
        f"FROM mixmesh_quarantine.rows WHERE {where} ORDER BY run_id, arguments"
    )


def test_exactly_the_rows_that_failed_on_the_executors_are_quarantined_and_a_restatement_resolves_them(
    spark_project: SparkProject,
) -> None:
    write_project(spark_project, max_rows=10)
    spark_project.plan()

    rows = entries(spark_project)
    assert sorted(json.loads(row[2])["id"] for row in rows) == FAILED_IDS  # retried-to-success rows are not there
    first = next(row for row in rows if json.loads(row[2])["id"] == 37)
    assert first[:6] == ["analytics.converted", "rate", '{"id":37,"currency":"C1","day":"2024-01-01"}',
                         "ServiceDown", 3, 1]
    nulls = spark_project.fetch("SELECT id FROM analytics.converted WHERE converted IS NULL ORDER BY id")
    assert [row[0] for row in nulls] == FAILED_IDS

    spark_project.plan(restate_models=["analytics.converted"], start="2024-01-02", end="2024-01-02")

    day = "interval_start = TIMESTAMP '2024-01-02 00:00:00'"
    again = entries(spark_project, day)
    old = [row for row in again if row[6] == next(r[6] for r in rows if r[9].startswith("2024-01-02"))]
    new = [row for row in again if row not in old]
    assert len(old) == len(new) == 2
    assert all(row[7] is not None and row[8] == new[0][6] for row in old)
    assert all(row[7] is None for row in new)
    assert all(row[7] is None for row in entries(spark_project, f"NOT ({day})"))


def test_the_audit_fails_an_interval_over_its_limit(spark_project: SparkProject) -> None:
    from sqlmesh.utils.errors import PlanError

    write_project(spark_project, max_rows=1)
    with pytest.raises(PlanError):
        spark_project.plan()
    assert len(entries(spark_project)) > 0

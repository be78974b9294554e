"""The document's code runs as written on Spark (local mode): its ``python_risk_score`` over
its ``ARRAY_AGG(STRUCT(...))`` and its hybrid model's ``COUNTIF`` into ``cart_additions: int``,
through ``sqlmesh plan`` and a fresh-process ``sqlmesh run``; every value equals the function
called in Python on the same inputs (tests/document_code.py, shared with the DuckDB test)."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest

from tests import document_code
from tests.spark.projects import SparkProject

pytestmark = pytest.mark.slow


def _risk_scores(rows: list) -> dict:
    return {(customer, _date(day)): score for customer, day, score in rows}


def _date(value: object) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


def _assert_equal(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert math.isclose(actual[key], value, rel_tol=1e-12), key
    assert len(set(actual.values())) > 2


def test_the_documents_models_plan_and_run_on_spark(tmp_path: Path) -> None:
    project = SparkProject(tmp_path / "document")
    document_code.write_project(project)
    project.cli("plan", "--auto-apply", "--no-prompts", "--execution-time", "2024-01-03")
    # The run re-creates the functions from SQLMesh's state; both tables are read after it, in
    # its process (each fresh process starts its own Spark): the risk scores of days 1 and 2 are
    # the plan's (the model is incremental), day 3's the run's.
    scores, sessions = project.cli_then_queries(
        ["run", "--end", "2024-01-04"],
        "SELECT customer_id, score_date, ml_risk_score FROM analytics.customer_risk_scoring",
        "SELECT user_id, session_id, ml_engagement_score FROM analytics.real_time_personalization",
    )
    _assert_equal(_risk_scores(scores), document_code.expected_risk_scores(days=[1, 2, 3]))
    expected = document_code.expected_engagement(document_code.session_features())
    assert {(user, session): score for user, session, score in sessions} == expected

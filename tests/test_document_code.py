"""The document's code runs as written on DuckDB: its ``python_risk_score(transaction_details:
List[Dict[str, Any]], total_amount: float, transaction_count: int)`` over its ``ARRAY_AGG(STRUCT
...)``, and its hybrid model's ``COUNTIF`` (HUGEINT) into ``cart_additions: int``, through
``sqlmesh plan``, a YAML test and a fresh-process ``sqlmesh run``; every value equals the
function called in Python on the same inputs."""

from __future__ import annotations

import datetime as dt
import math

import duckdb

import pytest

from tests import document_code
from tests.projects import Project

pytestmark = pytest.mark.slow


@pytest.fixture
def document(project: Project) -> Project:
    document_code.write_project(project)
    return project


def risk_scores(project: Project) -> dict:
    rows = project.query("SELECT customer_id, score_date, ml_risk_score FROM analytics.customer_risk_scoring")
    return {(customer, day): score for customer, day, score in rows}


def assert_scores_equal(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert math.isclose(actual[key], value, rel_tol=1e-12), key
    # The document's function answers 0.5 whenever it fails: the scores must say more than that.
    assert len(set(actual.values())) > 2 and set(actual.values()) != {0.5}


def test_the_documents_risk_model_plans_and_runs_in_a_fresh_process(document: Project) -> None:
    document.plan(execution_time="2024-01-03")
    assert_scores_equal(risk_scores(document), document_code.expected_risk_scores(days=[1, 2]))

    document.cli("run", "--end", "2024-01-04")
    assert_scores_equal(risk_scores(document), document_code.expected_risk_scores(days=[1, 2, 3]))


def test_the_documents_hybrid_model_takes_countif_into_an_int(document: Project) -> None:
    document.plan(execution_time="2024-01-03")
    rows = document.query("SELECT user_id, session_id, ml_engagement_score FROM analytics.real_time_personalization")
    # What the function's `int` parameter takes there: COUNTIF is DuckDB's COUNT_IF, a HUGEINT.
    assert duckdb.sql("SELECT typeof(count_if(true))").fetchone() == ("HUGEINT",)
    expected = document_code.expected_engagement(document_code.session_features())
    assert {(user, session): score for user, session, score in rows} == expected
    assert len(set(expected.values())) > 3


YAML_TEST = """
test_the_documents_risk_score:
  model: analytics.customer_risk_scoring
  vars:
    start: 2024-01-02
    end: 2024-01-02
  inputs:
    raw.raw_transactions:
      rows:
{rows}
  outputs:
    query:
      partial: true
      rows:
{outputs}
"""


def test_a_yaml_test_of_the_documents_model(document: Project) -> None:
    day = [row for row in document_code.transactions() if row["score_date"] == dt.date(2024, 1, 2)]
    rows = "\n".join(
        "        - " + ", ".join(f"{key}: {_yaml(value)}" for key, value in row.items()).join("{}")
        for row in day
    )
    expected = document_code.expected_risk_scores(days=[2])
    outputs = "\n".join(
        f"        - {{customer_id: {customer}, score_date: {date}, ml_risk_score: {score!r}}}"
        for (customer, date), score in sorted(expected.items())
    )
    document.write("tests/test_risk.yaml", YAML_TEST.format(rows=rows, outputs=outputs))
    result = document.cli("test")
    assert "Successfully Ran `1` Tests" in result.stdout

    wrong = YAML_TEST.format(rows=rows, outputs=outputs.replace("ml_risk_score: 0.", "ml_risk_score: 9."))
    document.write("tests/test_risk.yaml", wrong)
    assert document.cli("test", check=False).returncode != 0


def _yaml(value: object) -> str:
    if isinstance(value, dt.datetime):
        return f"'{value.isoformat(sep=' ')}'"
    return str(value) if not isinstance(value, str) else f"'{value}'"

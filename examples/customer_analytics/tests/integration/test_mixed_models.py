"""The example project built end to end on generated data, in a copy of it."""

from __future__ import annotations

import typing as t
from pathlib import Path

import duckdb
import pytest

from mixmesh.cli.demo_data import generate
from mixmesh.testing import copy_project

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Path]:
    """One build for the module's tests: they only read it, and the rerun must change nothing."""
    copy = tmp_path_factory.mktemp("built") / "customer_analytics"
    copy_project(PROJECT, copy, leave_out=("tests",))
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(copy)  # SQLMesh reads the DuckDB path relative to the working directory
        with duckdb.connect(str(copy / "demo.duckdb")) as connection:
            generate(connection, customers=150, transactions=6_000, events=500, days=5)
        from sqlmesh import Context

        context = Context(paths=str(copy))
        context.plan(auto_apply=True, no_prompts=True)
        context.close()
        yield copy


def test_risk_scores_are_probabilities_and_tiers_are_known(built: Path) -> None:
    with duckdb.connect(str(built / "demo.duckdb"), read_only=True) as connection:
        rows, low, high, tiers, days = connection.sql(
            "SELECT count(*), min(ml_risk_score), max(ml_risk_score), list(DISTINCT final_risk_tier), "
            "count(DISTINCT score_date) FROM analytics.customer_risk_scoring"
        ).fetchone()
        groups = connection.sql(
            "SELECT count(*) FROM (SELECT DISTINCT customer_id, score_date FROM raw.raw_transactions)"
        ).fetchone()[0]
    assert rows == groups and days == 5
    assert 0.0 <= low <= high <= 1.0
    assert set(tiers) <= {"HIGH", "MEDIUM", "LOW"}


def test_ltv_predictions_stay_within_the_segment_caps(built: Path) -> None:
    from python.models.ltv.predictor import SEGMENT_MAX_LTV

    with duckdb.connect(str(built / "demo.duckdb"), read_only=True) as connection:
        rows = connection.sql(
            "SELECT customer_segment, min(predicted_ltv), max(predicted_ltv), count(*) "
            "FROM analytics.customer_ltv_prediction GROUP BY 1"
        ).fetchall()
        active = connection.sql("SELECT count(*) FROM raw.dim_customers WHERE is_active").fetchone()[0]
    assert sum(count for *_, count in rows) == active
    for segment, low, high, _ in rows:
        assert 0 <= low <= high <= SEGMENT_MAX_LTV[segment]


def test_rerunning_adds_nothing(built: Path) -> None:
    from sqlmesh import Context

    with duckdb.connect(str(built / "demo.duckdb"), read_only=True) as connection:
        before = connection.sql("SELECT count(*) FROM analytics.customer_risk_scoring").fetchone()
    context = Context(paths=str(built))
    context.plan(auto_apply=True, no_prompts=True)
    context.run()
    context.close()
    with duckdb.connect(str(built / "demo.duckdb"), read_only=True) as connection:
        assert connection.sql("SELECT count(*) FROM analytics.customer_risk_scoring").fetchone() == before


def test_personalization_scores_sessions_and_recommends_content(built: Path) -> None:
    with duckdb.connect(str(built / "demo.duckdb"), read_only=True) as connection:
        rows, low, high, types, empty = connection.sql(
            "SELECT count(*), min(ml_engagement_score), max(ml_engagement_score), list(DISTINCT session_type), "
            "count(*) FILTER (WHERE len(recommended_content) = 0) FROM analytics.real_time_personalization"
        ).fetchone()
    assert rows > 0 and 0.0 <= low <= high <= 1.0 and empty == 0
    assert set(types) <= {"converter", "interested", "browsing", "casual"}


def test_personalization_counts_every_event_of_every_session_once(built: Path) -> None:
    # The seed's model dropped each session's first event before aggregating.
    with duckdb.connect(str(built / "demo.duckdb"), read_only=True) as connection:
        rows, sessions, events = connection.sql(
            "SELECT count(*), count(DISTINCT (user_id, session_id)), sum(total_events) FROM analytics.real_time_personalization"
        ).fetchone()
        raw_sessions, raw_events = connection.sql("SELECT count(DISTINCT (user_id, session_id)), count(*) FROM raw.raw_events").fetchone()
    assert rows == sessions == raw_sessions and events == raw_events

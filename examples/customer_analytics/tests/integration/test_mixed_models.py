"""The example project built end to end on generated data, in a copy of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from mixmesh.demo_data import generate

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "customer_analytics"
    shutil.copytree(PROJECT, copy, ignore=shutil.ignore_patterns("*.duckdb*", ".cache", "logs", "__pycache__", "tests"))
    monkeypatch.chdir(copy)  # SQLMesh reads the DuckDB path relative to the working directory
    with duckdb.connect(str(copy / "demo.duckdb")) as connection:
        generate(connection, customers=150, transactions=6_000, events=500, days=5)
    from sqlmesh import Context

    context = Context(paths=str(copy))
    context.plan(auto_apply=True, no_prompts=True)
    context.close()
    return copy


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

"""`mixmesh demo`: the example project built from a clean copy, rerun, extended, and its artifacts tampered with."""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
import sys
import typing as t
from pathlib import Path

import duckdb
import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
EXAMPLE = REPOSITORY / "examples" / "customer_analytics"
MIXMESH = str(Path(sys.executable).with_name("mixmesh"))
SIZES = {"customers": 120, "transactions": 4_000, "events": 1_500}
SEGMENT_MAX_LTV = {"enterprise": 500000, "smb": 50000, "consumer": 5000}  # the example's predictor

pytestmark = pytest.mark.slow


def demo(project: Path, days: int, *extra: str, variables: t.Mapping[str, str] = {}) -> str:
    sizes = [f"--{name}={value}" for name, value in SIZES.items()]
    environment = {**os.environ, "COLUMNS": "200", **variables}  # summary tables on one line each
    result = subprocess.run(
        [MIXMESH, "demo", "--project", str(project), *sizes, f"--days={days}", *extra],
        capture_output=True, text=True, env=environment,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def query(project: Path, sql: str) -> list:
    with duckdb.connect(str(project / "demo.duckdb"), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def snapshot(project: Path) -> dict:
    return {
        model: sorted(map(repr, query(project, f"SELECT * EXCLUDE ({volatile}) FROM analytics.{model}")))
        for model, volatile in (
            ("customer_risk_scoring", "score_date"),  # compared whole below, by day
            ("customer_ltv_prediction", "prediction_timestamp"),
            ("real_time_personalization", "processed_at"),
        )
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean copy of the example: what a fresh checkout holds, without a database or artifacts."""
    copy = tmp_path_factory.mktemp("demo") / "customer_analytics"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("*.duckdb*", "artifacts", ".cache", "logs", "__pycache__"))
    return copy


@pytest.fixture(scope="module")
def first_run(project: Path) -> str:
    return demo(project, days=4)


def test_the_demo_builds_every_model_from_the_generated_data(project: Path, first_run: str) -> None:
    assert "120 customers, 4,000 transactions, 1,500 web events over 4 days (2024-01-01 to 2024-01-04)" in first_run
    assert query(project, "SELECT count(*) FROM raw.dim_customers") == [(120,)]
    assert query(project, "SELECT count(*) FROM raw.raw_transactions") == [(4_000,)]
    assert query(project, "SELECT count(*) FROM raw.raw_events") == [(1_500,)]
    customer_days = query(project, "SELECT count(*) FROM (SELECT DISTINCT customer_id, score_date FROM raw.raw_transactions)")
    assert query(project, "SELECT count(*) FROM analytics.customer_risk_scoring") == customer_days
    active = query(project, "SELECT count(*) FROM raw.dim_customers WHERE is_active")
    assert query(project, "SELECT count(*) FROM analytics.customer_ltv_prediction") == active
    assert query(project, "SELECT count(*) > 0 FROM analytics.real_time_personalization") == [(True,)]
    # Built up to the period's end, not up to today.
    assert query(project, "SELECT max(score_date), max(prediction_date) FROM analytics.customer_risk_scoring, analytics.customer_ltv_prediction") == [
        (datetime.date(2024, 1, 4), datetime.date(2024, 1, 4))
    ]


def test_the_outputs_keep_their_promises(project: Path, first_run: str) -> None:
    (low, high, tiers), = query(
        project, "SELECT min(ml_risk_score), max(ml_risk_score), list(DISTINCT final_risk_tier) FROM analytics.customer_risk_scoring"
    )
    assert 0.0 <= low <= high <= 1.0 and low < high
    assert set(tiers) <= {"HIGH", "MEDIUM", "LOW"}
    for segment, smallest, largest in query(
        project, "SELECT customer_segment, min(predicted_ltv), max(predicted_ltv) FROM analytics.customer_ltv_prediction GROUP BY 1"
    ):
        assert 0 <= smallest <= largest <= SEGMENT_MAX_LTV[segment]
    sessions = {row[0] for row in query(project, "SELECT DISTINCT session_type FROM analytics.real_time_personalization")}
    assert sessions <= {"converter", "interested", "browsing", "casual"}


def test_the_demo_trains_pinned_models_and_summarises(project: Path, first_run: str) -> None:
    pins = (project / "artifacts" / "SHA256SUMS").read_text().split()
    assert pins[1::2] == ["confidence_model.joblib", "customer_risk_model.joblib", "ltv_model.joblib"]
    assert "risk model: artifacts/customer_risk_model.joblib" in first_run and "held-out ROC AUC" in first_run
    assert "ML models: trained in this run and pinned." in first_run and "fallback" not in first_run
    for heading in ("Risk tiers", "Top customers by predicted LTV", "Session types"):
        assert heading in first_run
    for model in ("customer_risk_scoring", "customer_ltv_prediction", "real_time_personalization"):
        assert f"analytics.{model}" in first_run
    assert first_run.count("1 batch(es)") == 3


def test_rerunning_adds_nothing(project: Path, first_run: str) -> None:
    before = snapshot(project)
    rerun = demo(project, days=4)
    assert snapshot(project) == before
    assert rerun.count("nothing new") == 3
    assert "reusing the models pinned in artifacts/SHA256SUMS" in rerun


def test_more_days_build_only_the_new_intervals(project: Path, first_run: str) -> None:
    # The hourly model redoes the hour before the new ones (its lookback), so leave that out.
    personalization = (
        "SELECT * EXCLUDE (processed_at) FROM analytics.real_time_personalization "
        "WHERE session_start < TIMESTAMP '2024-01-04 23:00' ORDER BY ALL"
    )
    old_days = query(project, personalization)
    risk_before = query(project, "SELECT * FROM analytics.customer_risk_scoring ORDER BY ALL")
    later = demo(project, days=6)
    assert later.count("1 batch(es)") == 3
    # The days already built are left as they were; the new ones are added.
    assert query(project, "SELECT * FROM analytics.customer_risk_scoring WHERE score_date <= DATE '2024-01-04' ORDER BY ALL") == risk_before
    assert query(project, personalization) == old_days
    assert query(project, "SELECT min(score_date), max(score_date) FROM analytics.customer_risk_scoring WHERE score_date > DATE '2024-01-04'") == [
        (datetime.date(2024, 1, 5), datetime.date(2024, 1, 6))
    ]
    assert query(project, "SELECT list(DISTINCT prediction_date ORDER BY prediction_date) FROM analytics.customer_ltv_prediction") == [
        ([datetime.date(2024, 1, 4), datetime.date(2024, 1, 6)],)
    ]


def test_a_tampered_artifact_is_refused_and_the_fallback_counted(project: Path, first_run: str, tmp_path: Path) -> None:
    copy = tmp_path / "tampered"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns("*.duckdb*", ".cache", "logs", "__pycache__"))
    with open(copy / "artifacts" / "customer_risk_model.joblib", "ab") as model:
        model.write(b"\0")  # one byte more: the pinned hash no longer matches
    (copy / "artifacts" / "ltv_model.joblib").unlink()
    # The risk model's fallback_share audit would fail the run (every score from the rules, as
    # tests/test_provenance.py shows): allowed here, to see the fallbacks counted.
    output = demo(copy, days=4, variables={"SQLMESH__VARIABLES__MAX_FALLBACK_SHARE": "1.0"})
    counts = re.search(
        r"rule-based fallbacks ran instead in (\d+) load\(s\) \(file missing (\d+), not pinned 0, hash mismatch (\d+)\)", output
    )
    assert counts, output
    used, missing, refused = map(int, counts.groups())
    # A refused model is refused once per process; the missing one is looked for at each use.
    assert missing >= 1 and refused == 1 and used == missing + refused
    # The seed's rules scored the customers: its thresholds give only these values.
    scores = {row[0] for row in query(copy, "SELECT DISTINCT round(ml_risk_score, 6) FROM analytics.customer_risk_scoring")}
    assert scores <= {0.0, 0.3, 0.4, 0.6, 0.7, 1.0}
    versions = query(copy, "SELECT DISTINCT prediction_confidence FROM analytics.customer_ltv_prediction")
    assert versions == [(0.6,)]  # the rule-based LTV's fixed confidence

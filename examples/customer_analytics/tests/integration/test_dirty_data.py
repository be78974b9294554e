"""The whole example on dirty data (`mixmesh demo --dirty`): NULLs in every column, duplicate
rows, late transactions, zero and negative amounts, unicode merchant names. Every model
builds, each gives one row per group of its input, and rows with NULL inputs get the
documented values. In a copy without trained models: the rules score, the same everywhere."""

from __future__ import annotations

import datetime
from pathlib import Path

import duckdb
import pytest

from mixmesh.cli.demo_data import generate
from mixmesh.testing import planned_copy

PROJECT = Path(__file__).resolve().parents[2]
PERIOD = ("2024-01-01", "2024-01-04")


@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    def dirty_data(copy: Path) -> None:
        with duckdb.connect(str(copy / "demo.duckdb")) as connection:
            generate(connection, customers=120, transactions=4_000, events=1_500, days=4,
                     end_date=datetime.date(2024, 1, 4), dirty=0.08)

    copy = tmp_path_factory.mktemp("dirty") / "customer_analytics"
    with planned_copy(PROJECT, copy, leave_out=("artifacts", "tests"), prepare=dirty_data, execution_time="2024-01-05"):
        pass
    connection = duckdb.connect(str(copy / "demo.duckdb"), read_only=True)
    yield connection
    connection.close()


def _one(connection, sql: str):
    return connection.sql(sql).fetchone()[0]


@pytest.mark.slow
def test_the_data_is_dirty(dirty) -> None:
    raw = "raw.raw_transactions"
    assert _one(dirty, f"SELECT count(*) FROM {raw} WHERE payment_method IS NULL") > 0
    assert _one(dirty, f"SELECT count(*) FROM {raw} WHERE merchant_category IS NULL") > 0
    assert _one(dirty, f"SELECT count(*) FROM {raw} WHERE amount <= 0") > 0
    assert _one(dirty, f"SELECT count(*) - count(DISTINCT {raw}) FROM {raw}") > 0  # duplicates
    assert _one(dirty, "SELECT count(*) FROM raw.dim_customers WHERE customer_segment IS NULL") > 0
    assert _one(dirty, "SELECT count(*) FROM raw.raw_events WHERE user_id IS NULL") > 0


@pytest.mark.slow
def test_risk_scoring_has_one_row_per_customer_day_and_nulls_score_as_documented(dirty) -> None:
    expected = _one(dirty, f"""
        SELECT count(*) FROM (SELECT DISTINCT customer_id, score_date FROM raw.raw_transactions
        WHERE transaction_date BETWEEN '{PERIOD[0]}' AND '{PERIOD[1]}' AND score_date BETWEEN '{PERIOD[0]}' AND '{PERIOD[1]}')
    """)
    assert _one(dirty, "SELECT count(*) FROM analytics.customer_risk_scoring") == expected > 100
    # Every customer-day with NULL fields is scored as the seed's pandas code scores it.
    from python.shared.feature_engineering import risk_score_row_by_row
    from python.shared.model_loading import load_risk_model

    rows = dirty.sql(f"""
        SELECT r.ml_risk_score, t.details, t.total, t.n FROM analytics.customer_risk_scoring r
        JOIN (SELECT customer_id, score_date, SUM(amount) AS total, COUNT(*) AS n,
                     list({{'amount': amount, 'merchant_category': merchant_category,
                           'transaction_time': transaction_time, 'payment_method': payment_method}}
                          ORDER BY transaction_time) AS details,
                     bool_or(amount IS NULL OR merchant_category IS NULL OR payment_method IS NULL
                             OR transaction_time IS NULL) AS has_null
              FROM raw.raw_transactions
              WHERE transaction_date BETWEEN '{PERIOD[0]}' AND '{PERIOD[1]}'
              GROUP BY ALL) t
        ON r.customer_id IS NOT DISTINCT FROM t.customer_id AND r.score_date = t.score_date
        WHERE t.has_null
    """).fetchall()
    assert len(rows) > 20
    load_risk_model.reset()  # the copy's: no trained model, the rules
    try:
        for score, details, total, n in rows:
            assert score == pytest.approx(risk_score_row_by_row(details, total, n), abs=1e-12)
    finally:
        load_risk_model.reset()


@pytest.mark.slow
def test_ltv_predicts_every_active_customer_within_the_caps(dirty) -> None:
    expected = _one(dirty, "SELECT count(DISTINCT customer_id) FROM raw.dim_customers WHERE is_active")
    model = "analytics.customer_ltv_prediction"
    assert _one(dirty, f"SELECT count(*) FROM {model}") == expected > 50
    assert _one(dirty, f"SELECT count(*) FROM {model} WHERE customer_id IS NULL OR predicted_ltv IS NULL OR isnan(predicted_ltv)") == 0
    # A customer of no known segment is capped at the smallest cap (consumer, 5,000).
    assert _one(dirty, f"SELECT max(predicted_ltv) FROM {model} WHERE customer_segment IS NULL") <= 5_000
    assert _one(dirty, f"SELECT count(*) FROM {model} WHERE customer_segment IS NULL") > 0


@pytest.mark.slow
def test_personalization_has_one_row_per_session_and_anonymous_sessions_get_content(dirty) -> None:
    expected = _one(dirty, f"""
        SELECT count(*) FROM (SELECT user_id, session_id FROM raw.raw_events
        WHERE event_timestamp IS NOT NULL GROUP BY ALL
        HAVING min(event_timestamp) BETWEEN TIMESTAMP '{PERIOD[0]}' AND TIMESTAMP '{PERIOD[1]} 23:59:59.999999')
    """)
    model = "analytics.real_time_personalization"
    assert _one(dirty, f"SELECT count(*) FROM {model}") == expected > 100
    assert _one(dirty, f"SELECT count(*) FROM {model} WHERE user_id IS NULL") > 0
    assert _one(dirty, f"SELECT count(*) FROM {model} WHERE recommended_content IS NULL OR len(recommended_content) = 0") == 0

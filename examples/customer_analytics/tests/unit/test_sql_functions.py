"""Unit tests of the example's SQL functions (sql/udfs/*.sql), on a plain DuckDB connection."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from mixmesh.cli.demo_data import generate
from mixmesh.engines.duckdb import register_sql_functions
from python.shared.feature_engineering import extract_behavioral_features

PROJECT = Path(__file__).resolve().parents[2]

# What analytics.customer_risk_scoring computed inline before it called the functions.
SEED_SQL = """
SELECT
    CASE WHEN n > 50 THEN 'high_activity' WHEN n < 5 THEN 'low_activity' ELSE 'normal_activity' END AS level,
    amount / NULLIF(n, 0) AS per_transaction,
    CASE
        WHEN score > 0.8 AND level = 'high_activity' THEN 'HIGH'
        WHEN score > 0.6 OR level = 'low_activity' THEN 'MEDIUM'
        ELSE 'LOW'
    END AS tier
FROM inputs
"""


@pytest.fixture(scope="module")
def sql() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    assert register_sql_functions(connection, PROJECT) == [
        "activity_level", "hours_between", "is_night_hour", "risk_tier", "safe_ratio"
    ]
    return connection


def test_activity_levels_use_the_seed_s_thresholds(sql: duckdb.DuckDBPyConnection) -> None:
    levels = sql.sql("SELECT activity_level(n) FROM (VALUES (4), (5), (50), (51), (NULL)) AS t(n)").fetchall()
    assert [level for (level,) in levels] == ["low_activity", "normal_activity", "normal_activity", "high_activity", "normal_activity"]


def test_the_functions_give_what_the_model_s_inline_sql_gave(sql: duckdb.DuckDBPyConnection) -> None:
    sql.execute(
        "CREATE TEMP TABLE inputs AS SELECT n::BIGINT AS n, (n * 7.5)::DOUBLE AS amount, score "
        "FROM range(0, 60) AS a(n), (SELECT unnest([NULL, 0.0, 0.6, 0.61, 0.8, 0.81, 1.0]) AS score)"
    )
    ours = sql.sql(
        "SELECT activity_level(n) AS level, safe_ratio(amount, n) AS per_transaction, "
        "risk_tier(score, activity_level(n)) AS tier FROM inputs"
    ).fetchall()
    assert ours == sql.sql(SEED_SQL).fetchall()
    assert len(ours) == 420


def test_safe_ratio_is_null_instead_of_a_division_error(sql: duckdb.DuckDBPyConnection) -> None:
    assert sql.sql("SELECT safe_ratio(10, 4), safe_ratio(10, 0), safe_ratio(10, NULL)").fetchone() == (2.5, None, None)


def test_night_hours_are_the_ones_the_python_features_count(sql: duckdb.DuckDBPyConnection) -> None:
    generate(sql, customers=40, transactions=2_000, events=10, days=3)
    rows = sql.sql(
        """
        SELECT customer_id, score_date, avg(is_night_hour(transaction_time)::DOUBLE) AS night_share,
               list(transaction_time ORDER BY transaction_time) AS times, list(amount) AS amounts
        FROM raw.raw_transactions GROUP BY ALL ORDER BY ALL
        """
    ).fetchall()
    assert len(rows) > 50
    for _, _, night_share, times, amounts in rows:
        frame = pd.DataFrame({"transaction_time": times, "amount": amounts, "merchant_category": "x", "payment_method": "y"})
        assert night_share == pytest.approx(extract_behavioral_features(frame)[0])


def test_hours_between_keeps_the_fractions(sql: duckdb.DuckDBPyConnection) -> None:
    assert sql.sql(
        "SELECT hours_between(TIMESTAMP '2024-01-01 10:00:00', TIMESTAMP '2024-01-02 11:30:00')"
    ).fetchone() == (25.5,)

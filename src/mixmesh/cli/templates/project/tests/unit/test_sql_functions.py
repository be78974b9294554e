"""Unit tests of the project's SQL functions (sql/udfs/*.sql), on a plain DuckDB connection."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from mixmesh.engines.duckdb import register_sql_functions

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sql() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the project's SQL functions, under their own names."""
    connection = duckdb.connect()
    assert register_sql_functions(connection, PROJECT) == ["risk_tier", "seconds_between"]
    return connection


def test_risk_tier_thresholds(sql: duckdb.DuckDBPyConnection) -> None:
    tiers = sql.sql("SELECT risk_tier(score) FROM (VALUES (0.0), (0.39), (0.4), (0.6), (0.61), (1.0)) AS t(score)")
    assert [tier for (tier,) in tiers.fetchall()] == ["LOW", "LOW", "MEDIUM", "MEDIUM", "HIGH", "HIGH"]


def test_seconds_between_keeps_fractions_and_nulls(sql: duckdb.DuckDBPyConnection) -> None:
    seconds = sql.sql(
        "SELECT seconds_between(TIMESTAMP '2024-01-01 10:00:00.9', TIMESTAMP '2024-01-01 10:00:01.1'), "
        "seconds_between(TIMESTAMP '2024-01-01 10:00:00', TIMESTAMP '2024-01-01 11:00:00'), "
        "seconds_between(NULL, TIMESTAMP '2024-01-01 10:00:00')"
    ).fetchone()
    assert seconds == (pytest.approx(0.2), 3600.0, None)

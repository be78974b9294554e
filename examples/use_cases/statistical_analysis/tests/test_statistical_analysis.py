"""The project built with SQLMesh on DuckDB, its statistics checked against scipy and
statistics called directly on the CSV, and against DuckDB's own aggregates."""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import defaultdict
from pathlib import Path

import pytest
from scipy import stats

from mixmesh.testing import ModelTest

PROJECT = Path(__file__).resolve().parents[1]


def amounts_by_store() -> dict[str, list[float]]:
    """The seed's non-NULL amounts per store, read with the csv module."""
    groups = defaultdict(list)
    with open(PROJECT / "seeds/store_daily_sales.csv", newline="") as file:
        for row in csv.DictReader(file):
            if row["amount"]:
                groups[row["store_id"]].append(float(row["amount"]))
    return groups


def test_the_yaml_tests_pass(built) -> None:
    result = built.test(stream=io.StringIO())
    assert result.testsRun == 2 and result.wasSuccessful(), [text for _, text in result.failures + result.errors]


def test_statistics_match_an_independent_computation(built) -> None:
    rows = {row["store_id"]: row for row in built.fetchdf("SELECT * FROM analytics.store_sales_stats").to_dict("records")}
    groups = amounts_by_store()
    assert sorted(rows) == sorted(groups) == ["S1", "S2", "S3", "S4"]
    for store, values in groups.items():
        row = rows[store]
        median = statistics.median(values)
        mad = statistics.median(abs(value - median) for value in values) * 1.482602218505602
        assert row["days_with_sales"] == len(values)
        assert row["median_amount"] == pytest.approx(median)
        assert row["robust_stddev"] == pytest.approx(mad)
        if len(values) >= 3:
            assert row["normality_p_value"] == pytest.approx(stats.shapiro(values).pvalue)
            assert row["not_normal"] == (stats.shapiro(values).pvalue < 0.05)


def test_the_robust_spread_agrees_with_duckdb_s_own_mad(built) -> None:
    # DuckDB's MAD aggregate, unscaled: the Python function's value divided by 1.4826.
    differences = built.fetchdf(
        "SELECT s.store_id, t.robust_stddev / 1.482602218505602 - MAD(s.amount) AS difference "
        "FROM raw.store_daily_sales s JOIN analytics.store_sales_stats t USING (store_id) "
        "GROUP BY s.store_id, t.robust_stddev"
    )
    assert len(differences) == 4 and differences["difference"].abs().max() < 1e-9


def test_nulls_are_skipped_and_short_lists_get_null(built) -> None:
    rows = built.fetchdf("SELECT store_id, days_with_sales, normality_p_value, not_normal FROM analytics.store_sales_stats "
                         "WHERE store_id IN ('S1', 'S4') ORDER BY store_id").to_dict("records")
    assert rows[0]["days_with_sales"] == 26 and not rows[0]["not_normal"]  # 28 days, 2 of them NULL; steady
    assert rows[1]["days_with_sales"] == 2 and rows[1]["normality_p_value"] != rows[1]["normality_p_value"]  # NULL reads NaN


def test_the_spike_is_the_steady_store_s_only_outlier(built) -> None:
    outliers = built.fetchdf("SELECT store_id, CAST(sale_date AS VARCHAR) AS day FROM analytics.sales_outliers ORDER BY ALL")
    assert [tuple(row) for row in outliers.itertuples(index=False) if row.store_id in ("S1", "S2")] == [("S2", "2024-01-15")]


def test_a_store_with_no_sales_at_all_gets_null_statistics(mixmesh_project) -> None:
    (row,) = ModelTest(
        model_name="analytics.store_sales_stats",
        inputs={"raw.store_daily_sales": [{"store_id": "Z", "sale_date": "2024-01-01", "amount": None}]},
        expected_outputs=[],
    ).actual_rows()
    # pandas reads a NULL DOUBLE as NaN
    assert row["days_with_sales"] == 0 and math.isnan(row["robust_stddev"]) and math.isnan(row["normality_p_value"])

"""Validation at the SQL/Python boundary: the checks, their messages, and the LTV pipeline using them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from python.shared.data_validation import DataValidationError, column, validate_features, validate_predictions

PROJECT = Path(__file__).resolve().parents[2]
SCHEMA = {
    "customer_id": column("string"),
    "visits": column("integer", min=0),
    "churn_risk": column("number", nullable=True, min=0, max=1),
    "last_seen": column("date", nullable=True),
}


def frame(**changes: list) -> pd.DataFrame:
    rows = {
        "customer_id": ["C1", "C2", "C3"],
        "visits": [3, 0, 12],
        "churn_risk": [0.0, 1.0, np.nan],
        "last_seen": pd.to_datetime(["2024-01-02", None, "2024-01-03"]),
    }
    return pd.DataFrame({**rows, **changes})


def test_a_valid_frame_comes_back_unchanged() -> None:
    df = frame()
    assert validate_features(df, SCHEMA, key="customer_id") is df


def test_a_missing_column_is_named() -> None:
    with pytest.raises(DataValidationError, match=r"features: column 'visits' is missing \(the frame has \['customer_id'"):
        validate_features(frame().drop(columns="visits"), SCHEMA)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"visits": [3, -1, 12]}, "column 'visits': 1 value(s) below the minimum 0, e.g. row customer_id='C2': -1"),
        ({"churn_risk": [0.0, 1.5, 1.2]}, "column 'churn_risk': 2 value(s) above the maximum 1, e.g. row customer_id='C2': 1.5"),
        ({"churn_risk": [0.0, np.inf, 0.5]}, "column 'churn_risk': 1 value(s) infinite, e.g. row customer_id='C2': inf"),
        ({"customer_id": ["C1", None, "C3"]}, "column 'customer_id': 1 value(s) NULL or NaN, e.g. row at position 1: None"),
        ({"visits": [3.0, 2.5, 1.0]}, "column 'visits': 1 value(s) not an integer (dtype float64), e.g. row customer_id='C2': 2.5"),
        ({"churn_risk": [0.1, "high", 0.2]}, "column 'churn_risk': 3 value(s) not a number (dtype object), e.g. row customer_id='C1': 0.1"),
        ({"customer_id": ["C1", 2, "C3"]}, "column 'customer_id': 1 value(s) not a string (dtype object), e.g. row at position 1: 2"),
        ({"last_seen": ["2024-01-02", None, "2024-01-03"]}, "column 'last_seen': 2 value(s) not a date (dtype object), e.g. row customer_id='C1': '2024-01-02'"),
    ],
    ids=["below min", "above max", "infinite", "null", "fraction", "text in numbers", "number in text", "text date"],
)
def test_a_bad_value_is_reported_with_its_column_and_an_example_row(changes: dict, message: str) -> None:
    with pytest.raises(DataValidationError) as raised:
        validate_features(frame(**changes), SCHEMA, name="features", key="customer_id")
    assert str(raised.value) == f"features: {message}"


def test_nulls_are_allowed_where_the_schema_says_so_but_not_infinities() -> None:
    validate_features(frame(churn_risk=[np.nan] * 3, last_seen=[None] * 3), SCHEMA)
    with pytest.raises(DataValidationError, match="'churn_risk': 1 value.s. infinite"):
        validate_features(frame(churn_risk=[np.nan, -np.inf, np.nan]), SCHEMA)


def test_bounds_are_included() -> None:
    validate_features(frame(visits=[0, 0, 0], churn_risk=[0.0, 1.0, 0.5]), SCHEMA)


def test_integers_may_arrive_as_whole_floats_or_nullable_integers() -> None:
    # DuckDB gives INTEGER columns with NULLs as pandas' nullable Int32; pandas itself as float.
    from_duckdb = duckdb.sql("SELECT * FROM (VALUES (1), (NULL)) AS t(n)").df()
    assert str(from_duckdb["n"].dtype) == "Int32"
    nullable = {"n": column("integer", nullable=True, min=0)}
    validate_features(from_duckdb, nullable)
    validate_features(pd.DataFrame({"n": [1.0, np.nan]}), nullable)
    with pytest.raises(DataValidationError, match="'n': 1 value.s. below the minimum 0"):
        validate_features(duckdb.sql("SELECT * FROM (VALUES (-1), (NULL)) AS t(n)").df(), nullable)


def test_dates_may_be_timestamps_or_python_dates() -> None:
    validate_features(frame(last_seen=[dt.date(2024, 1, 2), None, dt.datetime(2024, 1, 3)]), SCHEMA)


def test_a_duplicate_key_is_reported() -> None:
    with pytest.raises(DataValidationError, match=r"key customer_id is not unique: 2 row\(s\) share a key, e.g. customer_id='C1' appears in 2 rows"):
        validate_features(frame(customer_id=["C1", "C1", "C3"]), SCHEMA, key="customer_id")


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(DataValidationError) as raised:
        validate_features(frame(visits=[-1, 0, 1], churn_risk=[2.0, 0.0, 0.0]), SCHEMA, name="LTV features", key="customer_id")
    assert len(raised.value.problems) == 2
    assert str(raised.value).startswith("LTV features: 2 problems\n  - column 'visits'")


def test_rules_are_plain_values_sqlmesh_can_store() -> None:
    # SQLMesh keeps a model's module-level values as their repr and evaluates it back.
    rule = column("number", nullable=True, min=0, max=1)
    assert eval(repr(rule)) == rule


def test_a_rule_must_make_sense() -> None:
    with pytest.raises(ValueError, match="kind must be one of number, integer, string, date, bool, not 'float'"):
        column("float")
    with pytest.raises(ValueError, match="a string column has no range"):
        column("string", min=0)


CAPS = {"consumer": 5000, "smb": 50000}


def predictions(**changes: list) -> pd.DataFrame:
    rows = {
        "customer_id": ["C1", "C2", "C3", "C4"],
        "customer_segment": ["consumer", "smb", "startup", None],
        "predicted_ltv": [5000.0, 120.0, 9e9, np.nan],
        "prediction_confidence": [0.6, 1.0, 0.0, 0.42],
    }
    return pd.DataFrame({**rows, **changes})


def test_predictions_within_caps_pass_and_uncapped_segments_are_not_capped() -> None:
    df = predictions()  # C3's segment has no cap; C4's prediction is missing (dropped at the output)
    assert validate_predictions(df, CAPS) is df


def test_a_prediction_above_its_segment_cap_names_the_customer_and_segment() -> None:
    with pytest.raises(DataValidationError) as raised:
        validate_predictions(predictions(predicted_ltv=[5000.01, 50001.0, 1.0, 1.0]), CAPS)
    assert str(raised.value) == (
        "predictions: column 'predicted_ltv': 2 value(s) above the cap of its customer_segment, "
        "e.g. row customer_id='C1', customer_segment='consumer': 5000.01"
    )


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"prediction_confidence": [0.6, 1.1, 0.0, 0.4]}, "'prediction_confidence': 1 value.s. above the maximum 1"),
        ({"prediction_confidence": [0.6, np.nan, 0.0, 0.4]}, "'prediction_confidence': 1 value.s. NULL or NaN"),
        ({"predicted_ltv": [np.inf, 1.0, 1.0, 1.0]}, "'predicted_ltv': 1 value.s. infinite"),
    ],
)
def test_bad_predictions_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(DataValidationError, match=message):
        validate_predictions(predictions(**changes), CAPS)


# --- the LTV pipeline with its checks ---------------------------------------------------------


def test_the_ltv_model_on_generated_data_passes_its_checks_and_its_caps() -> None:
    """Behaviour kept: on the demo's data, every boundary check holds and every customer is predicted."""
    from mixmesh.cli.demo_data import generate
    from mixmesh.testing import ModelTest
    from python.models.ltv.predictor import SEGMENT_MAX_LTV

    with duckdb.connect() as connection:
        generate(connection, customers=120, transactions=3_000, events=10, days=5)
        inputs = {
            table: connection.sql(f"SELECT * FROM {table}").df().to_dict("records")
            for table in ("raw.raw_transactions", "raw.dim_customers")
        }
        start, end = connection.sql("SELECT min(transaction_date), max(transaction_date) FROM raw.raw_transactions").fetchone()
    active = sum(1 for customer in inputs["raw.dim_customers"] if customer["is_active"])
    rows = ModelTest("analytics.customer_ltv_prediction", inputs, [], start=str(start), end=str(end), path=PROJECT).actual_rows()
    assert len(rows) == active > 50
    assert all(row["predicted_ltv"] <= SEGMENT_MAX_LTV[row["customer_segment"]] for row in rows)


def test_the_ltv_model_refuses_a_customer_listed_twice() -> None:
    """Two rows for one customer in dim_customers would give two predictions for one grain."""
    from mixmesh.testing import ModelTest

    customer = {"customer_id": "C1", "customer_segment": "consumer", "account_tenure_days": 10, "is_active": True}
    test = ModelTest(
        "analytics.customer_ltv_prediction",
        {"raw.dim_customers": [customer, customer], "raw.raw_transactions": []},
        [],
        start="2024-01-02",
        end="2024-01-02",
        path=PROJECT,
    )
    with pytest.raises(Exception, match="customer features from SQL: key customer_id is not unique.*customer_id='C1' appears in 2 rows"):
        test.actual_rows()


def test_engineered_features_out_of_range_are_refused() -> None:
    """A bug upstream (here transactions after the prediction date) is caught at the boundary."""
    # Imported here: loading a SQLMesh Context (tests above) reloads the project's modules, and
    # the error class must be the one the reloaded features module raises.
    from python.models.ltv.features import engineer_ltv_features
    from python.shared.data_validation import DataValidationError

    customers = pd.DataFrame({"customer_id": ["C1", "C2"], "total_spend": [10.0, 20.0], "total_transactions": [1, 2],
                              "last_transaction_date": ["2024-01-05", "2024-01-02"], "first_transaction_date": ["2024-01-01", "2024-01-02"]})
    with pytest.raises(DataValidationError, match="LTV features: column 'days_since_last_transaction': 2 value.s. below the minimum 0, e.g. row customer_id='C1': -4"):
        engineer_ltv_features(customers, as_of="2024-01-01")


def test_adjusted_predictions_are_checked() -> None:
    """A confidence model answering outside 0..1 is caught after the business rules."""
    from python.models.ltv.predictor import validate_and_adjust_predictions
    from python.shared.data_validation import DataValidationError

    predicted = pd.DataFrame({"customer_id": ["C1"], "customer_segment": ["consumer"], "predicted_ltv": [100.0],
                              "prediction_confidence": [1.5], "days_since_last_transaction": [5], "churn_risk": [0.1], "total_spend": [10.0]})
    with pytest.raises(DataValidationError, match="predictions: column 'prediction_confidence': 1 value.s. above the maximum 1, e.g. row customer_id='C1': 1.5"):
        validate_and_adjust_predictions(predicted)

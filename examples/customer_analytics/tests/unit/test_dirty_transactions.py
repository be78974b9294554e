"""The risk function on dirty transactions: NULL fields, zero and negative amounts, totals
that do not add up. Each customer is scored on its own; the batch path and the seed's
per-customer pandas path agree row for row."""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixmesh.cli.demo_data import generate
from mixmesh.resilience import events, reset_events
from python.shared.feature_engineering import (
    NEUTRAL_SCORE,
    behavioral_features,
    extract_behavioral_features,
    python_risk_score,
    risk_score_row_by_row,
)
from python.shared.model_loading import load_risk_model

DETAILS = pa.list_(pa.struct([
    ("amount", pa.float64()),
    ("merchant_category", pa.string()),
    ("transaction_time", pa.timestamp("us")),
    ("payment_method", pa.string()),
]))


@pytest.fixture(autouse=True)
def rules_model(tmp_path, monkeypatch):
    """The rule-based model (no artifacts here): its thresholds see every feature."""
    monkeypatch.chdir(tmp_path)
    load_risk_model.reset()
    yield
    load_risk_model.reset()


def _both_ways(rows):
    details = pa.array([row[0] for row in rows], type=DETAILS)
    totals = pa.array([row[1] for row in rows], type=pa.float64())
    counts = pa.array([row[2] for row in rows], type=pa.int64())
    vectorized = python_risk_score.__wrapped__(details, totals, counts).to_pylist()
    literal = [risk_score_row_by_row(*row) for row in rows]
    return details, vectorized, literal


def test_nulls_in_every_field_score_each_customer_like_the_seed_s_pandas_code() -> None:
    connection = duckdb.connect()
    generate(connection, customers=150, transactions=6_000, events=10, days=3)
    # About one field in eight NULL, chosen by a hash so the choice is the same every run.
    rows = connection.sql(
        """
        WITH dirty AS (
            SELECT customer_id, score_date,
                   CASE WHEN hash(transaction_id, 1) % 8 = 0 THEN NULL ELSE amount END AS amount,
                   CASE WHEN hash(transaction_id, 2) % 8 = 0 THEN NULL ELSE merchant_category END AS merchant_category,
                   CASE WHEN hash(transaction_id, 3) % 8 = 0 THEN NULL ELSE transaction_time END AS transaction_time,
                   CASE WHEN hash(transaction_id, 4) % 8 = 0 THEN NULL ELSE payment_method END AS payment_method
            FROM raw.raw_transactions
        )
        SELECT list({'amount': amount, 'merchant_category': merchant_category,
                     'transaction_time': transaction_time, 'payment_method': payment_method}
                    ORDER BY transaction_time),
               SUM(amount), COUNT(*)
        FROM dirty GROUP BY customer_id, score_date ORDER BY customer_id, score_date
        """
    ).fetchall()
    details, vectorized, literal = _both_ways(rows)
    assert sum(1 for row in rows if any(v is None for d in row[0] for v in d.values())) > 100
    assert vectorized == pytest.approx(literal, abs=1e-12)
    assert len(set(literal)) > 2
    features = behavioral_features(details, pc.list_value_length(details).to_numpy())
    assert np.isfinite(features).all()
    expected = np.array([extract_behavioral_features(pd.DataFrame(row[0])) for row in rows])
    np.testing.assert_allclose(features, expected, rtol=1e-9, atol=1e-12)


_TIMES = st.one_of(st.none(), st.datetimes(min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2024, 1, 3)))
_AMOUNTS = st.one_of(st.none(), st.sampled_from([0.0, -25.0, 0.01]), st.floats(-1e4, 1e5, allow_nan=False))
_TEXT = st.one_of(st.none(), st.sampled_from(["grocery", "Café Münster", "書店", "🛒 shop", "", "مطعم"]))
_TRANSACTION = st.fixed_dictionaries({
    "amount": _AMOUNTS, "merchant_category": _TEXT, "transaction_time": _TIMES, "payment_method": _TEXT,
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(_TRANSACTION, min_size=1, max_size=6), min_size=1, max_size=6))
def test_any_mix_of_nulls_and_odd_values_scores_as_the_seed_s_code_does(customers) -> None:
    rows = []
    for transactions in customers:
        ordered = sorted(transactions, key=lambda d: (d["transaction_time"] is None, d["transaction_time"] or dt.datetime.min))
        amounts = [d["amount"] for d in ordered if d["amount"] is not None]
        rows.append((ordered, math.fsum(amounts) if amounts else None, len(ordered)))
    _, vectorized, literal = _both_ways(rows)
    assert vectorized == pytest.approx(literal, abs=1e-9)
    assert all(0.0 <= score <= 1.0 for score in vectorized)


def test_no_transactions_or_a_zero_count_get_the_neutral_score() -> None:
    rows = [
        ([], None, 0),
        ([{"amount": 5.0, "merchant_category": "a", "transaction_time": dt.datetime(2024, 1, 1), "payment_method": "card"}], 5.0, 0),
    ]
    _, vectorized, literal = _both_ways(rows)
    assert vectorized == literal == [NEUTRAL_SCORE, NEUTRAL_SCORE]
    nulls = python_risk_score.__wrapped__(pa.array([None], type=DETAILS), pa.array([None], pa.float64()), pa.array([None], pa.int64()))
    assert nulls.to_pylist() == [NEUTRAL_SCORE]


def test_totals_that_do_not_add_up_are_counted_not_logged_per_customer(caplog) -> None:
    reset_events()
    detail = {"amount": 10.0, "merchant_category": "a", "transaction_time": dt.datetime(2024, 1, 1, 12), "payment_method": "card"}
    rows = [([detail, detail], 20.0, 2), ([detail], 11.0, 1), ([detail], 9.5, 1), ([{**detail, "amount": None}], None, 1)]
    with caplog.at_level("WARNING"):
        for _ in range(3):
            _both_ways(rows[:3] + rows[3:])
    counted = {key: n for key, n in events().items() if key[2] == "finding:amount_mismatches"}
    # Two customers mismatch per batch, three batches; the seed's row-by-row path logs instead.
    assert list(counted.values()) == [6]
    counted_lines = [r for r in caplog.records if "amount_mismatches" in r.getMessage()]
    assert len(counted_lines) == 1 and "SQL=11.0, Python=10.0" in counted_lines[0].getMessage()

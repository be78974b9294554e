"""Risk features and the risk score the SQL model calls as @python_risk_score(...).

``python_risk_score`` is the seed document's function, vectorized: it receives a batch of
customers (Arrow arrays) and computes every customer's features with numpy over the
flattened transactions, then scores them all in one ``predict_proba`` call, instead of
building a pandas DataFrame per customer. ``risk_score_row_by_row`` is the seed's version
kept as written (with the corrections below): tests check both give the same scores.

Corrections to the seed:
- ``transaction_time.diff()`` ran on strings; times are datetimes here.
- A single transaction has no standard deviation (pandas gives NaN): its volatility is 0.
- The seed's fallback model scored only the first row it was given (see model_loading).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mixmesh import udf
from python.shared.model_loading import load_risk_model

logger = logging.getLogger(__name__)

NEUTRAL_SCORE = 0.5  # insufficient data
ONE_DAY_HOURS = 24.0  # the seed's default gap when there is a single transaction


@udf(vectorized=True)  # the arrays' types are the call site's (the model's ARRAY_AGG(STRUCT(...)), SUM, COUNT)
def python_risk_score(transaction_details: pa.Array, total_amount: pa.Array, transaction_count: pa.Array) -> pa.Array:
    """Risk between 0.0 (low) and 1.0 (high) for each customer of the batch."""
    lengths = pc.fill_null(pc.list_value_length(transaction_details), 0).to_numpy(zero_copy_only=False)
    counts = pc.fill_null(transaction_count, 0).to_numpy(zero_copy_only=False)
    scores = np.full(len(transaction_details), NEUTRAL_SCORE)
    scored = (lengths > 0) & (counts != 0)
    if scored.any():
        features = behavioral_features(transaction_details, lengths)[scored]
        probabilities = load_risk_model().predict_proba(features)[:, 1]
        scores[scored] = np.clip(probabilities, 0.0, 1.0)
    return pa.array(scores, type=pa.float64())


def behavioral_features(transaction_details: pa.Array, lengths: np.ndarray) -> np.ndarray:
    """The seed's six features for every customer, computed over all transactions at once."""
    groups = np.repeat(np.arange(len(lengths)), lengths)
    flat = _in_time_order(pc.list_flatten(transaction_details), groups)
    n = np.maximum(lengths, 1).astype(float)

    def per_customer(values: np.ndarray) -> np.ndarray:
        return np.bincount(groups, weights=values, minlength=len(lengths))

    hours = pc.hour(flat.field("transaction_time")).to_numpy(zero_copy_only=False)
    night_ratio = per_customer(((hours < 6) | (hours > 22)).astype(float)) / n

    amounts = flat.field("amount").to_numpy(zero_copy_only=False).astype(float)
    mean = per_customer(amounts) / n
    squares = per_customer((amounts - mean[groups]) ** 2)
    std = np.sqrt(np.divide(squares, lengths - 1, out=np.zeros_like(squares), where=lengths > 1))
    amount_cv = np.divide(std, mean, out=np.zeros_like(std), where=mean > 0)

    category_ratio = _distinct_per_customer(flat.field("merchant_category"), groups, len(lengths)) / n
    payment_methods = _distinct_per_customer(flat.field("payment_method"), groups, len(lengths))

    # In time order (above): the mean of consecutive gaps is (last - first) / (count - 1).
    times = pc.cast(flat.field("transaction_time"), pa.int64()).to_numpy(zero_copy_only=False)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    first, last = times[np.minimum(offsets[:-1], len(times) - 1)], times[np.maximum(offsets[1:] - 1, 0)]
    gap_hours = np.where(
        lengths > 1, (last - first) / np.maximum(lengths - 1, 1) / 1e6 / 3600, ONE_DAY_HOURS
    )
    return np.column_stack([night_ratio, amount_cv, category_ratio, payment_methods, gap_hours, lengths.astype(float)])


def _in_time_order(flat: pa.StructArray, groups: np.ndarray) -> pa.StructArray:
    """Each customer's transactions by time (then amount), whatever order the list came in.

    The SQL orders the list by time, but not every engine keeps that order: on Spark, SQLMesh
    writes ARRAY_AGG(... ORDER BY ...) as COLLECT_LIST, which keeps none. The features need
    the order for the gaps, and one order for the sums to add the same bits: a trained model's
    split thresholds are values of the features it was trained on.
    """
    times = pc.cast(flat.field("transaction_time"), pa.int64()).to_numpy(zero_copy_only=False)
    amounts = flat.field("amount").to_numpy(zero_copy_only=False)
    return flat.take(pa.array(np.lexsort((amounts, times, groups))))


def _distinct_per_customer(values: pa.Array, groups: np.ndarray, customers: int) -> np.ndarray:
    codes = pc.dictionary_encode(values).indices.to_numpy(zero_copy_only=False)
    pairs = np.unique(groups.astype(np.int64) * (int(codes.max(initial=0)) + 1) + codes)
    return np.bincount(pairs // (int(codes.max(initial=0)) + 1), minlength=customers).astype(float)


# --- the seed's row-by-row version, the reference the vectorized one must match ---------------


def risk_score_row_by_row(transaction_details: list, total_amount: float, transaction_count: int) -> float:
    """The seed's python_risk_score: a pandas DataFrame per customer."""
    try:
        if not transaction_details or transaction_count == 0:
            return NEUTRAL_SCORE
        df = pd.DataFrame(transaction_details)
        features = extract_behavioral_features(df)
        risk_score = load_risk_model().predict_proba([features])[0][1]
        calculated_total = df["amount"].sum()
        if abs(calculated_total - total_amount) > 0.01:
            logger.warning(f"Amount mismatch: SQL={total_amount}, Python={calculated_total}")
        return float(np.clip(risk_score, 0.0, 1.0))
    except Exception as e:
        logger.error(f"Risk scoring failed: {str(e)}")
        return NEUTRAL_SCORE


def extract_behavioral_features(transactions_df: pd.DataFrame) -> list:
    """Extract behavioral features from transaction data (the seed's, corrected)."""
    times = pd.to_datetime(transactions_df["transaction_time"])
    hours = times.dt.hour
    night_transactions = (hours < 6) | (hours > 22)
    amount_mean = transactions_df["amount"].mean()
    amount_std = transactions_df["amount"].std()
    amount_cv = amount_std / amount_mean if amount_mean > 0 and not np.isnan(amount_std) else 0.0
    unique_categories = transactions_df["merchant_category"].nunique()
    payment_method_diversity = transactions_df["payment_method"].nunique()
    time_gaps = times.diff().dt.total_seconds()
    avg_time_gap = time_gaps.mean() if len(time_gaps) > 1 else 86400
    return [
        float(night_transactions.mean()),
        float(amount_cv),
        float(unique_categories / len(transactions_df)),
        float(payment_method_diversity),
        float(avg_time_gap / 3600),
        float(len(transactions_df)),
    ]

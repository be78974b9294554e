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
- NULL fields (dirty data): the seed's pandas code skips them in every feature but the time
  gap, which came out NaN for a customer with at most one timed transaction among several
  (the model cannot score NaN): that customer gets the one-day gap, as a single transaction
  does. A NULL SQL total (every amount NULL) made the seed's check raise, and the customer
  fall back to the neutral score: the check skips it.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mixmesh import count, udf
from python.shared.model_loading import load_risk_model

logger = logging.getLogger(__name__)

NEUTRAL_SCORE = 0.5  # insufficient data
AMOUNT_TOLERANCE = 0.01  # the seed's: a Python total this far from SQL's is a mismatch
ONE_DAY_HOURS = 24.0  # the seed's default gap when there is a single transaction


# The arrays' types are the call site's (the model's ARRAY_AGG(STRUCT(...)), SUM, COUNT).
# NULLs are passed in: a customer-day whose amounts are all NULL (a NULL total) is scored too.
@udf(vectorized=True, null_handling="call")
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
    _check_totals(transaction_details, total_amount)
    return pa.array(scores, type=pa.float64())


def _check_totals(transaction_details: pa.Array, total_amount: pa.Array) -> None:
    """The seed's check of the Python sum against SQL's total, counted (``amount_mismatches``
    in the run's figures, the first one logged) rather than logged once per customer."""
    totals = pc.cast(total_amount, pa.float64()).to_numpy(zero_copy_only=False).astype(float)
    python = python_totals(transaction_details)
    mismatched = np.flatnonzero(np.abs(python - totals) > AMOUNT_TOLERANCE)  # a NULL SQL total (no amounts) is NaN: not compared
    if len(mismatched):
        first = mismatched[0]
        count(
            "amount_mismatches",
            len(mismatched),
            detail=f"Amount mismatch: SQL={totals[first]}, Python={python[first]}",
        )


def behavioral_features(transaction_details: pa.Array, lengths: np.ndarray) -> np.ndarray:
    """The seed's six features for every customer, computed over all transactions at once.

    A NULL field leaves its transaction out of that field's features only, as pandas skips
    NaN in the seed's version: a NULL time is not a night transaction and has no gap, a NULL
    amount is not in the mean or spread, a NULL category or payment method is not a kind.
    """
    groups = np.repeat(np.arange(len(lengths)), lengths)
    # In time order, then by amount (the model's ORDER BY, kept on Spark too): one order, so
    # that the sums add the same bits everywhere; a trained model's split thresholds are
    # values of the features it was trained on.
    flat = pc.list_flatten(transaction_details)
    n = np.maximum(lengths, 1).astype(float)

    def per_customer(values: np.ndarray) -> np.ndarray:
        return np.bincount(groups, weights=values, minlength=len(lengths))

    hours = pc.hour(flat.field("transaction_time")).to_numpy(zero_copy_only=False)
    night_ratio = per_customer(((hours < 6) | (hours > 22)).astype(float)) / n

    amount_cv = _amount_variation(_as_floats(flat.field("amount")), groups, per_customer)
    category_ratio = _distinct_per_customer(flat.field("merchant_category"), groups, len(lengths)) / n
    payment_methods = _distinct_per_customer(flat.field("payment_method"), groups, len(lengths))
    gap_hours = _mean_gap_hours(_as_floats(pc.cast(flat.field("transaction_time"), pa.int64())), groups, len(lengths))
    return np.column_stack([night_ratio, amount_cv, category_ratio, payment_methods, gap_hours, lengths.astype(float)])


def python_totals(transaction_details: pa.Array) -> np.ndarray:
    """Each customer's amounts added up in Python (NULL amounts skipped, as SQL's SUM does)."""
    lengths = pc.fill_null(pc.list_value_length(transaction_details), 0).to_numpy(zero_copy_only=False)
    if not lengths.any():  # also a list of nothing typed, whose items have no fields
        return np.zeros(len(lengths))
    groups = np.repeat(np.arange(len(lengths)), lengths)
    amounts = _as_floats(pc.list_flatten(transaction_details).field("amount"))
    return np.bincount(groups, weights=np.nan_to_num(amounts, nan=0.0), minlength=len(lengths))


def _as_floats(values: pa.Array) -> np.ndarray:
    """The values as float64, NULL as NaN."""
    return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False).astype(float)


def _amount_variation(amounts: np.ndarray, groups: np.ndarray, per_customer) -> np.ndarray:
    """Standard deviation over mean of each customer's non-NULL amounts (pandas' ``std``, ddof 1).

    0 where it is undefined: fewer than two amounts, or a mean that is not positive.
    """
    known = ~np.isnan(amounts)
    counts = per_customer(known.astype(float))
    values = np.where(known, amounts, 0.0)
    mean = np.divide(per_customer(values), counts, out=np.zeros_like(counts), where=counts > 0)
    squares = per_customer(np.where(known, (values - mean[groups]) ** 2, 0.0))
    std = np.sqrt(np.divide(squares, counts - 1, out=np.zeros_like(squares), where=counts > 1))
    return np.divide(std, mean, out=np.zeros_like(std), where=(mean > 0) & (counts > 1))


def _mean_gap_hours(times: np.ndarray, groups: np.ndarray, customers: int) -> np.ndarray:
    """The mean gap between consecutive timed transactions, in hours; a day with fewer than two.

    The rows are in time order (NULL times last): the mean of consecutive gaps is
    (last - first) / (count - 1) over the timed ones.
    """
    known = ~np.isnan(times)
    counts = np.bincount(groups[known], minlength=customers)
    first = np.full(customers, np.inf)
    last = np.full(customers, -np.inf)
    np.minimum.at(first, groups[known], times[known])
    np.maximum.at(last, groups[known], times[known])
    span = np.where(counts > 1, last - first, 0.0)
    return np.where(counts > 1, span / np.maximum(counts - 1, 1) / 1e6 / 3600, ONE_DAY_HOURS)


def _distinct_per_customer(values: pa.Array, groups: np.ndarray, customers: int) -> np.ndarray:
    """How many different non-NULL values each customer has (pandas' ``nunique``)."""
    codes = pc.dictionary_encode(values).indices
    known = pc.is_valid(codes).to_numpy(zero_copy_only=False)
    codes = pc.fill_null(codes, 0).to_numpy(zero_copy_only=False).astype(np.int64)[known]
    width = int(codes.max(initial=0)) + 1
    pairs = np.unique(groups[known].astype(np.int64) * width + codes)
    return np.bincount(pairs // width, minlength=customers).astype(float)


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
        if total_amount is not None and abs(calculated_total - total_amount) > AMOUNT_TOLERANCE:
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
    avg_time_gap = time_gaps.mean() if time_gaps.notna().any() else 86400
    return [
        float(night_transactions.mean()),
        float(amount_cv),
        float(unique_categories / len(transactions_df)),
        float(payment_method_diversity),
        float(avg_time_gap / 3600),
        float(len(transactions_df)),
    ]

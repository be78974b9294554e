"""Reusable feature functions, and the Python functions SQL models call.

``@udf`` makes a function callable from SQL models as ``@name(...)`` (see macros/functions.py);
it stays a plain Python function for tests and other Python code.
"""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import TypedDict

import numpy as np
import pyarrow as pa

from mixmesh import udf
from python.shared.model_loading import load_risk_model

NEUTRAL_SCORE = 0.5  # no transactions: nothing to judge by
SPIKE_RATIO = 3.0  # an amount this many times the customer's typical one scores 1.0


class Transaction(TypedDict):
    """One element of the SQL model's ARRAY_AGG(STRUCT_PACK(...)): a STRUCT in SQL, a dict here."""

    amount: float
    merchant_category: str
    transaction_time: datetime


@udf
def python_risk_score(transaction_details: list[Transaction], total_amount: float, transaction_count: int) -> float:
    """Risk between 0.0 (low) and 1.0 (high) of one customer's day of transactions.

    Row mode: called once per row with Python values, which suits logic over nested data.
    """
    if not transaction_details or transaction_count == 0:
        return NEUTRAL_SCORE
    features = behavioral_features(transaction_details, mean_amount=total_amount / transaction_count)
    return round(float(load_risk_model().predict_proba([features])[0][1]), 3)


def behavioral_features(transactions: list[Transaction], mean_amount: float) -> list[float]:
    """[night-time share, amount volatility, category spread] of a list of transactions."""
    count = len(transactions)
    night = sum(1 for t in transactions if t["transaction_time"].hour < 6 or t["transaction_time"].hour >= 22)
    amounts = [t["amount"] for t in transactions]
    volatility = statistics.pstdev(amounts) / mean_amount if mean_amount > 0 else 0.0
    # How often the next transaction is in a category not seen yet: 0 when all alike, 1 when all differ.
    categories = len({t["merchant_category"] for t in transactions})
    spread = (categories - 1) / (count - 1) if count > 1 else 0.0
    return [night / count, volatility, spread]


@udf(vectorized=True)
def python_anomaly_score(amount: pa.Array, typical_amount: pa.Array) -> pa.Array:
    """How far above the customer's typical amount each amount is: 0.0 (not above) to 1.0 (SPIKE_RATIO times).

    Vectorized: called with whole batches of rows as Arrow arrays (NULL rows are left out and
    get NULL), so numpy does the arithmetic once per batch instead of once per row.
    """
    amounts = amount.to_numpy(zero_copy_only=False)
    typical = typical_amount.to_numpy(zero_copy_only=False)
    ratio = np.divide(amounts, typical, out=np.ones_like(amounts), where=typical > 0)
    return pa.array(np.round(np.clip((ratio - 1.0) / (SPIKE_RATIO - 1.0), 0.0, 1.0), 3))

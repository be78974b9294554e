"""The Python function the SQL model calls as @python_risk_score(...)."""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import TypedDict

from mixmesh import udf


class Transaction(TypedDict):
    amount: float
    merchant_category: str
    transaction_time: datetime


@udf
def python_risk_score(
    transaction_details: list[Transaction], total_amount: float, transaction_count: int
) -> float:
    """Risk between 0 (low) and 1 (high) from night-time share, volatility and spread."""
    if not transaction_details or transaction_count == 0:
        return 0.5
    amounts = [t["amount"] for t in transaction_details]
    night = sum(1 for t in transaction_details if t["transaction_time"].hour < 6 or t["transaction_time"].hour > 22)
    mean = total_amount / transaction_count
    volatility = statistics.pstdev(amounts) / mean if mean > 0 else 0.0
    categories = len({t["merchant_category"] for t in transaction_details}) / len(transaction_details)
    score = 0.3 * (night / len(transaction_details) > 0.3) + 0.4 * (volatility > 2.0) + 0.3 * (categories > 0.8)
    return round(score, 4)

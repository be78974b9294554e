"""A small project's data and code, shared by the Spark project tests."""

from __future__ import annotations

import typing as t

# (customer, day, amount, kind): days 1..4 of January 2024.
TRANSACTIONS = [
    (1, 1, 10.0, "card"), (1, 1, 2.5, "cash"), (2, 1, 200.0, "card"),
    (1, 2, 50.0, "wire"), (2, 2, 0.5, "cash"),
    (1, 3, 120.0, "card"), (3, 3, 4.0, "wire"),
    (2, 4, 8.0, "card"), (3, 4, 16.0, "cash"), (3, 4, 1.0, "wire"),
]
WEIGHTS = {"card": 1.0, "cash": 0.5, "wire": 2.0}


def transactions_model() -> str:
    values = ",\n  ".join(
        f"({customer}, DATE '2024-01-0{day}', {amount}, '{kind}')" for customer, day, amount, kind in TRANSACTIONS
    )
    return f"""
MODEL (name raw.transactions, kind FULL);

SELECT * FROM (VALUES
  {values}
) AS t(customer_id, day, amount, kind)
"""


WEIGHTS_MODULE = f"WEIGHTS = {WEIGHTS!r}\n"

# A row function over a list of structs (built as dataclasses) using a project helper module,
# and a vectorized one over Arrow arrays.
SCORING = """
import dataclasses
import typing as t

import pyarrow as pa
import pyarrow.compute as pc

from mixmesh import udf
from python.shared.weights import WEIGHTS


@dataclasses.dataclass
class Transaction:
    amount: float
    kind: str


@udf
def risk_score(transactions: t.List[Transaction], total: float) -> float:
    weighted = sum(tx.amount * WEIGHTS[tx.kind] for tx in transactions)
    return round(weighted / total, 6)


@udf(vectorized=True)
def amount_band(total: pa.Array) -> str:
    return pc.if_else(pc.greater(total, 100.0), "high", "low")
"""


def risk(transactions: t.Sequence[t.Tuple[float, str]]) -> float:
    total = sum(amount for amount, _ in transactions)
    return round(sum(amount * WEIGHTS[kind] for amount, kind in transactions) / total, 6)


def band(total: float) -> str:
    return "high" if total > 100 else "low"

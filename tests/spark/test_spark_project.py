"""A SQLMesh project on a `spark` gateway: `sqlmesh plan`, then `sqlmesh run` in a fresh
process, each building a SQL model that calls a row function and a vectorized one."""

from __future__ import annotations

import datetime as dt
import typing as t
from pathlib import Path

import pytest

from tests.spark.projects import SparkProject

pytestmark = pytest.mark.slow

# (customer, day, amount, kind): days 1..4 of January 2024.
TRANSACTIONS = [
    (1, 1, 10.0, "card"), (1, 1, 2.5, "cash"), (2, 1, 200.0, "card"),
    (1, 2, 50.0, "wire"), (2, 2, 0.5, "cash"),
    (1, 3, 120.0, "card"), (3, 3, 4.0, "wire"),
    (2, 4, 8.0, "card"), (3, 4, 16.0, "cash"), (3, 4, 1.0, "wire"),
]
WEIGHTS = {"card": 1.0, "cash": 0.5, "wire": 2.0}


def expected(days: t.Iterable[int]) -> t.List[t.List[t.Any]]:
    """What analytics.scored holds for these days, computed in plain Python."""
    groups: t.Dict[t.Tuple[int, int], t.List[t.Tuple[float, str]]] = {}
    for customer, day, amount, kind in TRANSACTIONS:
        if day in days:
            groups.setdefault((customer, day), []).append((amount, kind))
    rows = []
    for (customer, day), transactions in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0])):
        total = sum(amount for amount, _ in transactions)
        risk = round(sum(amount * WEIGHTS[kind] for amount, kind in transactions) / total, 6)
        rows.append([customer, str(dt.date(2024, 1, day)), risk, "high" if total > 100 else "low"])
    return rows


@pytest.fixture
def project(tmp_path: Path) -> SparkProject:
    project = SparkProject(tmp_path / "project")
    values = ",\n  ".join(
        f"({customer}, DATE '2024-01-0{day}', {amount}, '{kind}')" for customer, day, amount, kind in TRANSACTIONS
    )
    project.write(
        "models/transactions.sql",
        f"""
        MODEL (name raw.transactions, kind FULL);

        SELECT * FROM (VALUES
          {values}
        ) AS t(customer_id, day, amount, kind)
        """,
    )
    project.write(
        "models/scored.sql",
        """
        MODEL (
          name analytics.scored,
          kind INCREMENTAL_BY_TIME_RANGE (time_column day),
          cron '@daily',
          grain (customer_id, day)
        );

        SELECT
          customer_id,
          day,
          @risk_score(LIST({'amount': amount, 'kind': kind}), SUM(amount)) AS risk,
          @amount_band(SUM(amount)) AS band
        FROM raw.transactions
        WHERE day BETWEEN @start_date AND @end_date
        GROUP BY customer_id, day
        """,
    )
    project.write("python/shared/weights.py", f"WEIGHTS = {WEIGHTS!r}\n")
    project.write(
        "macros/scoring.py",
        """
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
        """,
    )
    return project


def test_plan_then_a_fresh_process_run_build_a_model_calling_python_functions(project: SparkProject) -> None:
    query = "SELECT customer_id, day, risk, band FROM analytics.scored ORDER BY day, customer_id"

    project.cli("plan", "--auto-apply", "--no-prompts", "--execution-time", "2024-01-03")
    assert project.query(query) == expected({1, 2})

    project.cli("run", "--end", "2024-01-04")  # re-creates the functions from SQLMesh's state
    assert project.query(query) == expected({1, 2, 3, 4})

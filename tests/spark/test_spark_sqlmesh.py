"""@python_model on a spark gateway: context.sql is Spark's, its results convert to pandas,
Arrow and batches, and a model may return a Spark DataFrame that never leaves Spark."""

from __future__ import annotations

import typing as t

import pytest

from tests.spark import example
from tests.spark.example import TRANSACTIONS
from tests.spark.projects import SparkProject

pytestmark = pytest.mark.slow

CUSTOMER_TOTALS = '''
import pyarrow as pa

from mixmesh import ModelKind, python_model


@python_model(
    name="analytics.customer_totals",
    kind=ModelKind.FULL,
    grain=["customer_id"],
    columns={"customer_id": "BIGINT", "total": "DOUBLE", "transactions": "BIGINT", "rows_in_batches": "BIGINT"},
)
def customer_totals(context, **kwargs):
    totals = context.sql(
        "SELECT customer_id, SUM(amount) AS total FROM raw.transactions WHERE amount >= :least GROUP BY customer_id",
        least=1.0,
    ).to_pandas()
    counts = context.sql("SELECT customer_id, COUNT(*) AS n FROM raw.transactions GROUP BY customer_id").to_arrow()
    assert isinstance(counts, pa.Table)
    batches = list(context.sql("SELECT customer_id FROM raw.transactions").batches(4))
    assert all(isinstance(batch, pa.RecordBatch) and batch.num_rows <= 4 for batch in batches)
    totals["transactions"] = totals["customer_id"].map(dict(zip(*counts.to_pydict().values())))
    totals["rows_in_batches"] = sum(batch.num_rows for batch in batches)
    yield totals
'''

SCORED_IN_SPARK = '''
from mixmesh import ModelKind, python_model
from python.shared.scoring import amount_band, risk_score


@python_model(
    name="analytics.scored_in_spark",
    kind=ModelKind.FULL,
    grain=["customer_id"],
    columns={"customer_id": "BIGINT", "risk": "DOUBLE", "band": "VARCHAR"},
)
def scored_in_spark(context, **kwargs):
    # Functions called by name in context.sql run on the executors; the rows stay in Spark.
    return context.sql(
        "SELECT customer_id, risk_score(LIST({'amount': amount, 'kind': kind}), SUM(amount)) AS risk, "
        "amount_band(SUM(amount)) AS band FROM raw.transactions GROUP BY customer_id"
    ).to_spark()
'''


def by_customer() -> t.Dict[int, t.List[t.Tuple[float, str]]]:
    groups: t.Dict[int, t.List[t.Tuple[float, str]]] = {}
    for customer, _, amount, kind in TRANSACTIONS:
        groups.setdefault(customer, []).append((amount, kind))
    return dict(sorted(groups.items()))


def test_context_sql_on_spark_gives_pandas_arrow_and_batches(spark_project: SparkProject) -> None:
    spark_project.write("models/transactions.sql", example.transactions_model())
    spark_project.write("models/customer_totals.py", CUSTOMER_TOTALS)
    spark_project.plan()
    rows = spark_project.fetch("SELECT * FROM analytics.customer_totals ORDER BY customer_id")
    assert rows == [
        [customer, sum(a for a, _ in txs if a >= 1.0), len(txs), len(TRANSACTIONS)]
        for customer, txs in by_customer().items()
    ]


def test_a_model_returning_a_spark_dataframe_calls_functions_on_the_executors(spark_project: SparkProject) -> None:
    spark_project.write("models/transactions.sql", example.transactions_model())
    spark_project.write("python/shared/weights.py", example.WEIGHTS_MODULE)
    spark_project.write("python/shared/scoring.py", example.SCORING)
    spark_project.write("models/scored_in_spark.py", SCORED_IN_SPARK)
    spark_project.plan()
    rows = spark_project.fetch("SELECT customer_id, risk, band FROM analytics.scored_in_spark ORDER BY customer_id")
    assert rows == [
        [customer, example.risk(txs), example.band(sum(a for a, _ in txs))] for customer, txs in by_customer().items()
    ]


"""@python_model on a spark gateway: context.sql is Spark's, its results convert to pandas,
Arrow and batches, and a model may return a Spark DataFrame that never leaves Spark."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from mixmesh.engines import spark as spark_engine
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



DAILY_TOTALS = '''
import pandas as pd

from mixmesh import ModelKind, python_model


@python_model(
    name="analytics.daily_totals",
    kind=ModelKind.INCREMENTAL,
    cron="@daily",
    grain=["day"],
    columns={"day": "DATE", "total": "DOUBLE"},
)
def daily_totals(context, **kwargs) -> pd.DataFrame:
    return context.sql(
        "SELECT day, SUM(amount) AS total FROM raw.transactions WHERE day BETWEEN :start AND :end GROUP BY day",
        start=context.start_date, end=context.end_date,
    ).to_pandas()
'''


def test_a_time_range_python_model_keeps_its_rows_until_spark_writes_them(spark_project: SparkProject) -> None:
    # Regression: SQLMesh reads every batch of a time-range model before writing on Spark (it
    # unions them for INSERT OVERWRITE), which ended the model's generator and dropped the
    # staging table first: [TABLE_OR_VIEW_NOT_FOUND] mixmesh_staging.s_...
    spark_project.write("models/transactions.sql", example.transactions_model())
    spark_project.write("models/daily_totals.py", DAILY_TOTALS)
    spark_project.plan(execution_time="2024-01-05")
    rows = spark_project.fetch("SELECT CAST(day AS STRING), total FROM analytics.daily_totals ORDER BY day")
    totals: t.Dict[int, float] = {}
    for _, day, amount, _ in TRANSACTIONS:
        totals[day] = totals.get(day, 0.0) + amount
    assert rows == [[f"2024-01-0{day}", pytest.approx(total)] for day, total in sorted(totals.items())]


# --- project SQL functions (sql/udfs) -------------------------------------------------------

ENABLE = "import mixmesh.core.sql_functions  # noqa: F401  (a project without @udf turns them on)\n"

SPARK_SQL_FUNCTIONS = """
-- Spark's SQL functions declare their parameters' types.
CREATE FUNCTION safe_ratio(numerator DOUBLE, denominator DOUBLE) RETURNS DOUBLE
RETURN numerator / NULLIF(denominator, 0);

CREATE FUNCTION ratio_label(numerator DOUBLE, denominator DOUBLE) RETURNS STRING
RETURN CASE WHEN safe_ratio(numerator, denominator) > 1 THEN 'above' ELSE 'below' END;
"""


def test_project_sql_functions_become_temporary_spark_functions(spark: t.Any, spark_project: SparkProject) -> None:
    spark_project.use_dialect("spark")
    spark_project.write("macros/enable.py", ENABLE)
    spark_project.write("sql/udfs/ratios.sql", SPARK_SQL_FUNCTIONS)
    spark_project.write(
        "models/ratios.sql",
        """
        MODEL (name analytics.ratios, kind FULL);
        SELECT id, safe_ratio(id, id - 1) AS ratio, ratio_label(id, 2) AS label FROM VALUES (1), (2), (3) AS t(id)
        """,
    )
    spark_project.plan()
    rows = spark_project.fetch("SELECT id, ratio, label FROM analytics.ratios ORDER BY id")
    assert rows == [[1, None, "below"], [2, 2.0, "below"], [3, 1.5, "above"]]
    persistent = [f.name for f in spark.catalog.listFunctions() if not f.isTemporary and "ratio" in f.name]
    assert persistent == []  # nothing was written to the catalog


def test_duckdb_macros_with_typed_parameters_become_spark_functions(spark: t.Any, spark_project: SparkProject) -> None:
    spark_project.write("macros/enable.py", ENABLE)
    spark_project.write(
        "sql/udfs/ratios.sql",
        """
        CREATE MACRO safe_ratio(numerator DOUBLE, denominator DOUBLE) AS numerator / NULLIF(denominator, 0);
        CREATE MACRO ratio_label(numerator DOUBLE, denominator DOUBLE) AS
            CASE WHEN safe_ratio(numerator, denominator) > 1 THEN 'above' ELSE 'below' END;
        """,
    )
    spark_project.write(
        "models/ratios.sql",
        """
        MODEL (name analytics.ratios, kind FULL);
        SELECT id, safe_ratio(id, id - 1) AS ratio, ratio_label(id, 2) AS label FROM (VALUES (1), (2), (3)) AS t(id)
        """,
    )
    spark_project.plan()
    rows = spark_project.fetch("SELECT id, ratio, label FROM analytics.ratios ORDER BY id")
    assert rows == [[1, None, "below"], [2, 2.0, "below"], [3, 1.5, "above"]]


def test_a_sql_function_spark_cannot_hold_is_refused_by_name(spark: t.Any, tmp_path: Path) -> None:
    from mixmesh.core import sql_functions
    from mixmesh.engines import SqlFunctionBinding

    udfs = tmp_path / "sql" / "udfs"
    udfs.mkdir(parents=True)
    (udfs / "ratios.sql").write_text("CREATE MACRO safe_ratio(a, b) AS a / NULLIF(b, 0);\n")
    functions = sql_functions.read_project(tmp_path, [udfs / "ratios.sql"], "duckdb")
    binding = SqlFunctionBinding(functions["safe_ratio"], "safe_ratio__0123456789")
    with pytest.raises(sql_functions.SqlFunctionError) as refused:
        spark_engine.create_sql_functions_in(spark, [binding])
    assert str(refused.value).startswith(
        "SQL function 'safe_ratio' (sql/udfs/ratios.sql:1): Spark cannot hold it as a temporary function: "
        "its parameter(s) a, b have no type."
    )


# --- what a model returns as a Spark DataFrame ----------------------------------------------


def test_a_returned_spark_dataframe_is_checked_against_the_declaration(spark: t.Any) -> None:
    import types

    from mixmesh.core.models import ModelKind, build_spec
    from mixmesh.runtime.validation import ModelOutputError

    spec = build_spec(
        lambda context: None, name="analytics.totals", kind=ModelKind.FULL, grain=["customer_id"],
        columns={"customer_id": "BIGINT", "total": "DOUBLE"}, time_column=None, unique_key=None,
    )
    adapter = types.SimpleNamespace(spark=spark)  # what the engine uses of SQLMesh's adapter
    staging = spark_engine.create_staging(adapter, spec.columns)
    try:
        good = spark.sql("SELECT CAST(id AS INT) AS customer_id, id * 1.5 AS total FROM range(3)")
        spark_engine.append_staging(adapter, staging, spark_engine.conform_frame(good, spec))
        assert [tuple(row) for row in spark.table(staging).orderBy("customer_id").collect()] == [
            (0, 0.0), (1, 1.5), (2, 3.0)
        ]
        with pytest.raises(ModelOutputError, match=r"model analytics.totals returned undeclared column\(s\) \['extra'\]"):
            spark_engine.conform_frame(good.withColumn("extra", good.total), spec)
        null_grain = spark.sql("SELECT IF(id = 1, NULL, id) AS customer_id, 1.0D AS total FROM range(3)")
        with pytest.raises(ModelOutputError, match="model analytics.totals: grain column 'customer_id' is NULL in a row"):
            spark_engine.append_staging(adapter, staging, spark_engine.conform_frame(null_grain, spec))
    finally:
        spark_engine.drop_staging(adapter, staging)

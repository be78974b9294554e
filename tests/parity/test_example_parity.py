"""The example project built on DuckDB and on Spark from the same generated rows gives the same
tables: every output table, model by model, row for row (see ``comparison`` for what "the
same" allows, and why)."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pyarrow as pa
import pytest

from tests.parity import builds
from tests.parity.comparison import differences, report
from tests.spark import reference
from tests.spark.session import drop_databases

pytestmark = pytest.mark.slow


class Built(t.NamedTuple):
    duckdb: Path
    spark: t.Any


@pytest.fixture(scope="module")
def built(spark: t.Any, example_on_duckdb: Path, tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Built]:
    """The Spark copy built from the raw rows and the ML models of the run's DuckDB build."""
    on_duckdb = example_on_duckdb
    on_spark = builds.copy_example(tmp_path_factory.mktemp("parity") / "on_spark")
    reference.copy_artifacts(on_duckdb, on_spark)  # the same model bytes, the same pins
    builds.build_on_spark(on_spark, spark, raw_rows=on_duckdb / builds.DATABASE)
    yield Built(on_duckdb, spark)
    drop_databases(spark)


@pytest.mark.parametrize("model", builds.MODELS)
def test_the_model_holds_the_same_rows_on_both_engines(built: Built, model: str) -> None:
    on_duckdb = builds.duckdb_table(built.duckdb, model)
    on_spark = naive_where_duckdb_is(builds.spark_table(built.spark, model), on_duckdb.schema, built.spark)
    assert on_duckdb.num_rows > 0
    if "ml_risk_score" in on_duckdb.column_names:  # the trained model scored, not the rules' few values
        assert len(set(on_duckdb.column("ml_risk_score").to_pylist())) > 50
    found = differences(on_duckdb, on_spark)
    assert not found, report(model, found)


def naive_where_duckdb_is(table: pa.Table, duckdb_schema: pa.Schema, spark: t.Any) -> pa.Table:
    """Spark's TIMESTAMP columns as naive UTC times where DuckDB's columns are naive.

    A true engine difference, not removable from the project: SQLMesh writes both DuckDB's
    TIMESTAMP (no zone) and TIMESTAMPTZ as Spark's TIMESTAMP in a table's DDL (sqlglot's Spark
    type names), which holds instants, shown in the session's time zone. With the session in UTC
    (the tests' setting, and the README's advice) the instant of a naive time is that time in UTC,
    which is how SQLMesh reads naive times everywhere: the values compared are the same.
    """
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    for index, field in enumerate(table.schema):
        naive = duckdb_schema.field(field.name).type
        if pa.types.is_timestamp(field.type) and field.type.tz and pa.types.is_timestamp(naive) and not naive.tz:
            table = table.set_column(index, field.name, table.column(index).cast(pa.timestamp(field.type.unit)))
    return table

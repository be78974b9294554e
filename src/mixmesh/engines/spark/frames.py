"""Spark DataFrames a Python model returns: they stay distributed, conformed to the declared
columns and types by Spark itself.
"""

from __future__ import annotations

import re
import typing as t

import pyarrow as pa
from sqlglot import exp

if t.TYPE_CHECKING:
    pass
from mixmesh.engines.spark.dialect import spark_type
from mixmesh.engines.spark.queries import dataframe


def is_engine_frame(value: t.Any) -> bool:
    """A PySpark DataFrame (classic or Spark Connect), which a model may return to keep its rows
    distributed (found without importing pyspark)."""
    return type(value).__module__.startswith("pyspark.") and hasattr(value, "sparkSession")


def conform_frame(frame: t.Any, spec: t.Any) -> t.Any:
    """A returned Spark DataFrame with exactly the declared columns, of the declared types.

    Names are checked now (as for any batch); types are cast and grain columns checked for
    NULL by Spark itself as it writes, without a pass of their own over the rows.
    """
    from pyspark.sql import functions as F

    from mixmesh.runtime import validation

    validation.conform(pa.table({name: pa.nulls(0) for name in frame.columns}), spec)  # the names alone
    columns = []
    for name, sql_type in spec.columns.items():
        column = frame[name].cast(spark_type(sql_type))
        if name in spec.grain:
            message = (
                f"{_GRAIN_MARK}model {spec.name}: grain column {name!r} is NULL in a row; every row needs its whole grain"
            )
            column = F.when(column.isNull(), F.raise_error(F.lit(message))).otherwise(column)
        columns.append(column.alias(name))
    return frame.select(*columns)


_GRAIN_MARK = "mixmesh: "


_GRAIN_REFUSED = re.compile(re.escape(_GRAIN_MARK) + r"(?P<message>model .*? every row needs its whole grain)")


def materialized(adapter: t.Any, query: exp.Expr) -> t.Any:
    """A staging table's rows as a Spark DataFrame that no longer reads the table: a local
    checkpoint, kept by the executors (memory, then disk), so the table may be dropped before
    SQLMesh writes the rows (see ``mixmesh.core.models._rows_to_write``)."""
    return dataframe(adapter, query, {}).localCheckpoint(eager=True)

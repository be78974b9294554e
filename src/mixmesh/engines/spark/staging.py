"""Where a Python model's batches land before SQLMesh writes them."""

from __future__ import annotations

import contextlib
import typing as t
import uuid

from sqlglot import exp

if t.TYPE_CHECKING:
    pass
from mixmesh.engines.spark.dialect import NAME
from mixmesh.engines.spark.frames import _GRAIN_REFUSED, is_engine_frame

STAGING_SCHEMA = "mixmesh_staging"


def create_staging(adapter: t.Any, columns: t.Mapping[str, exp.DataType]) -> str:
    """A table for a model's batches, dropped once SQLMesh has written from it."""
    import os

    spark = adapter.spark
    spark.sql(exp.Create(kind="SCHEMA", this=exp.to_identifier(STAGING_SCHEMA), exists=True).sql(NAME))
    name = f"{STAGING_SCHEMA}.s_{os.getpid()}_{uuid.uuid4().hex}"
    schema = exp.Schema(
        this=exp.to_table(name),
        expressions=[exp.ColumnDef(this=exp.to_identifier(c, quoted=True), kind=k.copy()) for c, k in columns.items()],
    )
    spark.sql(exp.Create(kind="TABLE", this=schema).sql(NAME))
    return name


def append_staging(adapter: t.Any, staging: str, table: t.Any) -> None:
    """Append a batch: an Arrow table, or a Spark DataFrame (written by the executors)."""
    spark = adapter.spark
    frame = table if is_engine_frame(table) else spark.createDataFrame(table)
    columns = spark.table(staging).columns
    try:
        frame.select(*[frame[column] for column in columns]).write.insertInto(staging)
    except Exception as error:
        refused = _GRAIN_REFUSED.search(str(error))
        if refused is None:
            raise
        from mixmesh.runtime.validation import ModelOutputError

        raise ModelOutputError(refused.group("message")) from None


def drop_staging(adapter: t.Any, staging: str) -> None:
    adapter.spark.sql(exp.Drop(kind="TABLE", this=exp.to_table(staging), exists=True).sql(NAME))


def release_memory(adapter: t.Any, staging: str) -> None:
    """Nothing to release: a batch's rows are in Spark's executors, which manage their memory."""


def write_budget(adapter: t.Any, staging: str) -> t.ContextManager[None]:
    """Spark's executors bound their own memory while SQLMesh writes (``spark.executor.memory``)."""
    return contextlib.nullcontext()

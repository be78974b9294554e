"""A Python model's query, with its parameters bound by Spark; as rows, or as a Spark DataFrame."""

from __future__ import annotations

import contextlib
import typing as t

import pyarrow as pa
from sqlglot import exp

from mixmesh.runtime import bindings

if t.TYPE_CHECKING:
    pass
from mixmesh.engines.spark.dialect import render
from mixmesh.engines.spark.errors import explain_error
from mixmesh.engines.spark.sql_functions import create_sql_functions_in


@contextlib.contextmanager
def run(
    adapter: t.Any, expression: exp.Expr, params: t.Mapping[str, t.Any], *, staging: bool = False
) -> t.Iterator["SparkResult"]:
    """Run a query with its parameters bound by Spark (``spark.sql(query, args=...)``)."""
    spark = adapter.spark
    sql = render(expression)
    create_sql_functions_in(spark, bindings.sql_functions_called(sql))
    try:
        frame = spark.sql(sql, args=dict(params) or None)
    except Exception as error:
        explained = explain_error(error, sql, bindings.bound())
        if explained is None:
            raise
        raise explained from error
    yield SparkResult(frame)


class SparkResult:
    """A Spark DataFrame behind the verbs every engine's result speaks (DuckDB's names)."""

    def __init__(self, frame: t.Any) -> None:
        self.frame = frame

    def to_arrow_table(self) -> pa.Table:
        return self._collect(self.frame.toArrow)

    def df(self) -> t.Any:
        return self._collect(self.frame.toPandas)

    def to_arrow_reader(self, rows: int) -> pa.RecordBatchReader:
        """The rows in batches of ``rows`` (the last may be shorter), streamed one partition
        at a time: the driver never holds the whole result (``streaming``)."""
        from mixmesh.engines.spark.streaming import arrow_schema, rechunked, streamed_batches

        schema = self._collect(lambda: arrow_schema(self.frame))
        batches = self._explained(streamed_batches(self.frame, schema))
        return pa.RecordBatchReader.from_batches(schema, rechunked(batches, rows, schema))

    @classmethod
    def _explained(cls, batches: t.Iterator[pa.RecordBatch]) -> t.Iterator[pa.RecordBatch]:
        """Spark runs functions as the rows are read: their errors surface while iterating."""
        while True:
            batch = cls._collect(lambda: next(batches, None))
            if batch is None:
                return
            yield batch

    def fetchall(self) -> t.List[t.Tuple[t.Any, ...]]:
        return [tuple(row) for row in self._collect(self.frame.collect)]

    def fetchone(self) -> t.Optional[t.Tuple[t.Any, ...]]:
        rows = self._collect(lambda: self.frame.take(1))
        return tuple(rows[0]) if rows else None

    @staticmethod
    def _collect(action: t.Callable[[], t.Any]) -> t.Any:
        """Spark runs functions when results are collected: their errors surface here."""
        try:
            return action()
        except Exception as error:
            explained = explain_error(error, "", bindings.bound())
            if explained is None:
                raise
            raise explained from error


def dataframe(adapter: t.Any, expression: exp.Expr, params: t.Mapping[str, t.Any]) -> t.Any:
    """A model's query as a Spark DataFrame: nothing is computed until it is written or read."""
    with run(adapter, expression, params) as result:
        return result.frame

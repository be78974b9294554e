"""A query's rows read by the driver a partition at a time, as Arrow record batches.

``DataFrame.toArrow()`` collects the whole result into the driver before the first row is
read. Reading ``context.sql(...).batches(n)`` instead goes through ``toLocalIterator``, which
runs one partition at a time and hands its rows over as they arrive
(https://spark.apache.org/docs/latest/api/python/reference/pyspark.sql/api/pyspark.sql.DataFrame.toLocalIterator.html);
to keep Arrow's types and speed, each executor first writes its Arrow batches as Arrow IPC
bytes (``mapInArrow``), one row per batch, which the driver reads back. Both are Spark Connect
APIs too, so the same path streams over a ``spark.remote`` session.
"""

from __future__ import annotations

import typing as t

import pyarrow as pa

IPC_COLUMN = "arrow_ipc"


def arrow_schema(frame: t.Any) -> pa.Schema:
    """The schema ``toArrow()`` gives (an empty result still has one), from a job reading no rows."""
    return frame.limit(0).toArrow().schema


def streamed_batches(frame: t.Any, schema: pa.Schema) -> t.Iterator[pa.RecordBatch]:
    """The rows of ``frame`` in Spark's Arrow batches, partition after partition, in order."""
    for row in frame.mapInArrow(_as_ipc_rows(), f"{IPC_COLUMN} BINARY").toLocalIterator():
        for batch in pa.ipc.open_stream(bytes(row[0])):
            yield batch if batch.schema == schema else batch.cast(schema)


def _as_ipc_rows() -> t.Callable[[t.Iterator[pa.RecordBatch]], t.Iterator[pa.RecordBatch]]:
    """Runs on the executors. Built here so cloudpickle sends it by value: executors need
    pyarrow (Spark's Arrow support does), not mixmesh."""

    def as_ipc_rows(batches: t.Iterator[pa.RecordBatch]) -> t.Iterator[pa.RecordBatch]:
        import pyarrow as pa

        for batch in batches:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, batch.schema) as writer:
                writer.write_batch(batch)
            yield pa.record_batch([pa.array([sink.getvalue().to_pybytes()], pa.binary())], names=[IPC_COLUMN])

    return as_ipc_rows


def rechunked(batches: t.Iterable[pa.RecordBatch], rows: int, schema: pa.Schema) -> t.Iterator[pa.RecordBatch]:
    """The same rows in batches of exactly ``rows`` (the last may be shorter): at most ``rows``
    rows and one incoming batch are held at once."""
    pending: t.List[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        pending.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(pending, schema=schema)
            yield _one_batch(table.slice(0, rows), schema)
            rest = table.slice(rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield _one_batch(pa.Table.from_batches(pending, schema=schema), schema)


def _one_batch(table: pa.Table, schema: pa.Schema) -> pa.RecordBatch:
    combined = table.combine_chunks().to_batches()
    return combined[0] if combined else pa.RecordBatch.from_pylist([], schema=schema)

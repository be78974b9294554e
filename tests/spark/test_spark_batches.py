"""``context.sql(...).batches(n)`` on Spark streams a partition at a time (engines/spark/streaming)
and gives the rows ``to_pandas()`` gives: NULLs, timestamps with zones, lists of structs, an
empty result; on random data, over several partitions; on a classic session and over Spark
Connect."""

from __future__ import annotations

import datetime
import math
import subprocess
import sys
import typing as t

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixmesh.engines.spark.queries import SparkResult
from mixmesh.engines.spark.streaming import rechunked
from tests.spark.connect import connect_url  # noqa: F401 - the fixture

ITEM = pa.struct([("a", pa.int64()), ("b", pa.string())])
SCHEMA = pa.schema([
    ("id", pa.int64()), ("at", pa.timestamp("us", tz="UTC")), ("name", pa.string()), ("x", pa.float64()),
    ("tags", pa.list_(pa.string())), ("items", pa.list_(ITEM)),
])
EPOCH = datetime.datetime(2024, 3, 31, 1, 30, tzinfo=datetime.timezone.utc)

maybe = st.one_of
rows = st.lists(
    st.tuples(
        maybe(st.none(), st.integers(-10**6, 10**6).map(lambda s: EPOCH + datetime.timedelta(seconds=s))),
        maybe(st.none(), st.text(max_size=4)),
        maybe(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=32)),
        maybe(st.none(), st.lists(maybe(st.none(), st.sampled_from(["a", "é", ""])), max_size=3)),
        maybe(st.none(), st.lists(maybe(st.none(), st.fixed_dictionaries(
            {"a": maybe(st.none(), st.integers(-5, 5)), "b": maybe(st.none(), st.text(max_size=2))})), max_size=3)),
    ),
    max_size=50,
)


def table(generated: t.List[t.Tuple[t.Any, ...]]) -> pa.Table:
    columns = list(zip(*generated)) if generated else [[]] * 5
    return pa.table([list(range(len(generated))), *map(list, columns)], schema=SCHEMA)


def plain(value: t.Any) -> t.Any:
    """A value as Python compares it: NULL, NaN and NaT as None; times as UTC instants; Spark's
    Rows and Arrow's dicts alike; numpy's arrays and scalars as lists and numbers."""
    if hasattr(value, "asDict"):
        return {key: plain(item) for key, item in value.asDict().items()}
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(item) for item in value]
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, datetime.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)  # the session's zone is UTC
        return pd.Timestamp(aware).tz_convert("UTC")
    return value.item() if isinstance(value, np.generic) else value


def frame_rows(frame: pd.DataFrame) -> t.List[t.List[t.Any]]:
    return [[plain(value) for value in row] for row in frame.itertuples(index=False)]


def streamed(result: SparkResult, size: int) -> t.List[pa.RecordBatch]:
    return list(result.to_arrow_reader(size))


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(generated=rows, size=st.integers(1, 7), partitions=st.integers(1, 4), empty=st.booleans())
def test_batches_give_the_rows_to_pandas_gives(spark: t.Any, generated: t.List[t.Any], size: int, partitions: int,
                                               empty: bool) -> None:
    spark.createDataFrame(table(generated)).repartition(partitions).createOrReplaceTempView("generated")
    query = f"SELECT * FROM generated {'WHERE id < 0' if empty else ''} ORDER BY id"
    batches = streamed(SparkResult(spark.sql(query)), size)
    expected = SparkResult(spark.sql(query)).df()

    assert all(batch.num_rows == size for batch in batches[:-1]) and all(0 < b.num_rows <= size for b in batches)
    read = pa.Table.from_batches(batches, schema=batches[0].schema if batches else None) if batches else None
    assert frame_rows(read.to_pandas() if read is not None else expected.iloc[:0]) == frame_rows(expected)
    assert len(expected) == (0 if empty else len(generated))


def test_rechunking_gives_batches_of_exactly_n_rows_whatever_spark_sends() -> None:
    schema = pa.schema([("n", pa.int64())])
    incoming = [pa.record_batch([pa.array(range(start, start + length), pa.int64())], schema=schema)
                for start, length in ((0, 3), (3, 0), (3, 10), (13, 1), (14, 4))]
    out = list(rechunked(iter(incoming), 4, schema))
    assert [batch.num_rows for batch in out] == [4, 4, 4, 4, 2]
    assert pa.Table.from_batches(out).column("n").to_pylist() == list(range(18))
    assert list(rechunked(iter([]), 4, schema)) == []


# A Spark Connect client in a fresh process (a process holds one kind of session).
CONNECT_CLIENT = """
import sys
import pyarrow as pa
from pyspark.sql import SparkSession
from mixmesh.engines.spark.queries import SparkResult

spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
query = (
    "SELECT id, IF(id % 3 = 0, NULL, TIMESTAMP '2024-03-31 01:30:00' + make_interval(0, 0, 0, 0, 0, 0, id)) AS at, "
    "IF(id % 4 = 0, NULL, ARRAY(NAMED_STRUCT('a', id, 'b', CAST(id AS STRING)))) AS items "
    "FROM range(0, 1000, 1, 3) {} ORDER BY id"
)
for where in ("", "WHERE id < 0"):
    sql = query.format(where)
    batches = list(SparkResult(spark.sql(sql)).to_arrow_reader(300))
    table = pa.Table.from_batches(batches) if batches else spark.sql(sql).toArrow()
    assert [b.num_rows for b in batches] == ([300, 300, 300, 100] if not where else []), [b.num_rows for b in batches]
    assert table.to_pylist() == spark.sql(sql).toArrow().to_pylist()
    assert table.num_rows == len(SparkResult(spark.sql(sql)).df())

from mixmesh import udf
from mixmesh.engines.spark import register


@udf
def fails_at_seven(x: int) -> int:
    if x == 7:
        raise ValueError("seven")
    return x


name = register(spark, fails_at_seven)
try:
    list(SparkResult(spark.sql(f"SELECT {name}(id) FROM range(10)")).to_arrow_reader(3))
except Exception as error:  # raised while the batches are read, explained as on collect
    print("ERROR", type(error).__name__, str(error).splitlines()[0])
print("ok")
"""


@pytest.mark.slow
def test_batches_stream_over_spark_connect(connect_url: str) -> None:  # noqa: F811
    import os

    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    result = subprocess.run([sys.executable, "-c", CONNECT_CLIENT, connect_url], capture_output=True, text=True,
                            env=environment)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-4000:]
    (error,) = [line for line in result.stdout.splitlines() if line.startswith("ERROR")]
    assert error.startswith("ERROR FunctionRuntimeError function 'fails_at_seven'") and "seven" in error, error

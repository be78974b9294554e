"""ARRAY_AGG(x ORDER BY key) keeps its order, and its NULLs, on Spark as on DuckDB: the same
query, rendered for each engine from the DuckDB text, gives the same lists on random data."""

from __future__ import annotations

import datetime
import typing as t
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixmesh.sqlmesh import patches

patches.install()  # the Spark rendering of ordered ARRAY_AGG is one of mixmesh's patches

QUERIES = {
    "ascending, NULL keys last": "SELECT k, ARRAY_AGG(x ORDER BY t, id) AS xs FROM rows GROUP BY k",
    "descending, NULLs first": "SELECT k, ARRAY_AGG(x ORDER BY t DESC NULLS FIRST, id DESC) AS xs FROM rows GROUP BY k",
    "mixed directions": "SELECT k, ARRAY_AGG(x ORDER BY name DESC, t NULLS FIRST, id) AS xs FROM rows GROUP BY k",
    "structs, as the document aggregates": (
        "SELECT k, ARRAY_AGG(STRUCT_PACK(x := x, t := t, name := name) ORDER BY t, id) AS xs FROM rows GROUP BY k"
    ),
    "with a filter": "SELECT k, ARRAY_AGG(x ORDER BY t, id) FILTER (WHERE x > 0) AS xs FROM rows GROUP BY k",
    "next to an unordered one": (
        "SELECT k, ARRAY_AGG(id ORDER BY id DESC) AS ids, COUNT(*) AS n, MAX(x) AS top FROM rows GROUP BY k"
    ),
}
SCHEMA = pa.schema([("id", pa.int64()), ("k", pa.int64()), ("t", pa.timestamp("us", tz="UTC")),
                    ("name", pa.string()), ("x", pa.float64())])
EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)

rows = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.one_of(st.none(), st.integers(0, 5).map(lambda h: EPOCH + datetime.timedelta(hours=h))),  # ties on purpose
        st.one_of(st.none(), st.sampled_from(["a", "b", "é", ""])),
        st.one_of(st.none(), st.floats(-5, 5, allow_nan=False, width=32)),
    ),
    max_size=40,
)


def table(generated: t.List[t.Tuple[t.Any, ...]]) -> pa.Table:
    columns = list(zip(*generated)) if generated else [[], [], [], []]
    return pa.table([list(range(len(generated))), *map(list, columns)], schema=SCHEMA)


def on_duckdb(query: str, data: pa.Table) -> t.Dict[t.Any, t.Any]:
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        connection.register("rows", data)
        result = connection.execute(f"SELECT * FROM ({query}) ORDER BY k").to_arrow_table()
    return {row["k"]: row for row in result.to_pylist()}


def on_spark(spark: t.Any, query: str, data: pa.Table) -> t.Dict[t.Any, t.Any]:
    spark.createDataFrame(data).createOrReplaceTempView("rows")  # from Arrow: NULLs stay NULL, not NaN
    rendered = sqlglot.transpile(query, read="duckdb", write="spark")[0]
    result = spark.sql(f"SELECT * FROM ({rendered}) ORDER BY k").toArrow()
    return {row["k"]: row for row in result.to_pylist()}


def same(duck: t.Any, spark: t.Any) -> bool:
    """Equal, structs compared as dicts and timestamps as instants."""
    if isinstance(duck, dict):
        return isinstance(spark, dict) and duck.keys() == spark.keys() and all(same(duck[k], spark[k]) for k in duck)
    if isinstance(duck, list):
        return isinstance(spark, list) and len(duck) == len(spark) and all(map(same, duck, spark))
    if isinstance(duck, datetime.datetime) and isinstance(spark, datetime.datetime):
        return duck.astimezone(datetime.timezone.utc) == spark.replace(tzinfo=spark.tzinfo or datetime.timezone.utc)
    return duck == spark


@pytest.mark.slow
@pytest.mark.parametrize("query", QUERIES.values(), ids=QUERIES.keys())
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(generated=rows)
def test_ordered_lists_are_equal_on_duckdb_and_spark(spark: t.Any, query: str, generated: t.List[t.Any]) -> None:
    data = table(generated)
    duck, sparked = on_duckdb(query, data), on_spark(spark, query, data)
    assert duck.keys() == sparked.keys()
    for key in duck:
        assert same(duck[key], sparked[key]), (key, duck[key], sparked[key])


def test_the_rendering_sorts_collected_structs_and_keeps_the_values() -> None:
    rendered = sqlglot.transpile("SELECT ARRAY_AGG(x ORDER BY t DESC) FROM rows", read="duckdb", write="spark")[0]
    collected = "COLLECT_LIST(STRUCT(t AS k0, x AS v))"
    assert rendered == (
        f"SELECT TRANSFORM(ARRAY_SORT(CASE WHEN SIZE({collected}) = 0 THEN NULL ELSE {collected} END, "
        "(l, r) -> CASE WHEN l.k0 IS NULL AND "
        "r.k0 IS NULL THEN 0 WHEN l.k0 IS NULL THEN 1 WHEN r.k0 IS NULL THEN -1 WHEN l.k0 < r.k0 THEN 1 WHEN "
        "l.k0 > r.k0 THEN -1 ELSE 0 END), e -> e.v) FROM rows"
    )
    unordered = sqlglot.transpile("SELECT ARRAY_AGG(x) FROM rows", read="duckdb", write="spark")[0]
    assert unordered == "SELECT COLLECT_LIST(x) FROM rows"


ORDER_DEPENDENT = '''
import datetime
import typing as t

from mixmesh import udf


@udf
def hours_in_order(times: t.List[datetime.datetime]) -> str:
    """The hours of the list, in the order received: any other order gives another text."""
    return ",".join("-" if time is None else str(time.hour) for time in times)
'''
# Written in reverse time order, so that a list kept in the order rows were written is wrong.
EVENTS_MODEL = """
MODEL (name raw.events, kind FULL);
SELECT k, CAST(t AS TIMESTAMP) AS t FROM (VALUES
  (1, '2024-01-01 23:00:00'), (1, '2024-01-01 17:00:00'), (1, NULL), (1, '2024-01-01 02:00:00'),
  (2, '2024-01-01 12:00:00'), (2, '2024-01-01 09:00:00'), (2, '2024-01-01 01:00:00')
) AS v(k, t)
"""
ORDERED_MODEL = """
MODEL (name analytics.ordered, kind FULL);
SELECT k, @hours_in_order(ARRAY_AGG(t ORDER BY t)) AS ascending, @hours_in_order(ARRAY_AGG(t ORDER BY t DESC)) AS descending
FROM raw.events GROUP BY k
"""


@pytest.mark.slow
def test_a_function_relying_on_list_order_gives_equal_results_on_both_engines(
    spark_project: t.Any, tmp_path: Path
) -> None:
    from tests.projects import Project

    duckdb_project = Project(tmp_path / "on-duckdb")
    built = {}
    for name, target in (("spark", spark_project), ("duckdb", duckdb_project)):
        target.write("macros/functions.py", ORDER_DEPENDENT)
        target.write("models/events.sql", EVENTS_MODEL)
        target.write("models/ordered.sql", ORDERED_MODEL)
        target.plan()
        read = target.fetch if name == "spark" else target.query
        built[name] = sorted(tuple(row) for row in read("SELECT k, ascending, descending FROM analytics.ordered"))
    duckdb_project.close()
    assert built["duckdb"] == [(1, "2,17,23,-", "23,17,2,-"), (2, "1,9,12", "12,9,1")]
    assert built["spark"] == built["duckdb"]

"""DuckDB Python UDF bugs mixmesh guards against, each test named after the bug it pins."""

from __future__ import annotations

import gc
import typing as t

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mixmesh import udf
from mixmesh.engines.duckdb import register

MODES = ("row", "vectorized")


class Pair(t.TypedDict):
    a: float
    b: t.Optional[str]


def pair_function(mode: str, build: t.Callable[[float], t.Dict[str, t.Any]]) -> t.Any:
    if mode == "row":

        def pair(x: float) -> Pair:
            return build(x)

        return udf(pair)

    def pair_batch(x):  # type: ignore[no-untyped-def]
        rows = [build(v) for v in x.to_pylist()]
        names = list(rows[0])  # the order the function builds, not the declared one
        return pa.StructArray.from_arrays(
            [pa.array([row[n] for row in rows]) for n in names], names=names
        )

    return udf(vectorized=True, args=["DOUBLE"], returns="STRUCT(a DOUBLE, b VARCHAR)")(pair_batch)


@pytest.mark.parametrize("mode", MODES)
def test_duckdb_10808_struct_fields_returned_in_another_order_land_by_name(mode: str) -> None:
    con = duckdb.connect()
    name = register(con, pair_function(mode, lambda x: {"b": f"v{x:g}", "a": x}))
    assert con.sql(f"SELECT {name}(1.5).a, {name}(1.5).b").fetchall() == [(1.5, "v1.5")]


@pytest.mark.parametrize("mode", MODES)
def test_duckdb_18600_nullable_struct_fields(mode: str) -> None:
    con = duckdb.connect()
    name = register(con, pair_function(mode, lambda x: {"a": x, "b": None}))
    assert con.sql(f"SELECT {name}(x) FROM (VALUES (1.0), (2.0)) t(x) ORDER BY x").fetchall() == [
        ({"a": 1.0, "b": None},),
        ({"a": 2.0, "b": None},),
    ]


@udf(vectorized=True)
def shifted(x: pa.Array, by: t.Annotated[pa.Array, int]) -> pa.Array:
    return pc.add(x, pc.cast(by, pa.float64()))


def test_duckdb_20606_the_same_arrow_function_twice_in_one_query() -> None:
    con = duckdb.connect()
    register(con, shifted)
    rows = con.sql(
        "SELECT shifted(x, 1), shifted(x, 10), shifted(shifted(x, 1), 100) FROM range(5000) t(i), "
        "LATERAL (SELECT i::DOUBLE AS x) ORDER BY x"
    ).fetchall()
    assert rows == [(i + 1.0, i + 10.0, i + 101.0) for i in range(5000)]


@pytest.mark.parametrize(
    "call, expected",
    [
        ("shifted(x, 2)", [2.0, 3.0, 4.0]),
        ("shifted(1.5, i)", [1.5, 2.5, 3.5]),
        ("shifted(1.5, 2)", [3.5, 3.5, 3.5]),
    ],
)
def test_duckdb_9921_constant_arguments_to_arrow_functions(call: str, expected: t.List[float]) -> None:
    con = duckdb.connect()
    register(con, shifted)
    rows = con.sql(f"SELECT {call} FROM (SELECT i, i::DOUBLE AS x FROM range(3) t(i)) ORDER BY i").fetchall()
    assert [value for (value,) in rows] == expected


def test_duckdb_python_530_the_callable_outlives_the_objects_that_defined_it() -> None:
    """DuckDB keeps no reference to the Python callable; a freed one crashed the process."""
    con = duckdb.connect()

    def make() -> t.Any:
        @udf(name="short_lived")
        def short_lived(x: float) -> float:
            return x + 0.5

        return short_lived

    register(con, make())
    gc.collect()
    assert con.sql("SELECT sum(short_lived(i::DOUBLE)) FROM range(10000) t(i)").fetchone() == (
        sum(range(10000)) + 5000.0,
    )


def test_duckdb_14989_a_strict_function_hinted_optional_may_return_null() -> None:
    """DuckDB's default NULL handling refuses NULL results; Optional hints get the other mode."""
    calls: t.List[float] = []

    @udf(name="maybe")
    def maybe(x: float) -> t.Optional[float]:
        calls.append(x)
        return None if x > 1 else x

    con = duckdb.connect()
    register(con, maybe)
    rows = con.sql("SELECT maybe(x) FROM (VALUES (1.0), (2.0), (NULL)) t(x) ORDER BY x NULLS LAST").fetchall()
    assert rows == [(1.0,), (None,), (None,)]
    assert sorted(calls) == [1.0, 2.0]  # still strict: never called with the NULL



def test_registering_another_function_under_a_used_name_replaces_it() -> None:
    @udf(name="f")
    def one(x: float) -> float:
        return 1.0

    @udf(name="f")
    def two(x: float) -> float:
        return 2.0

    con = duckdb.connect()
    register(con, one)
    register(con, two)
    assert con.sql("SELECT f(0.0)").fetchone() == (2.0,)

"""The parity comparison itself: what it lets through and what it reports (no engine needed)."""

from __future__ import annotations

import datetime
import math

import pyarrow as pa

from tests.parity.comparison import RELATIVE, differences


def table(**columns: list) -> pa.Table:
    return pa.table(columns)


def test_equal_tables_in_another_order_with_nulls_and_nans_do_not_differ() -> None:
    duckdb = table(id=[1, 2, 3, 3], score=[0.5, None, math.nan, 1.0], tags=[["a"], [], None, ["b", "c"]])
    spark = table(id=[3, 3, 1, 2], score=[1.0, math.nan, 0.5, None], tags=[["b", "c"], None, ["a"], []])
    assert differences(duckdb, spark) == []


def test_floats_agree_within_the_relative_tolerance_and_not_beyond() -> None:
    base = 1234.5678
    assert differences(table(x=[base]), table(x=[base * (1 + RELATIVE / 2)])) == []
    found = differences(table(id=[1], x=[base]), table(id=[1], x=[base * (1 + RELATIVE * 4)]))
    assert found[0] == "1 row(s) whose floats differ beyond 1e-09 relative, e.g.:"
    assert "duckdb: {id: 1, x: 1234.5678}" in found[1]


def test_floats_inside_structs_and_lists_are_compared_with_the_tolerance() -> None:
    struct = pa.struct([("amount", pa.float64()), ("kind", pa.string())])
    ours = pa.table({"details": pa.array([[{"amount": 0.1 + 0.2, "kind": "card"}]], pa.list_(struct))})
    theirs = pa.table({"details": pa.array([[{"amount": 0.3, "kind": "card"}]], pa.list_(struct))})
    assert differences(ours, theirs) == []
    other = pa.table({"details": pa.array([[{"amount": 0.3, "kind": "cash"}]], pa.list_(struct))})
    assert differences(ours, other)[0] == "1 rows only in duckdb, e.g.:"


def test_a_row_counted_twice_on_one_side_is_a_difference() -> None:
    found = differences(table(id=[1, 1]), table(id=[1]))
    assert found == ["row counts differ: duckdb 2, spark 1", "1 rows only in duckdb, e.g.:", "  {id: 1}"]


def test_null_is_not_nan_nor_zero() -> None:
    assert differences(table(x=[None]), table(x=[math.nan])) != []
    assert differences(table(x=[None], n=[1]), table(x=[0.0], n=[1])) != []


def test_column_names_and_type_families_must_agree() -> None:
    assert differences(table(a=[1]), table(b=[1])) == ["columns differ: duckdb ['a'], spark ['b']"]
    assert differences(table(a=[1], b=["x"]), table(b=["x"], a=[1])) == []  # compared by name
    assert differences(table(a=[1], b=["x"]), table(b=["y"], a=[1])) != []
    widths = pa.table({"n": pa.array([1], pa.int64())}), pa.table({"n": pa.array([1], pa.int32())})
    assert differences(*widths) == []  # BIGINT and INT are both integers
    found = differences(table(n=[1]), table(n=[1.0]))
    assert found == ["column 'n': duckdb integer (int64), spark float (double)"]


def test_naive_and_zoned_timestamps_differ_and_zones_compare_by_instant() -> None:
    naive = pa.table({"at": pa.array([datetime.datetime(2024, 1, 1, 12)], pa.timestamp("us"))})
    utc = pa.table({"at": pa.array([datetime.datetime(2024, 1, 1, 12)], pa.timestamp("us", tz="UTC"))})
    paris = pa.table({"at": pa.array([datetime.datetime(2024, 1, 1, 12)], pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us", tz="Europe/Paris"))})
    assert differences(naive, utc) == ["column 'at': duckdb timestamp (timestamp[us]), spark timestamp with time zone (timestamp[us, tz=UTC])"]
    assert differences(utc, paris) == []

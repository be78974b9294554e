"""Every mapped type makes the trip SQL -> Python -> SQL unchanged, on an in-process DuckDB.

Each case is a column of values (NULLs, extremes, NaN, unicode...) pushed through an
identity function in three ways: row mode (types from hints, or from args=/returns= when the
case has no hint), vectorized with pyarrow arrays, and vectorized with pandas Series.
"""

import dataclasses
import datetime as dt
import typing as t
from decimal import Decimal

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from mixmesh import AwareDatetime, udf
from mixmesh.engines.duckdb import register

NAN, INF = float("nan"), float("inf")
UTC = dt.timezone.utc
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


class Item(t.TypedDict):
    name: str
    price: float
    tags: t.List[str]


@dataclasses.dataclass
class Reading:
    sensor: str
    value: t.Optional[float]
    day: dt.date


ITEM_SQL = "STRUCT(name VARCHAR, price DOUBLE, tags VARCHAR[])"
READING_SQL = "STRUCT(sensor VARCHAR, value DOUBLE, day DATE)"
ITEMS = [
    {"name": "caf\u00e9 \u2615", "price": 2.5, "tags": ["hot", None]},
    {"name": None, "price": None, "tags": None},
    {"name": "", "price": -0.0, "tags": []},
]
READINGS = [
    {"sensor": "s-\u6e29\u5ea6", "value": 21.5, "day": dt.date(2024, 2, 29)},
    {"sensor": None, "value": None, "day": None},
]

# id -> (Python hint, or None for "types from args=/returns=", SQL type, values)
CASES: t.Dict[str, t.Tuple[t.Any, str, t.List[t.Any]]] = {
    "double": (float, "DOUBLE", [1.5, -0.0, INF, -INF, 1.7976931348623157e308, 5e-324, None]),
    "double_nan": (float, "DOUBLE", [NAN, 1.0, None]),
    "bigint": (int, "BIGINT", [0, -1, 2**63 - 1, -(2**63), 2**53 + 1, None]),
    "boolean": (bool, "BOOLEAN", [True, False, None]),
    "varchar": (
        str,
        "VARCHAR",
        ["", "plain", "\U0001f600\U0001f389", "\u65e5\u672c\u8a9e", "e\u0301\u0327", "a\x00b", None],
    ),
    "blob": (bytes, "BLOB", [b"", b"\x00", b"a\x00b\xff\xfe", None]),
    "decimal": (
        Decimal,
        "DECIMAL(38, 9)",
        [
            Decimal("0"),
            Decimal("-12345678901234567890.123456789"),
            Decimal("99999999999999999999999999999.999999999"),  # the largest DECIMAL(38, 9)
            None,
        ],
    ),
    "decimal_18_4": (
        None,  # types from args=/returns=
        "DECIMAL(18, 4)",
        [Decimal("1.5000"), Decimal("-99999999999999.9999"), Decimal("0.0001"), None],
    ),
    "date": (
        dt.date,
        "DATE",
        [dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(1970, 1, 1), dt.date(2024, 2, 29), None],
    ),
    "timestamp": (
        dt.datetime,
        "TIMESTAMP",
        [
            dt.datetime(1, 1, 1),
            dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
            dt.datetime(1969, 12, 31, 23, 59, 59, 1),
            None,
        ],
    ),
    "timestamptz": (
        AwareDatetime,
        "TIMESTAMPTZ",
        [dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=IST), None],
    ),
    "time": (dt.time, "TIME", [dt.time(0), dt.time(23, 59, 59, 999999), dt.time(12, 34, 56, 789), None]),
    "list_double": (t.List[float], "DOUBLE[]", [[], [1.0, None, -INF], None]),
    "list_varchar": (list[str], "VARCHAR[]", [[], ["a", None, "\U0001f600", ""], None]),
    "list_typeddict": (list[Item], ITEM_SQL + "[]", [[], [ITEMS[0], None, ITEMS[1]], None]),
    "typeddict": (Item, ITEM_SQL, ITEMS + [None]),
    "dataclass": (Reading, READING_SQL, READINGS + [None]),
    "map": (t.Dict[str, float], "MAP(VARCHAR, DOUBLE)", [{}, {"a": 1.0, "\u00e9": None, "z": -INF}, None]),
    "optional": (t.Optional[int], "BIGINT", [7, None]),
}

MODES = ("row", "arrow", "pandas")


def identity(mode: str, hint: t.Any, sql: str, **options: t.Any) -> t.Tuple[t.Any, t.List[t.Any]]:
    """An identity @udf for one mode, and the list of what it received."""
    received: t.List[t.Any] = []

    def ident(x):  # type: ignore[no-untyped-def]
        received.append(x)
        return x

    if mode == "row" and hint is not None:
        ident.__annotations__ = {"x": hint, "return": hint}
    elif mode == "pandas":
        ident.__annotations__ = {"x": pd.Series, "return": pd.Series}
        options.update(vectorized=True, args=[sql], returns=sql)
    else:
        options.update(args=[sql], returns=sql, vectorized=mode == "arrow")
    return udf(name="ident", **options)(ident), received


def through_sql(fn: t.Any, sql: str, values: t.List[t.Any], con: t.Any = None) -> t.List[t.Any]:
    """``SELECT fn(x)`` over a table ``v`` of the values, in order.

    Also checks that the result has the SQL type of the argument when the function is an identity.
    """
    con = con or duckdb.connect()
    name = register(con, fn)
    con.execute(f"CREATE TABLE v (i INTEGER, x {sql})")
    con.executemany("INSERT INTO v VALUES (?, ?)", list(enumerate(values)))
    rows = con.execute(f"SELECT x, {name}(x), typeof({name}(x)) = typeof(x) FROM v ORDER BY i").fetchall()
    assert exact([x for x, _, _ in rows]) == exact(values)  # DuckDB stored what we meant
    if name == "ident":
        assert all(same_type for _, _, same_type in rows)
    return [value for _, value, _ in rows]


def exact(value: t.Any) -> t.Any:
    """A form where == is exact: floats by repr (NaN, -0.0, inf), bool apart from int."""
    if isinstance(value, float):
        return ("float", repr(value))
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (list, tuple)):
        return [exact(v) for v in value]
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    return value




@pytest.mark.parametrize(
    "mode, case",
    [
        pytest.param(mode, case, id=f"{mode}-{case}")
        for mode in MODES
        for case in CASES
    ],
)
def test_identity_returns_the_input_values(mode: str, case: str) -> None:
    hint, sql, values = CASES[case]
    fn, received = identity(mode, hint, sql)
    assert exact(through_sql(fn, sql, values)) == exact(values)
    batch_type = {"row": object, "arrow": pa.Array, "pandas": pd.Series}[mode]
    if mode == "row" and dataclasses.is_dataclass(hint):
        batch_type = hint  # a dataclass argument arrives as an instance
    assert received and all(isinstance(batch, batch_type) for batch in received)


class XY(t.TypedDict):
    x: float
    y: float


# Built in SQL: DuckDB's Python parameter binding turns a NaN inside a list, map or struct into NULL.
NESTED_NAN = {
    "nan_in_list": (t.List[float], "DOUBLE[]", "['nan'::DOUBLE, 1.0, NULL, '-inf']", [NAN, 1.0, None, -INF]),
    "nan_in_struct": (XY, "STRUCT(x DOUBLE, y DOUBLE)", "{'x': 'nan'::DOUBLE, 'y': NULL}", {"x": NAN, "y": None}),
    "nan_in_map": (
        t.Dict[str, float], "MAP(VARCHAR, DOUBLE)", "MAP {'a': 'nan'::DOUBLE, 'b': NULL}", {"a": NAN, "b": None}
    ),
}


@pytest.mark.parametrize(
    "mode, case",
    [
        pytest.param(mode, case, id=f"{mode}-{case}")
        for mode in MODES
        for case in NESTED_NAN
    ],
)
def test_nan_inside_nested_values(mode: str, case: str) -> None:
    hint, sql, literal, expected = NESTED_NAN[case]
    fn, _ = identity(mode, hint, sql)
    con = duckdb.connect()
    register(con, fn)
    (got,) = con.execute(f"SELECT ident({literal}::{sql})").fetchone()
    assert exact(got) == exact(expected)


@pytest.mark.parametrize(
    "mode, hint, sql",
    [
        ("row", AwareDatetime, "TIMESTAMPTZ"),
        ("arrow", None, "TIMESTAMPTZ"),
        ("pandas", None, "TIMESTAMPTZ"),
        ("row", dt.datetime, "TIMESTAMP"),
        ("arrow", None, "TIMESTAMP"),
    ],
)
@pytest.mark.parametrize("zone", ["Asia/Kathmandu", "America/New_York"])
def test_timestamps_keep_their_instant_in_a_non_utc_session(
    mode: str, hint: t.Any, sql: str, zone: str
) -> None:
    con = duckdb.connect()
    con.execute(f"SET TimeZone = '{zone}'")
    if sql == "TIMESTAMPTZ":
        values = [
            dt.datetime(2024, 3, 10, 6, 59, 59, tzinfo=UTC),  # New York's DST gap starts at 07:00 UTC
            dt.datetime(2024, 11, 3, 5, 30, tzinfo=UTC),  # inside New York's repeated hour
            dt.datetime(1900, 1, 1, tzinfo=IST),
            None,
        ]
    else:  # a naive TIMESTAMP is wall time: no session time zone applies
        values = [dt.datetime(2024, 3, 10, 2, 30), dt.datetime(2024, 11, 3, 1, 30), None]
    fn, _ = identity(mode, hint, sql)
    got = through_sql(fn, sql, values, con)
    assert got == values  # aware datetimes compare as instants
    assert all((v.tzinfo is None) == (sql == "TIMESTAMP") for v in got if v is not None)
    assert con.execute("SELECT bool_and(ident(x) = x) FROM v").fetchone() == (True,)


@pytest.mark.parametrize("mode", MODES)
def test_strict_null_handling_never_calls_with_null(mode: str) -> None:
    fn, received = identity(mode, float, "DOUBLE")
    values = [1.0, None, 3.0, None, 5.0]
    assert through_sql(fn, "DOUBLE", values) == values
    seen = [v for batch in received for v in (batch if mode != "row" else [batch])]
    assert [float(v) for v in seen] == [1.0, 3.0, 5.0]  # NULL rows never reach the function

    received.clear()
    assert through_sql(fn, "DOUBLE", [None, None]) == [None, None]
    assert received == []  # a batch of NULLs needs no call at all


@pytest.mark.parametrize("mode", ["row", "arrow"])
def test_null_handling_call_passes_null_through(mode: str) -> None:
    calls: t.List[t.Any] = []
    if mode == "row":

        @udf(null_handling="call")
        def describe_n(x: t.Optional[int]) -> str:
            calls.append(x)
            return "missing" if x is None else f"n={x}"

    else:

        @udf(null_handling="call", vectorized=True, args=["BIGINT"], returns="VARCHAR")
        def describe_n(x):  # type: ignore[no-untyped-def]
            calls.extend(x.to_pylist())
            return pa.array(["missing" if v is None else f"n={v}" for v in x.to_pylist()])

    values = [1, None, 2**63 - 1]
    assert through_sql(describe_n, "BIGINT", values) == ["n=1", "missing", f"n={2**63 - 1}"]
    assert calls == values


def test_pandas_call_mode_keeps_bigint_values_next_to_nulls() -> None:
    fn, _ = identity("pandas", None, "BIGINT", null_handling="call")
    assert through_sql(fn, "BIGINT", [2**53 + 1, None]) == [2**53 + 1, None]


@dataclasses.dataclass
class Point:
    x: float
    y: float


@dataclasses.dataclass
class Path:
    label: str
    start: Point
    stops: t.List[Point]


def test_dataclass_arguments_arrive_as_instances_and_results_may_be_dataclasses() -> None:
    seen: t.List[t.Any] = []

    @udf
    def reverse_path(path: Path) -> Path:
        seen.append(path)
        stops = list(reversed(path.stops))
        return Path(label=path.label[::-1], start=stops[0] if stops else path.start, stops=stops)

    point_sql = "STRUCT(x DOUBLE, y DOUBLE)"
    path_sql = f"STRUCT(label VARCHAR, start {point_sql}, stops {point_sql}[])"
    one, two = {"x": 1.0, "y": 2.0}, {"x": 3.0, "y": 4.0}
    value = {"label": "ab\u00e9", "start": {"x": 0.0, "y": None}, "stops": [one, two]}
    got = through_sql(reverse_path, path_sql, [value, None])
    assert got == [{"label": "\u00e9ba", "start": two, "stops": [two, one]}, None]
    (path,) = seen
    assert isinstance(path, Path) and isinstance(path.start, Point)
    assert all(isinstance(stop, Point) for stop in path.stops)
    assert path.start == Point(0.0, None)  # type: ignore[arg-type]


@dataclasses.dataclass
class Label:
    text: str


@pytest.mark.parametrize(
    "hint, result, expected",
    [
        (t.List[Point], [Point(1.0, -1.0)], [{"x": 1.0, "y": -1.0}]),
        (t.List[Point], [None, Point(1.0, -1.0)], [None, {"x": 1.0, "y": -1.0}]),
        (t.List[Label], [Label("a")], [{"text": "a"}]),
    ],
    ids=["points", "starting_with_null", "no_float_field"],
)
def test_a_returned_list_of_dataclasses(hint: t.Any, result: t.List[t.Any], expected: t.List[t.Any]) -> None:
    def make_list(x):  # type: ignore[no-untyped-def]
        return result

    make_list.__annotations__ = {"x": float, "return": hint}
    assert through_sql(udf(make_list), "DOUBLE", [1.0]) == [expected]


def test_a_map_argument_arrives_as_a_dict() -> None:
    @udf
    def total(prices: t.Dict[str, float]) -> float:
        assert isinstance(prices, dict), prices
        return sum(v for v in prices.values() if v is not None)

    assert through_sql(total, "MAP(VARCHAR, DOUBLE)", [{"a": 1.0, "b": 2.5}, {}]) == [3.5, 0.0]


class Shape(t.TypedDict):
    name: str
    corner: Point


SHAPE_SQL = "STRUCT(name VARCHAR, corner STRUCT(x DOUBLE, y DOUBLE))"


def test_a_dataclass_inside_a_typeddict_arrives_as_an_instance() -> None:
    @udf
    def corner_x(shape: Shape) -> float:
        assert isinstance(shape["corner"], Point), shape
        return shape["corner"].x

    assert through_sql(corner_x, SHAPE_SQL, [{"name": "a", "corner": {"x": 1.0, "y": 2.0}}]) == [1.0]


def test_a_dataclass_inside_a_returned_typeddict_is_converted() -> None:
    @udf
    def square_at(x: float) -> Shape:
        return {"name": "sq", "corner": Point(x, x)}

    assert through_sql(square_at, "DOUBLE", [2.0]) == [{"name": "sq", "corner": {"x": 2.0, "y": 2.0}}]


def test_vectorized_pandas_hints_receive_series() -> None:
    received: t.List[t.Any] = []

    @udf(vectorized=True)
    def scaled(x: pd.Series, factor: pd.Series) -> pd.Series:
        received.append((x, factor))
        return x * factor

    con = duckdb.connect()
    register(con, scaled)
    rows = con.execute("SELECT scaled(x, 2.0) FROM (VALUES (1.5), (NULL), (-4.0)) v(x)").fetchall()
    assert rows == [(3.0,), (None,), (-8.0,)]
    assert received and all(isinstance(a, pd.Series) and isinstance(b, pd.Series) for a, b in received)


def test_vectorized_pandas_mode_sends_series_whatever_the_element_hints() -> None:
    received: t.List[t.Any] = []

    @udf(vectorized="pandas")
    def halve(x: float) -> float:
        received.append(x)
        return x / 2

    assert through_sql(halve, "DOUBLE", [1.0, 3.0]) == [0.5, 1.5]
    assert all(isinstance(batch, pd.Series) for batch in received)


"""A returned value converts one way, whatever the path (issue 15, item 5; docs/return-values.md).

A row function's value reaches the engine by three paths: DuckDB's plain binding (DuckDB
converts each row's Python value), DuckDB's fast path and Spark's executors (a batch's values
become an Arrow array). A randomized differential test: hypothesis draws, for each return type,
a column of values (exact ones, ones that would need rounding or truncation, None, NaN, the
wrong type, structs with an unknown or a missing field, aware and naive datetimes), each
knowing what the engine must hold or that it must be refused; a function returns the column
row by row on each path, and every path must give those rows, or the same error naming the
same value and row. Then targeted tests: vectorized functions' arrays, and a Python model's
NaN staying NaN.

The function comes in four shapes, each a different call on the plain binding: a
module-level function (DuckDB calls an inlined copy of it), one returning from inside its own
``try``/``except Exception`` (the copy converts there), a closure (a compiled wrapper) and one
with on_error="null" (the call behind policies), all reading the column from ``COLUMN``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import os
import typing as t
import uuid

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from sqlmesh.core.engine_adapter import DuckDBEngineAdapter

from mixmesh import engines, udf
from mixmesh import fastpath
import mixmesh.sqlmesh as sqlmesh_integration
from mixmesh.core import sql_types as types
from mixmesh.core.errors import FunctionRuntimeError
from mixmesh.engines.duckdb import register
from tests.projects import Project
from tests.call_site_projects import fast_path

D = decimal.Decimal
NAN, INF = float("nan"), float("inf")
UTC = dt.timezone.utc

# ---------------------------------------------------------------------------------------
# What is drawn: a value and what the engine must hold for it, or REFUSED.

REFUSED = "<refused>"


@dataclasses.dataclass(frozen=True)
class Drawn:
    value: t.Any
    stored: t.Any = REFUSED

    @property
    def refused(self) -> bool:
        return isinstance(self.stored, str) and self.stored == REFUSED


@dataclasses.dataclass
class Pair:
    """A dataclass for STRUCT(a BIGINT, b VARCHAR): returned as its fields."""

    a: t.Optional[int]
    b: t.Optional[str]


def refused(strategy: st.SearchStrategy[t.Any]) -> st.SearchStrategy[Drawn]:
    return strategy.map(Drawn)


def kept(strategy: st.SearchStrategy[t.Any], stored: t.Callable[[t.Any], t.Any] = lambda v: v) -> st.SearchStrategy[Drawn]:
    return strategy.map(lambda value: Drawn(value, stored(value)))


NULL = st.just(Drawn(None, None))
WRONG_SCALARS = st.one_of(st.booleans(), st.text(max_size=3), st.binary(max_size=2), st.dates(), st.just([1]))


def integers(low: int, high: int) -> t.Tuple[st.SearchStrategy[Drawn], st.SearchStrategy[Drawn]]:
    """Exact: ints in range, integral floats and Decimals. Refused: fractions, out of range,
    NaN, infinity, bools, text."""
    exact_floats = st.integers(max(low, -(2**53)), min(high, 2**53)).map(float)
    good = st.one_of(
        kept(st.integers(low, high)),
        st.sampled_from([low, high]).map(lambda i: Drawn(i, i)),
        kept(exact_floats, int),
        kept(st.integers(max(low, -(10**12)), min(high, 10**12)).map(lambda i: D(i).quantize(D("0.01"))), int),
        NULL,
    )
    bad = st.one_of(
        refused(st.floats(-1e6, 1e6).filter(lambda f: not f.is_integer())),  # 2.7: no rounding
        refused(st.decimals(-1000, 1000, places=2).filter(lambda d: d != d.to_integral_value())),
        refused(st.integers(high + 1, high * 4 + 2)),
        refused(st.integers(low * 4 - 2, low - 1)) if low < 0 else refused(st.integers(-5, -1)),
        refused(st.sampled_from([NAN, INF, -INF])),
        refused(WRONG_SCALARS),
    )
    return good, bad


def doubles() -> t.Tuple[st.SearchStrategy[Drawn], st.SearchStrategy[Drawn]]:
    good = st.one_of(
        kept(st.floats(allow_nan=False)),  # infinities and -0.0 too
        st.just(Drawn(NAN, NAN)),  # NaN stays NaN
        kept(st.integers(-(2**70), 2**70), float),  # float(): large ints round as float() rounds them
        kept(st.decimals(allow_nan=False, allow_infinity=False, places=3), float),
        NULL,
    )
    bad = st.one_of(refused(WRONG_SCALARS), refused(st.just(10**400)))  # too large for a double
    return good, bad


def decimals() -> t.Tuple[st.SearchStrategy[Drawn], st.SearchStrategy[Drawn]]:
    cents = D("0.01")
    good = st.one_of(
        kept(st.decimals(D("-99999999.99"), D("99999999.99"), places=2), lambda d: d.quantize(cents)),
        kept(st.decimals(D("-999.9"), D("999.9"), places=1), lambda d: d.quantize(cents)),
        kept(st.integers(-99999999, 99999999), lambda i: D(i).quantize(cents)),
        # A float as Python shows it: 1.1 is 1.10.
        kept(st.integers(-(10**9), 10**9).map(lambda c: c / 100), lambda f: D(repr(f)).quantize(cents)),
        NULL,
    )
    bad = st.one_of(
        refused(st.decimals(-1000, 1000, places=3).filter(lambda d: d != d.quantize(cents))),  # needs rounding
        refused(st.integers(10**8, 10**12).map(D)),  # overflows DECIMAL(10, 2)
        refused(st.sampled_from([1.255, 0.001, 123456789.5, NAN, INF, D("NaN")])),
        refused(WRONG_SCALARS),
    )
    return good, bad


texts = st.text(max_size=8)
years = {"min_value": dt.datetime(1900, 1, 1), "max_value": dt.datetime(2200, 12, 31)}
offsets = st.integers(-14 * 60, 14 * 60).map(lambda minutes: dt.timezone(dt.timedelta(minutes=minutes)))
naive = st.datetimes(**years)
aware = st.builds(lambda moment, zone: moment.replace(tzinfo=zone), naive, offsets)

STRUCT_FIELDS = st.fixed_dictionaries({"a": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
                                       "b": st.one_of(st.none(), texts)})


@st.composite
def shuffled(draw: st.DrawFn, fields: st.SearchStrategy[t.Dict[str, t.Any]]) -> t.Dict[str, t.Any]:
    """The fields in any order (DuckDB #10808: they land by name)."""
    value = draw(fields)
    order = draw(st.permutations(list(value)))
    return {name: value[name] for name in order}


def structs() -> t.Tuple[st.SearchStrategy[Drawn], st.SearchStrategy[Drawn]]:
    good = st.one_of(
        kept(shuffled(STRUCT_FIELDS), lambda v: {"a": v["a"], "b": v["b"]}),
        kept(STRUCT_FIELDS.map(lambda v: Pair(**v)), dataclasses.asdict),
        NULL,
    )
    bad = st.one_of(
        refused(STRUCT_FIELDS.map(lambda v: {**v, "c": 1})),  # an unknown field
        refused(STRUCT_FIELDS.map(lambda v: {"a": v["a"]})),  # a missing field: None, not absent
        refused(STRUCT_FIELDS.map(lambda v: {**v, "a": 2.5})),  # a field that would be rounded
        refused(STRUCT_FIELDS.map(lambda v: {**v, "b": 3})),  # a field of the wrong type
        refused(st.sampled_from([[1, "x"], "a", 1])),
    )
    return good, bad


def lists_of_structs() -> t.Tuple[st.SearchStrategy[Drawn], st.SearchStrategy[Drawn]]:
    element, wrong = structs()
    good = st.one_of(
        st.lists(element, max_size=3).map(lambda items: Drawn([i.value for i in items], [i.stored for i in items])),
        NULL,
    )
    bad = st.one_of(
        st.tuples(st.lists(element, max_size=2), wrong, st.integers(0, 2)).map(
            lambda drawn: Drawn([i.value for i in drawn[0][: drawn[2]]] + [drawn[1].value]
                                + [i.value for i in drawn[0][drawn[2]:]])
        ),
        refused(st.sampled_from([{"a": 1, "b": "x"}, "ab", 5])),  # not a list
    )
    return good, bad


def maps() -> t.Tuple[st.SearchStrategy[Drawn], st.SearchStrategy[Drawn]]:
    values = st.one_of(st.none(), st.floats(allow_nan=False), st.just(NAN), st.integers(-100, 100))
    good = st.one_of(
        kept(st.dictionaries(texts, values, max_size=3),
             lambda m: {k: None if v is None else float(v) for k, v in m.items()}),
        NULL,
    )
    bad = st.one_of(
        refused(st.dictionaries(texts, values, max_size=2).map(lambda m: {**m, "bad": "1.5"})),  # a text value
        refused(st.dictionaries(texts, values, max_size=2).map(lambda m: {**m, 7: 1.0})),  # an int key
        refused(st.sampled_from([[("a", 1.0)], "a"])),  # not a dict
    )
    return good, bad


@dataclasses.dataclass(frozen=True)
class ReturnType:
    sql: str
    good: st.SearchStrategy[Drawn]
    bad: st.SearchStrategy[Drawn]
    on_spark: bool = True  # Spark has no HUGEINT


def _type(sql: str, strategies: t.Tuple[st.SearchStrategy[Drawn], st.SearchStrategy[Drawn]], **options: t.Any) -> ReturnType:
    return ReturnType(sql, *strategies, **options)


RETURN_TYPES = {
    "bigint": _type("BIGINT", integers(-(2**63), 2**63 - 1)),
    "integer": _type("INTEGER", integers(-(2**31), 2**31 - 1)),
    "hugeint": _type("HUGEINT", integers(-(10**38 - 1), 10**38 - 1), on_spark=False),
    "double": _type("DOUBLE", doubles()),
    "decimal": _type("DECIMAL(10, 2)", decimals()),
    "varchar": _type("VARCHAR", (st.one_of(kept(texts), NULL), refused(st.one_of(st.integers(), st.floats(),
                                                                                   st.booleans(), st.binary(max_size=2))))),
    "boolean": _type("BOOLEAN", (st.one_of(kept(st.booleans()), NULL),
                                 refused(st.one_of(st.integers(0, 1), st.sampled_from(["true", 1.0]))))),
    "date": _type("DATE", (st.one_of(kept(st.dates()), NULL),
                           refused(st.one_of(naive, st.just("2024-01-02"))))),  # a datetime would drop its time
    "timestamp": _type("TIMESTAMP", (st.one_of(kept(naive), NULL), refused(st.one_of(aware, st.dates())))),
    "timestamptz": _type("TIMESTAMPTZ", (st.one_of(kept(aware), NULL), refused(st.one_of(naive, st.dates())))),
    "struct": _type("STRUCT(a BIGINT, b VARCHAR)", structs()),
    "list_of_structs": _type("STRUCT(a BIGINT, b VARCHAR)[]", lists_of_structs()),
    "map": _type("MAP(VARCHAR, DOUBLE)", maps()),
}


@st.composite
def columns(draw: st.DrawFn, kind: ReturnType) -> t.List[Drawn]:
    """Values for rows 0..n-1: good ones, and at most one refused (so that every path must
    name the same one)."""
    column = draw(st.lists(kind.good, min_size=1, max_size=6))
    if draw(st.booleans()):
        column.insert(draw(st.integers(0, len(column))), draw(kind.bad))
    return column


# ---------------------------------------------------------------------------------------
# The function, in three shapes; each returns COLUMN[i] for row i.

COLUMN: t.List[t.Any] = []


def pick(i: int):  # type: ignore[no-untyped-def]
    return COLUMN[i]


def closure_pick() -> t.Callable[[int], t.Any]:
    column = [COLUMN]  # read through a cell: a closure is wrapped, not inlined

    def pick(i: int):  # type: ignore[no-untyped-def]
        return column[0][i]

    return pick


def protected_pick(i: int):  # type: ignore[no-untyped-def]
    return COLUMN[i]


def guarded_pick(i: int):  # type: ignore[no-untyped-def]
    try:
        return COLUMN[i]  # the inlined copy converts here, inside the function's own try
    except Exception:  # which must not swallow a refused value
        return None


SHAPES = {
    "inlined": lambda name, sql: udf(name=name, returns=sql)(pick),
    "guarded": lambda name, sql: udf(name=name, returns=sql)(guarded_pick),
    "wrapped": lambda name, sql: udf(name=name, returns=sql)(closure_pick()),
    "protected": lambda name, sql: udf(name=name, returns=sql, on_error="null")(protected_pick),
}


def function_name(kind: str) -> str:
    return f"returns_{kind}"


# ---------------------------------------------------------------------------------------
# The paths.


@dataclasses.dataclass
class DuckDB:
    """SQLMesh's DuckDB adapter, each function bound as a model binds it."""

    adapter: DuckDBEngineAdapter
    sql_names: t.Dict[t.Tuple[str, str], str]

    def sql(self, kind: str, shape: str, rows: int) -> str:
        declared = RETURN_TYPES[kind].sql
        call = f"CAST({self.sql_names[kind, shape]}(t.i) AS {types.parse_sql_type(declared).sql('duckdb')})"
        return f"SELECT t.i, {call} AS v FROM range({rows}) AS t(i) ORDER BY t.i"


@pytest.fixture(scope="module")
def duck() -> t.Iterator[DuckDB]:
    connection = duckdb.connect()
    adapter = DuckDBEngineAdapter(lambda: connection)
    sqlmesh_integration.install()
    sql_names = {}
    for kind, declared in RETURN_TYPES.items():
        for shape, make in SHAPES.items():
            function = make(function_name(kind), declared.sql)
            # The closure reads a cell holding COLUMN itself, which each example refills.
            sql_name = f"{function_name(kind)}_{shape}__{uuid.uuid4().hex[:10]}"
            engines.register_call(function.spec, None, sql_name)
            sql_names[kind, shape] = sql_name
    yield DuckDB(adapter, sql_names)
    adapter.close()


Outcome = t.Tuple[str, t.Any]


def on_duckdb(duck: DuckDB, kind: str, shape: str, mode: str) -> Outcome:
    fastpath.decisions.clear()
    try:
        with fast_path(mode):
            rows = duck.adapter.fetchall(duck.sql(kind, shape, len(COLUMN)))
        outcome: Outcome = ("rows", [exact(value) for _, value in rows])
    except FunctionRuntimeError as error:
        outcome = ("error", declared_as_written(str(error), kind, "duckdb"))
    if mode == "on":  # the fast path computed it (or failed computing it)
        assert fastpath.decisions and fastpath.decisions[-1].staged, fastpath.decisions
    return outcome


def on_spark(spark: t.Any, kind: str, shape: str) -> Outcome:
    from mixmesh.engines import spark as spark_engine

    function = SHAPES[shape](function_name(kind), RETURN_TYPES[kind].sql)  # a new one: it ships COLUMN as it is now
    name = spark_engine.register(spark, function, name=f"{function_name(kind)}_{shape}")
    # One partition: one task reads the rows in order, so no sort (a shuffle) is needed, and the
    # first refused row is the first one met, as on DuckDB.
    sql = f"SELECT id, {name}(id) AS v FROM range(0, {len(COLUMN)}, 1, 1)"
    try:
        table = spark.sql(sql).toArrow()
    except Exception as error:
        explained = spark_engine.explain_error(error, sql, {})
        if not isinstance(explained, FunctionRuntimeError):
            raise
        return "error", declared_as_written(str(explained), kind, "spark")
    return "rows", [exact(value) for value in table.column("v").to_pylist(maps_as_pydicts="strict")]


def declared_as_written(message: str, kind: str, dialect: str) -> str:
    """The message with the declared type as mixmesh's own SQL writes it (each engine writes
    it in its dialect: VARCHAR is STRING on Spark)."""
    declared = types.parse_sql_type(RETURN_TYPES[kind].sql)
    return message.replace(f"(declared {types.sql(declared, dialect)})", f"(declared {types.sql(declared)})")


def exact(value: t.Any) -> t.Any:
    """A form where == is exact: floats by repr (NaN, -0.0), bool apart from int, aware
    datetimes as their UTC instant, Decimals by their text."""
    if isinstance(value, float):
        return ("float", repr(value))
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, dt.datetime):
        return ("datetime", value.astimezone(UTC).isoformat() if value.tzinfo is not None else value.isoformat())
    if isinstance(value, decimal.Decimal):
        return ("decimal", str(value.copy_abs() if value == 0 else value))  # -0.00 is 0.00
    if isinstance(value, (list, tuple)):
        return [exact(v) for v in value]
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    return value


def expected(column: t.List[Drawn]) -> t.Tuple[str, t.Any]:
    """The rows every path must give, or ("error", row) for the row whose value is refused."""
    bad = [position for position, drawn in enumerate(column) if drawn.refused]
    if bad:
        return "error", bad[0]
    return "rows", [exact(drawn.stored) for drawn in column]


def check_outcome(outcome: Outcome, wanted: t.Tuple[str, t.Any], kind: str, path: str) -> None:
    if wanted[0] == "rows":
        assert outcome == wanted, f"{path}: expected the rows {wanted[1]}, got {outcome}"
        return
    assert outcome[0] == "error", f"{path}: expected row {wanted[1]}'s value to be refused, got {outcome}"
    message = outcome[1]
    assert message.startswith(f"function {function_name(kind)!r} (declared "), message
    assert " returned a value that does not convert to its declared type: " in message, message
    assert message.endswith(f"; the row's arguments were i={wanted[1]}"), f"{path}: {message}"


EXAMPLES = int(os.environ.get("MIXMESH_RETURN_EXAMPLES", "40"))
DIFFERENTIAL = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                 HealthCheck.function_scoped_fixture],
)


def fill(column: t.List[Drawn]) -> None:
    COLUMN[:] = [drawn.value for drawn in column]


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("kind", list(RETURN_TYPES))
def test_the_plain_binding_and_the_fast_path_convert_alike(duck: DuckDB, kind: str, shape: str) -> None:
    @DIFFERENTIAL
    @given(column=columns(RETURN_TYPES[kind]))
    def differential(column: t.List[Drawn]) -> None:
        fill(column)
        note(f"{kind} ({shape}): {[drawn.value for drawn in column]!r}")
        wanted = expected(column)
        plain = on_duckdb(duck, kind, shape, "off")
        fast = on_duckdb(duck, kind, shape, "on")
        check_outcome(plain, wanted, kind, "plain binding")
        check_outcome(fast, wanted, kind, "fast path")
        assert plain == fast, f"plain binding: {plain}\nfast path:     {fast}"

    differential()


# Each example is one Spark job (about 0.2 s): 6 per type keeps `make test` under its 20
# minutes; MIXMESH_RETURN_SPARK_EXAMPLES=100 draws more. The pinned cases below run on Spark too.
SPARK_EXAMPLES = int(os.environ.get("MIXMESH_RETURN_SPARK_EXAMPLES", "6"))


@pytest.mark.slow
@pytest.mark.parametrize("kind", [kind for kind, declared in RETURN_TYPES.items() if declared.on_spark])
def test_spark_converts_as_duckdb_does(spark: t.Any, duck: DuckDB, kind: str) -> None:
    @settings(DIFFERENTIAL, max_examples=SPARK_EXAMPLES)
    @given(column=columns(RETURN_TYPES[kind]), shape=st.sampled_from(list(SHAPES)))
    def differential(column: t.List[Drawn], shape: str) -> None:
        fill(column)
        note(f"{kind} ({shape}): {[drawn.value for drawn in column]!r}")
        wanted = expected(column)
        on_the_executors = on_spark(spark, kind, shape)
        check_outcome(on_the_executors, wanted, kind, "Spark")
        assert on_the_executors == on_duckdb(duck, kind, shape, "off"), "Spark and DuckDB's plain binding differ"

    differential()


# ---------------------------------------------------------------------------------------
# The cases the issue names, each on every path (pinned, whatever hypothesis draws).

PINNED = [
    ("bigint", 2.7, "has a fractional part"),  # was 3 on the plain binding, 2 on the fast path
    ("bigint", True, "a bool is not a number"),
    ("bigint", "3", "a str is not an integer"),
    ("bigint", 2**64, "out of BIGINT's range"),
    ("decimal", D("1.255"), "more than 2 decimal places"),  # was rounded to 1.26 by the plain binding
    ("decimal", 1.255, "more than 2 decimal places"),  # was 1.25 on both
    ("varchar", 3, "an int is not text"),  # was '3'
    ("double", "1.5", "a str is not a number"),  # was 1.5
    ("boolean", 1, "an int is not a BOOLEAN"),  # was True
    ("struct", {"a": 1, "b": "x", "c": 2}, "unknown field(s) 'c'"),  # was dropped on the fast path
    ("struct", {"a": 1}, "missing field(s) 'b'"),  # was NULL on the fast path
    ("list_of_structs", [{"a": 1, "b": "x"}, {"a": 2}], "at [1]: missing field(s) 'b'"),
    ("map", {"k": "x"}, "at ['k']: a str is not a number"),
    ("timestamp", dt.datetime(2024, 1, 2, 3, 4, tzinfo=dt.timezone(dt.timedelta(hours=2))),
     "an aware datetime for a TIMESTAMP"),  # was 03:04 on the plain binding, 01:04 on the fast path
    ("timestamptz", dt.datetime(2024, 1, 2, 3, 4), "a naive datetime for a TIMESTAMPTZ"),
    ("date", dt.datetime(2024, 1, 2, 3, 4), "a datetime for a DATE would lose its time"),
]


@pytest.mark.parametrize("kind, value, reason", PINNED, ids=[f"{k}-{v!r}" for k, v, _ in PINNED])
def test_the_issues_cases_are_refused_alike_on_duckdb(duck: DuckDB, kind: str, value: t.Any, reason: str) -> None:
    COLUMN[:] = [None, value]
    for mode in ("off", "on"):
        outcome = on_duckdb(duck, kind, "inlined", mode)
        assert outcome[0] == "error" and reason in outcome[1] and outcome[1].endswith("the row's arguments were i=1"), (
            mode, outcome
        )


@pytest.mark.slow
@pytest.mark.parametrize("kind, value, reason", PINNED, ids=[f"{k}-{v!r}" for k, v, _ in PINNED])
def test_the_issues_cases_are_refused_alike_on_spark(spark: t.Any, kind: str, value: t.Any, reason: str) -> None:
    COLUMN[:] = [None, value]
    outcome = on_spark(spark, kind, "inlined")
    assert outcome[0] == "error" and reason in outcome[1] and outcome[1].endswith("the row's arguments were i=1"), outcome


def test_nan_stays_nan_on_the_plain_binding_at_any_depth(duck: DuckDB) -> None:
    """DuckDB's native UDFs read a returned NaN as NULL; the plain binding hands it over as
    text, which DuckDB casts back to NaN (in maps too)."""
    COLUMN[:] = [NAN, None, 1.5]
    for mode in ("off", "on"):
        assert on_duckdb(duck, "double", "inlined", mode) == ("rows", [exact(NAN), None, exact(1.5)])
    COLUMN[:] = [{"a": NAN, "b": None}]
    for mode in ("off", "on"):
        assert on_duckdb(duck, "map", "wrapped", mode) == ("rows", [{"a": exact(NAN), "b": None}])


# ---------------------------------------------------------------------------------------
# Vectorized functions: the array returned, cast by the same rules.


def vectorized(returns: str, result: t.Callable[[pa.Array], t.Any]) -> t.Any:
    def batch(x: pa.Array) -> t.Any:
        return result(x)

    return udf(name="vec", vectorized=True, args=["BIGINT"], returns=returns)(batch)


VECTORIZED_REFUSED = [
    ("BIGINT", lambda x: pc.add(pc.cast(x, pa.float64()), 0.5), "has a fractional part"),
    ("BIGINT", lambda x: pc.cast(x, pa.string()), "a str is not an integer"),
    ("BIGINT", lambda x: pc.greater(x, 0), "a bool is not a number"),
    ("VARCHAR", lambda x: x, "an int is not text"),
    ("DATE", lambda x: pa.array([dt.datetime(2024, 1, 1, 5)] * len(x)), "would lose its time"),
    ("TIMESTAMP", lambda x: pa.array([dt.datetime(2024, 1, 1, 5, tzinfo=UTC)] * len(x)), "an aware datetime"),
    ("TIMESTAMPTZ", lambda x: pa.array([dt.datetime(2024, 1, 1, 5)] * len(x)), "a naive datetime"),
    ("DECIMAL(10, 2)", lambda x: pa.array([D("1.255")] * len(x)), "more than 2 decimal places"),
    ("STRUCT(a BIGINT, b VARCHAR)", lambda x: pa.array([{"a": 1, "b": "x", "c": 2}] * len(x)), "unknown field(s) 'c'"),
    ("STRUCT(a BIGINT, b VARCHAR)", lambda x: pa.array([{"a": 1}] * len(x)), "missing field(s) 'b'"),
    ("STRUCT(a BIGINT, b VARCHAR)", lambda x: [{"a": 1}] * len(x), "missing field(s) 'b'"),  # a list of values
    ("DOUBLE", lambda x: pd.Series([True] + [1.5] * (len(x) - 1), dtype=object), "a bool is not a number"),
    ("TIMESTAMP", lambda x: pd.Series(pd.to_datetime(["2024-01-01 00:00:00.000000001"] * len(x))), "finer than"),
]


@pytest.mark.parametrize("returns, result, reason", VECTORIZED_REFUSED, ids=[f"{r}-{m}" for r, _, m in VECTORIZED_REFUSED])
def test_a_vectorized_functions_array_is_refused_by_the_same_rules(returns: str, result: t.Any, reason: str) -> None:
    connection = duckdb.connect()
    register(connection, vectorized(returns, result))
    with pytest.raises(duckdb.Error) as raised:
        connection.execute("SELECT vec(i) FROM range(1, 4) AS t(i)").fetchall()
    message = str(raised.value)
    assert "FunctionRuntimeError: function 'vec' (declared " in message and reason in message, message
    assert "the row's arguments were x=1" in message, message


VECTORIZED_KEPT = [
    ("DOUBLE", lambda x: x, [1.0, 2.0, 3.0]),  # int64 for a DOUBLE
    ("BIGINT", lambda x: pc.multiply(pc.cast(x, pa.float64()), 2.0), [2, 4, 6]),  # integral doubles
    ("DECIMAL(10, 2)", lambda x: pa.array([D("1.5"), D("2"), None]), [D("1.50"), D("2.00"), None]),
    ("STRUCT(a BIGINT, b VARCHAR)", lambda x: pa.array([{"b": "x", "a": 1}] * len(x)), [{"a": 1, "b": "x"}] * 3),
    ("DOUBLE", lambda x: pa.array([NAN, 1.0, None]), [NAN, 1.0, None]),
    ("DOUBLE", lambda x: pd.Series([1.5, pd.NA, 2], dtype=object), [1.5, None, 2.0]),  # pandas' NA is NULL
]


@pytest.mark.parametrize("returns, result, rows", VECTORIZED_KEPT, ids=[r for r, _, _ in VECTORIZED_KEPT])
def test_a_vectorized_functions_array_converts_where_nothing_is_lost(returns: str, result: t.Any, rows: t.List[t.Any]) -> None:
    connection = duckdb.connect()
    register(connection, vectorized(returns, result))
    got = [value for (value,) in connection.execute("SELECT vec(i) FROM range(1, 4) AS t(i) ORDER BY i").fetchall()]
    assert exact(got) == exact(rows)


# ---------------------------------------------------------------------------------------
# A Python model's DOUBLE column keeps NaN.

NAN_MODEL = '''
import math

import pandas as pd

from mixmesh import python_model


@python_model(name="analytics.readings", columns={"id": "INT", "value": "DOUBLE", "series": "DOUBLE[]"})
def readings(context, **kwargs):
    return pd.DataFrame({
        "id": [1, 2, 3],
        "value": [1.5, math.nan, None],  # pandas holds None in a float column as NaN too
        "series": pd.Series([[math.nan, 1.0], None, [None]], dtype=object),
    })
'''

NAN_NULLABLE_MODEL = NAN_MODEL.replace('[1.5, math.nan, None]', 'pd.array([1.5, math.nan, None], dtype="Float64")')


def test_a_python_models_double_column_keeps_nan_on_duckdb(project: Project) -> None:
    project.write("models/readings.py", NAN_MODEL)
    project.plan()
    rows = project.query(
        "SELECT id, isnan(value), value IS NULL, [isnan(v) FOR v IN series] FROM analytics.readings ORDER BY id"
    )
    # NaN stays NaN; pandas cannot tell a None in a float64 column from NaN: it is NaN too.
    assert rows == [(1, False, False, [True, False]), (2, True, False, None), (3, True, False, [None])]


def test_a_python_model_writes_null_from_pandas_nullable_floats(project: Project) -> None:
    project.write("models/readings.py", NAN_NULLABLE_MODEL)
    project.plan()
    rows = project.query("SELECT id, isnan(value), value IS NULL FROM analytics.readings ORDER BY id")
    assert rows == [(1, False, False), (2, None, True), (3, None, True)]  # pandas' Float64 reads NaN as NA


@pytest.fixture
def spark_project(spark: t.Any, tmp_path: t.Any) -> t.Iterator[t.Any]:
    """As tests/spark's fixture: a project on the tests' SparkSession, its catalog dropped after."""
    from tests.projects import forget_project_modules
    from tests.spark.projects import SparkProject
    from tests.spark.session import drop_databases

    project = SparkProject(tmp_path / "project")
    yield project
    project.close()
    drop_databases(spark)
    forget_project_modules()


@pytest.mark.slow
def test_a_python_models_double_column_keeps_nan_on_spark(spark: t.Any, spark_project: t.Any) -> None:
    spark_project.write("models/readings.py", NAN_MODEL)
    spark_project.plan()
    rows = spark.sql(
        "SELECT id, isnan(value), value IS NULL, transform(series, v -> isnan(v)) FROM analytics.readings ORDER BY id"
    ).collect()
    assert [tuple(row) for row in rows] == [(1, False, False, [True, False]), (2, True, False, None), (3, True, False, [False])]

"""Argument types come from the call site (issue 15), against DuckDB itself.

A real SQLMesh project feeds the types the document's models produce (COUNTIF and SUM of an
INTEGER: HUGEINT; COUNT: BIGINT; DECIMAL, DATE, TIMESTAMP, TIMESTAMPTZ, ENUM, unsigned
integers, STRUCTs, lists of STRUCTs, MAPs, NULLs at every level) into functions hinted every
way the design names, row by row and vectorized; each function answers what Python received
(its type and its exact value), the plan runs with the fast path on and then off, and both
must give exactly the values written here. Keyword arguments at the call site are checked in
a SQL model and in a Python model's ``context.sql``.

A randomized property then draws values of integer, decimal and temporal types (NULLs,
extremes, time zones) and compares what the functions received with what DuckDB holds, on
the fast path and off; it runs on SQLMesh's DuckDB adapter without a project, as
``test_fast_path_differential`` does, so hundreds of values take seconds. The tests marked
xfail pin bugs found here (each names the bug in its reason).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import typing as t

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmesh.core.engine_adapter import DuckDBEngineAdapter

import mixmesh
from mixmesh import engines, udf
from mixmesh import fastpath
import mixmesh.sqlmesh as sqlmesh_integration
from mixmesh.core.names import binding_name
from mixmesh.runtime.bindings import bound
from mixmesh.core.errors import FunctionCallError
from tests.call_site_projects import Engine, fast_path, plan, table_bytes
from tests.projects import Project, forget_project_modules

UTC = dt.timezone.utc


def show(value: t.Any) -> str:
    """What a function received: its type and its exact value. An aware datetime shows as
    the UTC instant and its offset (engines hand over different tzinfo classes for UTC)."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return f"datetime:{value.astimezone(UTC).isoformat()}@{value.utcoffset()}"
    return f"{type(value).__name__}:{value!r}"


def instant(value: t.Any) -> str:
    """``show`` without the offset: an aware datetime as the instant alone (see
    test_an_aware_parameter_receives_utc_whatever_the_session_time_zone)."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return f"datetime:{value.astimezone(UTC).isoformat()}"
    return show(value)


# ---------------------------------------------------------------------------------------
# The project: a typed source, and models calling functions hinted every way.

FUNCTIONS = '''
import datetime
import decimal
import typing
from typing import Annotated, Any, Dict, List, Optional, TypedDict

import pyarrow as pa

import mixmesh
from mixmesh import udf


class Item(TypedDict):
    name: str
    qty: int
    price: float


def show(value):
    """What the function received: its type and its exact value (aware: the UTC instant)."""
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return f"datetime:{value.astimezone(datetime.timezone.utc).isoformat()}@{value.utcoffset()}"
    return f"{type(value).__name__}:{value!r}"


def show_array(array):
    return pa.array([f"{array.type}|{show(value)}" for value in array.to_pylist()])


@udf
def as_int(x: int) -> str:
    return show(x)


@udf
def as_float(x: float) -> str:
    return show(x)


@udf
def as_str(x: str) -> str:
    return show(x)


@udf
def as_date(x: datetime.date) -> str:
    return show(x)


@udf
def as_datetime(x: datetime.datetime) -> str:
    return show(x)


@udf
def as_aware(x: mixmesh.AwareDatetime) -> str:
    return show(x)


@udf
def as_decimal(x: decimal.Decimal) -> str:
    return show(x)


@udf
def as_any(x: Any) -> str:
    return show(x)


@udf
def as_bare(x) -> str:
    return show(x)


@udf
def as_dict(x: dict) -> str:
    return show(x)


@udf
def as_list(x: list) -> str:
    return show(x)


@udf
def as_list_of_dicts(x: list[dict]) -> str:
    return show(x)


@udf
def as_dict_str_any(x: Dict[str, Any]) -> str:
    return show(x)


@udf
def as_list_dict_str_any(x: List[Dict[str, Any]]) -> str:
    return show(x)


@udf
def as_item(x: Item) -> str:
    return show(x)


@udf
def as_items(x: list[Item]) -> str:
    return show(x)


@udf(null_handling="call")
def seen(x: Optional[int]) -> str:
    return show(x)


@udf
def described(value: int, factor: float, label: str) -> str:
    return f"{show(value)}|{show(factor)}|{show(label)}"


@udf(vectorized=True)
def arrow_plain(x: pa.Array) -> Annotated[pa.Array, str]:
    return show_array(x)


@udf(vectorized=True)
def arrow_int(x: Annotated[pa.Array, int]) -> Annotated[pa.Array, str]:
    return show_array(x)


@udf(vectorized=True)
def arrow_float(x: Annotated[pa.Array, float]) -> Annotated[pa.Array, str]:
    return show_array(x)


@udf(vectorized=True)
def arrow_bare(x) -> Annotated[pa.Array, str]:
    return show_array(x)
'''

NAMES = [
    "as_int", "as_float", "as_str", "as_date", "as_datetime", "as_aware", "as_decimal", "as_any", "as_bare",
    "as_dict", "as_list", "as_list_of_dicts", "as_dict_str_any", "as_list_dict_str_any", "as_item", "as_items",
    "seen", "described", "arrow_plain", "arrow_int", "arrow_float", "arrow_bare",
]

ITEM = "STRUCT(name VARCHAR, qty INTEGER, price DOUBLE)"
TYPED = f"""
MODEL (name raw.typed, kind FULL);
SELECT id::INTEGER AS id, grp::VARCHAR AS grp, flag::BOOLEAN AS flag, n::INTEGER AS n, big::BIGINT AS big,
       x::DOUBLE AS x, d::DECIMAL(18, 3) AS d, day::DATE AS day, ts::TIMESTAMP AS ts, tstz::TIMESTAMPTZ AS tstz,
       level::ENUM('low', 'high') AS level, s::VARCHAR AS s, ut::UTINYINT AS ut, ui::UINTEGER AS ui,
       ub::UBIGINT AS ub, item::{ITEM} AS item, items::{ITEM}[] AS items, tags::VARCHAR[] AS tags,
       m::MAP(VARCHAR, INTEGER) AS m
FROM (VALUES
  (1, 'a', TRUE, 7, 9223372036854775807, 2.5, '123456789012345.678', DATE '2024-02-29',
   TIMESTAMP '2024-02-29 13:14:15.123456', TIMESTAMPTZ '2024-02-29 13:14:15.123456+02:00', 'high', 'pen',
   255, 4294967295, 18446744073709551615, {{'name': 'pen', 'qty': 2, 'price': 1.5}},
   [{{'name': 'pen', 'qty': 2, 'price': 1.5}}, NULL, {{'name': NULL, 'qty': NULL, 'price': 0.25}}],
   ['x', NULL], MAP {{'k': 1, 'z': NULL}}),
  (2, 'a', FALSE, 2147483647, 9223372036854775807, -0.125, '-0.001', DATE '0001-01-01',
   TIMESTAMP '9999-12-31 23:59:59.999999', TIMESTAMPTZ '2000-01-01 00:00:00-05:00', 'low', '',
   0, 0, 0, {{'name': NULL, 'qty': 3, 'price': NULL}}, [], [], MAP {{}}),
  (3, 'b', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
) AS v(id, grp, flag, n, big, x, d, day, ts, tstz, level, s, ut, ui, ub, item, items, tags, m)
"""

# name of the column -> the call that fills it; each runs over raw.typed's three rows.
ROW_CALLS = {
    "int_n": "@as_int(n)", "int_ut": "@as_int(ut)", "int_ui": "@as_int(ui)", "int_ub": "@as_int(ub)",
    "int_big": "@as_int(big)",
    "float_d": "@as_float(d)", "float_n": "@as_float(n)", "float_x": "@as_float(x)", "float_ub": "@as_float(ub)",
    "str_level": "@as_str(level)", "str_s": "@as_str(s)",
    "date_day": "@as_date(day)",
    "datetime_day": "@as_datetime(day)", "datetime_ts": "@as_datetime(ts)",
    "aware_tstz": "@as_aware(tstz)",
    "decimal_d": "@as_decimal(d)", "decimal_ub": "@as_decimal(ub)", "decimal_n": "@as_decimal(n)",
    "any_ub": "@as_any(ub)", "any_d": "@as_any(d)", "any_day": "@as_any(day)", "any_ts": "@as_any(ts)",
    "any_tstz": "@as_any(tstz)", "any_level": "@as_any(level)", "any_item": "@as_any(item)",
    "any_items": "@as_any(items)", "any_m": "@as_any(m)",
    "bare_ub": "@as_bare(ub)", "bare_ts": "@as_bare(ts)", "bare_item": "@as_bare(item)",
    "dict_item": "@as_dict(item)", "dict_m": "@as_dict(m)",
    "list_items": "@as_list(items)", "list_tags": "@as_list(tags)",
    "list_of_dicts_items": "@as_list_of_dicts(items)",
    "dict_str_any_item": "@as_dict_str_any(item)", "dict_str_any_m": "@as_dict_str_any(m)",
    "list_dict_str_any_items": "@as_list_dict_str_any(items)",
    "item_item": "@as_item(item)", "items_items": "@as_items(items)",
    "seen_n": "@seen(n)",
}

PEN = {"name": "pen", "qty": 2, "price": 1.5}
NO_NAME = {"name": None, "qty": 3, "price": None}
ITEMS = [PEN, None, {"name": None, "qty": None, "price": 0.25}]
FIRST_TSTZ = dt.datetime(2024, 2, 29, 11, 14, 15, 123456, tzinfo=UTC)
SECOND_TSTZ = dt.datetime(2000, 1, 1, 5, 0, tzinfo=UTC)
HUGE = 18446744073709551615  # UBIGINT's largest: beyond a BIGINT and a double's 2**53

# column -> what the function received for rows 1 and 2 (row 3 is NULL everywhere: NULL
# comes back without calling, but `seen` is called with None).
EXPECTED_ROWS: t.Dict[str, t.Tuple[t.Any, t.Any]] = {
    "int_n": (7, 2147483647), "int_ut": (255, 0), "int_ui": (4294967295, 0), "int_ub": (HUGE, 0),
    "int_big": (9223372036854775807, 9223372036854775807),
    "float_d": (123456789012345.67, -0.001), "float_n": (7.0, 2147483647.0), "float_x": (2.5, -0.125),
    "float_ub": (1.8446744073709552e19, 0.0),
    "str_level": ("high", "low"), "str_s": ("pen", ""),
    "date_day": (dt.date(2024, 2, 29), dt.date(1, 1, 1)),
    "datetime_day": (dt.datetime(2024, 2, 29), dt.datetime(1, 1, 1)),
    "datetime_ts": (dt.datetime(2024, 2, 29, 13, 14, 15, 123456), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)),
    "aware_tstz": (FIRST_TSTZ, SECOND_TSTZ),
    "decimal_d": (decimal.Decimal("123456789012345.678"), decimal.Decimal("-0.001")),
    "decimal_ub": (decimal.Decimal(HUGE), decimal.Decimal(0)),
    "decimal_n": (decimal.Decimal(7), decimal.Decimal(2147483647)),
    "any_ub": (HUGE, 0), "any_d": (decimal.Decimal("123456789012345.678"), decimal.Decimal("-0.001")),
    "any_day": (dt.date(2024, 2, 29), dt.date(1, 1, 1)),
    "any_ts": (dt.datetime(2024, 2, 29, 13, 14, 15, 123456), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)),
    "any_tstz": (FIRST_TSTZ, SECOND_TSTZ), "any_level": ("high", "low"),
    "any_item": (PEN, NO_NAME), "any_items": (ITEMS, []), "any_m": ({"k": 1, "z": None}, {}),
    "bare_ub": (HUGE, 0),
    "bare_ts": (dt.datetime(2024, 2, 29, 13, 14, 15, 123456), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)),
    "bare_item": (PEN, NO_NAME),
    "dict_item": (PEN, NO_NAME), "dict_m": ({"k": 1, "z": None}, {}),
    "list_items": (ITEMS, []), "list_tags": (["x", None], []),
    "list_of_dicts_items": (ITEMS, []),
    "dict_str_any_item": (PEN, NO_NAME), "dict_str_any_m": ({"k": 1, "z": None}, {}),
    "list_dict_str_any_items": (ITEMS, []),
    "item_item": (PEN, NO_NAME), "items_items": (ITEMS, []),
    "seen_n": (7, 2147483647),
}

# The document's aggregates: COUNTIF and SUM of an INTEGER are HUGEINT, COUNT is BIGINT.
GROUP_CALLS = {
    "countif_int": "@as_int(COUNTIF(flag))",
    "sum_int": "@as_int(SUM(n))",
    "sum_big_int": "@as_int(SUM(big))",  # 2**64 - 2: a HUGEINT beyond every 64-bit type
    "sum_float": "@as_float(SUM(n))",
    "sum_decimal": "@as_decimal(SUM(n))",
    "count_int": "@as_int(COUNT(*))",
    "count_any": "@as_any(COUNT(*))",
    "details": "@as_list_dict_str_any(ARRAY_AGG(item ORDER BY id))",
}
# group -> column -> what the function received (None: NULL, not called).
EXPECTED_GROUPS: t.Dict[str, t.Dict[str, t.Any]] = {
    "a": {
        "countif_int": 1, "sum_int": 2147483654, "sum_big_int": 18446744073709551614, "sum_float": 2147483654.0,
        "sum_decimal": decimal.Decimal(2147483654), "count_int": 2, "count_any": 2, "details": [PEN, NO_NAME],
    },
    "b": {
        # DuckDB's COUNT_IF over NULLs only is NULL (BigQuery's COUNTIF: 0): not called.
        "countif_int": None, "sum_int": None, "sum_big_int": None, "sum_float": None, "sum_decimal": None,
        "count_int": 1, "count_any": 1, "details": [None],
    },
}

VECTOR_CALLS = {
    "plain_ub": "@arrow_plain(ub)", "plain_n": "@arrow_plain(n)", "plain_d": "@arrow_plain(d)",
    "plain_day": "@arrow_plain(day)", "plain_ts": "@arrow_plain(ts)", "plain_tstz": "@arrow_plain(tstz)",
    "plain_level": "@arrow_plain(level)", "plain_item": "@arrow_plain(item)",
    "int_ut": "@arrow_int(ut)", "int_n": "@arrow_int(n)", "int_ui": "@arrow_int(ui)",
    "float_d": "@arrow_float(d)", "float_n": "@arrow_float(n)",
    "bare_ub": "@arrow_bare(ub)", "bare_ts": "@arrow_bare(ts)", "bare_items": "@arrow_bare(items)",
}
ITEM_ARROW = "struct<name: string, qty: int32, price: double>"
# column -> (the Arrow type the function received, its values for rows 1 and 2)
EXPECTED_VECTORS: t.Dict[str, t.Tuple[str, t.Tuple[t.Any, t.Any]]] = {
    "plain_ub": ("uint64", (HUGE, 0)),
    "plain_n": ("int32", (7, 2147483647)),
    "plain_d": ("decimal128(18, 3)", (decimal.Decimal("123456789012345.678"), decimal.Decimal("-0.001"))),
    "plain_day": ("date32[day]", (dt.date(2024, 2, 29), dt.date(1, 1, 1))),
    "plain_ts": ("timestamp[us]", (dt.datetime(2024, 2, 29, 13, 14, 15, 123456), dt.datetime(9999, 12, 31, 23, 59, 59, 999999))),
    "plain_tstz": ("timestamp[us, tz=UTC]", (FIRST_TSTZ, SECOND_TSTZ)),
    "plain_level": ("string", ("high", "low")),
    "plain_item": (ITEM_ARROW, (PEN, NO_NAME)),
    "int_ut": ("int64", (255, 0)), "int_n": ("int64", (7, 2147483647)), "int_ui": ("int64", (4294967295, 0)),
    "float_d": ("double", (123456789012345.67, -0.001)), "float_n": ("double", (7.0, 2147483647.0)),
    "bare_ub": ("uint64", (HUGE, 0)),
    "bare_ts": ("timestamp[us]", (dt.datetime(2024, 2, 29, 13, 14, 15, 123456), dt.datetime(9999, 12, 31, 23, 59, 59, 999999))),
    "bare_items": (f"list<l: {ITEM_ARROW}>", (ITEMS, [])),  # DuckDB names list items "l"
}

# Keyword arguments, in any order and mixed with positional ones: the same call four ways.
KEYWORD_CALLS = {
    "positional": "@described(n, x, s)",
    "mixed": "@described(n, label := s, factor := x)",
    "named": "@described(label := s, value := n, factor := x)",
    "upper_case": "@described(n, LABEL := s, Factor := x)",
}
PY_KEYWORDS = '''
import pandas as pd

from mixmesh import python_model
from python.shared.received import described  # noqa: F401


@python_model(
    name="analytics.keywords_py",
    columns={"id": "INT", "positional": "VARCHAR", "mixed": "VARCHAR", "named": "VARCHAR"},
)
def keywords_py(context, **kwargs) -> pd.DataFrame:
    return context.sql(
        "SELECT id, described(n, x, s) AS positional, described(n, label := s, factor := x) AS mixed, "
        "described(factor := x, label := s, value := n) AS named FROM raw.typed"
    ).to_pandas()
'''


def selects(calls: t.Mapping[str, str]) -> str:
    return ", ".join(f"{call} AS {name}" for name, call in calls.items())


def write_project(project: Project) -> None:
    project.write("python/shared/received.py", FUNCTIONS)
    project.write("macros/received.py", f"from python.shared.received import {', '.join(NAMES)}  # noqa: F401\n")
    project.write("models/typed.sql", TYPED)
    project.write("models/received.sql", f"MODEL (name analytics.received, kind FULL);\nSELECT id, {selects(ROW_CALLS)} FROM raw.typed")
    project.write("models/per_group.sql", f"MODEL (name analytics.per_group, kind FULL);\nSELECT grp, {selects(GROUP_CALLS)} FROM raw.typed GROUP BY grp")
    project.write("models/vectorized.sql", f"MODEL (name analytics.vectorized, kind FULL);\nSELECT id, {selects(VECTOR_CALLS)} FROM raw.typed")
    project.write("models/keywords.sql", f"MODEL (name analytics.keywords, kind FULL);\nSELECT id, {selects(KEYWORD_CALLS)} FROM raw.typed")
    project.write("models/keywords_py.py", PY_KEYWORDS)


MODELS = ["analytics.received", "analytics.per_group", "analytics.vectorized", "analytics.keywords", "analytics.keywords_py"]


@dataclasses.dataclass
class Built:
    """The project planned with the fast path on, then its models restated with it off."""

    project: Project
    tables: t.Dict[str, t.Dict[str, t.List[t.Tuple[t.Any, ...]]]]  # mode -> model -> rows
    typed: t.Dict[str, t.List[t.Tuple[t.Any, ...]]]  # mode -> table_bytes of every model
    staged: t.Set[str]  # the functions the fast path computed in the first plan
    plain: t.Set[str]  # those the second plan ran plainly, as MIXMESH_FAST_PATH was off
    bindings: t.Dict[str, t.Set[str]]  # function -> the argument types it was bound for


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Built]:
    forget_project_modules()  # another project's `python` package may be cached in this process
    project = Project(tmp_path_factory.mktemp("call_site_types") / "project")
    write_project(project)
    tables: t.Dict[str, t.Dict[str, t.List[t.Tuple[t.Any, ...]]]] = {}
    typed: t.Dict[str, t.List[t.Tuple[t.Any, ...]]] = {}
    decided: t.Dict[str, t.Set[str]] = {}
    try:
        for mode, kwargs in (("on", {}), ("off", {"restate_models": MODELS})):
            fastpath.decisions.clear()
            with fast_path(mode):
                outcome = plan(project, **kwargs)
            assert not outcome.failed, outcome.output
            decided[mode] = {
                name for decision in fastpath.decisions
                if decision.staged == (mode == "on") and (mode == "on" or "is off" in decision.reason)
                for name in decision.functions
            }
            tables[mode] = {model: read(project, model) for model in MODELS}
            typed[mode] = [row for model in MODELS for row in table_bytes(project, model)]
        bindings: t.Dict[str, t.Set[str]] = {}
        for binding in bound().values():
            if binding.model == "analytics.received":
                bindings.setdefault(binding.spec.name, set()).add(
                    ", ".join(arg.sql_type.sql("duckdb") for arg in binding.spec.args)
                )
        yield Built(project, tables, typed, decided["on"], decided["off"], bindings)
    finally:
        project.close()
        forget_project_modules()


def read(project: Project, model: str) -> t.List[t.Tuple[t.Any, ...]]:
    return project.query(f"SELECT * FROM {model} ORDER BY 1")


def column(rows: t.Sequence[t.Tuple[t.Any, ...]], position: int) -> t.List[t.Any]:
    return [row[position] for row in rows]


MODES = ["on", "off"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_row_functions_receive_each_call_sites_values_exactly(built: Built, mode: str) -> None:
    rows = built.tables[mode]["analytics.received"]
    assert column(rows, 0) == [1, 2, 3]
    for position, name in enumerate(ROW_CALLS, start=1):
        first, second = EXPECTED_ROWS[name]
        third = show(None) if name == "seen_n" else None
        assert column(rows, position) == [show(first), show(second), third], name


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_the_documents_aggregates_reach_int_parameters_exactly(built: Built, mode: str) -> None:
    rows = {row[0]: row[1:] for row in built.tables[mode]["analytics.per_group"]}
    assert rows.keys() == {"a", "b"}
    for group, expected in EXPECTED_GROUPS.items():
        for name, value in zip(GROUP_CALLS, rows[group]):
            assert value == (None if expected[name] is None else show(expected[name])), (group, name)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_vectorized_functions_receive_arrow_arrays_of_the_call_sites_type(built: Built, mode: str) -> None:
    rows = built.tables[mode]["analytics.vectorized"]
    for position, name in enumerate(VECTOR_CALLS, start=1):
        arrow_type, (first, second) = EXPECTED_VECTORS[name]
        # Row 3 is NULL: a strict function never sees it.
        assert column(rows, position) == [f"{arrow_type}|{show(first)}", f"{arrow_type}|{show(second)}", None], name


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_keyword_arguments_in_any_order_bind_as_python_binds_them(built: Built, mode: str) -> None:
    expected = [
        f"{show(7)}|{show(2.5)}|{show('pen')}",
        f"{show(2147483647)}|{show(-0.125)}|{show('')}",
        None,
    ]
    for model, names in (("analytics.keywords", KEYWORD_CALLS), ("analytics.keywords_py", ["positional", "mixed", "named"])):
        rows = built.tables[mode][model]
        for position, name in enumerate(names, start=1):
            assert column(rows, position) == expected, (model, name)


@pytest.mark.slow
def test_the_fast_path_and_the_plain_binding_write_the_same_tables(built: Built) -> None:
    assert built.typed["on"] == built.typed["off"]
    # The first plan did take the fast path, and the second recomputed without it (else the
    # comparison would prove nothing).
    assert {"as_int", "as_any", "as_item", "arrow_plain", "arrow_int", "described"} <= built.staged
    assert {"as_int", "as_any", "as_item", "arrow_plain", "arrow_int", "described"} <= built.plain


@pytest.mark.slow
def test_two_call_sites_of_one_function_with_different_types_get_two_bindings(built: Built) -> None:
    # as_any is called with UBIGINT, DECIMAL, DATE... in one model: one binding per type.
    assert {"UBIGINT", "DECIMAL(18, 3)", "DATE", "TIMESTAMP", "TIMESTAMPTZ", "TEXT"} <= built.bindings["as_any"]
    # as_int takes every integer as BIGINT (rows: UBIGINT as DECIMAL(38, 0)): two bindings.
    assert built.bindings["as_int"] == {"BIGINT", "DECIMAL(38, 0)"}


# ---------------------------------------------------------------------------------------
# The same functions on SQLMesh's DuckDB adapter, without a project: the property, and
# the shapes of call sites that must be described.


@udf
def got_int(x: int) -> str:
    return instant(x)


@udf
def got_float(x: float) -> str:
    return instant(x)


@udf
def got_decimal(x: decimal.Decimal) -> str:
    return instant(x)


@udf
def got_any(x: t.Any) -> str:
    return instant(x)


@udf
def got_str(x: str) -> str:
    return instant(x)


@udf
def got_date(x: dt.date) -> str:
    return instant(x)


@udf
def got_datetime(x: dt.datetime) -> str:
    return instant(x)


@udf
def got_aware(x: mixmesh.AwareDatetime) -> str:
    return instant(x)


@udf
def got_dict(x: t.Dict[str, t.Any]) -> str:
    return instant(x)


@udf
def got_tzinfo(x: t.Any) -> str:
    return type(x.tzinfo).__name__


@udf
def got_offset(x: mixmesh.AwareDatetime) -> str:
    return str(x.utcoffset())


@udf(vectorized=True)
def got_array(x: pa.Array) -> t.Annotated[pa.Array, str]:
    return pa.array([f"{x.type}|{instant(value)}" for value in x.to_pylist()])


ADAPTER_FUNCTIONS = (
    got_int, got_float, got_decimal, got_any, got_str, got_date, got_datetime, got_aware, got_dict, got_tzinfo, got_offset,
    got_array,
)
MODEL = "tests.call_sites"


@pytest.fixture(scope="module")
def engine() -> t.Iterator[Engine]:
    connection = duckdb.connect()
    adapter = DuckDBEngineAdapter(lambda: connection)
    sqlmesh_integration.install()
    sql_names = {}
    for function in ADAPTER_FUNCTIONS:
        sql_name = binding_name(function.spec, MODEL)
        engines.register_call(function.spec, MODEL, sql_name)
        sql_names[function.spec.name] = sql_name
    yield Engine(connection, adapter, sql_names, ADAPTER_FUNCTIONS)
    adapter.close()


@dataclasses.dataclass(frozen=True)
class Column:
    sql_type: str
    values: st.SearchStrategy  # Python values, never None (NULLs are drawn beside them)
    literal: t.Callable[[t.Any], str]  # a value as SQL text DuckDB reads exactly
    functions: t.Tuple[str, ...]  # the functions it is passed to
    arrow: str  # the Arrow type a plain pa.Array parameter receives it as


def _number(value: t.Any) -> str:
    return f"'{value:f}'" if isinstance(value, decimal.Decimal) else f"'{value}'"


def _temporal(value: t.Any) -> str:
    return f"'{value.isoformat(sep=' ') if isinstance(value, dt.datetime) else value.isoformat()}'"


def _integer(sql_type: str, low: int, high: int, arrow: str, any_: bool = True) -> Column:
    into = ("got_int", "got_float", "got_decimal") + (("got_any", "got_array") if any_ else ())
    return Column(sql_type, st.integers(low, high), _number, into, arrow)


def _decimal(precision: int, scale: int) -> Column:
    # Its unscaled integers, made Decimals from text: exact at 38 digits (Python's decimal
    # context rounds to 28, and so do hypothesis's decimals()).
    largest = 10**precision - 1
    values = st.integers(-largest, largest).map(lambda unscaled: decimal.Decimal(f"{unscaled}E-{scale}"))
    return Column(
        f"DECIMAL({precision}, {scale})", values, _number, ("got_float", "got_decimal", "got_any", "got_array"),
        f"decimal128({precision}, {scale})",
    )


# Whole-minute offsets from -14:00 to +14:00; years 2..9998 so that the UTC instant is a
# Python datetime too.
zones = st.integers(-14 * 60, 14 * 60).map(lambda minutes: dt.timezone(dt.timedelta(minutes=minutes)))
aware_datetimes = st.datetimes(
    min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 12, 31), timezones=zones
)

COLUMNS: t.Dict[str, Column] = {
    "i8": _integer("TINYINT", -(2**7), 2**7 - 1, "int8"),
    "i16": _integer("SMALLINT", -(2**15), 2**15 - 1, "int16"),
    "i32": _integer("INTEGER", -(2**31), 2**31 - 1, "int32"),
    "i64": _integer("BIGINT", -(2**63), 2**63 - 1, "int64"),
    # HUGEINT into Any / pa.Array: see test_a_hugeint_reaches_an_any_parameter_as_an_int.
    "i128": _integer("HUGEINT", -(10**38) + 1, 10**38 - 1, "decimal128(38, 0)", any_=False),
    "u8": _integer("UTINYINT", 0, 2**8 - 1, "uint8"),
    "u16": _integer("USMALLINT", 0, 2**16 - 1, "uint16"),
    "u32": _integer("UINTEGER", 0, 2**32 - 1, "uint32"),
    "u64": _integer("UBIGINT", 0, 2**64 - 1, "uint64"),
    "d4": _decimal(4, 1),
    "d18": _decimal(18, 3),
    "d38": _decimal(38, 10),
    "day": Column("DATE", st.dates(), _temporal, ("got_date", "got_datetime", "got_any", "got_array"), "date32[day]"),
    "ts": Column("TIMESTAMP", st.datetimes(), _temporal, ("got_datetime", "got_any", "got_array"), "timestamp[us]"),
    "tstz": Column("TIMESTAMPTZ", aware_datetimes, _temporal, ("got_aware", "got_any", "got_array"), "timestamp[us, tz=UTC]"),
}


def received_as(function: str, held: t.Any, as_double: t.Optional[float]) -> t.Any:
    """What ``function`` must receive for a value DuckDB holds (and holds as a DOUBLE)."""
    if function == "got_int":
        return int(held)
    if function == "got_float":
        return as_double  # the engine's own CAST: a DECIMAL's nearest double
    if function == "got_decimal":
        return held if isinstance(held, decimal.Decimal) else decimal.Decimal(held)
    if function == "got_datetime" and type(held) is dt.date:
        return dt.datetime.combine(held, dt.time())  # a DATE is its midnight
    return held


class Table(t.NamedTuple):
    rows: t.List[t.Dict[str, t.Any]]
    columns: t.List[str]  # those the query passes to functions
    time_zone: str  # the session's: how DuckDB shows instants


@st.composite
def tables(draw: st.DrawFn) -> Table:
    # A few columns per query: each call's probe copies and prints the whole SELECT, so
    # resolving grows with the square of its calls (all 65 at once: about a second).
    columns = draw(st.lists(st.sampled_from(list(COLUMNS)), min_size=1, max_size=4, unique=True))
    rows = draw(st.lists(
        st.fixed_dictionaries({name: st.one_of(st.none(), COLUMNS[name].values) for name in columns}),
        min_size=1, max_size=6,
    ))
    time_zone = draw(st.sampled_from(["UTC", "America/New_York", "Asia/Kathmandu", "Pacific/Chatham"]))
    return Table(rows, columns, time_zone)


def load(engine: Engine, table: Table) -> None:
    connection = engine.connection
    connection.execute(f"SET GLOBAL TimeZone = '{table.time_zone}'")  # every session's
    columns = ", ".join(f"{name} {COLUMNS[name].sql_type}" for name in table.columns)
    connection.execute(f"CREATE OR REPLACE TABLE h (id INTEGER, {columns})")
    values = ", ".join(
        "(" + ", ".join([str(i)] + [
            "NULL" if row[name] is None else f"CAST({COLUMNS[name].literal(row[name])} AS {COLUMNS[name].sql_type})"
            for name in table.columns
        ]) + ")"
        for i, row in enumerate(table.rows)
    )
    connection.execute(f"INSERT INTO h VALUES {values}")


def expected_received(engine: Engine, table: Table) -> t.Tuple[t.List[str], t.List[t.Tuple[t.Any, ...]]]:
    """The calls of the property's query, and what each must answer on each row."""
    names = table.columns
    # An instant as its UTC wall clock, made aware here: whatever the session's time zone,
    # Python then holds exactly the instant DuckDB holds.
    as_held = [f"timezone('UTC', {n})" if COLUMNS[n].sql_type == "TIMESTAMPTZ" else n for n in names]
    held = engine.connection.execute(
        f"SELECT {', '.join(as_held)}, {', '.join(f'TRY_CAST({n} AS DOUBLE)' for n in names)} FROM h ORDER BY id"
    ).fetchall()
    calls, expected_columns = [], []
    for position, name in enumerate(names):
        c = COLUMNS[name]
        for function in c.functions:
            calls.append(engine.call(function, name))
            answers = []
            for row in held:
                value, as_double = row[position], row[len(names) + position]
                if c.sql_type == "TIMESTAMPTZ" and value is not None:
                    value = value.replace(tzinfo=UTC)
                if value is None:
                    answers.append(None)
                elif function == "got_array":
                    answers.append(f"{c.arrow}|{instant(value)}")
                else:
                    answers.append(instant(received_as(function, value, as_double)))
            expected_columns.append(answers)
    return calls, list(zip(*expected_columns))


PROPERTY = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@PROPERTY
@given(table=tables())
def test_functions_receive_exactly_what_duckdb_holds(engine: Engine, table: Table) -> None:
    load(engine, table)
    try:
        calls, expected = expected_received(engine, table)
        sql = f"SELECT {', '.join(f'{call} AS c{i}' for i, call in enumerate(calls))} FROM h ORDER BY id"
        for mode in MODES:
            fastpath.decisions.clear()
            assert engine.select(sql, mode) == expected, mode
            if mode == "on":
                assert fastpath.decisions and fastpath.decisions[-1].staged, fastpath.decisions
    finally:
        engine.connection.execute("SET GLOBAL TimeZone = 'UTC'")


@pytest.mark.parametrize("mode", MODES)
def test_null_arguments_give_null_without_a_call_at_every_type(engine: Engine, mode: str) -> None:
    calls = [engine.call(f, f"CAST(NULL AS {sql_type})") for f, sql_type in (
        ("got_int", "HUGEINT"), ("got_float", "DECIMAL(38, 2)"), ("got_decimal", "UBIGINT"), ("got_any", "STRUCT(a INTEGER)"),
        ("got_str", "ENUM('a')"), ("got_date", "DATE"), ("got_datetime", "DATE"), ("got_aware", "TIMESTAMPTZ"),
        ("got_dict", "MAP(VARCHAR, INTEGER)"), ("got_array", "UBIGINT"),
    )]
    assert engine.select(f"SELECT {', '.join(calls)} FROM range(3)", mode) == [(None,) * len(calls)] * 3


# --- bugs found here ---------------------------------------------------------------------


def test_an_aware_datetime_has_the_same_tzinfo_on_the_fast_path(engine: Engine) -> None:
    sql = f"SELECT {engine.call('got_tzinfo', 'tstz')} FROM (SELECT TIMESTAMPTZ '2024-01-01 00:00:00+00' AS tstz)"
    assert engine.select(sql, "on") == engine.select(sql, "off")


@pytest.mark.parametrize("mode", MODES)
def test_an_aware_parameter_receives_utc_whatever_the_session_time_zone(engine: Engine, mode: str) -> None:
    engine.connection.execute("SET GLOBAL TimeZone = 'Asia/Kathmandu'")
    try:
        sql = f"SELECT {engine.call('got_offset', 'tstz')} FROM (SELECT TIMESTAMPTZ '2024-01-01 00:00:00+00' AS tstz)"
        assert engine.select(sql, mode) == [("0:00:00",)]
    finally:
        engine.connection.execute("SET GLOBAL TimeZone = 'UTC'")


def test_a_nanosecond_timestamp_into_any_is_refused_the_same_way_on_both_paths(engine: Engine) -> None:
    # A datetime holds microseconds: passing nanoseconds would drop them on one path and hand a
    # pandas Timestamp on the other; both refuse, with the CAST that says what is meant.
    sql = f"SELECT {engine.call('got_any', 'ts')} FROM (SELECT TIMESTAMP_NS '2024-01-01 01:02:03.123456789' AS ts)"
    for mode in ("on", "off"):
        with pytest.raises(FunctionCallError, match="microseconds, not nanoseconds") as raised:
            engine.select(sql, mode)
        assert "CAST(" in str(raised.value) and "AS TIMESTAMP)" in str(raised.value)


@pytest.mark.xfail(strict=True, reason=(
    "bug: an infinite DATE / TIMESTAMP fails on the fast path with a bare OverflowError (naming "
    "no function); the plain binding hands over date.max / datetime.max"
))
def test_infinite_dates_reach_functions_the_same_way_on_both_paths(engine: Engine) -> None:
    sql = f"SELECT {engine.call('got_date', 'day')} FROM (SELECT 'infinity'::DATE AS day)"
    assert engine.select(sql, "off") == [(instant(dt.date.max),)]
    assert engine.select(sql, "on") == [(instant(dt.date.max),)]


def test_a_session_time_zone_applies_to_arguments_on_the_fast_path(engine: Engine) -> None:
    engine.adapter.execute("SET TimeZone = 'Asia/Kolkata'")
    try:
        sql = (f"SELECT {engine.call('got_str', 'strftime(tstz, ' + repr('%H:%M') + ')')} "
               "FROM (SELECT TIMESTAMPTZ '2024-01-01 00:00:00+00' AS tstz)")
        assert engine.select(sql, "off") == [(instant("05:30"),)]
        assert engine.select(sql, "on") == [(instant("05:30"),)]
    finally:
        engine.adapter.execute("SET TimeZone = 'UTC'")


@pytest.mark.parametrize("function", ["got_str", "got_date", "got_aware"])
def test_a_null_literal_is_accepted_by_every_parameter(engine: Engine, function: str) -> None:
    assert engine.select(f"SELECT {engine.call(function, 'NULL')} FROM range(2)", "off") == [(None,), (None,)]


GROUPED = [
    "SELECT {call} AS b, count(*) AS k FROM (VALUES (1), (2), (4)) v(n) GROUP BY 1 ORDER BY 1",
    "SELECT {call} AS b, count(*) AS k FROM (VALUES (1), (2), (4)) v(n) GROUP BY b ORDER BY 1",
    "SELECT {call} AS b, count(*) AS k FROM (VALUES (1), (2), (4)) v(n) GROUP BY {call} ORDER BY 1",
]


@pytest.mark.parametrize("shape", GROUPED, ids=["ordinal", "alias", "expression"])
def test_a_call_may_be_grouped_by(engine: Engine, shape: str) -> None:
    sql = shape.format(call=engine.call("got_int", "n % 2"))
    assert engine.select(sql, "off") == [(instant(0), 2), (instant(1), 1)]


def test_a_call_in_an_aggregate_filter(engine: Engine) -> None:
    sql = f"SELECT count(*) FILTER (WHERE {engine.call('got_int', 'n')} = 'int:2') FROM (VALUES (1), (2)) v(n)"
    assert engine.select(sql, "off") == [(1,)]


def test_a_call_under_a_cte_that_shadows_an_outer_one(engine: Engine) -> None:
    sql = (f"WITH c AS (SELECT 1 AS v) SELECT * FROM "
           f"(WITH c AS (SELECT 'x' AS v) SELECT {engine.call('got_str', 'v')} AS s FROM c) AS z")
    assert engine.select(sql, "off") == [(instant("x"),)]


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "bug: a row function's int parameter binds a HUGEINT as DECIMAL(38, 0), which holds no HUGEINT "
    "beyond 10**38 - 1: the plan fails with DuckDB's bare ConversionException"
))
def test_the_largest_hugeint_reaches_an_int_parameter(project: Project) -> None:
    project.write("macros/received.py", FUNCTIONS)
    project.write("models/largest.sql", """
        MODEL (name analytics.largest, kind FULL);
        SELECT @as_int(170141183460469231731687303715884105727::HUGEINT) AS y
    """)
    outcome = plan(project)
    assert not outcome.failed, outcome.output
    assert project.query("SELECT y FROM analytics.largest") == [(instant(2**127 - 1),)]


@pytest.mark.slow
def test_aware_datetime_imported_by_name_loads(project: Project) -> None:
    project.write("macros/aware.py", '''
        from mixmesh import AwareDatetime, udf


        @udf
        def utc_hour(at: AwareDatetime) -> int:
            return at.hour
    ''')
    project.write("models/aware.sql", """
        MODEL (name analytics.aware, kind FULL);
        SELECT @utc_hour(TIMESTAMPTZ '2024-01-01 05:00:00+02:00') AS h
    """)
    outcome = plan(project)
    assert not outcome.failed, outcome.output
    assert project.query("SELECT h FROM analytics.aware") == [(3,)]


@pytest.mark.slow
def test_context_sql_parameters_outside_the_calls_probe(project: Project) -> None:
    forget_project_modules()  # another project's `python` package may be cached in this process
    project.write("python/shared/doubling.py", '''
        from mixmesh import udf


        @udf
        def doubled(x: float) -> float:
            return x * 2
    ''')
    project.write("models/source.sql", "MODEL (name raw.source, kind FULL); SELECT * FROM (VALUES (1, 2.5), (1, 1.5), (2, 4.0)) t(id, x)")
    project.write("models/totals.py", '''
        from mixmesh import python_model
        from python.shared.doubling import doubled  # noqa: F401


        @python_model(name="analytics.totals", columns={"id": "INT", "total": "DOUBLE"})
        def totals(context, **kwargs):
            return context.sql(
                "SELECT id, SUM(doubled(x)) AS total FROM raw.source WHERE x > :low GROUP BY id", low=2.0
            ).to_pandas()
    ''')
    outcome = plan(project)
    assert not outcome.failed, outcome.output
    assert project.query("SELECT * FROM analytics.totals ORDER BY id") == [(1, 5.0), (2, 8.0)]


# A HUGEINT (SUM of integers) reached Any / Dict[str, Any] / List[Dict[str, Any]] parameters
# as 16 raw bytes on the fast path (Arrow's lossless export), and failed a vectorized pa.Array
# parameter; the plain binding gave ints. Both paths now give the same.
@pytest.mark.parametrize("function, argument, expected", [
    ("got_any", "h", 5),
    ("got_dict", "{'total': h}", {"total": 5}),
    ("got_any", "[{'total': h}]", [{"total": 5}]),
    ("got_array", "h", "decimal128(38, 0)|Decimal:Decimal('5')"),
])
def test_a_hugeint_reaches_an_any_parameter_as_an_int(engine: Engine, function: str, argument: str, expected: t.Any) -> None:
    sql = f"SELECT {engine.call(function, argument)} FROM (SELECT sum(i) AS h FROM (VALUES (2), (3)) v(i))"
    answer = expected if isinstance(expected, str) else instant(expected)
    assert engine.select(sql, "off") == [(answer,)]
    assert engine.select(sql, "on") == [(answer,)]

"""Two engines' tables compared as multisets of rows, with a readable list of what differs.

Columns must have the same names, and types of the same family (DuckDB's
BIGINT and Spark's int64 are both integers; DOUBLE and double both floats; a naive timestamp
is not a timestamp with a time zone). Rows are matched regardless of order: NULL equals NULL,
NaN equals NaN, and floats (also inside lists and structs) are equal within ``RELATIVE``.

Why a tolerance at all: both engines add a group's values in whatever order their threads
and partitions meet them (DuckDB's parallel aggregation, Spark's partial aggregates merged
after a shuffle), and floating-point addition is not associative, so a SUM or AVG of doubles
may differ in its last bits between engines, and between two runs of one engine. 1e-9 relative
is some 10^7 times the rounding error of one addition, and far below any real difference.

Why not the columns' order: Spark stores a partitioned table's partition columns last, and
SQLMesh partitions a time-range model's table by its time column there, so that column comes
last on Spark (see the README's Apache Spark section). Rows are compared column by column by name.
"""

from __future__ import annotations

import datetime
import math
import typing as t

import pyarrow as pa

RELATIVE = 1e-9
SHOWN = 8  # rows shown per kind of difference

_FLOAT = "<float>"


def differences(expected: pa.Table, actual: pa.Table, *, names: t.Tuple[str, str] = ("duckdb", "spark")) -> t.List[str]:
    """What differs between two tables, one line (or block) per difference; empty if equal."""
    schema = _schema_differences(expected.schema, actual.schema, names)
    if schema:
        return schema
    return _row_differences(expected.to_pylist(), actual.select(expected.column_names).to_pylist(), names)


def report(model: str, found: t.List[str]) -> str:
    return f"{model}: {len(found)} difference(s)\n" + "\n".join(f"  {line}" for line in found)


# --- columns ------------------------------------------------------------------------------------


def family(data_type: pa.DataType) -> str:
    """A type as the comparison sees it: the kind of values, not their width or engine name."""
    if pa.types.is_integer(data_type):
        return "integer"
    if pa.types.is_floating(data_type):
        return "float"
    if pa.types.is_decimal(data_type):
        return "decimal"
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type) or pa.types.is_string_view(data_type):
        return "string"
    if pa.types.is_boolean(data_type):
        return "boolean"
    if pa.types.is_date(data_type):
        return "date"
    if pa.types.is_timestamp(data_type):
        return "timestamp with time zone" if data_type.tz else "timestamp"
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type) or pa.types.is_list_view(data_type):
        return f"list<{family(data_type.value_type)}>"
    if pa.types.is_struct(data_type):
        return "struct<" + ", ".join(f"{f.name}: {family(f.type)}" for f in data_type) + ">"
    if pa.types.is_null(data_type):
        return "null"
    return str(data_type)


def _schema_differences(expected: pa.Schema, actual: pa.Schema, names: t.Tuple[str, str]) -> t.List[str]:
    if sorted(expected.names) != sorted(actual.names) or len(set(expected.names)) != len(expected.names):
        return [f"columns differ: {names[0]} {expected.names}, {names[1]} {actual.names}"]
    return [
        f"column {field.name!r}: {names[0]} {family(field.type)} ({field.type}), "
        f"{names[1]} {family(other.type)} ({other.type})"
        for field, other in ((field, actual.field(field.name)) for field in expected)
        if family(field.type) != family(other.type) and "null" not in (family(field.type), family(other.type))
    ]


# --- rows ---------------------------------------------------------------------------------------


def _row_differences(expected: t.List[dict], actual: t.List[dict], names: t.Tuple[str, str]) -> t.List[str]:
    found = [] if len(expected) == len(actual) else [f"row counts differ: {names[0]} {len(expected)}, {names[1]} {len(actual)}"]
    left, right = _by_exact_part(expected), _by_exact_part(actual)
    only_left: t.List[dict] = []
    only_right: t.List[dict] = []
    unequal: t.List[t.Tuple[dict, dict]] = []
    for key in left.keys() | right.keys():
        ours, theirs = sorted(left.get(key, []), key=_float_order), sorted(right.get(key, []), key=_float_order)
        for row, other in zip(ours, theirs):
            if not _floats_close(_floats_of(row), _floats_of(other)):
                unequal.append((row, other))
        only_left.extend(ours[len(theirs):])
        only_right.extend(theirs[len(ours):])
    found += _listed(f"rows only in {names[0]}", only_left)
    found += _listed(f"rows only in {names[1]}", only_right)
    if unequal:
        found.append(f"{len(unequal)} row(s) whose floats differ beyond {RELATIVE:g} relative, e.g.:")
        for row, other in unequal[:SHOWN]:
            found.append(f"  {names[0]}: {_shown(row)}\n    {names[1]}: {_shown(other)}")
    return found


def _by_exact_part(rows: t.List[dict]) -> t.Dict[t.Any, t.List[dict]]:
    """Rows grouped by everything but their floats (compared exactly)."""
    groups: t.Dict[t.Any, t.List[dict]] = {}
    for row in rows:
        groups.setdefault(_exact_part(row), []).append(row)
    return groups


def _exact_part(value: t.Any) -> t.Any:
    if isinstance(value, float):
        return _FLOAT
    if isinstance(value, dict):
        return tuple((name, _exact_part(item)) for name, item in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(_exact_part(item) for item in value)
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.astimezone(datetime.timezone.utc)  # the same instant, whichever zone it is shown in
    return value


def _floats_of(value: t.Any) -> t.Tuple[float, ...]:
    """Every float of a row, in column order (inside lists and structs too)."""
    if isinstance(value, float):
        return (value,)
    if isinstance(value, dict):
        return tuple(f for item in value.values() for f in _floats_of(item))
    if isinstance(value, (list, tuple)):
        return tuple(f for item in value for f in _floats_of(item))
    return ()


def _float_order(row: dict) -> t.Tuple[t.Tuple[bool, float], ...]:
    """Rows of a group in the order of their floats, NaN after every number (NaN compares false)."""
    return tuple((math.isnan(f), 0.0 if math.isnan(f) else f) for f in _floats_of(row))


def _floats_close(ours: t.Tuple[float, ...], theirs: t.Tuple[float, ...]) -> bool:
    return all(
        (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=RELATIVE, abs_tol=0.0)
        for a, b in zip(ours, theirs)
    )


def _listed(title: str, rows: t.List[dict]) -> t.List[str]:
    if not rows:
        return []
    return [f"{len(rows)} {title}, e.g.:", *(f"  {_shown(row)}" for row in rows[:SHOWN])]


def _shown(row: dict) -> str:
    return "{" + ", ".join(f"{name}: {value!r}" for name, value in row.items()) + "}"

"""One mapping between Python type hints, SQL types and Arrow types, shared by every engine.

SQL types are sqlglot ``DataType`` expressions: each engine renders them in its own dialect
(``DOUBLE`` on DuckDB, ``DOUBLE`` on Spark, ``STRUCT(a DOUBLE)[]`` vs ``ARRAY<STRUCT<a: DOUBLE>>``).
Arrow is the format values cross the engine boundary in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import types as pytypes
import typing as t

import pyarrow as pa
from sqlglot import exp

from mixmesh.errors import FunctionDefinitionError

DType = exp.DataType.Type

# Marks a datetime hint as time-zone aware: ``Annotated[datetime, TZ]`` maps to TIMESTAMPTZ.
TZ = "tz"
AwareDatetime = t.Annotated[dt.datetime, TZ]

DEFAULT_DECIMAL = (38, 9)

# The one table: Python scalar hint -> SQL type. Arrow types derive from the SQL type below.
SCALAR_HINTS: t.Dict[t.Any, str] = {
    float: "DOUBLE",
    int: "BIGINT",
    bool: "BOOLEAN",
    str: "VARCHAR",
    bytes: "VARBINARY",
    decimal.Decimal: "DECIMAL({}, {})".format(*DEFAULT_DECIMAL),
    dt.date: "DATE",
    dt.datetime: "TIMESTAMP",
    dt.time: "TIME",
}

# SQL type -> Arrow type, for the types that carry no parameters.
_ARROW_BY_SQL: t.Dict[DType, pa.DataType] = {
    DType.DOUBLE: pa.float64(),
    DType.FLOAT: pa.float32(),
    DType.BIGINT: pa.int64(),
    DType.INT: pa.int32(),
    DType.SMALLINT: pa.int16(),
    DType.TINYINT: pa.int8(),
    DType.UBIGINT: pa.uint64(),
    DType.UINT: pa.uint32(),
    DType.USMALLINT: pa.uint16(),
    DType.UTINYINT: pa.uint8(),
    DType.BOOLEAN: pa.bool_(),
    DType.VARCHAR: pa.string(),
    DType.TEXT: pa.string(),
    DType.CHAR: pa.string(),
    DType.NVARCHAR: pa.string(),
    DType.VARBINARY: pa.binary(),
    DType.BINARY: pa.binary(),
    DType.BLOB: pa.binary(),
    DType.DATE: pa.date32(),
    DType.TIMESTAMP: pa.timestamp("us"),
    DType.TIMESTAMPNTZ: pa.timestamp("us"),  # what DuckDB's TIMESTAMP parses to
    DType.DATETIME: pa.timestamp("us"),
    DType.TIMESTAMP_S: pa.timestamp("s"),
    DType.TIMESTAMP_MS: pa.timestamp("ms"),
    DType.TIMESTAMP_NS: pa.timestamp("ns"),
    DType.TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
    DType.TIMESTAMPLTZ: pa.timestamp("us", tz="UTC"),
    DType.TIME: pa.time64("us"),
    DType.INT128: pa.decimal128(38, 0),  # as DuckDB hands HUGEINT to Arrow
}

def field_hints(cls: type, namespace: t.Optional[t.Mapping[str, t.Any]] = None) -> t.Dict[str, t.Any]:
    """A TypedDict's or dataclass's field hints, resolved once and kept on the class.

    A class SQLMesh re-created from its state lives in no module, so its quoted hints (``from
    __future__ import annotations``) resolve only in the namespace of the function that uses
    it, which ``namespace`` gives the first time (``FunctionSpec`` building does).
    """
    cached = cls.__dict__.get("__mixmesh_field_hints__")
    if cached is not None:
        return cached
    try:
        hints = t.get_type_hints(cls, include_extras=True)
    except NameError:
        if namespace is None:
            raise
        hints = t.get_type_hints(cls, localns=dict(namespace), include_extras=True)
    try:
        cls.__mixmesh_field_hints__ = hints  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        pass
    return hints


class NoSqlType(FunctionDefinitionError):
    """A Python hint that has no SQL type."""


def parse_sql_type(sql: str) -> exp.DataType:
    """Parse an explicit SQL type string such as ``'STRUCT(a DOUBLE, b VARCHAR)[]'``."""
    import sqlglot

    try:
        # Inside a CAST, so that nothing after the type is silently dropped ('DOUBLE ???').
        select = sqlglot.parse_one(f"SELECT CAST(NULL AS {sql}) AS mixmesh_type_end", read="duckdb")
        cast = select.expressions[0].this if isinstance(select, exp.Select) and len(select.expressions) == 1 else None
        parsed = cast.to if isinstance(cast, exp.Cast) and isinstance(cast.to, exp.DataType) else None
        if parsed is None or not sql.strip() or select.expressions[0].alias != "mixmesh_type_end":
            raise ValueError("it does not read as one type")
        structs = [node for node in parsed.find_all(exp.DataType) if node.this == DType.STRUCT]
        if any(not isinstance(f, exp.ColumnDef) or f.args.get("kind") is None for s in structs for f in s.expressions):
            raise ValueError("a STRUCT field has no type")
    except Exception as error:
        raise NoSqlType(f"{sql!r} is not a SQL type: {str(error).splitlines()[0]}") from None
    to_arrow(parsed)  # fail now, not at run time, on a type we cannot carry
    return parsed


def sql_type_of_hint(hint: t.Any) -> exp.DataType:
    """The SQL type of a Python type hint, or NoSqlType saying why there is none."""
    hint = strip_optional(hint)
    origin = t.get_origin(hint)
    if origin is t.Annotated:
        return _annotated(hint)
    if hint in SCALAR_HINTS:
        return exp.DataType.build(SCALAR_HINTS[hint])
    if origin in (list, t.List):
        (element,) = t.get_args(hint) or (None,)
        if element is None:
            raise NoSqlType(f"{_name(hint)} has no element type; write list[float], list[MyTypedDict]...")
        return exp.DataType(this=DType.ARRAY, expressions=[sql_type_of_hint(element)], nested=True)
    if origin in (dict, t.Dict):
        return _map_type(hint)
    if is_struct_hint(hint):
        return _struct_type(hint)
    raise NoSqlType(f"{_name(hint)} has no SQL type")


def strip_optional(hint: t.Any) -> t.Any:
    """``Optional[X]`` is X: every SQL value may be NULL already."""
    if t.get_origin(hint) in (t.Union, pytypes.UnionType):
        members = [arg for arg in t.get_args(hint) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
        raise NoSqlType(f"{_name(hint)} is a union of several types; SQL columns have one type")
    return hint


def is_optional(hint: t.Any) -> bool:
    """``Optional[X]`` / ``X | None``: the hint admits None."""
    if t.get_origin(hint) is t.Annotated:
        hint = t.get_args(hint)[0]
    return t.get_origin(hint) in (t.Union, pytypes.UnionType) and type(None) in t.get_args(hint)


def is_struct_hint(hint: t.Any) -> bool:
    """A TypedDict or a dataclass: a SQL STRUCT with named, typed fields."""
    return isinstance(hint, type) and (dataclasses.is_dataclass(hint) or t.is_typeddict(hint))


def _annotated(hint: t.Any) -> exp.DataType:
    base, *extras = t.get_args(hint)
    if base is dt.datetime and TZ in extras:
        return exp.DataType.build("TIMESTAMPTZ")
    for extra in extras:
        if isinstance(extra, str):
            return parse_sql_type(extra)
        if isinstance(extra, type) or t.get_origin(extra) is not None:
            return sql_type_of_hint(extra)
    return sql_type_of_hint(base)


def _map_type(hint: t.Any) -> exp.DataType:
    key, value = t.get_args(hint) or (None, None)
    if key is None or value is t.Any:
        raise NoSqlType(
            f"{_name(hint)} has no SQL type: a STRUCT needs named, typed fields "
            "(use a TypedDict or a dataclass, or declare the SQL type with args=/returns=)"
        )
    return exp.DataType(
        this=DType.MAP, expressions=[sql_type_of_hint(key), sql_type_of_hint(value)], nested=True
    )


def _struct_type(hint: type) -> exp.DataType:
    fields = [
        exp.ColumnDef(this=exp.to_identifier(name), kind=sql_type_of_hint(field_hint))
        for name, field_hint in field_hints(hint).items()
    ]
    if not fields:
        raise NoSqlType(f"{_name(hint)} has no fields")
    return exp.DataType(this=DType.STRUCT, expressions=fields, nested=True)


def to_arrow(sql_type: exp.DataType) -> pa.DataType:
    """The Arrow type that carries values of a SQL type."""
    kind = sql_type.this
    if kind in _ARROW_BY_SQL:
        return _ARROW_BY_SQL[kind]
    if kind == DType.DECIMAL:
        precision, scale = decimal_params(sql_type)
        return pa.decimal128(precision, scale)
    if kind in (DType.ARRAY, DType.LIST):
        return pa.list_(to_arrow(sql_type.expressions[0]))
    if kind == DType.STRUCT:
        return pa.struct([(field.name, to_arrow(field.args["kind"])) for field in sql_type.expressions])
    if kind == DType.MAP:
        key, value = sql_type.expressions
        return pa.map_(to_arrow(key), to_arrow(value))
    raise NoSqlType(f"SQL type {sql_type.sql('duckdb')} is not supported by mixmesh functions")


def arrow_carried(sql_type: exp.DataType) -> exp.DataType:
    """The type a value of ``sql_type`` crosses into Python as on every path: HUGEINT as
    DECIMAL(38, 0), as DuckDB hands it to Arrow by default (the fast path's reader would
    otherwise hand its raw 16 bytes)."""
    if not any(node.this == DType.INT128 for node in sql_type.find_all(exp.DataType)):
        return sql_type

    def carried(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.DataType) and node.this == DType.INT128:
            return exp.DataType.build("DECIMAL(38, 0)")
        return node

    return sql_type.copy().transform(carried)


def decimal_params(sql_type: exp.DataType) -> t.Tuple[int, int]:
    params = [int(param.this.name) for param in sql_type.expressions]
    if not params:
        return DEFAULT_DECIMAL
    return (params[0], params[1] if len(params) > 1 else 0)


def sql(sql_type: exp.DataType, dialect: str = "duckdb") -> str:
    """A SQL type as a dialect writes it."""
    return sql_type.sql(dialect)


# --- Python values in and out of Arrow (row mode) -------------------------------------------


def python_converter(hint: t.Any) -> t.Optional[t.Callable[[t.Any], t.Any]]:
    """How an engine's Python value becomes the value the hint asks for (None: as is).

    Engines already give float, int, str, Decimal, date, datetime, list and dict; only
    dataclasses need building, at any depth (in lists, TypedDicts, map values).
    """
    hint = _unannotate(strip_optional(hint))
    origin = t.get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        fields = {name: python_converter(h) for name, h in field_hints(hint).items()}
        return lambda value: hint(**{k: apply(fields[k], v) for k, v in value.items()})
    if isinstance(hint, type) and t.is_typeddict(hint):
        fields = {name: python_converter(h) for name, h in field_hints(hint).items()}
        if any(fields.values()):
            return lambda value: {k: apply(fields.get(k), v) for k, v in value.items()}
    if origin in (list, t.List) and t.get_args(hint):
        inner = python_converter(t.get_args(hint)[0])
        if inner is not None:
            return lambda values: [apply(inner, v) for v in values]
    if origin in (dict, t.Dict) and len(t.get_args(hint)) == 2:
        inner = python_converter(t.get_args(hint)[1])
        if inner is not None:
            return lambda mapping: {k: apply(inner, v) for k, v in mapping.items()}
    return None


def holds_dataclass(hint: t.Any) -> bool:
    """Whether values of this hint may hold dataclass instances, at any depth."""
    hint = _unannotate(strip_optional(hint))
    if isinstance(hint, type) and (dataclasses.is_dataclass(hint) or t.is_typeddict(hint)):
        return dataclasses.is_dataclass(hint) or any(
            holds_dataclass(h) for h in field_hints(hint).values()
        )
    return any(holds_dataclass(arg) for arg in t.get_args(hint) if arg is not Ellipsis)


def apply(converter: t.Optional[t.Callable[[t.Any], t.Any]], value: t.Any) -> t.Any:
    return value if converter is None or value is None else converter(value)


def _unannotate(hint: t.Any) -> t.Any:
    return t.get_args(hint)[0] if t.get_origin(hint) is t.Annotated else hint


def nan_as_text(sql_type: exp.DataType) -> t.Optional[t.Callable[[t.Any], t.Any]]:
    """A function that writes every float NaN inside a value of ``sql_type`` as 'NaN'.

    For engines that turn a returned NaN into NULL but cast the text 'NaN' to NaN (DuckDB's
    native UDFs). None when the type holds no floats.
    """
    kind = sql_type.this
    if kind in (DType.DOUBLE, DType.FLOAT):
        return lambda value: value if value == value else "NaN"
    if kind in (DType.ARRAY, DType.LIST):
        inner = nan_as_text(sql_type.expressions[0])
        return None if inner is None else (lambda values: [apply(inner, v) for v in values])
    if kind == DType.MAP:
        inner = nan_as_text(sql_type.expressions[1])
        return None if inner is None else (lambda mapping: {k: apply(inner, v) for k, v in mapping.items()})
    if kind == DType.STRUCT:
        fields = {f.name: nan_as_text(f.args["kind"]) for f in sql_type.expressions}
        fields = {name: fix for name, fix in fields.items() if fix is not None}
        if not fields:
            return None
        return lambda value: {k: apply(fields.get(k), v) for k, v in value.items()}
    return None


def arrow_ready(value: t.Any) -> t.Any:
    """A returned Python value with every dataclass, at any depth, turned into a dict."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: arrow_ready(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, list):
        return [arrow_ready(item) for item in value]
    if isinstance(value, dict):
        return {key: arrow_ready(item) for key, item in value.items()}
    return value


def _name(hint: t.Any) -> str:
    return hint.__name__ if isinstance(hint, type) else repr(hint)

"""One mapping between Python type hints, SQL types and Arrow types, shared by every engine.

SQL types are sqlglot ``DataType`` expressions: each engine renders them in its own dialect
(``DOUBLE`` on DuckDB, ``DOUBLE`` on Spark, ``STRUCT(a DOUBLE)[]`` vs ``ARRAY<STRUCT<a: DOUBLE>>``).
Arrow is the format values cross the engine boundary in.

Longer than 450 lines because it is the one table of SQL types: their names, Arrow types and
return rules, which must stay in step with one another.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import itertools
import math
import numbers
import operator
import types as pytypes
import typing as t

import pyarrow as pa
from sqlglot import exp

from mixmesh.core.conversion import to_python
from mixmesh.core.errors import FunctionDefinitionError
from mixmesh.core.names import keep_import_path

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


# --- Return values: one conversion, the same on every path -----------------------------------
#
# A row function's result reaches the engine by DuckDB's own conversion (the plain binding) or
# by Arrow's (the fast path, Spark's executors); both round, truncate or drop where the other
# fails. So the rules are mixmesh's own, applied before either engine sees the value: each SQL
# type takes the Python values that hold it exactly, and refuses the others with the reason
# (docs/return-values.md). ``return_converter`` is the whole rule; ``unchanged_return`` names
# the values that pass as they are, for callers that keep the common case cheap.

# The integer types' ranges. HUGEINT is carried as Arrow's DECIMAL(38, 0): 38 digits.
_INTEGER_BOUNDS: t.Dict[DType, t.Tuple[int, int]] = {
    DType.TINYINT: (-(2**7), 2**7 - 1),
    DType.SMALLINT: (-(2**15), 2**15 - 1),
    DType.INT: (-(2**31), 2**31 - 1),
    DType.BIGINT: (-(2**63), 2**63 - 1),
    DType.INT128: (-(10**38 - 1), 10**38 - 1),
    DType.UTINYINT: (0, 2**8 - 1),
    DType.USMALLINT: (0, 2**16 - 1),
    DType.UINT: (0, 2**32 - 1),
    DType.UBIGINT: (0, 2**64 - 1),
}
_FLOAT32_MAX = 3.4028234663852886e38
_TEXT = (DType.VARCHAR, DType.TEXT, DType.CHAR, DType.NVARCHAR)
_BYTES = (DType.VARBINARY, DType.BINARY, DType.BLOB)
_NAIVE_TIMESTAMPS = {
    DType.TIMESTAMP: 1, DType.TIMESTAMPNTZ: 1, DType.DATETIME: 1, DType.TIMESTAMP_NS: 1,
    DType.TIMESTAMP_MS: 1000, DType.TIMESTAMP_S: 1_000_000,  # microseconds per unit
}
_AWARE_TIMESTAMPS = (DType.TIMESTAMPTZ, DType.TIMESTAMPLTZ)


class ValueRefused(ValueError):
    """A returned value that does not convert exactly to its declared SQL type: the value
    (the innermost one at fault), why, and where it sits inside the returned value."""

    def __init__(self, value: t.Any, reason: str, path: str = "", position: t.Optional[int] = None) -> None:
        super().__init__(reason)
        self.value = value
        self.reason = reason
        self.path = path
        self.position = position  # the row, for a value refused in an array

    def inside(self, step: str) -> "ValueRefused":
        """The same refusal, one level further out (``[0]``, ``['name']``)."""
        self.path = step + self.path
        return self

    def describe(self) -> str:
        from mixmesh.core.errors import truncate

        where_in = f" at {self.path}" if self.path else ""
        return f"{truncate(self.value, 80)} ({type(self.value).__name__}){where_in}: {self.reason}"


class UnchangedReturn(t.NamedTuple):
    """Values an engine converts exactly as they are: of exactly ``kind`` (not a subclass),
    within ``bounds`` (integers) and aware or naive as ``aware`` says (datetimes)."""

    kind: type
    bounds: t.Optional[t.Tuple[int, int]] = None
    aware: t.Optional[bool] = None


def unchanged_return(sql_type: exp.DataType) -> t.Optional[UnchangedReturn]:
    """The returned values of ``sql_type`` that need no conversion, or None (nested types,
    and FLOAT, whose every value needs a range check)."""
    kind = sql_type.this
    if kind in _INTEGER_BOUNDS:
        return UnchangedReturn(int, _INTEGER_BOUNDS[kind])
    if kind in _NAIVE_TIMESTAMPS:
        return UnchangedReturn(dt.datetime, aware=False) if _NAIVE_TIMESTAMPS[kind] == 1 else None
    if kind in _AWARE_TIMESTAMPS:
        return UnchangedReturn(dt.datetime, aware=True)
    simple = {DType.DOUBLE: float, DType.BOOLEAN: bool, DType.DATE: dt.date, DType.TIME: dt.time}
    if kind in simple:
        return UnchangedReturn(simple[kind])
    if kind in _TEXT:
        return UnchangedReturn(str)
    if kind in _BYTES:
        return UnchangedReturn(bytes)
    return None


def return_converter(sql_type: exp.DataType, *, nan_as_text: bool = False) -> t.Callable[[t.Any], t.Any]:
    """How a returned value (not None) becomes the value handed to the engine: the same
    value, or one that holds it exactly (2.0 -> 2 for an INTEGER, a dataclass -> a dict),
    or ``ValueRefused`` saying why not. None inside a value (a list item, a field) is NULL.

    Reasons name types as ``returns=`` writes them (DuckDB's SQL), whatever the engine.
    ``nan_as_text``: every NaN of a DOUBLE or FLOAT becomes 'NaN' (DuckDB's native UDFs
    read a returned NaN as NULL, and the text 'NaN' as NaN).
    """
    kind = sql_type.this
    if kind in _INTEGER_BOUNDS:
        return _integer(_type_name(sql_type), *_INTEGER_BOUNDS[kind])
    if kind in (DType.DOUBLE, DType.FLOAT):
        return _floating(_type_name(sql_type), kind == DType.FLOAT, nan_as_text)
    if kind == DType.DECIMAL:
        arrow_type = to_arrow(sql_type)
        return _decimal(_type_name(sql_type), arrow_type.precision, arrow_type.scale)
    if kind in _TEXT:
        return _text
    if kind == DType.BOOLEAN:
        return _boolean
    if kind == DType.DATE:
        return _date
    if kind in _NAIVE_TIMESTAMPS:
        return _timestamp(_type_name(sql_type), aware=False, unit=_NAIVE_TIMESTAMPS[kind])
    if kind in _AWARE_TIMESTAMPS:
        return _timestamp(_type_name(sql_type), aware=True, unit=1)
    if kind == DType.TIME:
        return _time
    if kind in _BYTES:
        return _bytes
    if kind in (DType.ARRAY, DType.LIST):
        return _list(_element(sql_type.expressions[0], nan_as_text))
    if kind == DType.MAP:
        key, value = sql_type.expressions
        return _map(_element(key, False), _element(value, nan_as_text))
    if kind == DType.STRUCT:
        return _struct({field.name: _element(field.args["kind"], nan_as_text) for field in sql_type.expressions})
    raise NoSqlType(f"SQL type {sql_type.sql('duckdb')} is not supported by mixmesh functions")


class _Element(t.NamedTuple):
    """A value inside a list, map or struct: its conversion, and the one Python type whose
    values pass unchanged without calling it (None: every value is converted)."""

    convert: t.Callable[[t.Any], t.Any]
    passes: t.Optional[type]


def _element(sql_type: exp.DataType, nan_as_text: bool) -> _Element:
    rule = unchanged_return(sql_type)
    simple = rule is not None and rule.bounds is None and rule.aware is None and not (nan_as_text and rule.kind is float)
    return _Element(return_converter(sql_type, nan_as_text=nan_as_text), rule.kind if simple and rule else None)


def _type_name(sql_type: exp.DataType) -> str:
    return "HUGEINT" if sql_type.this == DType.INT128 else sql(sql_type)


def holds_floats(sql_type: exp.DataType) -> bool:
    """Whether values of ``sql_type`` hold a DOUBLE or FLOAT, at any depth (where NaN may be)."""
    return any(node.this in (DType.DOUBLE, DType.FLOAT) for node in sql_type.find_all(exp.DataType))


def _wrong_type(value: t.Any, wanted: str) -> ValueRefused:
    name = type(value).__name__
    return ValueRefused(value, f"{'an' if name[:1] in 'aeiouAEIOU' else 'a'} {name} is not {wanted}")


def _is_bool(value: t.Any) -> bool:
    """True and False, and numpy's booleans (which are not ints)."""
    return isinstance(value, bool) or (type(value).__module__ == "numpy" and type(value).__name__ in ("bool_", "bool"))


def _integer(name: str, low: int, high: int) -> t.Callable[[t.Any], t.Any]:
    def convert(value: t.Any) -> int:
        if type(value) is int and low <= value <= high:
            return value
        if _is_bool(value):
            raise ValueRefused(value, f"a bool is not a number; return int(value) for a {name}")
        if isinstance(value, numbers.Integral):
            number = int(value)
        elif isinstance(value, (numbers.Real, decimal.Decimal)):
            number = _integral(value, name)
        else:
            raise _wrong_type(value, f"an integer ({name})")
        if not low <= number <= high:
            raise ValueRefused(value, f"out of {name}'s range {low} .. {high}")
        return number

    return convert


def _integral(value: t.Any, name: str) -> int:
    """A float or Decimal with no fractional part, as an int; refused otherwise."""
    try:
        finite = math.isfinite(value) if not isinstance(value, decimal.Decimal) else value.is_finite()
    except (TypeError, ValueError):
        finite = False
    if not finite:
        raise ValueRefused(value, f"not a finite number, which {name} cannot hold")
    number = int(value)
    if number != value:
        raise ValueRefused(
            value, f"has a fractional part, which {name} cannot hold (round it in the function, or declare DOUBLE)"
        )
    return number


def _floating(name: str, single: bool, nan_as_text: bool) -> t.Callable[[t.Any], t.Any]:
    def convert(value: t.Any) -> t.Any:
        if type(value) is float:
            number = value
        elif _is_bool(value):
            raise ValueRefused(value, f"a bool is not a number; return float(value) for a {name}")
        elif isinstance(value, (numbers.Real, decimal.Decimal)):
            try:
                number = float(value)
            except (OverflowError, ValueError) as error:
                raise ValueRefused(value, f"does not convert to {name}: {error}") from None
        else:
            raise _wrong_type(value, f"a number ({name})")
        if single and math.isfinite(number) and abs(number) > _FLOAT32_MAX:
            raise ValueRefused(value, f"out of {name}'s range")
        return "NaN" if nan_as_text and number != number else number

    return convert


def _decimal(name: str, precision: int, scale: int) -> t.Callable[[t.Any], decimal.Decimal]:
    quantum = decimal.Decimal(1).scaleb(-scale)
    limit = decimal.Decimal(10) ** (precision - scale)
    context = decimal.Context(prec=precision + 40)  # room for any value quantize may meet

    def convert(value: t.Any) -> decimal.Decimal:
        if isinstance(value, decimal.Decimal):
            number = value
        elif _is_bool(value):
            raise ValueRefused(value, f"a bool is not a number ({name})")
        elif isinstance(value, numbers.Integral):
            number = decimal.Decimal(int(value))
        elif isinstance(value, numbers.Real):
            # A float as Python shows it (1.1, not 1.100000000000000088817841970012523...).
            number = decimal.Decimal(repr(float(value)))
        else:
            raise _wrong_type(value, f"a number ({name})")
        if not number.is_finite():
            raise ValueRefused(value, f"not a finite number, which {name} cannot hold")
        if number.copy_abs() >= limit:  # copy_abs: abs() would round to the context's 28 digits
            raise ValueRefused(value, f"out of {name}'s range (at most {precision - scale} digits before the point)")
        exact = number.quantize(quantum, context=context)
        if exact != number:
            raise ValueRefused(
                value, f"has more than {scale} decimal places; rounding it would change it (round it in the function)"
            )
        return exact

    return convert


def _text(value: t.Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, str):
        return str.__str__(value)  # a str subclass (a StrEnum member) as its text
    raise _wrong_type(value, "text (VARCHAR); return str(value) to store its text")


def _boolean(value: t.Any) -> bool:
    if type(value) is bool:
        return value
    if _is_bool(value):
        return bool(value)
    raise _wrong_type(value, "a BOOLEAN; return True or False")


def _date(value: t.Any) -> dt.date:
    if isinstance(value, dt.datetime):
        raise ValueRefused(value, "a datetime for a DATE would lose its time; return value.date()")
    if isinstance(value, dt.date):
        return dt.date(value.year, value.month, value.day)
    raise _wrong_type(value, "a DATE (datetime.date)")


def _timestamp(name: str, aware: bool, unit: int) -> t.Callable[[t.Any], dt.datetime]:
    def convert(value: t.Any) -> dt.datetime:
        if not isinstance(value, dt.datetime):
            hint = "; return datetime.combine(value, time())" if isinstance(value, dt.date) else ""
            raise _wrong_type(value, f"a {name} (datetime.datetime){hint}")
        has_zone = value.utcoffset() is not None
        if has_zone and not aware:
            raise ValueRefused(
                value,
                f"an aware datetime for a {name} (without time zone) is ambiguous: return it naive "
                "(value.replace(tzinfo=None) keeps its wall time), or declare TIMESTAMPTZ",
            )
        if aware and not has_zone:
            raise ValueRefused(
                value, f"a naive datetime for a {name} is ambiguous: give it its time zone (value.replace(tzinfo=...))"
            )
        if getattr(value, "nanosecond", 0) or value.microsecond % unit:
            raise ValueRefused(value, f"has fractions of a second finer than {name} holds")
        if type(value) is dt.datetime:
            return value if has_zone or value.tzinfo is None else value.replace(tzinfo=None)
        return dt.datetime(  # a subclass (pandas' Timestamp) as a plain datetime
            value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond,
            value.tzinfo if has_zone else None, fold=value.fold,
        )

    return convert


def _time(value: t.Any) -> dt.time:
    if isinstance(value, dt.time):
        return value
    raise _wrong_type(value, "a TIME (datetime.time)")


def _bytes(value: t.Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise _wrong_type(value, "bytes (BLOB)")


def _list(item: _Element) -> t.Callable[[t.Any], t.List[t.Any]]:
    convert_item, passes = item

    def convert(value: t.Any) -> t.List[t.Any]:
        if type(value) is not list:
            if isinstance(value, tuple):
                value = list(value)
            elif type(value).__module__ == "numpy" and hasattr(value, "tolist"):
                value = value.tolist()
            else:
                raise _wrong_type(value, "a list")
        if passes is not None and set(map(type, value)) <= {passes, type(None)}:
            return value
        converted = []
        for position, element in enumerate(value):
            try:
                converted.append(None if element is None else convert_item(element))
            except ValueRefused as refused:
                raise refused.inside(f"[{position}]") from None
        return converted

    return convert


def _map(key: _Element, item: _Element) -> t.Callable[[t.Any], t.Dict[t.Any, t.Any]]:
    convert_key, convert_item = key.convert, item.convert
    keys_pass = {key.passes} if key.passes is not None else None
    items_pass = {item.passes, type(None)} if item.passes is not None else None

    def convert(value: t.Any) -> t.Dict[t.Any, t.Any]:
        if type(value) is dict:
            if keys_pass and items_pass and set(map(type, value)) <= keys_pass and set(map(type, value.values())) <= items_pass:
                return value
        elif not isinstance(value, t.Mapping):
            raise _wrong_type(value, "a MAP (a dict)")
        converted = {}
        for name, element in value.items():
            if name is None:
                raise ValueRefused(value, "a MAP key may not be None")
            try:
                converted[convert_key(name)] = None if element is None else convert_item(element)
            except ValueRefused as refused:
                raise refused.inside(f"[{name!r}]") from None
        return converted

    return convert


def _struct(fields: t.Dict[str, _Element]) -> t.Callable[[t.Any], t.Dict[str, t.Any]]:
    names = fields.keys()
    listed = ", ".join(fields)
    checked = [(name, convert, passes) for name, (convert, passes) in fields.items()]

    def convert(value: t.Any) -> t.Dict[str, t.Any]:
        if type(value) is not dict:
            value = _fields(value, listed)
        if value.keys() != names:
            raise _other_fields(value, fields, listed)
        changed = None
        for name, convert_field, passes in checked:
            element = value[name]
            if element is None or type(element) is passes:
                continue
            try:
                converted = convert_field(element)
            except ValueRefused as refused:
                raise refused.inside(f"[{name!r}]") from None
            if converted is not element:
                changed = dict(value) if changed is None else changed
                changed[name] = converted
        return value if changed is None else changed  # fields land by name (DuckDB #10808)

    return convert


def _fields(value: t.Any, listed: str) -> t.Dict[str, t.Any]:
    """A dataclass instance or a mapping as a dict of its fields."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    if isinstance(value, t.Mapping):
        return dict(value)
    raise _wrong_type(value, f"a STRUCT; return a dict (or a dataclass) with the fields {listed}")


def _other_fields(value: t.Dict[str, t.Any], fields: t.Mapping[str, t.Any], listed: str) -> ValueRefused:
    unknown = [repr(name) for name in value if name not in fields]
    missing = [repr(name) for name in fields if name not in value]
    reasons = ([f"unknown field(s) {', '.join(unknown)}"] if unknown else []) + (
        [f"missing field(s) {', '.join(missing)} (a NULL field is returned as None)"] if missing else []
    )
    return ValueRefused(value, f"{' and '.join(reasons)}; the STRUCT's fields are {listed}")


def unchanged_values(values: t.List[t.Any], sql_type: exp.DataType, *, nulls: bool = True) -> bool:
    """Whether no value of a batch needs converting for ``sql_type`` (the common case), so
    that Arrow may convert the list as it is: it then converts each value exactly, or fails
    on a value out of range, which the rules then name.

    Checked in passes over the whole list that run in C (the types present, the fields of
    structs, the items of lists and maps), not value by value. ``nulls``: None may appear
    (not as a map's key).
    """
    rule = unchanged_return(sql_type)
    if rule is not None and rule.aware is None and operator.countOf(map(type, values), rule.kind) == len(values):
        return True  # the commonest case, in the cheapest pass: no None, one type
    every_kind = set(map(type, values))
    kinds = every_kind - {type(None)} if nulls else every_kind
    if not kinds:
        return True
    present = [value for value in values if value is not None] if kinds != every_kind else values
    if rule is not None:
        if kinds != {rule.kind}:
            return False
        if rule.aware is None:
            return True
        zones = set(map(operator.attrgetter("tzinfo"), present))
        return None not in zones if rule.aware else zones == {None}
    kind = sql_type.this
    if kind in (DType.ARRAY, DType.LIST) and kinds == {list}:
        return unchanged_values(list(itertools.chain.from_iterable(present)), sql_type.expressions[0])
    if kind == DType.MAP and kinds == {dict}:
        key, item = sql_type.expressions
        return unchanged_values(list(itertools.chain.from_iterable(present)), key, nulls=False) and unchanged_values(
            list(itertools.chain.from_iterable(map(dict.values, present))), item
        )
    if kind == DType.STRUCT and kinds == {dict}:
        if set(map(len, present)) != {len(sql_type.expressions)}:
            return False
        try:  # each declared field in each dict, and as many keys as fields: exactly the fields
            return all(_unchanged_field(present, field.name, field.args["kind"]) for field in sql_type.expressions)
        except KeyError:
            return False
    return False


def _unchanged_field(structs: t.List[t.Dict[str, t.Any]], name: str, sql_type: exp.DataType) -> bool:
    """``unchanged_values`` for one field of every struct; a field of one plain type is
    checked as it is read, without a list of its values."""
    values = map(operator.itemgetter(name), structs)
    rule = unchanged_return(sql_type)
    if rule is not None and rule.aware is None:
        return set(map(type, values)) <= {rule.kind, type(None)}
    return unchanged_values(list(values), sql_type)


def returned_array(array: pa.Array, sql_type: exp.DataType) -> pa.Array:
    """An Arrow array a vectorized function returned, as an array of ``sql_type``, by the
    rules ``return_converter`` applies to single values: Arrow casts where its cast follows
    them (an int64 array to DOUBLE, float64 with integral values to BIGINT, decimals
    without loss...), the values go through the rules one by one elsewhere (a struct with
    other fields, an aware timestamp for a TIMESTAMP), and the first one refused raises
    ``ValueRefused`` with its ``position``."""
    target = to_arrow(sql_type)
    if array.type == target:
        return array
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), type=target)
    cast = _exact_cast(array, sql_type, target)
    return cast if cast is not None else _by_value(array, sql_type, target)


def _exact_cast(array: pa.Array, sql_type: exp.DataType, target: pa.DataType) -> t.Optional[pa.Array]:
    """Arrow's cast, where it gives what the rules give; None where it would not (or fails)."""
    import pyarrow.compute as pc

    source, kind = array.type, sql_type.this
    safe = True
    if kind in _INTEGER_BOUNDS and pa.types.is_floating(source) and not pa.types.is_decimal(target):
        # Arrow's safe cast refuses fractions, NaN and values out of range itself.
        usable = pa.types.is_integer(target)
    elif kind in _INTEGER_BOUNDS:
        usable = pa.types.is_integer(source) or pa.types.is_decimal(source)
    elif kind == DType.DOUBLE:
        usable = pa.types.is_integer(source) or pa.types.is_floating(source)
        safe = False  # an int64 beyond 2**53 rounds, as float() rounds it
    elif kind == DType.DECIMAL:
        usable = pa.types.is_integer(source) or pa.types.is_decimal(source)
    elif kind in _TEXT:
        usable = pa.types.is_string(source) or pa.types.is_large_string(source) or pa.types.is_string_view(source)
    elif kind in _BYTES:
        usable = pa.types.is_binary(source) or pa.types.is_large_binary(source)
    elif kind == DType.DATE:
        usable = pa.types.is_date(source)
    elif kind == DType.TIME:
        usable = pa.types.is_time(source)
    elif kind in _NAIVE_TIMESTAMPS or kind in _AWARE_TIMESTAMPS:
        usable = pa.types.is_timestamp(source) and (source.tz is None) == (target.tz is None)
    else:
        usable = False  # nested values and FLOAT: the rules, value by value
    if not usable:
        return None
    try:
        return pc.cast(array, target, safe=safe)
    except (pa.ArrowException, TypeError, ValueError):
        return None  # out of range, a fraction...: the value is named by the rules


def _by_value(array: pa.Array, sql_type: exp.DataType, target: pa.DataType) -> pa.Array:
    convert = return_converter(sql_type)
    values = to_python(array, maps_as_pydicts="strict" if holds_map(array.type) else None)
    converted = []
    for position, value in enumerate(values):
        try:
            converted.append(None if value is None else convert(value))
        except ValueRefused as refused:
            refused.position = position
            raise
    return pa.array(converted, type=target, from_pandas=False)


def holds_map(data_type: pa.DataType) -> bool:
    """Whether an Arrow type holds a MAP at any depth (``to_pylist`` gives it as pairs then)."""
    if pa.types.is_map(data_type):
        return True
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type) or pa.types.is_fixed_size_list(data_type):
        return holds_map(data_type.value_type)
    if pa.types.is_struct(data_type):
        return any(holds_map(field.type) for field in data_type)
    return False


# Public names keep the path projects import them from (see mixmesh.core.names).
keep_import_path(globals(), "mixmesh.types")

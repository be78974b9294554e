"""What a parameter accepts, and the type it is bound with at one call site.

The document writes ``transaction_details: List[Dict[str, Any]]`` and feeds ``COUNTIF(...)``
(HUGEINT on DuckDB) into ``cart_additions: int``. A hint therefore says which SQL types a
parameter *accepts*, not one SQL type; the engine says what each call site passes
(``mixmesh.engines.call_sites``), and ``Accepts.resolve`` turns that into the type the function is
bound with there:

- ``Any``, an unannotated parameter, ``dict``, ``list`` and their untyped forms take the call
  site's type as it is;
- a Python scalar hint takes every SQL type that converts to it without loss (``int`` any
  integer, ``float`` any number, ``str`` VARCHAR and enums...), cast to the one type Python
  receives it as;
- a TypedDict, a dataclass or an explicit SQL type (``args=``) fixes the type, and the call
  site is checked against it (the same fields; each field as its hint says).

A call site that does not fit raises ``Mismatch`` with the reason and, where there is one, the
type a CAST to which would fix it; ``mixmesh.engines.call_sites`` turns that into an error naming the
model, the function and the argument.

Longer than 450 lines because it is one table: each hint's family, what it accepts and how
it widens, side by side so that each rule can be compared with its neighbours.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import typing as t

from sqlglot import exp

from mixmesh.core import sql_types as types

DType = exp.DataType.Type

SIGNED_INTEGERS = (DType.TINYINT, DType.SMALLINT, DType.INT, DType.BIGINT)
UNSIGNED_INTEGERS = (DType.UTINYINT, DType.USMALLINT, DType.UINT)
WIDE_INTEGERS = (DType.UBIGINT, DType.INT128, DType.UINT128)  # beyond BIGINT's range
INTEGERS = SIGNED_INTEGERS + UNSIGNED_INTEGERS + WIDE_INTEGERS
FLOATS = (DType.FLOAT, DType.DOUBLE)
NUMBERS = INTEGERS + FLOATS + (DType.DECIMAL,)
TEXTS = (DType.VARCHAR, DType.TEXT, DType.CHAR, DType.NVARCHAR, DType.NCHAR, DType.ENUM)
BINARIES = (DType.VARBINARY, DType.BINARY, DType.BLOB)
NAIVE_TIMESTAMPS = (DType.TIMESTAMP, DType.TIMESTAMPNTZ, DType.DATETIME, DType.TIMESTAMP_S, DType.TIMESTAMP_MS)
# An instant the engine shows in its session's time zone (Spark's TIMESTAMP): naive and
# aware hints both take it, as the wall clock of that zone or as the instant.
LOCAL_TIMESTAMPS = (DType.TIMESTAMPLTZ,)
LISTS = (DType.ARRAY, DType.LIST)


class Mismatch(Exception):
    """A call site's type that a parameter does not accept: why, and the CAST that fixes it."""

    def __init__(self, reason: str, fix: t.Optional[exp.DataType] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fix = fix


def build(sql: str) -> exp.DataType:
    return exp.DataType.build(sql, dialect="duckdb")


# sqlglot writes some DuckDB types by an alias; messages use the names DuckDB prints.
_DUCKDB_NAMES = {"TEXT": "VARCHAR", "INT128": "HUGEINT", "UINT128": "UHUGEINT", "INT": "INTEGER"}


def shown(sql_type: exp.DataType, dialect: str = "duckdb") -> str:
    """A type as the engine names it in its own messages (DuckDB: VARCHAR, HUGEINT)."""
    text = sql_type.sql(dialect)
    if dialect != "duckdb":
        return text
    return re.sub(r"\b(TEXT|INT128|UINT128|INT)\b", lambda m: _DUCKDB_NAMES[m.group(1)], text)


class Accepts:
    """What one parameter accepts; ``resolve`` gives the type it is bound with for a call site."""

    #: The hint as people wrote it, for messages.
    shown: str = "?"

    def resolve(self, call: exp.DataType, *, vectorized: bool = False) -> exp.DataType:
        raise NotImplementedError

    def default(self) -> t.Optional[exp.DataType]:
        """The type without a call site (a plain-Python call, ``register``): None if open."""
        return None

    def holds_any(self) -> bool:
        """Whether some part of the type is left to the call site."""
        return False

    def python_converter(self, bound: exp.DataType) -> t.Optional[t.Callable[[t.Any], t.Any]]:
        """How a value of the bound type, as engines hand it over, becomes what the hint asks
        for (None: as it is). HUGEINT arrives from Arrow as a Decimal; ``int`` wants an int."""
        return None


class AnyType(Accepts):
    """``Any``, an unannotated parameter: the call site's type as it is."""

    def __init__(self, shown: str = "Any") -> None:
        self.shown = shown

    def resolve(self, call: exp.DataType, *, vectorized: bool = False) -> exp.DataType:
        if any(node.this == DType.TIMESTAMP_NS for node in call.find_all(exp.DataType)):
            raise Mismatch("a Python datetime holds microseconds, not nanoseconds", fix=build("TIMESTAMP"))
        carried = as_text_where_needed(call)
        try:
            types.to_arrow(carried)
        except types.NoSqlType:
            raise Mismatch(
                f"mixmesh functions cannot receive {shown(call)} values", fix=build("VARCHAR")
            ) from None
        return carried

    def holds_any(self) -> bool:
        return True


class Family(Accepts):
    """A Python scalar hint: the SQL types that convert to it without loss."""

    def __init__(self, shown: str, default: str, rule: t.Callable[[exp.DataType, bool], exp.DataType]) -> None:
        self.shown = shown
        self._default = default
        self._rule = rule

    def resolve(self, call: exp.DataType, *, vectorized: bool = False) -> exp.DataType:
        return self._rule(call, vectorized)

    def default(self) -> exp.DataType:
        return build(self._default)

    def python_converter(self, bound: exp.DataType) -> t.Optional[t.Callable[[t.Any], t.Any]]:
        if self.shown == "int" and bound.this == DType.DECIMAL:
            return _exact_int
        return None


def _exact_int(value: t.Any) -> t.Any:
    return int(value) if isinstance(value, decimal.Decimal) else value


def _in_utc(value: t.Any) -> t.Any:
    return value.astimezone(dt.timezone.utc) if isinstance(value, dt.datetime) and value.tzinfo else value


def values_converter(bound: exp.DataType) -> t.Optional[t.Callable[[t.Any], t.Any]]:
    """What makes a value of ``bound`` the same on every path, at any depth: a HUGEINT an int
    (Arrow carries it as a Decimal), a TIMESTAMPTZ an aware datetime in UTC (engines hand it
    in their session's zone, with pytz or zoneinfo). None where nothing needs it."""
    kind = bound.this
    if kind == DType.INT128:
        return _exact_int
    if kind in (DType.TIMESTAMPTZ, DType.TIMESTAMPLTZ):
        return _in_utc
    if kind in LISTS:
        inner = values_converter(bound.expressions[0])
        return None if inner is None else (lambda values: [types.apply(inner, v) for v in values])
    if kind == DType.STRUCT:
        fields = {f.name: values_converter(f.args["kind"]) for f in bound.expressions}
        fields = {name: convert for name, convert in fields.items() if convert is not None}
        if not fields:
            return None
        return lambda value: {k: types.apply(fields.get(k), v) for k, v in value.items()}
    if kind == DType.MAP:
        key, value_ = (values_converter(part) for part in bound.expressions)
        if key is None and value_ is None:
            return None
        return lambda mapping: {types.apply(key, k): types.apply(value_, v) for k, v in mapping.items()}
    return None


class ListOf(Accepts):
    """``list[X]``: a list (or a fixed-size array) whose elements X accepts."""

    def __init__(self, element: Accepts, shown: str) -> None:
        self.element = element
        self.shown = shown

    def resolve(self, call: exp.DataType, *, vectorized: bool = False) -> exp.DataType:
        if call.this not in LISTS:
            raise Mismatch("it is not a list", fix=_list_fix(self))
        try:
            element = self.element.resolve(call.expressions[0], vectorized=vectorized)
        except Mismatch as mismatch:
            raise Mismatch(f"its elements: {mismatch.reason}", fix=_wrap_list(mismatch.fix)) from None
        return exp.DataType(this=DType.ARRAY, expressions=[element], nested=True)

    def default(self) -> t.Optional[exp.DataType]:
        element = self.element.default()
        return None if element is None else exp.DataType(this=DType.ARRAY, expressions=[element], nested=True)

    def holds_any(self) -> bool:
        return self.element.holds_any()

    def python_converter(self, bound: exp.DataType) -> t.Optional[t.Callable[[t.Any], t.Any]]:
        inner = self.element.python_converter(bound.expressions[0])
        return None if inner is None else (lambda values: [types.apply(inner, v) for v in values])


class DictOf(Accepts):
    """``dict``, ``Dict[str, X]``: a MAP whose keys and values fit, or a STRUCT whose field
    names are keys and whose fields all fit X (a dict either way in Python)."""

    def __init__(self, key: Accepts, value: Accepts, shown: str) -> None:
        self.key, self.value, self.shown = key, value, shown

    def resolve(self, call: exp.DataType, *, vectorized: bool = False) -> exp.DataType:
        if call.this == DType.MAP:
            key, value = call.expressions
            return exp.DataType(
                this=DType.MAP,
                expressions=[self.key.resolve(key, vectorized=vectorized), self.value.resolve(value, vectorized=vectorized)],
                nested=True,
            )
        if call.this == DType.STRUCT:
            self.key.resolve(build("VARCHAR"))  # field names are text
            fields = []
            for field in call.expressions:
                try:
                    kind = self.value.resolve(field.args["kind"], vectorized=vectorized)
                except Mismatch as mismatch:
                    raise Mismatch(f"its field {field.name!r}: {mismatch.reason}") from None
                fields.append(exp.ColumnDef(this=field.this.copy(), kind=kind))
            return exp.DataType(this=DType.STRUCT, expressions=fields, nested=True)
        raise Mismatch("it is neither a STRUCT nor a MAP")

    def holds_any(self) -> bool:
        return self.key.holds_any() or self.value.holds_any()

    def default(self) -> t.Optional[exp.DataType]:
        key, value = self.key.default(), self.value.default()
        if key is None or value is None:
            return None
        return exp.DataType(this=DType.MAP, expressions=[key, value], nested=True)


class StructOf(Accepts):
    """A TypedDict or a dataclass: a STRUCT with exactly these fields, each as its hint says."""

    def __init__(self, hint: type, fields: t.Dict[str, Accepts]) -> None:
        self.hint = hint
        self.fields = fields
        self.shown = hint.__name__

    def resolve(self, call: exp.DataType, *, vectorized: bool = False) -> exp.DataType:
        declared = list(self.fields)
        if call.this != DType.STRUCT:
            raise Mismatch(f"it is not a STRUCT, and {self.shown} declares the fields {declared}", fix=self.default())
        passed = [field.name for field in call.expressions]
        if sorted(n.lower() for n in passed) != sorted(n.lower() for n in declared):
            missing = [n for n in declared if n.lower() not in {p.lower() for p in passed}]
            extra = [n for n in passed if n.lower() not in {d.lower() for d in declared}]
            detail = "; ".join(
                part for part in (
                    f"{self.shown} declares {missing}, which the call site lacks" if missing else "",
                    f"the call site has {extra}, which {self.shown} does not declare" if extra else "",
                ) if part
            )
            raise Mismatch(f"its fields {passed} disagree with {self.shown}'s {declared}: {detail}", fix=self.default())
        by_name = {name.lower(): accepts for name, accepts in self.fields.items()}
        fields = []
        for field in call.expressions:
            try:
                kind = by_name[field.name.lower()].resolve(field.args["kind"], vectorized=vectorized)
            except Mismatch as mismatch:
                raise Mismatch(f"its field {field.name!r}: {mismatch.reason}", fix=self.default()) from None
            fields.append(exp.ColumnDef(this=field.this.copy(), kind=kind))
        return exp.DataType(this=DType.STRUCT, expressions=fields, nested=True)

    def default(self) -> exp.DataType:
        return types.sql_type_of_hint(self.hint)


class Exact(Accepts):
    """An explicit SQL type (``args=``, ``Annotated[x, "SQL"]``): that type, or one that widens
    to it without loss (an INTEGER into a BIGINT, a DATE into a TIMESTAMP)."""

    def __init__(self, sql_type: exp.DataType) -> None:
        self.sql_type = sql_type
        self.shown = shown(sql_type)

    def resolve(self, call: exp.DataType, *, vectorized: bool = False) -> exp.DataType:
        if not widens(call, self.sql_type):
            raise Mismatch(f"the declared {self.shown} does not hold it without loss", fix=self.sql_type)
        return self.sql_type

    def default(self) -> exp.DataType:
        return self.sql_type


# --- the scalar families --------------------------------------------------------------------


def _int_rule(call: exp.DataType, vectorized: bool) -> exp.DataType:
    if call.this in SIGNED_INTEGERS + UNSIGNED_INTEGERS:
        return build("BIGINT")
    if call.this in WIDE_INTEGERS:
        # Rows: handed over as DECIMAL(38, 0), which every engine and Arrow carry, and made a
        # Python int exactly; arrays are int64. A value beyond either fails the engine's cast.
        return build("BIGINT") if vectorized else build("DECIMAL(38, 0)")
    if call.this == DType.DECIMAL:
        raise Mismatch(f"a {shown(call)} may hold fractions, which an int drops", fix=build("HUGEINT"))
    if call.this in FLOATS:
        raise Mismatch(f"a {shown(call)} may hold fractions, which an int drops", fix=build("BIGINT"))
    raise Mismatch("it is not an integer", fix=build("BIGINT"))


def _float_rule(call: exp.DataType, vectorized: bool) -> exp.DataType:
    if call.this in NUMBERS:
        return build("DOUBLE")
    raise Mismatch("it is not a number", fix=build("DOUBLE"))


def _decimal_rule(call: exp.DataType, vectorized: bool) -> exp.DataType:
    if call.this == DType.DECIMAL:
        return call
    if call.this in INTEGERS:
        return build("DECIMAL(38, 0)")
    raise Mismatch("only DECIMAL and integer values convert to a Decimal exactly", fix=build("DECIMAL(38, 9)"))


def _text_rule(call: exp.DataType, vectorized: bool) -> exp.DataType:
    if call.this in TEXTS:
        return build("VARCHAR")
    raise Mismatch("it is not text", fix=build("VARCHAR"))


def _bool_rule(call: exp.DataType, vectorized: bool) -> exp.DataType:
    if call.this == DType.BOOLEAN:
        return call
    raise Mismatch("it is not a BOOLEAN", fix=build("BOOLEAN"))


def _bytes_rule(call: exp.DataType, vectorized: bool) -> exp.DataType:
    if call.this in BINARIES:
        return build("BLOB")
    raise Mismatch("it is not binary", fix=build("BLOB"))


def _date_rule(call: exp.DataType, vectorized: bool) -> exp.DataType:
    if call.this == DType.DATE:
        return call
    if call.this in NAIVE_TIMESTAMPS + LOCAL_TIMESTAMPS + (DType.TIMESTAMP_NS, DType.TIMESTAMPTZ):
        raise Mismatch("a date drops its time of day", fix=build("DATE"))
    raise Mismatch("it is not a date", fix=build("DATE"))


def _naive_datetime_rule(call: exp.DataType, vectorized: bool) -> exp.DataType:
    if call.this in NAIVE_TIMESTAMPS + LOCAL_TIMESTAMPS + (DType.DATE,):
        return build("TIMESTAMP")
    if call.this == DType.TIMESTAMP_NS:
        raise Mismatch("a datetime holds microseconds, not nanoseconds", fix=build("TIMESTAMP"))
    if call.this == DType.TIMESTAMPTZ:
        raise Mismatch(
            "it is a zoned instant and the hint a naive datetime, which is ambiguous: hint "
            "mixmesh.AwareDatetime to receive it in UTC, or cast it to a TIMESTAMP (the engine's "
            "session time zone then decides the wall clock)",
            fix=build("TIMESTAMP"),
        )
    raise Mismatch("it is not a timestamp", fix=build("TIMESTAMP"))


def _aware_datetime_rule(call: exp.DataType, vectorized: bool) -> exp.DataType:
    if call.this in (DType.TIMESTAMPTZ,) + LOCAL_TIMESTAMPS:
        return build("TIMESTAMPTZ")
    if call.this in NAIVE_TIMESTAMPS + (DType.DATE, DType.TIMESTAMP_NS):
        raise Mismatch(
            "it has no time zone and the hint is an aware datetime, which is ambiguous: cast it "
            "to a TIMESTAMPTZ (the engine's session time zone then places it)",
            fix=build("TIMESTAMPTZ"),
        )
    raise Mismatch("it is not a timestamp", fix=build("TIMESTAMPTZ"))


def _time_rule(call: exp.DataType, vectorized: bool) -> exp.DataType:
    if call.this == DType.TIME:
        return call
    raise Mismatch("it is not a TIME", fix=build("TIME"))


FAMILIES: t.Dict[t.Any, t.Tuple[str, str, t.Callable[[exp.DataType, bool], exp.DataType]]] = {
    int: ("int", "BIGINT", _int_rule),
    float: ("float", "DOUBLE", _float_rule),
    decimal.Decimal: ("Decimal", "DECIMAL(38, 9)", _decimal_rule),
    str: ("str", "VARCHAR", _text_rule),
    bool: ("bool", "BOOLEAN", _bool_rule),
    bytes: ("bytes", "BLOB", _bytes_rule),
    dt.date: ("date", "DATE", _date_rule),
    dt.datetime: ("datetime", "TIMESTAMP", _naive_datetime_rule),
    dt.time: ("time", "TIME", _time_rule),
}


def family(hint: t.Any) -> Family:
    shown, default, rule = FAMILIES[hint]
    return Family(shown, default, rule)


def aware_datetime() -> Family:
    return Family("AwareDatetime", "TIMESTAMPTZ", _aware_datetime_rule)


# --- hints -> Accepts -------------------------------------------------------------------------


def of_hint(
    hint: t.Any, *, inside_struct: t.Optional[str] = None, namespace: t.Optional[t.Mapping[str, t.Any]] = None
) -> Accepts:
    """What a parameter with this hint accepts (None: unannotated). ``namespace``: where the
    quoted hints of the classes it names resolve (the function's globals)."""
    if hint is None or hint is t.Any or hint is object:
        return _open(hint, inside_struct)
    hint = types.strip_optional(hint)
    origin = t.get_origin(hint)
    if origin is t.Annotated:
        base, *extras = t.get_args(hint)
        if base is dt.datetime and types.TZ in extras:
            return aware_datetime()
        for extra in extras:
            if isinstance(extra, str):
                return Exact(types.parse_sql_type(extra))
            if isinstance(extra, type) or t.get_origin(extra) is not None:
                return of_hint(extra, inside_struct=inside_struct, namespace=namespace)
        return of_hint(base, inside_struct=inside_struct, namespace=namespace)
    if hint in FAMILIES:
        return family(hint)
    if hint in (list, t.List) or origin in (list, t.List):
        args = t.get_args(hint)
        element = of_hint(args[0] if args else None, inside_struct=inside_struct, namespace=namespace)
        return ListOf(element, _shown(hint))
    if hint in (dict, t.Dict) or origin in (dict, t.Dict):
        key, value = t.get_args(hint) or (None, None)
        return DictOf(
            of_hint(key, inside_struct=inside_struct, namespace=namespace),
            of_hint(value, inside_struct=inside_struct, namespace=namespace),
            _shown(hint),
        )
    if types.is_struct_hint(hint):
        return _struct(hint, namespace)
    raise types.NoSqlType(f"{_shown(hint)} has no SQL type")


def _open(hint: t.Any, inside_struct: t.Optional[str]) -> Accepts:
    if inside_struct is not None:
        raise types.NoSqlType(
            f"{inside_struct} is a declared struct, so each of its fields needs a type: "
            f"{'Any' if hint is not None else 'a field without a type'} leaves it open. Give the field "
            "its type, or hint the parameter Dict[str, Any] to take the call site's STRUCT as it is"
        )
    return AnyType("Any" if hint is not None else "unannotated")


def _struct(hint: type, namespace: t.Optional[t.Mapping[str, t.Any]]) -> StructOf:
    fields: t.Dict[str, Accepts] = {}
    for name, field_hint in types.field_hints(hint, namespace).items():
        fields[name] = of_hint(field_hint, inside_struct=f"{hint.__name__}.{name}", namespace=namespace)
    if not fields:
        raise types.NoSqlType(f"{hint.__name__} has no fields")
    return StructOf(hint, fields)


def _shown(hint: t.Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return repr(hint).replace("typing.", "")


# Values Python receives as text without loss: an ENUM's label, a UUID, a JSON document.
_AS_TEXT = (DType.ENUM, DType.UUID, DType.JSON)


def as_text_where_needed(sql_type: exp.DataType) -> exp.DataType:
    """``sql_type`` with ENUM, UUID and JSON (at any depth) as VARCHAR."""
    if not any(node.this in _AS_TEXT for node in sql_type.find_all(exp.DataType)):
        return sql_type

    def text(node: exp.Expr) -> exp.Expr:
        return build("VARCHAR") if isinstance(node, exp.DataType) and node.this in _AS_TEXT else node

    return sql_type.copy().transform(text)


# --- lossless widening between SQL types (explicit types) ----------------------------------

_INTEGER_BITS = {
    DType.TINYINT: (8, True), DType.SMALLINT: (16, True), DType.INT: (32, True), DType.BIGINT: (64, True),
    DType.INT128: (128, True), DType.UTINYINT: (8, False), DType.USMALLINT: (16, False),
    DType.UINT: (32, False), DType.UBIGINT: (64, False), DType.UINT128: (128, False),
}
_INTEGER_DIGITS = {8: 3, 16: 5, 32: 10, 64: 20, 128: 39}


def widens(source: exp.DataType, target: exp.DataType) -> bool:
    """Whether every value of ``source`` converts to ``target`` without loss."""
    if source == target:
        return True
    s, g = source.this, target.this
    if s in _INTEGER_BITS and g in _INTEGER_BITS:
        (s_bits, s_signed), (g_bits, g_signed) = _INTEGER_BITS[s], _INTEGER_BITS[g]
        if s_signed and not g_signed:
            return False
        return g_bits > s_bits or (g_bits == s_bits and s_signed == g_signed)
    if g in FLOATS:  # as ``float`` takes any number (and engines cast implicitly)
        return s in NUMBERS
    if g == DType.DECIMAL:
        g_precision, g_scale = types.decimal_params(target)
        if s == DType.DECIMAL:
            s_precision, s_scale = types.decimal_params(source)
            return s_scale <= g_scale and s_precision - s_scale <= g_precision - g_scale
        if s in _INTEGER_BITS:
            return _INTEGER_DIGITS[_INTEGER_BITS[s][0]] <= g_precision - g_scale
        return False
    if g in TEXTS:
        return s in TEXTS
    if g in BINARIES:
        return s in BINARIES
    if g in (DType.TIMESTAMP, DType.TIMESTAMPNTZ, DType.DATETIME):
        return s in NAIVE_TIMESTAMPS + LOCAL_TIMESTAMPS + (DType.DATE,)
    if g == DType.TIMESTAMPTZ:
        return s in LOCAL_TIMESTAMPS
    if g in LISTS and s in LISTS:
        return widens(source.expressions[0], target.expressions[0])
    if g == DType.MAP and s == DType.MAP:
        return all(widens(a, b) for a, b in zip(source.expressions, target.expressions))
    if g == DType.STRUCT and s == DType.STRUCT:
        theirs = {f.name.lower(): f.args["kind"] for f in source.expressions}
        ours = {f.name.lower(): f.args["kind"] for f in target.expressions}
        return theirs.keys() == ours.keys() and all(widens(theirs[k], ours[k]) for k in ours)
    return False


def _list_fix(accepts: ListOf) -> t.Optional[exp.DataType]:
    element = accepts.element.default()
    return None if element is None else exp.DataType(this=DType.ARRAY, expressions=[element], nested=True)


def _wrap_list(fix: t.Optional[exp.DataType]) -> t.Optional[exp.DataType]:
    return None if fix is None else exp.DataType(this=DType.ARRAY, expressions=[fix], nested=True)

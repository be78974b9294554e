"""Spark's name, how SQL types are written for it, and how a Python model's query is rendered."""

from __future__ import annotations

import typing as t

from sqlglot import exp

from mixmesh.core.errors import (
    FunctionDefinitionError,
)

if t.TYPE_CHECKING:
    from mixmesh.runtime.bindings import Binding



NAME = "spark"


def sql_type_of(spark_type_name: str) -> exp.DataType:
    """A Spark type (``array<struct<a:int>>``) as a sqlglot type. Spark's TIMESTAMP is an
    instant shown in the session's time zone: TIMESTAMPLTZ, which naive and aware datetime
    hints both take (``mixmesh.core.accepts``); TIMESTAMP_NTZ is a naive TIMESTAMP."""
    parsed = exp.DataType.build(spark_type_name, dialect=NAME)
    for node in list(parsed.find_all(exp.DataType)):
        if node.this == exp.DataType.Type.TIMESTAMPTZ:
            node.set("this", exp.DataType.Type.TIMESTAMPLTZ)
        elif node.this == exp.DataType.Type.TIMESTAMPNTZ:
            node.set("this", exp.DataType.Type.TIMESTAMP)
    return parsed


def spark_type(sql_type: exp.DataType, binding: t.Optional["Binding"] = None) -> str:
    """A SQL type as Spark's DDL writes it (``ARRAY<STRUCT<`at`: DOUBLE>>``), or a clear error."""
    unsupported = [
        node.sql("duckdb")
        for node in sql_type.find_all(exp.DataType)
        if node.this in _NO_SPARK_TYPE
    ]
    if unsupported:
        named = f"{binding.spec.qualified}: " if binding is not None else ""
        raise FunctionDefinitionError(
            f"{named}Spark has no type {unsupported[0]}; declare a type Spark has (a signed integer, "
            "DOUBLE, VARCHAR...)"
        )
    return sql_type.sql(NAME, identify=True)


_NO_SPARK_TYPE = {
    exp.DataType.Type.UTINYINT, exp.DataType.Type.USMALLINT, exp.DataType.Type.UINT, exp.DataType.Type.UBIGINT,
    exp.DataType.Type.TIME, exp.DataType.Type.INT128, exp.DataType.Type.UINT128,
}


def render(expression: exp.Expr) -> str:
    """A query as Spark reads it; ``:name`` placeholders stay Spark's named parameters."""
    return expression.sql(NAME)


# --- ARRAY_AGG(expr ORDER BY key): ordered on Spark too ---------------------------------------
#
# sqlglot writes ``ARRAY_AGG(x ORDER BY t)`` for Spark as ``COLLECT_LIST(x)``: the order is
# dropped, and so is every NULL ``x``. Spark has no ordered aggregate, so the rewrite collects
# structs of the keys and the value (a struct is never NULL: NULL values are kept), sorts
# them with a comparator that follows each key's direction and NULL placement, and keeps the
# values: ``TRANSFORM(ARRAY_SORT(COLLECT_LIST(STRUCT(t AS k0, x AS v)), cmp), e -> e.v)``, or
# NULL where nothing was collected, as ARRAY_AGG gives.
# Spark's ARRAY_SORT with a comparator is a stable sort (TimSort). With ``FILTER (WHERE c)``
# the struct is collected only where ``c`` holds (COLLECT_LIST skips the NULL of IF(c, ...)).

def ordered_array_agg(original: t.Callable[..., str]) -> t.Callable[..., str]:
    """Wrap the Spark generator's ``arrayagg_sql``: an ORDER BY inside keeps its order."""

    def arrayagg_sql(self: t.Any, expression: exp.ArrayAgg) -> str:
        if not _ordered(expression) or isinstance(expression.parent, exp.Window):
            return original(self, expression)
        return _sorted_values(self, expression, condition=None)

    return arrayagg_sql


def ordered_array_agg_filter(original: t.Callable[..., str]) -> t.Callable[..., str]:
    """Wrap ``filter_sql``: ``ARRAY_AGG(x ORDER BY t) FILTER (WHERE c)`` collects where c holds."""

    def filter_sql(self: t.Any, expression: exp.Filter) -> str:
        aggregate = expression.this
        if not isinstance(aggregate, exp.ArrayAgg) or not _ordered(aggregate) or isinstance(expression.parent, exp.Window):
            return original(self, expression)
        return _sorted_values(self, aggregate, condition=expression.expression.this)

    return filter_sql


def _ordered(expression: exp.ArrayAgg) -> bool:
    order = expression.this
    # DISTINCT with ORDER BY keeps sqlglot's rendering: distinct structs would not be distinct values.
    return isinstance(order, exp.Order) and bool(order.expressions) and not isinstance(order.this, exp.Distinct)


def _sorted_values(generator: t.Any, expression: exp.ArrayAgg, condition: t.Optional[exp.Expr]) -> str:
    order: exp.Order = expression.this
    keys = [generator.sql(ordered.this) for ordered in order.expressions]
    fields = ", ".join([*(f"{key} AS k{i}" for i, key in enumerate(keys)), f"{generator.sql(order.this)} AS v"])
    collected = f"STRUCT({fields})"
    if condition is not None:
        collected = f"IF({generator.sql(condition)}, {collected}, NULL)"
    comparator = _comparison(order.expressions)
    # NULL where nothing was collected, as ARRAY_AGG gives (COLLECT_LIST gives []); Spark
    # computes the repeated aggregate once.
    listed = f"CASE WHEN SIZE(COLLECT_LIST({collected})) = 0 THEN NULL ELSE COLLECT_LIST({collected}) END"
    return f"TRANSFORM(ARRAY_SORT({listed}, (l, r) -> {comparator}), e -> e.v)"


def _comparison(keys: t.Sequence[exp.Ordered]) -> str:
    """-1, 0 or 1 for two collected structs: the first key that differs decides (linear in
    the number of keys, where nesting each tie-break would double the text per key)."""
    if len(keys) == 1:
        return _compare_key(keys[0], 0)
    return f"COALESCE({', '.join(f'NULLIF({_compare_key(key, i)}, 0)' for i, key in enumerate(keys))}, 0)"


def _compare_key(key: exp.Ordered, index: int) -> str:
    descending = bool(key.args.get("desc"))
    # DuckDB's default puts NULLs last in either direction (sqlglot states it on the node).
    nulls_first = bool(key.args.get("nulls_first"))
    before, after = ("1", "-1") if descending else ("-1", "1")
    null_left, null_right = ("-1", "1") if nulls_first else ("1", "-1")
    left, right = f"l.k{index}", f"r.k{index}"
    return (
        f"CASE WHEN {left} IS NULL AND {right} IS NULL THEN 0 WHEN {left} IS NULL THEN {null_left} "
        f"WHEN {right} IS NULL THEN {null_right} WHEN {left} < {right} THEN {before} "
        f"WHEN {left} > {right} THEN {after} ELSE 0 END"
    )

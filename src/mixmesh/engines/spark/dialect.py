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

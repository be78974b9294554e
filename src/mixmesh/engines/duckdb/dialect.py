"""DuckDB's name, how SQL types are written for it, and how a Python model's query is rendered."""

from __future__ import annotations

import typing as t

from sqlglot import exp

if t.TYPE_CHECKING:
    pass



NAME = "duckdb"


def sql_type_of(duckdb_type: str) -> exp.DataType:
    """A DuckDB type as its name prints (``STRUCT(a INTEGER)[]``) as a sqlglot type."""
    return exp.DataType.build(duckdb_type, dialect=NAME)


def _duckdb_type(sql_type: t.Any) -> t.Any:
    import duckdb

    # Quoted: STRUCT field names may be keywords ("at", "order").
    return duckdb.sqltype(sql_type.sql(NAME, identify=True))


def render(expression: exp.Expr) -> str:
    """A query as DuckDB reads it; ``:name`` placeholders become DuckDB's ``$name``."""
    return expression.sql(NAME)

"""A Python model's query, with its parameters bound by DuckDB."""

from __future__ import annotations

import contextlib
import typing as t

from sqlglot import exp

from mixmesh.runtime import bindings

if t.TYPE_CHECKING:
    pass
from mixmesh.engines.duckdb.dialect import render
from mixmesh.engines.duckdb.sql_functions import create_sql_functions_on


@contextlib.contextmanager
def run(
    adapter: t.Any, expression: exp.Expr, params: t.Mapping[str, t.Any], *, staging: bool = False
) -> t.Iterator[t.Any]:
    """Run a query with bound parameters; yields DuckDB's result (arrow, df, fetchall...).

    A model's own queries get a cursor of their own, so that a result streamed batch by
    batch stays open while the batches are written. Queries about staging tables run on
    SQLMesh's cursor, the session that wrote them (a unit test runs in a transaction that
    other sessions do not see).
    """
    cursor = adapter.cursor if staging else adapter.connection.cursor()
    try:
        sql = render(expression)
        create_sql_functions_on(cursor, bindings.sql_functions_called(sql))  # TEMP: this cursor's own
        yield cursor.execute(sql, dict(params) or None)
    finally:
        if not staging:
            cursor.close()

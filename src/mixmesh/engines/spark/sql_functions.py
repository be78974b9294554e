"""Project SQL functions (``sql/udfs``) as temporary SQL functions of the session: nothing is
written to the catalog.
"""

from __future__ import annotations

import typing as t
import weakref

from sqlglot import exp

from mixmesh.runtime import bindings

if t.TYPE_CHECKING:
    from mixmesh.runtime.bindings import SqlFunctionBinding
from mixmesh.engines.spark.dialect import NAME
from mixmesh.engines.spark.functions import _lock

# session -> {engine-side name -> CREATE statement}: the project SQL functions created there.
_created: "weakref.WeakKeyDictionary[t.Any, t.Dict[str, str]]" = weakref.WeakKeyDictionary()


def create_sql_functions(adapter: t.Any, functions: t.Sequence["SqlFunctionBinding"]) -> None:
    """Create project SQL functions in the adapter's session, each once (callees first)."""
    create_sql_functions_in(adapter.spark, functions)


def create_sql_functions_in(spark: t.Any, functions: t.Sequence["SqlFunctionBinding"]) -> None:
    """``CREATE OR REPLACE TEMPORARY FUNCTION`` for each function not yet created in ``spark``."""
    for binding in functions:
        statement = temporary_function(binding)
        with _lock:
            created = _created.setdefault(spark, {})
            if created.get(binding.sql_name) == statement:
                continue
        try:
            spark.sql(statement)
        except Exception as error:
            raise _cannot_create(binding, error) from error
        with _lock:
            created[binding.sql_name] = statement


def temporary_function(binding: "SqlFunctionBinding") -> str:
    """A project SQL function as a Spark temporary SQL function; Spark's SQL functions declare
    their parameters' types (``CREATE FUNCTION f(a DOUBLE) RETURNS DOUBLE RETURN ...``).

    A DuckDB macro with typed parameters (``CREATE MACRO f(a DOUBLE) AS ...``, DuckDB 1.3+)
    is the same function: it becomes ``CREATE FUNCTION f(a DOUBLE) RETURN ...``, its return
    type derived by Spark from the body, as DuckDB derives a macro's.
    """
    definition = binding.definition()
    untyped = [p.name for p in definition.this.expressions if not isinstance(p, exp.ColumnDef) or p.kind is None]
    kind = definition.args.get("kind", "").upper()
    if untyped or kind not in ("FUNCTION", "MACRO"):
        raise _cannot_hold(binding, untyped)
    if kind == "MACRO":
        definition.set("kind", "FUNCTION")
        definition.set("expression", exp.Return(this=definition.expression))
    definition.set("replace", True)
    properties = definition.args.get("properties")
    kept = [p for p in (properties.expressions if properties is not None else []) if not isinstance(p, exp.TemporaryProperty)]
    definition.set("properties", exp.Properties(expressions=[exp.TemporaryProperty(), *kept]))
    return definition.sql(NAME)


def _cannot_hold(binding: "SqlFunctionBinding", untyped: t.List[str]) -> Exception:
    from mixmesh.core import sql_functions

    reason = (
        f"its parameter(s) {', '.join(untyped)} have no type" if untyped else "it is not a scalar SQL function"
    )
    return sql_functions.SqlFunctionError(
        f"{binding.function.describe()}: Spark cannot hold it as a temporary function: {reason}. Spark's "
        "SQL functions are written CREATE FUNCTION name(a DOUBLE, b STRING) RETURNS DOUBLE RETURN expression "
        "(in DuckDB's SQL: CREATE MACRO name(a DOUBLE, b VARCHAR) AS expression)"
    )


def _cannot_create(binding: "SqlFunctionBinding", error: Exception) -> Exception:
    from mixmesh.core import sql_functions

    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return sql_functions.SqlFunctionError(
        f"{binding.function.describe()}: Spark cannot create it: {bindings.plain_names(first_line)}"
    )

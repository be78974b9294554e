"""Project SQL functions (``sql/udfs``) as TEMP macros
(https://duckdb.org/docs/stable/sql/statements/create_macro).

A TEMP macro lives in its session's temporary catalog and disappears with it, so nothing is
ever written to the user's database (no macro per edited version piling up, nothing to clean,
``sqlmesh evaluate`` and read-only connections stay read-only). The price: a session sees only
its own TEMP macros, and each cursor is a session (SQLMesh runs each thread on its own cursor;
a rolled-back transaction takes the macros it created with it). So they are created with
``CREATE OR REPLACE`` on the very cursor that runs a statement calling them, right before it runs.
"""

from __future__ import annotations

import os
import threading
import typing as t

from sqlglot import exp

from mixmesh.runtime import bindings

if t.TYPE_CHECKING:
    from mixmesh.runtime.bindings import SqlFunctionBinding
from mixmesh.engines.duckdb.dialect import NAME

_lock = threading.Lock()


def create_sql_functions(adapter: t.Any, functions: t.Sequence["SqlFunctionBinding"]) -> None:
    """Create project SQL functions on the cursor that runs the adapter's next statement."""
    create_sql_functions_on(adapter.cursor, functions)


def create_sql_functions_on(cursor: t.Any, functions: t.Sequence["SqlFunctionBinding"]) -> None:
    """``CREATE OR REPLACE TEMP MACRO`` for each function, in order (callees first)."""
    import duckdb

    for binding in functions:
        try:
            cursor.execute(_create_macro_sql(binding))
        except duckdb.Error as error:
            raise _cannot_create(binding, error) from error


def _cannot_create(binding: "SqlFunctionBinding", error: Exception) -> Exception:
    """DuckDB binds a macro's body when it is created: a body calling an unknown function,
    say, fails here. The message names the function and, when known, its file and line."""
    from mixmesh.core import sql_functions

    function = binding.function
    loaded = bindings.known_functions().get(function.name)
    if function.location is None and loaded is not None and loaded.sql == function.sql:
        function = loaded
    return sql_functions.SqlFunctionError(
        f"{function.describe()}: DuckDB cannot create it: {bindings.plain_names(str(error))}"
    )


def _create_macro_sql(binding: "SqlFunctionBinding") -> str:
    with _lock:
        sql = _macro_statements.get(binding.sql_name)
    if sql is None:
        sql = _temp_macro(binding.definition())
        with _lock:
            _macro_statements[binding.sql_name] = sql
    return sql


_macro_statements: t.Dict[str, str] = {}  # engine-side name -> its CREATE statement


def _temp_macro(definition: exp.Create) -> str:
    """``CREATE OR REPLACE TEMP MACRO``, whatever the definition said (FUNCTION, TEMP or not)."""
    definition.set("kind", "MACRO")
    definition.set("replace", True)
    properties = definition.args.get("properties")
    kept = list(properties.expressions) if properties is not None else []
    definition.set("properties", exp.Properties(expressions=[exp.TemporaryProperty(), *kept]))
    return definition.sql(NAME)


def register_sql_functions(
    connection: t.Any, project: t.Union[str, "os.PathLike[str]"] = ".", *, dialect: str = NAME
) -> t.List[str]:
    """Create a project's SQL functions (``sql/udfs/*.sql``) on a plain DuckDB connection, under
    their own names, as TEMP macros: to try them or test them outside SQLMesh.

    Returns their names. ``dialect`` is the one the files are written in (the project's).
    """
    from pathlib import Path

    from mixmesh.core import sql_functions

    root = Path(project)
    files = sorted((root / sql_functions.FOLDER).rglob("*.sql"))
    functions = sql_functions.read_project(root, files, dialect)
    own_names = {name: name for name in functions}
    created: t.List[str] = []
    while len(created) < len(functions):  # callees first (read_project refused cycles)
        for name, function in functions.items():
            if name not in created and all(c in created for c in function.calls & own_names.keys()):
                connection.execute(_temp_macro(function.renamed(name, own_names)))
                created.append(name)
    return sorted(created)


def _sql_functions_called(sql: str) -> t.List["SqlFunctionBinding"]:
    return bindings.sql_functions_called(sql)

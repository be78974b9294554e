"""DuckDB: functions bound as Arrow UDFs on the connection SQLMesh runs queries on.

DuckDB calls an Arrow UDF once per vector (up to 2048 rows) with pyarrow arrays
(https://duckdb.org/docs/stable/clients/python/function). Functions registered on a
connection are visible to all its cursors, which is how SQLMesh's per-thread cursors see
them; the Python callable, though, is only kept alive by us (duckdb-python #530: a dangling
callable crashes the process), hence the strong references below.
"""

from __future__ import annotations

import re
import threading
import typing as t
import weakref

from mixmesh import types
from mixmesh.errors import FunctionCallError, FunctionRuntimeError, MixmeshError, where

if t.TYPE_CHECKING:
    from mixmesh.calling import BatchFunction

NAME = "duckdb"
SUPPORTS_ARROW_UDF = True
"""DuckDB hands Arrow arrays to Python functions, so batches need no conversion."""

# connection -> {engine-side name -> function}: what is bound where, and the strong references.
_bindings: "weakref.WeakKeyDictionary[t.Any, t.Dict[str, BatchFunction]]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()

_NO_MATCH = re.compile(r"No function matches the given name and argument types '(?P<name>\w+)\((?P<types>.*)\)'")
_RAISED = re.compile(
    r"Python exception occurred while executing the UDF: (?P<kind>\w+): (?P<message>.*?)(?:\n\nAt:|\Z)",
    re.DOTALL,
)


def bind(function: "BatchFunction", sql_name: str, adapter: t.Any) -> None:
    """Register ``function`` as ``sql_name`` on the adapter's DuckDB connection, once."""
    bind_connection(function, sql_name, adapter.connection)


def register(connection: t.Any, udf: t.Any, *, name: t.Optional[str] = None) -> str:
    """Make a ``@udf`` function callable in queries on a plain DuckDB connection.

    Returns the SQL name to call it by (``name``, or the function's SQL name).
    """
    from mixmesh.calling import BatchFunction

    sql_name = name or udf.spec.name
    bind_connection(BatchFunction(udf.spec), sql_name, connection)
    return sql_name


def bind_connection(function: "BatchFunction", sql_name: str, connection: t.Any) -> None:
    """Register ``function`` as ``sql_name`` on a DuckDB connection, once."""
    import duckdb

    with _lock:
        bound = _bindings.setdefault(connection, {})
        if sql_name in bound:
            return
        try:
            _create(connection, sql_name, function)
        except duckdb.NotImplementedException:
            # Registered on this connection before mixmesh tracked it (a reloaded module):
            # replace it so the connection runs this very version.
            connection.remove_function(sql_name)
            _create(connection, sql_name, function)
        bound[sql_name] = function


def _create(connection: t.Any, sql_name: str, function: "BatchFunction") -> None:
    import duckdb

    spec = function.spec
    connection.create_function(
        sql_name,
        function,
        [duckdb.sqltype(types.sql(arg.sql_type, NAME)) for arg in spec.args],
        duckdb.sqltype(types.sql(spec.returns, NAME)),
        type="arrow",
        # NULLs reach Python so that BatchFunction applies the function's own policy.
        null_handling="special",
    )


def explain_error(error: BaseException, bound: t.Mapping[str, "BatchFunction"]) -> t.Optional[Exception]:
    """The mixmesh error a DuckDB error stands for, if it is about a bound function."""
    message = str(error)
    raised = _RAISED.search(message)
    if raised and raised.group("kind") in _OUR_ERRORS:
        return _OUR_ERRORS[raised.group("kind")](raised.group("message").strip())
    no_match = _NO_MATCH.search(message)
    if no_match and no_match.group("name") in bound:
        return _wrong_argument_types(bound[no_match.group("name")], _split_types(no_match.group("types")))
    return None


_OUR_ERRORS: t.Dict[str, t.Type[MixmeshError]] = {
    cls.__name__: cls for cls in (FunctionRuntimeError, FunctionCallError, MixmeshError)
}


def _wrong_argument_types(function: "BatchFunction", actual: t.List[str]) -> FunctionCallError:
    spec = function.spec
    problems = []
    for position, (arg, got) in enumerate(zip(spec.args, actual), start=1):
        declared = types.sql(arg.sql_type, NAME)
        if not _same_type(got, declared) and not _both_numeric(got, declared):
            problems.append(f"argument {position} ({arg.name}) is {got}, declared {declared}")
    detail = "; ".join(problems) or (
        f"the arguments are ({', '.join(actual)}), declared "
        f"({', '.join(types.sql(arg.sql_type, NAME) for arg in spec.args)})"
    )
    return FunctionCallError(
        f"{where(spec.name, function.model)}: {detail}. Cast the argument in SQL "
        "(CAST(x AS type)) or change the function's type hint."
    )


def _split_types(text: str) -> t.List[str]:
    """Split ``'VARCHAR, STRUCT(a INTEGER, b VARCHAR)[]'`` at its top-level commas."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "(<[" and 1 or (-1 if char in ")>]" else 0)
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return parts + [current.strip()] if current.strip() else parts


def _same_type(left: str, right: str) -> bool:
    from sqlglot import exp

    try:
        return exp.DataType.build(left, dialect=NAME) == exp.DataType.build(right, dialect=NAME)
    except Exception:
        return left.upper() == right.upper()


def _both_numeric(left: str, right: str) -> bool:
    """DuckDB converts between numeric types by itself; a mismatch is elsewhere."""
    from sqlglot import exp

    try:
        return all(exp.DataType.build(side, dialect=NAME).is_type(*exp.DataType.NUMERIC_TYPES) for side in (left, right))
    except Exception:
        return False

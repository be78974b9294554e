"""DuckDB: functions bound as Python UDFs on the connection SQLMesh runs queries on.

Row functions are bound as DuckDB's native UDFs, vectorized ones as Arrow UDFs
(https://duckdb.org/docs/stable/clients/python/function). DuckDB calls an Arrow UDF once per
vector of at most 2048 rows, and handing a vector over as Arrow costs about as much as
calling a small Python function on each of its rows natively; so row functions go native.

Functions registered on a connection are visible to all its cursors, which is how SQLMesh's
per-thread cursors see them; the Python callable, though, is only kept alive by us
(duckdb-python #530: a dangling callable crashes the process), hence the strong references.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import typing as t
import uuid
import weakref

from sqlglot import exp

from mixmesh import types
from mixmesh.errors import FunctionCallError, FunctionRuntimeError, MixmeshError, where

if t.TYPE_CHECKING:
    from mixmesh.engines import Binding
    from mixmesh.functions import FunctionSpec

NAME = "duckdb"

# connection -> {engine-side name -> (spec, callable)}: what is bound where; the strong refs.
_bindings: "weakref.WeakKeyDictionary[t.Any, t.Dict[str, t.Tuple[FunctionSpec, t.Callable[..., t.Any]]]]" = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()

_NO_MATCH = re.compile(r"No function matches the given name and argument types '(?P<name>\w+)\((?P<types>.*)\)'")
_RAISED = re.compile(
    r"Python exception occurred while executing the UDF: (?P<kind>\w+): (?P<message>.*?)(?:\n\nAt:|\Z)",
    re.DOTALL,
)
_NULL_RESULT = "The returned result contained NULL values, but the 'null_handling' was set to DEFAULT"
_RETURN_CAST = re.compile(r"Failed to cast value: (?P<detail>.*)", re.DOTALL)


def bind(binding: "Binding", sql_name: str, adapter: t.Any) -> None:
    """Register a binding as ``sql_name`` on the adapter's DuckDB connection, once."""
    bind_connection(binding, sql_name, adapter.connection)


def register(connection: t.Any, udf: t.Any, *, name: t.Optional[str] = None) -> str:
    """Make a ``@udf`` function callable in queries on a plain DuckDB connection.

    Returns the SQL name to call it by (``name``, or the function's SQL name). Registering
    another function under a name already used on this connection replaces the first.
    """
    from mixmesh.engines import Binding

    sql_name = name or udf.spec.name
    bind_connection(Binding(udf.spec, None), sql_name, connection, replace=True)
    return sql_name


def bind_connection(binding: "Binding", sql_name: str, connection: t.Any, *, replace: bool = False) -> None:
    """Register ``binding`` as ``sql_name`` on a DuckDB connection.

    SQLMesh's names carry a digest of the code, so a name already bound is the same function
    (``replace=False``); ``register`` names are the user's and may change hands.
    """
    import duckdb

    with _lock:
        bound = _bindings.setdefault(connection, {})
        if sql_name in bound and (not replace or bound[sql_name][0] is binding.spec):
            return
        function = _callable(binding)
        try:
            _create(connection, sql_name, binding.spec, function)
        except duckdb.NotImplementedException:
            # Already registered on this connection (a replaced or reloaded function).
            connection.remove_function(sql_name)
            _create(connection, sql_name, binding.spec, function)
        bound[sql_name] = (binding.spec, function)


def _callable(binding: "Binding") -> t.Callable[..., t.Any]:
    from mixmesh.calling import BatchFunction, row_function

    spec = binding.spec
    if spec.vectorized:
        return BatchFunction(spec, binding.model)
    # DuckDB stores a NaN returned by a native UDF as NULL, and casts the text 'NaN' to NaN.
    python_skips_nulls = spec.null_handling == "strict" and _null_handling(spec) == "special"
    return row_function(
        spec, binding.model, nan_as_text=True, skip_nulls=python_skips_nulls, source=binding.source
    )


def _null_handling(spec: "FunctionSpec") -> str:
    """DuckDB's "default" skips rows with a NULL argument, in C, but refuses a NULL result.

    So strict row functions that cannot return NULL (their hint says so) use it; the others
    get "special", where NULLs reach Python and BatchFunction or the row wrapper apply the
    function's own policy.
    """
    if spec.vectorized or spec.null_handling == "call" or spec.may_return_null:
        return "special"
    return "default"


def _create(connection: t.Any, sql_name: str, spec: "FunctionSpec", function: t.Callable[..., t.Any]) -> None:
    connection.create_function(
        sql_name,
        function,
        [_duckdb_type(arg.sql_type) for arg in spec.args],
        _duckdb_type(spec.returns),
        type="arrow" if spec.vectorized else "native",
        null_handling=_null_handling(spec),
    )


def _duckdb_type(sql_type: t.Any) -> t.Any:
    import duckdb

    # Quoted: STRUCT field names may be keywords ("at", "order").
    return duckdb.sqltype(sql_type.sql(NAME, identify=True))


# --- queries of Python models -----------------------------------------------------------------


def render(expression: exp.Expr) -> str:
    """A query as DuckDB reads it; ``:name`` placeholders become DuckDB's ``$name``."""
    return expression.sql(NAME)


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
        yield cursor.execute(render(expression), dict(params) or None)
    finally:
        if not staging:
            cursor.close()


# Staging tables live in the database, not in memory: DuckDB keeps TEMP tables in memory,
# which for a large model doubles what it holds. Their names carry the process id.
STAGING_SCHEMA = "mixmesh_staging"
_live_staging: t.Set[str] = set()  # this process's staging tables still in use


def create_staging(adapter: t.Any, columns: t.Mapping[str, exp.DataType]) -> str:
    """A table for a model's batches, dropped once SQLMesh has written from it."""
    cursor = adapter.cursor
    cursor.execute(exp.Create(kind="SCHEMA", this=exp.to_identifier(STAGING_SCHEMA), exists=True).sql(NAME))
    _drop_stale_staging(cursor)
    name = f"{STAGING_SCHEMA}.s_{os.getpid()}_{uuid.uuid4().hex}"
    schema = exp.Schema(
        this=exp.to_table(name),
        expressions=[exp.ColumnDef(this=exp.to_identifier(c, quoted=True), kind=k.copy()) for c, k in columns.items()],
    )
    with _lock:  # live before it exists: a concurrent clean-up must not take it for stale
        _live_staging.add(name)
    cursor.execute(exp.Create(kind="TABLE", this=schema).sql(NAME))
    return name


def _drop_stale_staging(cursor: t.Any) -> None:
    """Staging tables no run uses: another process's (one that died: DuckDB has a single
    writer process) or this process's that could not be dropped when their run ended."""
    tables = cursor.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [STAGING_SCHEMA]
    ).fetchall()
    with _lock:
        live = set(_live_staging)
    for (table,) in tables:
        name = f"{STAGING_SCHEMA}.{table}"
        if name not in live:
            drop_staging_table(cursor, name)


def append_staging(adapter: t.Any, staging: str, table: t.Any) -> None:
    """Append an Arrow table, read by DuckDB in place (no copy through Python objects)."""
    view = f"mixmesh_batch_{uuid.uuid4().hex}"
    cursor = adapter.cursor
    cursor.register(view, table)
    try:
        cursor.execute(exp.insert(exp.select("*").from_(view), staging).sql(NAME))
    finally:
        cursor.unregister(view)


def drop_staging(adapter: t.Any, staging: str) -> None:
    drop_staging_table(adapter.cursor, staging)
    with _lock:
        _live_staging.discard(staging)


def drop_staging_table(cursor: t.Any, staging: str) -> None:
    cursor.execute(exp.Drop(kind="TABLE", this=exp.to_table(staging), exists=True).sql(NAME))


def explain_error(error: BaseException, sql: str, bound: t.Mapping[str, "Binding"]) -> t.Optional[Exception]:
    """The mixmesh error a DuckDB error stands for, if it is about a bound function."""
    message = str(error)
    raised = _RAISED.search(message)
    if raised and raised.group("kind") in _OUR_ERRORS:
        return _OUR_ERRORS[raised.group("kind")](raised.group("message").strip())
    no_match = _NO_MATCH.search(message)
    if no_match and no_match.group("name") in bound:
        return _wrong_argument_types(bound[no_match.group("name")], _split_types(no_match.group("types")))
    cast = _RETURN_CAST.search(message)
    if cast:
        return _wrong_return_value(cast.group("detail").strip(), _called_in(sql, bound))
    if _NULL_RESULT in message:
        return _unexpected_null(_called_in(sql, bound))
    return None


_OUR_ERRORS: t.Dict[str, t.Type[MixmeshError]] = {
    cls.__name__: cls for cls in (FunctionRuntimeError, FunctionCallError, MixmeshError)
}


def _called_in(sql: str, bound: t.Mapping[str, "Binding"]) -> t.List["Binding"]:
    """The row functions a query calls (the ones DuckDB converts return values for)."""
    lowered = sql.lower()
    return [b for name, b in bound.items() if not b.spec.vectorized and f"{name.lower()}(" in lowered]


def _wrong_return_value(detail: str, candidates: t.List["Binding"]) -> t.Optional[FunctionRuntimeError]:
    if not candidates:
        return None
    named = " or ".join(
        f"{where(b.spec.name, b.model)} (declared {types.sql(b.spec.returns, NAME)})" for b in candidates
    )
    return FunctionRuntimeError(f"{named} returned a value that does not convert to its declared type: {detail}")


def _unexpected_null(candidates: t.List["Binding"]) -> t.Optional[FunctionRuntimeError]:
    candidates = [b for b in candidates if not b.spec.may_return_null]
    if not candidates:
        return None
    named = " or ".join(where(b.spec.name, b.model) for b in candidates)
    return FunctionRuntimeError(
        f"{named} returned None for a row without NULL arguments, but its return hint does not "
        "allow None; hint Optional[...] (e.g. -> Optional[float]) for a function that returns NULL"
    )


def _wrong_argument_types(binding: "Binding", actual: t.List[str]) -> FunctionCallError:
    spec = binding.spec
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
        f"{where(spec.name, binding.model)}: {detail}. Cast the argument in SQL "
        "(CAST(x AS type)) or change the function's type hint."
    )


def _split_types(text: str) -> t.List[str]:
    """Split ``'VARCHAR, STRUCT(a INTEGER, b VARCHAR)[]'`` at its top-level commas."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "(<[":
            depth += 1
        elif char in ")>]":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return parts + [current.strip()] if current.strip() else parts


def _parse(sql_type: str) -> t.Any:
    from sqlglot import exp

    try:
        return exp.DataType.build(sql_type, dialect=NAME)
    except Exception:
        return None


def _same_type(left: str, right: str) -> bool:
    parsed = _parse(left), _parse(right)
    return parsed[0] == parsed[1] if None not in parsed else left.upper() == right.upper()


def _both_numeric(left: str, right: str) -> bool:
    """DuckDB converts between numeric types by itself; a mismatch is elsewhere."""
    from sqlglot import exp

    parsed = _parse(left), _parse(right)
    return None not in parsed and all(p.is_type(*exp.DataType.NUMERIC_TYPES) for p in parsed)

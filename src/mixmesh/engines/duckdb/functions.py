"""Functions bound as Python UDFs on the connection SQLMesh runs queries on.

Row functions are bound as DuckDB's native UDFs, vectorized ones as Arrow UDFs
(https://duckdb.org/docs/stable/clients/python/function). DuckDB calls an Arrow UDF once per
vector of at most 2048 rows, and handing a vector over as Arrow costs about as much as
calling a small Python function on each of its rows natively; so row functions go native
(a row function with a timeout, a rate limit, concurrency or async def excepted: its rows run
per vector, see ``_by_batch``).

Functions registered on a connection are visible to all its cursors, which is how SQLMesh's
per-thread cursors see them; the Python callable, though, is only kept alive by us
(duckdb-python #530: a dangling callable crashes the process), hence the strong references.
"""

from __future__ import annotations

import threading
import typing as t
import weakref

from sqlglot import exp

from mixmesh.runtime import bindings

if t.TYPE_CHECKING:
    from mixmesh.core.functions import FunctionSpec
    from mixmesh.runtime.bindings import Binding
from mixmesh.engines.duckdb.dialect import NAME, _duckdb_type, sql_type_of
from mixmesh.engines.duckdb.sql_functions import create_sql_functions_on

# connection -> {engine-side name -> (spec, callable)}: what is bound where; the strong refs.
_bindings: "weakref.WeakKeyDictionary[t.Any, t.Dict[str, t.Tuple[FunctionSpec, t.Callable[..., t.Any]]]]" = (
    weakref.WeakKeyDictionary()
)


_lock = threading.Lock()


def bind(binding: "Binding", sql_name: str, adapter: t.Any) -> None:
    """Register a binding as ``sql_name`` on the adapter's DuckDB connection, once."""
    bind_connection(binding, sql_name, adapter.connection)


def describe(
    adapter: t.Any, query: exp.Query, params: t.Optional[t.Mapping[str, t.Any]] = None, *, cursor: t.Any = None
) -> t.List[exp.DataType]:
    """The types of a query's columns as DuckDB binds it, on the cursor that runs the
    statement (it sees that session's TEMP objects and open transaction); nothing runs."""
    cursor = cursor or adapter.cursor
    sql = query.sql(NAME)
    create_sql_functions_on(cursor, bindings.sql_functions_called(sql))
    relation = cursor.sql(sql, params=dict(params) if params else None)
    return [sql_type_of(str(duckdb_type)) for duckdb_type in relation.types]


def register(
    connection: t.Any, udf: t.Any, *, name: t.Optional[str] = None, args: t.Optional[t.Mapping[str, str]] = None
) -> str:
    """Make a ``@udf`` function callable in queries on a plain DuckDB connection.

    Returns the SQL name to call it by (``name``, or the function's SQL name). ``args``: SQL
    types of the arguments whose hints leave the type to the call site (``Any``, ``dict``...),
    which a plain connection does not show. Registering
    another function under a name already used on this connection replaces the first.
    """
    from mixmesh.runtime.bindings import Binding, registered_spec

    sql_name = name or udf.spec.name
    spec = registered_spec(udf.spec, args)
    bind_connection(Binding(spec, None), sql_name, connection, replace=True)
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
        function = _callable(binding, connection)
        try:
            _create(connection, sql_name, binding.spec, function)
        except duckdb.NotImplementedException:
            # Already registered on this connection (a replaced or reloaded function).
            connection.remove_function(sql_name)
            _create(connection, sql_name, binding.spec, function)
        bound[sql_name] = (binding.spec, function)


def _callable(binding: "Binding", connection: t.Any) -> t.Callable[..., t.Any]:
    from mixmesh.runtime.batches import BatchFunction
    from mixmesh.runtime.rows import RowBatchFunction, row_function

    spec = binding.spec
    if spec.cache is not None:  # its results kept in this connection's database
        from mixmesh.runtime.cache import CachedRows, use_warehouse

        return CachedRows(spec, binding.model, source=binding.source, warehouse=use_warehouse(connection))
    if spec.vectorized:
        return BatchFunction(spec, binding.model)
    if _by_batch(spec):
        return RowBatchFunction(spec, binding.model, source=binding.source)
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
    if spec.vectorized or _by_batch(spec) or spec.null_handling == "call" or spec.may_return_null:
        return "special"
    return "default"


def _by_batch(spec: "FunctionSpec") -> bool:
    """A row function with a timeout is bound as an Arrow function running its rows per
    batch: each row under its deadline in one worker thread, not a thread switch per row.
    So is a cached one: one cache lookup per batch, not per row."""
    from mixmesh.core.resilience import timeout_of

    # Rows in flight together (concurrency, async def) need the vector's rows at once too; a
    # rate-limited function's batches report the rate achieved (it waits anyway).
    # A cached function looks a whole vector's keys up at once.
    by_batch = (
        timeout_of(spec.policies) is not None or spec.runs_rows_together or spec.rate_limit is not None
        or spec.cache is not None
    )
    return not spec.vectorized and by_batch


def _create(connection: t.Any, sql_name: str, spec: "FunctionSpec", function: t.Callable[..., t.Any]) -> None:
    connection.create_function(
        sql_name,
        function,
        [_duckdb_type(arg.sql_type) for arg in spec.args],
        _duckdb_type(spec.returns),
        type="arrow" if spec.vectorized or _by_batch(spec) else "native",
        null_handling=_null_handling(spec),
        side_effects=not spec.deterministic,  # else DuckDB may compute equal calls once
    )

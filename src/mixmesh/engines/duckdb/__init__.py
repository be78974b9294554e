"""DuckDB: functions bound as Python UDFs on the connection SQLMesh runs queries on.

Row functions are bound as DuckDB's native UDFs, vectorized ones as Arrow UDFs
(https://duckdb.org/docs/stable/clients/python/function). DuckDB calls an Arrow UDF once per
vector of at most 2048 rows, and handing a vector over as Arrow costs about as much as
calling a small Python function on each of its rows natively; so row functions go native.

Functions registered on a connection are visible to all its cursors, which is how SQLMesh's
per-thread cursors see them; the Python callable, though, is only kept alive by us
(duckdb-python #530: a dangling callable crashes the process), hence the strong references.

Project SQL functions (``sql/udfs``) become TEMP macros
(https://duckdb.org/docs/stable/sql/statements/create_macro): a TEMP macro lives in its
session's temporary catalog and disappears with it, so nothing is ever written to the user's
database (no macro per edited version piling up, nothing to clean, ``sqlmesh evaluate`` and
read-only connections stay read-only). The price: a session sees only its own TEMP macros,
and each cursor is a session (SQLMesh runs each thread on its own cursor; a rolled-back
transaction takes the macros it created with it). So they are created with ``CREATE OR
REPLACE`` on the very cursor that runs a statement calling them, right before it runs.
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

from mixmesh.core import sql_types as types
from mixmesh.core.errors import FunctionCallError, FunctionRuntimeError, MixmeshError, where
from mixmesh.runtime import bindings

if t.TYPE_CHECKING:
    from mixmesh.engines import Binding, SqlFunctionBinding
    from mixmesh.core.functions import FunctionSpec

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
_UNKNOWN_FUNCTION = re.compile(
    r"(?P<kind>Scalar|Table) Function with name (?P<name>\w+) does not exist!(?P<hint>\s*Did you mean \"[^\"]*\"\?)?"
)
_NULL_RESULT = "The returned result contained NULL values, but the 'null_handling' was set to DEFAULT"
_RETURN_CAST = re.compile(r"Failed to cast value: (?P<detail>.*)", re.DOTALL)


def bind(binding: "Binding", sql_name: str, adapter: t.Any) -> None:
    """Register a binding as ``sql_name`` on the adapter's DuckDB connection, once."""
    bind_connection(binding, sql_name, adapter.connection)


def describe(
    adapter: t.Any, query: exp.Query, params: t.Optional[t.Mapping[str, t.Any]] = None, *, cursor: t.Any = None
) -> t.List[exp.DataType]:
    """The types of a query's columns as DuckDB binds it, on the cursor that runs the
    statement (it sees that session's TEMP objects and open transaction); nothing runs."""
    from mixmesh import engines

    cursor = cursor or adapter.cursor
    sql = query.sql(NAME)
    create_sql_functions_on(cursor, engines.sql_functions_called(sql))
    relation = cursor.sql(sql, params=dict(params) if params else None)
    return [sql_type_of(str(duckdb_type)) for duckdb_type in relation.types]


def sql_type_of(duckdb_type: str) -> exp.DataType:
    """A DuckDB type as its name prints (``STRUCT(a INTEGER)[]``) as a sqlglot type."""
    return exp.DataType.build(duckdb_type, dialect=NAME)


def register(
    connection: t.Any, udf: t.Any, *, name: t.Optional[str] = None, args: t.Optional[t.Mapping[str, str]] = None
) -> str:
    """Make a ``@udf`` function callable in queries on a plain DuckDB connection.

    Returns the SQL name to call it by (``name``, or the function's SQL name). ``args``: SQL
    types of the arguments whose hints leave the type to the call site (``Any``, ``dict``...),
    which a plain connection does not show. Registering
    another function under a name already used on this connection replaces the first.
    """
    from mixmesh.engines import Binding, registered_spec

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
        function = _callable(binding)
        try:
            _create(connection, sql_name, binding.spec, function)
        except duckdb.NotImplementedException:
            # Already registered on this connection (a replaced or reloaded function).
            connection.remove_function(sql_name)
            _create(connection, sql_name, binding.spec, function)
        bound[sql_name] = (binding.spec, function)


def _callable(binding: "Binding") -> t.Callable[..., t.Any]:
    from mixmesh.runtime.calling import BatchFunction, RowBatchFunction, row_function

    spec = binding.spec
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
    batch: each row under its deadline in one worker thread, not a thread switch per row."""
    from mixmesh.core.resilience import timeout_of

    return not spec.vectorized and timeout_of(spec.policies) is not None


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
    from mixmesh import engines
    from mixmesh.core import sql_functions

    function = binding.function
    loaded = bindings.known_functions().get(function.name)
    if function.location is None and loaded is not None and loaded.sql == function.sql:
        function = loaded
    return sql_functions.SqlFunctionError(
        f"{function.describe()}: DuckDB cannot create it: {engines.plain_names(str(error))}"
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
    from mixmesh import engines

    cursor = adapter.cursor if staging else adapter.connection.cursor()
    try:
        sql = render(expression)
        create_sql_functions_on(cursor, engines.sql_functions_called(sql))  # TEMP: this cursor's own
        yield cursor.execute(sql, dict(params) or None)
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


_tidied: "weakref.WeakSet[t.Any]" = weakref.WeakSet()  # connection pools already cleared of stale tables


def drop_dead_staging(adapter: t.Any) -> None:
    """Once per connection pool, at its first statement: drop the staging tables no run of
    this process uses, i.e. those a killed run left (kill -9 runs no clean-up). Without
    this they stayed until some Python model landed again. Never fails the statement."""
    pool = adapter._connection_pool
    with _lock:
        if pool in _tidied:
            return
        _tidied.add(pool)
    try:
        cursor = adapter.connection.cursor()  # its own transaction, whatever SQLMesh's cursor is in
    except Exception:  # noqa: BLE001 - no connection yet: a later landing clears them
        return
    try:
        _drop_stale_staging(cursor)
    except Exception as error:  # noqa: BLE001 - read-only, or a conflict: a later landing clears them
        import logging

        logging.getLogger(__name__).debug("stale staging tables left for a later run: %s", error)
    finally:
        cursor.close()


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
    unknown = _UNKNOWN_FUNCTION.search(message)
    if unknown:
        return _unknown_function(error, message, unknown)
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


def _unknown_function(error: BaseException, message: str, unknown: "re.Match[str]") -> t.Optional[Exception]:
    """DuckDB's suggestion for a misspelt function is one of its own; a project SQL function
    with a close name is the likelier one (DuckDB does not know it in a session that has not
    created it yet)."""
    import difflib


    known = bindings.known_functions()
    close = difflib.get_close_matches(unknown.group("name").lower(), list(known), n=1, cutoff=0.75)
    if not close:
        return None
    function = known[close[0]]
    hint = f' Did you mean the project SQL function "{function.name}"' + (
        f" ({function.location})?" if function.location else "?"
    )
    start, end = unknown.span("hint") if unknown.group("hint") else (unknown.end(), unknown.end())
    try:
        return type(error)(message[:start] + hint + message[end:])
    except Exception:
        return FunctionCallError(message[:start] + hint + message[end:])


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


# --- the fast path (mixmesh.fastpath): a split statement run as a stream ------------------
#
# The inner query runs on a second cursor of the same database and streams out as Arrow
# record batches; the computed stream is registered on SQLMesh's cursor under the stage's
# name and the outer statement reads it there. Nothing is materialized but the batches in
# flight. Two things keep it exact:
# - a stream can be read once: where DuckDB's plan would scan it twice (its window self-join
#   rewrite turns ``agg() OVER (PARTITION BY k)`` into a join of the input with its own
#   aggregate), the outer statement reads it through a MATERIALIZED CTE instead;
# - a second cursor sees what is committed only: inside a transaction that wrote something,
#   it streams only queries reading base tables the transaction did not write.

# The reader cursor exports DuckDB's own types losslessly (HUGEINT, UUID, JSON... as Arrow
# extension types; the default, HUGEINT as DECIMAL(38,0), is slower too); only an ENUM
# comes back as VARCHAR: the outer statement casts such columns back.
_CHANGED_BY_ARROW = re.compile(r"\bENUM\b")
_NESTED = re.compile(r"\[\]|\[\d+\]|\b(STRUCT|MAP|UNION)\(")
_WRITES = re.compile(r"^\s*(INSERT|DELETE|UPDATE|CREATE|DROP|ALTER|MERGE|TRUNCATE|COPY|REPLACE)\b", re.IGNORECASE)
_BEGINS = re.compile(r"^\s*(BEGIN|START\s+TRANSACTION)\b", re.IGNORECASE)
_ENDS = re.compile(r"^\s*(COMMIT|ROLLBACK|END|ABORT)\b", re.IGNORECASE)
_COMMENTS = re.compile(r"^\s*(/\*.*?\*/\s*|--[^\n]*\n\s*)*", re.DOTALL)
UNKNOWN_WRITE = "*"


class _Session:
    """What the fast path keeps about one SQLMesh cursor (a thread of a connection pool)."""

    def __init__(self) -> None:
        self.begun_in_sql = False  # a BEGIN statement, which SQLMesh's pool does not know about
        self.writes: t.Set[str] = set()  # tables written in the open transaction
        self.undo: t.List[t.Callable[[], t.Any]] = []  # to do before the cursor's next statement


_sessions: t.Dict[t.Tuple[int, int], _Session] = {}


def _session(adapter: t.Any) -> _Session:
    return _sessions.setdefault((id(adapter._connection_pool), threading.get_ident()), _Session())


def observe_statement(adapter: t.Any, sql: str) -> None:
    """Before each statement: undo what the last stream changed on the cursor; note the
    tables a statement writes while a transaction is open."""
    session = _session(adapter)
    for undo in session.undo:
        with contextlib.suppress(Exception):  # a closed cursor took its views with it
            undo()
    session.undo.clear()
    text = sql[_COMMENTS.match(sql).end():]
    if _ENDS.match(text):
        session.begun_in_sql, session.writes = False, set()
    elif _BEGINS.match(text):
        session.begun_in_sql = True
    elif not (session.begun_in_sql or adapter._connection_pool.is_transaction_active):
        session.writes = set()
    elif _WRITES.match(text):
        session.writes |= _written_tables(text)


def _written_tables(sql: str) -> t.Set[str]:
    import sqlglot

    try:
        statement = sqlglot.parse_one(sql, read=NAME)
    except sqlglot.errors.SqlglotError:
        return {UNKNOWN_WRITE}
    target = statement.this
    table = target.this if isinstance(target, exp.Schema) else target
    return {table.name.lower()} if isinstance(table, exp.Table) else {UNKNOWN_WRITE}


def execute_split(adapter: t.Any, split: t.Any, compute: t.Any, execute: t.Callable[[str], t.Any]) -> t.Optional[str]:
    """Run a split statement as a stream (see above). None when it ran; else why it did not
    (the caller then runs the statement plainly: nothing was written yet)."""
    import duckdb
    import pyarrow as pa

    session = _session(adapter)
    reader_cursor = adapter.connection.cursor()
    try:
        unseen = _unseen_writes(session, split.inner, reader_cursor)
        if unseen:
            return f"the open transaction wrote {unseen}, which the query may read"
        reader_cursor.execute("SET SESSION arrow_lossless_conversion = true")
        _same_time_zone(adapter.cursor, reader_cursor)
        inner_sql = split.inner.sql(NAME)
        called = _sql_functions_called(inner_sql)
        if called:
            create_sql_functions_on(reader_cursor, called)
        threads = _threads(reader_cursor)
        try:
            reader_cursor.sql(split.binding_check.sql(NAME))
            relation = reader_cursor.sql(inner_sql)
        except duckdb.Error as error:  # the plain statement will say it better, or work
            return f"the inner query does not bind on another cursor: {str(error).splitlines()[0]}"
        if any(_NESTED.search(str(duckdb_type)) for duckdb_type in relation.types):
            relation = _materialized(reader_cursor, split)
        casts = {
            name: exp.DataType.build(str(duckdb_type), dialect=NAME)
            for name, duckdb_type in zip(relation.columns, relation.types)
            if _CHANGED_BY_ARROW.search(str(duckdb_type))
        }
        batches = relation.to_arrow_reader(compute.rows_per_batch)
        schema = pa.schema(list(batches.schema) + compute.result_fields())
        stream = compute.stream(batches, threads)
        cursor = adapter.cursor
        cursor.register(split.stage, pa.RecordBatchReader.from_batches(schema, iter(stream)))
        # Not undone now: that would discard the cursor's result, which SQLMesh reads next.
        session.undo.append(lambda: cursor.unregister(split.stage))
        try:
            statement = split.statement_sql(NAME, casts)
            if _stream_scans(cursor, statement) > 1:
                statement = split.statement_sql(NAME, casts, materialized=True)
                if _stream_scans(cursor, statement) > 1:
                    return "the engine's plan reads the stream more than once"
            execute(statement)
        except (duckdb.BinderException, duckdb.CatalogException, duckdb.ParserException) as error:
            if stream.error is not None:
                raise stream.error from None
            # Refused before it ran (nothing written): the split was not valid SQL here.
            return f"the split statement does not bind: {str(error).splitlines()[0]}"
        except Exception:
            if stream.error is not None:
                raise stream.error from None
            raise
        return None
    finally:
        reader_cursor.close()


def _same_time_zone(cursor: t.Any, reader_cursor: t.Any) -> None:
    """The reader reads in the session's time zone (a model's ``SET TimeZone`` pre-statement):
    a cursor is a session of its own, and zone-dependent expressions (``strftime`` of a
    TIMESTAMPTZ, a cast to TIMESTAMP) must give what the plain statement gives."""
    (zone,) = cursor.execute("SELECT current_setting('TimeZone')").fetchone()
    reader_cursor.execute("SET SESSION TimeZone = $zone", {"zone": zone})


def _materialized(cursor: t.Any, split: t.Any) -> t.Any:
    """The inner query's rows in a TEMP table of the reader's session (gone with it).

    DuckDB exports lists and structs fast from a table and slowly as a query computes them:
    the seed's ``ARRAY_AGG(STRUCT(...) ORDER BY ...)`` over 1M transactions took 1.6 s to
    aggregate, then 0.08 s to export from a table but 1.0 s more straight from the query.
    """
    table = exp.to_table(f"{split.stage}_rows", dialect=NAME)
    table.this.set("quoted", True)
    cursor.execute(exp.Create(
        this=table, kind="TABLE", expression=split.inner.copy(),
        properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
    ).sql(NAME))
    return cursor.sql(exp.select("*").from_(table).sql(NAME))


def _stream_scans(cursor: t.Any, statement: str) -> int:
    """How many times the statement's plan scans an Arrow stream (the stage is the one)."""
    import json

    plan = json.loads(cursor.execute(f"EXPLAIN (FORMAT JSON) {statement}").fetchall()[0][1])

    def scans(node: t.Any) -> int:
        if isinstance(node, list):
            return sum(scans(child) for child in node)
        own = int(node.get("name", "").strip() == "ARROW_SCAN")
        return own + scans(node.get("children", []))

    return scans(plan)


def _unseen_writes(session: _Session, inner: exp.Expr, cursor: t.Any) -> str:
    """What the open transaction wrote that the inner query may read (through a view or a
    table function too), or "" when it reads only base tables it did not write."""
    if not session.writes:
        return ""
    if UNKNOWN_WRITE in session.writes:
        return "tables mixmesh cannot name"
    ctes = {cte.alias_or_name.lower() for cte in inner.find_all(exp.CTE)}
    read = [table for table in inner.find_all(exp.Table) if table.name.lower() not in ctes]
    if any(not isinstance(table.this, exp.Identifier) for table in read):
        return "something (the query reads a table function)"
    names = {table.name.lower() for table in read}
    written = names & session.writes
    if written:
        return ", ".join(sorted(written))
    base_tables = {name.lower() for (name,) in cursor.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    views = names - base_tables
    return f"something ({', '.join(sorted(views))} is not a base table)" if views else ""


def _sql_functions_called(sql: str) -> t.List["SqlFunctionBinding"]:
    from mixmesh import engines

    return engines.sql_functions_called(sql)


def _threads(cursor: t.Any) -> int:
    """As many computing threads as the engine runs query threads."""
    try:
        return int(cursor.execute("SELECT current_setting('threads')").fetchone()[0])
    except Exception:  # noqa: BLE001 - a setting we cannot read: the cores
        return os.cpu_count() or 1

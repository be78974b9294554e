"""The fast path (``mixmesh.fastpath``) on DuckDB: a split statement run as a stream.

The inner query runs on a second cursor of the same database and streams out as Arrow
record batches; the computed stream is registered on SQLMesh's cursor under the stage's
name and the outer statement reads it there. Nothing is materialized but the batches in
flight. Two things keep it exact:

- a stream can be read once: where DuckDB's plan would scan it twice (its window self-join
  rewrite turns ``agg() OVER (PARTITION BY k)`` into a join of the input with its own
  aggregate), the outer statement reads it through a MATERIALIZED CTE instead;
- a second cursor sees what is committed only: inside a transaction that wrote something,
  it streams only queries reading base tables the transaction did not write.
"""

from __future__ import annotations

import contextlib
import re
import threading
import typing as t

from sqlglot import exp

if t.TYPE_CHECKING:
    pass
from mixmesh.core.cpus import usable_cpus
from mixmesh.engines.duckdb import ordered_lists, plans
from mixmesh.engines.duckdb.dialect import NAME
from mixmesh.engines.duckdb.sql_functions import (
    _sql_functions_called,
    create_sql_functions_on,
)

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


def faster_statement(adapter: t.Any, sql: str) -> t.Optional[t.Tuple[exp.Expr, str]]:
    """``sql`` as DuckDB runs it faster, and what changed; None when nothing would
    (``ordered_lists``: ordered list aggregates built by sorting each list)."""
    import sqlglot

    if not ordered_lists.may_hold(sql):
        return None
    try:
        statement = sqlglot.parse_one(sql, read=NAME)
    except sqlglot.errors.SqlglotError:
        return None
    rewritten, sorted_lists = ordered_lists.sort_each_list(adapter.cursor, statement)
    if not sorted_lists:
        return None
    plural = "s" if sorted_lists > 1 else ""
    return rewritten, f"{sorted_lists} ordered list aggregate{plural} built by sorting each list"


def execute_faster(adapter: t.Any, statement: exp.Expr, execute: t.Callable[[str], t.Any]) -> t.Optional[str]:
    """Run ``faster_statement``'s statement; None when it ran, else why not (nothing ran: DuckDB
    refuses a statement that does not bind before it runs, and the transaction goes on)."""
    import duckdb

    try:
        execute(statement.sql(NAME))
    except (duckdb.BinderException, duckdb.CatalogException, duckdb.ParserException) as error:
        return f"the rewritten statement does not bind: {str(error).splitlines()[0]}"
    return None


def execute_split(adapter: t.Any, split: t.Any, compute: t.Any, execute: t.Callable[[str], t.Any]) -> t.Optional[str]:
    """Run a split statement as a stream (see above). None when it ran; else why it did not
    (the caller then runs the statement plainly: nothing was written yet)."""
    import duckdb
    import pyarrow as pa

    from mixmesh.runtime.cache import use_warehouse

    session = _session(adapter)
    use_warehouse(adapter.connection)  # where cached functions keep their results
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
    plan = plans.explained(cursor, statement)
    return sum(node.get("name", "").strip() == "ARROW_SCAN" for node, _ in plans.operators(plan))


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


def _threads(cursor: t.Any) -> int:
    """As many computing threads as the engine runs query threads."""
    try:
        return int(cursor.execute("SELECT current_setting('threads')").fetchone()[0])
    except Exception:  # noqa: BLE001 - a setting we cannot read: the cores
        return usable_cpus()

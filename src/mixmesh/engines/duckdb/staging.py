"""Where a Python model's batches land before SQLMesh writes them.

Staging tables live in the database, not in memory: DuckDB keeps TEMP tables in memory,
which for a large model doubles what it holds. Their names carry the process id, so the next
run of any model drops those of a killed process.
"""

from __future__ import annotations

import os
import threading
import typing as t
import uuid
import weakref

from sqlglot import exp

if t.TYPE_CHECKING:
    pass
from mixmesh.engines.duckdb.dialect import NAME

_lock = threading.Lock()


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

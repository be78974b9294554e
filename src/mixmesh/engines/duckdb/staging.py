"""Where a Python model's batches land before SQLMesh writes them.

Staging tables live in the database, not in memory: DuckDB keeps TEMP tables in memory,
which for a large model doubles what it holds. Their names carry the process id, so the next
run of any model drops those of a killed process.
"""

from __future__ import annotations

import contextlib
import functools
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


def create_staging(adapter: t.Any, columns: t.Mapping[str, exp.DataType], *, model: t.Optional[str] = None) -> str:
    """A table for a model's batches, dropped once SQLMesh has written from it (``model``:
    whose; DuckDB's single writer drops every dead run's tables, whatever their model)."""
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
    try:
        drop_staging_table(adapter.cursor, staging)
    finally:
        _end_settings(staging)
    with _lock:
        _live_staging.discard(staging)


def drop_staging_table(cursor: t.Any, staging: str) -> None:
    cursor.execute(exp.Drop(kind="TABLE", this=exp.to_table(staging), exists=True).sql(NAME))


# --- DuckDB's buffer pool while a Python model lands -------------------------------------
#
# DuckDB keeps the blocks of every table it reads or writes cached until its memory_limit
# (80% of RAM by default) is reached: streaming 10M rows through a staging table into the
# model's table left the source, the staging table and the model's table in memory, about
# three times the data. Lowering the limit is DuckDB's public way to make it evict them
# (blocks of a database file are dropped, they are on disk), so a landing lowers it for a
# moment after each batch, and for the length of SQLMesh's write. The limit belongs to the
# whole database: it is changed only for database files (evicting an in-memory database
# would write it to temporary files) that one task at a time uses (SQLMesh's
# concurrent_tasks: 1, the default for DuckDB), and the user's limit is always put back.

TRIM_TO = 32 * 2**20  # the cached blocks that may stay once a batch has landed
WRITE_BUDGET_PER_THREAD = 64 * 2**20  # DuckDB's memory for SQLMesh's copy of the staged rows
_UNITS = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50}


class _Settings(t.NamedTuple):
    """What a landing needs to lower DuckDB's limit: a cursor of its own (a failed SET must
    not abort SQLMesh's transaction; opened once, as closing one takes milliseconds), and
    the user's limit and thread count, read when the landing first lowers the limit."""

    cursor: t.Any
    user_limit: str
    threads: int


_settings: t.Dict[str, t.Optional[_Settings]] = {}  # staging table -> its landing's settings


def release_memory(adapter: t.Any, staging: str) -> None:
    """Evict the cached blocks DuckDB holds beyond ``TRIM_TO`` (blocks in use stay)."""
    with _memory_limit(adapter, staging, lambda threads: TRIM_TO):
        pass


def write_budget(adapter: t.Any, staging: str) -> t.ContextManager[None]:
    """DuckDB's memory_limit held at ``WRITE_BUDGET_PER_THREAD`` per thread while SQLMesh
    copies the staged rows into the model's table (never above the user's limit)."""
    return _memory_limit(adapter, staging, lambda threads: WRITE_BUDGET_PER_THREAD * threads)


@contextlib.contextmanager
def _memory_limit(adapter: t.Any, staging: str, limit: t.Callable[[int], int]) -> t.Iterator[None]:
    """DuckDB's memory_limit lowered to ``limit(threads)`` bytes while the block runs."""
    settings = _landing_settings(adapter, staging)
    if settings is None or limit(settings.threads) >= _bytes(settings.user_limit):
        yield
        return
    lowered = limit(settings.threads)
    try:
        try:
            settings.cursor.execute(f"SET memory_limit = '{lowered}B'")
        except Exception:  # noqa: BLE001 - blocks in use stay; the others were evicted all the same
            pass
        yield
    finally:
        _restore(settings.cursor, settings.user_limit)


def _landing_settings(adapter: t.Any, staging: str) -> t.Optional[_Settings]:
    """The landing's settings, or None when the limit is left alone: another task may use
    the database, or a database is in memory."""
    if staging in _settings:
        return _settings[staging]
    settings = None
    if not getattr(adapter, "_multithreaded", False):
        cursor = adapter.connection.cursor()
        in_memory, user_limit, threads = cursor.execute(
            "SELECT (SELECT count(*) FROM duckdb_databases() WHERE NOT internal AND coalesce(path, '') = ''), "
            "current_setting('memory_limit'), current_setting('threads')"
        ).fetchone()
        if in_memory:
            cursor.close()
        else:
            settings = _Settings(cursor, str(user_limit), int(threads))
    _settings[staging] = settings
    return settings


def _end_settings(staging: str) -> None:
    settings = _settings.pop(staging, None)
    if settings is not None:
        settings.cursor.close()


def _restore(cursor: t.Any, user_limit: str) -> None:
    """Put the user's limit back. DuckDB shows it cut to one decimal (``953.6 MiB`` for
    1GB), so its default comes back with RESET, and any other limit as the middle of what
    it shows: DuckDB shows the same again, and it does not drift from one landing to the next."""
    if user_limit == _default_limit():
        cursor.execute("RESET memory_limit")
    else:
        cursor.execute(f"SET memory_limit = '{int(_bytes(user_limit, middle=True))}B'")


@functools.lru_cache(maxsize=1)
def _default_limit() -> str:
    import duckdb

    with duckdb.connect() as fresh:
        (shown,) = fresh.execute("SELECT current_setting('memory_limit')").fetchone()
    return str(shown)


def _bytes(shown: str, *, middle: bool = False) -> float:
    """A size as DuckDB shows it (``18.8 GiB``, ``512 bytes``) in bytes: at least, or (for
    ``middle``) the middle of the sizes shown so."""
    number, unit = shown.split()
    if unit not in _UNITS:  # bytes, shown whole
        return float(number)
    return (float(number) + (0.05 if middle else 0.0)) * _UNITS[unit]

"""Where a Python model's batches land before SQLMesh writes them.

A staging table is a table of the catalog, so a run that crashes (its driver killed, its
machine lost) leaves it there. Its name says whose it is: the model (a digest of its name),
the driver's machine (a digest of its host name) and process id. The next run of the same
model drops the ones no live run uses: those of a process that no longer runs on this
machine, those of another machine (two drivers do not run one model at once), and this
process's own that could not be dropped. Another model's are never touched: that model may
be running, from another driver, right now.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import threading
import typing as t
import uuid

from sqlglot import exp

from mixmesh.engines.spark.dialect import NAME
from mixmesh.engines.spark.frames import _GRAIN_REFUSED, is_engine_frame

STAGING_SCHEMA = "mixmesh_staging"


_lock = threading.Lock()
_live: t.Set[str] = set()  # this process's staging tables still in use
_NAME = re.compile(r"s_(?P<model>[0-9a-f]{16})_(?P<host>[0-9a-f]{8})_(?P<pid>\d+)_[0-9a-f]{32}")


def create_staging(adapter: t.Any, columns: t.Mapping[str, exp.DataType], *, model: t.Optional[str] = None) -> str:
    """A table for a model's batches, dropped once SQLMesh has written from it; what crashed
    runs of the same ``model`` left is dropped first."""
    spark = adapter.spark
    spark.sql(exp.Create(kind="SCHEMA", this=exp.to_identifier(STAGING_SCHEMA), exists=True).sql(NAME))
    if model is not None:
        drop_dead_staging(spark, model)
    name = staging_name(model)
    schema = exp.Schema(
        this=exp.to_table(name),
        expressions=[exp.ColumnDef(this=exp.to_identifier(c, quoted=True), kind=k.copy()) for c, k in columns.items()],
    )
    with _lock:  # live before it exists: a concurrent clean-up must not take it for dead
        _live.add(name)
    spark.sql(exp.Create(kind="TABLE", this=schema).sql(NAME))
    return name


def staging_name(model: t.Optional[str], *, pid: t.Optional[int] = None) -> str:
    """``mixmesh_staging.s_<model digest>_<host digest>_<pid>_<random>`` (without a model, as
    for a plain session: ``s_<pid>_<random>``, which no clean-up takes for a model's)."""
    pid = os.getpid() if pid is None else pid
    if model is None:
        return f"{STAGING_SCHEMA}.s_{pid}_{uuid.uuid4().hex}"
    return f"{STAGING_SCHEMA}.s_{_digest(model, 16)}_{_host()}_{pid}_{uuid.uuid4().hex}"


def drop_dead_staging(spark: t.Any, model: str) -> t.List[str]:
    """Drop the staging tables crashed runs of ``model`` left; return their names."""
    pattern = f"s_{_digest(model, 16)}_*"
    tables = [row[1] for row in spark.sql(f"SHOW TABLES IN {STAGING_SCHEMA} LIKE '{pattern}'").collect()]
    dead = [f"{STAGING_SCHEMA}.{table}" for table in tables if _is_dead(table)]
    for name in dead:
        spark.sql(exp.Drop(kind="TABLE", this=exp.to_table(name), exists=True).sql(NAME))
    return dead


def _is_dead(table: str) -> bool:
    named = _NAME.fullmatch(table)
    if named is None:
        return False  # not a name mixmesh gives
    with _lock:
        if f"{STAGING_SCHEMA}.{table}" in _live:
            return False
    if named["host"] != _host():
        return True
    pid = int(named["pid"])
    return pid == os.getpid() or not _running(pid)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _host() -> str:
    return _digest(socket.gethostname(), 8)


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def append_staging(adapter: t.Any, staging: str, table: t.Any) -> None:
    """Append a batch: an Arrow table, or a Spark DataFrame (written by the executors)."""
    spark = adapter.spark
    frame = table if is_engine_frame(table) else spark.createDataFrame(table)
    columns = spark.table(staging).columns
    try:
        frame.select(*[frame[column] for column in columns]).write.insertInto(staging)
    except Exception as error:
        refused = _GRAIN_REFUSED.search(str(error))
        if refused is None:
            raise
        from mixmesh.runtime.validation import ModelOutputError

        raise ModelOutputError(refused.group("message")) from None


def drop_staging(adapter: t.Any, staging: str) -> None:
    adapter.spark.sql(exp.Drop(kind="TABLE", this=exp.to_table(staging), exists=True).sql(NAME))
    with _lock:
        _live.discard(staging)


def release_memory(adapter: t.Any, staging: str) -> None:
    """Nothing to release: a batch's rows are in Spark's executors, which manage their memory."""


def write_budget(adapter: t.Any, staging: str) -> t.ContextManager[None]:
    """Spark's executors bound their own memory while SQLMesh writes (``spark.executor.memory``)."""
    return contextlib.nullcontext()

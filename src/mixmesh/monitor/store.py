"""Where captured figures are kept: a DuckDB file, append-only, with a schema version.

DuckDB lets one process at a time open a database file for writing
(https://duckdb.org/docs/stable/connect/concurrency), and two ``sqlmesh run`` processes may
finish models at the same moment. So a write never waits for that lock:

1. ``MetricsStore.append`` writes the rows of one or more model evaluations as one *batch*
   file into the store's spool folder (``.mixmesh/spool/metrics/`` for a project): written
   under a hidden temporary name, then renamed, so a batch is either whole or absent, and
   each process writes files of its own. A model run does not wait for it: capture hands
   its rows to the process's writer thread (``append_later``, ``mixmesh.monitor.writer``),
   which writes those of several evaluations at once; a failure is logged, never raised.
2. The batches are then *merged* into the DuckDB file, in one transaction, by whoever gets
   the file's lock: a background thread of the writing process (it tries once and gives up
   on a conflict, the batch stays spooled) or any reader (``model_runs``,
   ``function_runs``, ``merge``), which retries with backoff for a while. The merge is idempotent: the
   ``batches`` table records each merged batch id (its primary key) in the same transaction
   as its rows, and spool files are removed only after the commit, so a merge interrupted
   anywhere neither loses nor doubles a row.
3. Readers also read the batches still spooled (not yet in ``batches``), so they see every
   row written so far even when the merge could not take the lock.

Retrying the DuckDB lock with backoff inside the model run was the alternative: it makes a
model wait for another process's write and, past a timeout, still loses the row; the spool
never waits and never drops.

The schema version (``records.SCHEMA_VERSION``) is kept in the database and in every batch;
a store or batch of another version is refused with a message (batches stay spooled).

A DuckDB file that cannot be read (truncated, overwritten, not DuckDB at all) is never
silent: a run whose figures cannot be merged says so once on stderr (its figures stay
spooled), and ``recover`` (which ``mixmesh stats`` and ``mixmesh report`` call when they
meet such a file) moves it aside as ``<name>.corrupt-<UTC time>`` and rebuilds the store
from the spool. Batches merged before the file broke have left the spool: those figures
are only in the moved file.

Where: ``MetricsStore.for_project`` reads ``MIXMESH_METRICS`` — unset: the project's
``.mixmesh/metrics.duckdb``; ``off``: nothing is kept; ``warehouse`` (or
``warehouse:GATEWAY``): the project's DuckDB gateway database, schema ``mixmesh_metrics``;
anything else: a DuckDB file path, relative to the project.

Longer than 450 lines because the store's schema, its spool, the merge and the recovery from
a damaged file share one set of table definitions and locks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import re
import sys
import threading
import time
import typing as t
import uuid
from pathlib import Path

from sqlglot import exp

from mixmesh.core import settings
from mixmesh.core.errors import MixmeshError
from mixmesh.monitor import writer
from mixmesh.monitor.records import SCHEMA_VERSION, FunctionRun, ModelRun

if t.TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger("mixmesh.monitor")

DEFAULT_PATH = Path(".mixmesh") / "metrics.duckdb"
ENVIRONMENT_VARIABLE = "MIXMESH_METRICS"
WAREHOUSE_SCHEMA = "mixmesh_metrics"
LOCK_TIMEOUT_S = 10.0  # how long a reader waits for another process's merge

# Column types, in the records' field order (tests check both lists agree).
MODEL_RUN_TYPES: t.Dict[str, str] = {
    "run_id": "VARCHAR NOT NULL", "model": "VARCHAR NOT NULL", "command": "VARCHAR", "environment": "VARCHAR",
    "engine": "VARCHAR", "interval_start": "TIMESTAMP", "interval_end": "TIMESTAMP",
    "started_at": "TIMESTAMP NOT NULL", "ended_at": "TIMESTAMP NOT NULL",
    "total_s": "DOUBLE NOT NULL", "python_s": "DOUBLE NOT NULL", "sql_s": "DOUBLE NOT NULL",
    "rows_in": "BIGINT", "rows_out": "BIGINT", "rows_per_s": "DOUBLE", "peak_rss_mb": "DOUBLE",
    "retries": "INTEGER", "fallbacks": "INTEGER", "errors": "INTEGER", "breaker_transitions": "INTEGER",
    "status": "VARCHAR NOT NULL", "error": "VARCHAR", "project": "VARCHAR", "wait_s": "DOUBLE",
    "fingerprint": "VARCHAR", "snapshot_version": "VARCHAR", "added_rss_mb": "DOUBLE",
}
FUNCTION_RUN_TYPES: t.Dict[str, str] = {
    "run_id": "VARCHAR NOT NULL", "model": "VARCHAR NOT NULL", "function": "VARCHAR NOT NULL",
    "mode": "VARCHAR NOT NULL", "calls": "BIGINT", "rows": "BIGINT", "total_s": "DOUBLE",
    "p50_batch_s": "DOUBLE", "p95_batch_s": "DOUBLE", "errors": "BIGINT", "mean_list_length": "DOUBLE", "findings": "VARCHAR",
    "path": "VARCHAR", "max_in_flight": "BIGINT", "calls_per_s": "DOUBLE", "cache_hits": "BIGINT", "cache_misses": "BIGINT",
}
_TABLES = {"model_runs": MODEL_RUN_TYPES, "function_runs": FUNCTION_RUN_TYPES}
# Columns added after schema version 1 was written, all nullable: a store or batch without them
# stays readable (read as NULL), and a write adds them to the file. Older mixmesh versions read
# only the columns they know, so adding one needs no new schema version.
ADDED_COLUMNS: t.Dict[str, t.Tuple[str, ...]] = {
    "model_runs": ("wait_s", "fingerprint", "snapshot_version", "added_rss_mb"), "function_runs": ("findings", "path", "max_in_flight", "calls_per_s", "cache_hits", "cache_misses")}


class MetricsStoreError(MixmeshError, RuntimeError):
    """The metrics store cannot be opened or read (another schema version, a bad path, a held lock)."""


class MetricsStoreCorrupt(MetricsStoreError):
    """The store's DuckDB file cannot be read: truncated, overwritten, or not DuckDB at all."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # DuckDB's own words


class _Busy(Exception):
    """Another process holds the DuckDB file."""


# What DuckDB says of a file that is not (or no longer) a database it can read; checked
# before the lock messages ("block" contains "lock").
_CORRUPT = re.compile(r"not a valid DuckDB database file|Could not read enough bytes|Corrupt database|checksum", re.I)
_HELD = re.compile(r"\block\b|configuration", re.I)  # another process's lock, or this process's own open
_TOLD: t.Set[str] = set()  # the files a run already said were unreadable, on stderr


@dataclasses.dataclass(frozen=True)
class _Batch:
    batch_id: str
    written_at: dt.datetime
    pid: int
    model_runs: t.List[t.Dict[str, t.Any]]
    function_runs: t.List[t.Dict[str, t.Any]]
    file: Path


# One lock per database file and process: DuckDB shares one database instance between the
# connections a process opens on a file, so two threads of one process could otherwise merge
# the same batch side by side (the primary key would refuse the second; this avoids trying).
_FILE_LOCKS: t.Dict[str, threading.Lock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def _file_lock(path: Path) -> threading.Lock:
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(str(path.resolve()), threading.Lock())


def _forget_locks_after_fork() -> None:
    # A forked child (SQLMesh forks to load projects) inherits locks some thread of the
    # parent may hold, and that thread does not exist in the child.
    global _FILE_LOCKS_GUARD
    _FILE_LOCKS_GUARD = threading.Lock()
    _FILE_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_locks_after_fork)




class MetricsStore:
    """The figures of past model evaluations, in a DuckDB file, written through a spool."""

    def __init__(
        self,
        path: t.Optional[t.Union[str, Path]] = DEFAULT_PATH,
        *,
        schema: str = "main",
        spool: t.Optional[t.Union[str, Path]] = None,
        background_merge: bool = True,
        lock_timeout: float = LOCK_TIMEOUT_S,
    ) -> None:
        self.path = None if path is None else Path(path)
        self.schema = schema
        self.spool = Path(spool) if spool is not None else (None if self.path is None else default_spool(self.path, schema))
        self.background_merge = background_merge
        self.lock_timeout = lock_timeout
        self._warned: t.Set[str] = set()
        self._start_merger_state()

    def _start_merger_state(self) -> None:
        self._pid = os.getpid()
        self._merger: t.Optional[threading.Thread] = None
        self._merge_wanted = threading.Event()
        self._merger_guard = threading.Lock()

    # ------------------------------------------------------------------ where

    @classmethod
    def off(cls) -> "MetricsStore":
        """A store that keeps nothing (``MIXMESH_METRICS=off``)."""
        return cls(None)

    @classmethod
    def for_project(cls, project: t.Union[str, Path] = ".", *, setting: t.Optional[str] = None) -> "MetricsStore":
        """The project's store, as ``MIXMESH_METRICS`` (or ``setting``) says; never raises.

        A setting that cannot be honoured (``warehouse`` on a gateway that is not a DuckDB
        file) is logged and the default file is used, so no figure is lost.
        """
        project = Path(project)
        setting = (settings.get(ENVIRONMENT_VARIABLE) if setting is None else setting).strip()
        if setting.lower() == "off":
            return cls.off()
        if setting.lower() == "warehouse" or setting.lower().startswith("warehouse:"):
            gateway = setting.partition(":")[2].strip() or None
            try:
                database = warehouse_database(project, gateway)
            except MetricsStoreError as error:
                logger.warning("%s; keeping metrics in %s instead", error, project / DEFAULT_PATH)
            else:
                return cls(database, schema=WAREHOUSE_SCHEMA)
        elif setting:
            return cls(project / Path(setting).expanduser())
        return cls(project / DEFAULT_PATH)

    @property
    def enabled(self) -> bool:
        return self.path is not None

    @property
    def location(self) -> str:
        """Where the figures go, for messages: the file, and the schema when not ``main``."""
        if self.path is None:
            return f"nowhere ({ENVIRONMENT_VARIABLE}=off)"
        return str(self.path) + ("" if self.schema == "main" else f" (schema {self.schema})")

    # ------------------------------------------------------------------ writing

    def append(self, model_runs: t.Sequence[ModelRun], function_runs: t.Sequence[FunctionRun] = ()) -> bool:
        """Keep the rows of one evaluation, all of them or none; never raises.

        Returns whether the rows were kept (spooled); a failure is logged as a warning.
        """
        if self.path is None or (not model_runs and not function_runs):
            return self.path is not None
        try:
            self._spool_batch(model_runs, function_runs)
        except Exception as error:  # a metrics write must never fail the model run
            self._warn(f"mixmesh could not keep metrics in {self.spool}: {error}")
            return False
        if self.background_merge:
            try:
                self._merge_in_background()
            except Exception as error:  # no thread at interpreter shutdown: a reader merges later
                logger.debug("metrics merge not started: %s", error)
        return True

    def append_later(self, rows: "writer.Rows", about: str = "an evaluation") -> None:
        """``append`` the rows ``rows()`` builds, later, on the process's writer thread, together
        with the rows of the evaluations after it (``mixmesh.monitor.writer``): a model's
        evaluation neither builds them nor waits for the file system. Whatever reads the spool
        in this process waits for them first, and the process writes them before it exits.
        ``about`` (the model) names them in the warning logged if they cannot be built."""
        writer.hand_over(self, rows, about)

    def merge(self, *, wait: t.Optional[float] = None) -> int:
        """Move spooled batches into the DuckDB file; the number of batches added.

        Waits up to ``wait`` seconds (default: the store's ``lock_timeout``) for another
        process's lock, retrying with backoff, then raises ``MetricsStoreError``. A file that
        cannot be read raises ``MetricsStoreCorrupt``, said once per process on stderr (runs
        merge through here); the batches stay spooled.
        """
        try:
            return self._merge_waiting(wait)
        except MetricsStoreCorrupt as error:
            self._tell_console(error)
            raise

    def _merge_waiting(self, wait: t.Optional[float]) -> int:
        if self.path is None:
            return 0
        deadline = time.monotonic() + (self.lock_timeout if wait is None else wait)
        delay = 0.005
        while True:
            try:
                return self._merge_once()
            except _Busy as busy:
                if time.monotonic() + delay > deadline:
                    raise MetricsStoreError(f"metrics store {self.location} is busy: {busy}") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.25)

    def flush(self) -> None:
        """Wait for this process's background merge to finish (it gives up on a held lock)."""
        merger = self._merger
        if merger is not None and os.getpid() == self._pid:
            merger.join()

    def pending(self) -> int:
        """How many batches wait in the spool."""
        return len(self._spool_files())

    # ------------------------------------------------------------------ reading

    def model_runs(self, model: t.Optional[str] = None, days: t.Optional[float] = None) -> "pd.DataFrame":
        """Model evaluations, oldest first; only ``model``'s, only the last ``days`` days, if given."""
        return self._read("model_runs", model, days)

    def function_runs(self, model: t.Optional[str] = None, days: t.Optional[float] = None) -> "pd.DataFrame":
        """Function figures of those evaluations, in the same order."""
        return self._read("function_runs", model, days)

    def schema_version(self) -> t.Optional[int]:
        """The schema version of the DuckDB file, or None when it does not exist yet."""
        if self.path is None or not self.path.exists():
            return None
        with self._reader() as (connection, stored), self._unless_corrupt():
            if not stored:
                return None
            return connection.execute(f"SELECT max(version) FROM {self._table('schema_version')}").fetchone()[0]

    def _read(self, table: str, model: t.Optional[str], days: t.Optional[float]) -> "pd.DataFrame":
        import pandas as pd

        columns = list(_TABLES[table])
        if self.path is None:
            return pd.DataFrame(columns=columns)
        try:  # readers merge what is spooled; when they cannot, they read the spool as well
            self._merge_waiting(min(self.lock_timeout, 1.0))
        except Exception as error:
            logger.debug("metrics merge skipped: %s", error)
        conditions, params = [], []
        if model is not None:
            conditions.append("m.model = ?")
            params.append(model)
        if days is not None:
            conditions.append("m.started_at >= ?")
            params.append(_utc_naive(dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=days))
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        alias = "m" if table == "model_runs" else "f"
        selected = ", ".join(f"{alias}.{column}" for column in columns)
        source = "model_runs_all m" if table == "model_runs" else "function_runs_all f JOIN model_runs_all m USING (run_id)"
        order = "m.started_at, m.run_id" + ("" if table == "model_runs" else ", f.function")
        with self._reader() as (connection, stored), self._unless_corrupt():
            spooled = self._load_spool()
            merged = self._merged_ids(connection, spooled) if stored else set()
            batches = [batch for batch in spooled if batch.batch_id not in merged]
            for name, types in _TABLES.items():
                # Copied into a temporary table: DuckDB pushes join filters into scans that
                # an Arrow scan refuses ("Pushdown Filter Type BLOOM_FILTER", DuckDB 1.5).
                connection.register("incoming", _arrow(types, [row for batch in batches for row in getattr(batch, name)]))
                connection.execute(f"CREATE OR REPLACE TEMP TABLE pending_{name} AS SELECT * FROM incoming")
                connection.unregister("incoming")
                base = self._table(name) if stored else f"pending_{name}"
                union = f" UNION ALL SELECT * FROM pending_{name}" if stored else ""
                cols = self._stored_columns(connection, name) if stored else ", ".join(types)
                connection.execute(
                    f"CREATE OR REPLACE TEMP VIEW {name}_all AS SELECT {cols} FROM {base}{union}"
                )
            return connection.execute(f"SELECT {selected} FROM {source} {where} ORDER BY {order}", params).df()

    # ------------------------------------------------------------------ the spool

    def _spool_batch(self, model_runs: t.Sequence[ModelRun], function_runs: t.Sequence[FunctionRun]) -> Path:
        assert self.spool is not None
        _make_folder(self.spool)
        batch_id = uuid.uuid4().hex
        document = {
            "schema_version": SCHEMA_VERSION,
            "batch_id": batch_id,
            "written_at": _utc_naive(dt.datetime.now(dt.timezone.utc)).isoformat(),
            "pid": os.getpid(),
            "model_runs": [_row(run, MODEL_RUN_TYPES) for run in model_runs],
            "function_runs": [_row(run, FUNCTION_RUN_TYPES) for run in function_runs],
        }
        # Hidden while written, renamed when whole: a reader never sees half a batch.
        temporary = self.spool / f".{batch_id}.tmp"
        final = self.spool / f"{time.time_ns():020d}-{os.getpid()}-{batch_id}.json"
        temporary.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")
        os.replace(temporary, final)
        return final

    def _spool_files(self) -> t.List[Path]:
        writer.wait_for_writes()
        if self.spool is None or not self.spool.is_dir():
            return []
        return sorted(self.spool.glob("[0-9]*.json"))

    def _load_spool(self, files: t.Optional[t.Sequence[Path]] = None) -> t.List[_Batch]:
        batches = []
        for file in self._spool_files() if files is None else files:
            try:
                document = json.loads(file.read_text(encoding="utf-8"))
            except FileNotFoundError:  # merged by another process meanwhile
                continue
            except (OSError, ValueError) as error:
                self._warn(f"metrics batch {file} cannot be read ({error}); left in place")
                continue
            version = document.get("schema_version")
            if version != SCHEMA_VERSION:
                self._warn(
                    f"metrics batch {file} has schema version {version}; this mixmesh writes version "
                    f"{SCHEMA_VERSION}; left in place"
                )
                continue
            batches.append(_Batch(
                batch_id=document["batch_id"],
                written_at=dt.datetime.fromisoformat(document["written_at"]),
                pid=int(document.get("pid") or 0),
                model_runs=[_decode(row, MODEL_RUN_TYPES) for row in document["model_runs"]],
                function_runs=[_decode(row, FUNCTION_RUN_TYPES) for row in document["function_runs"]],
                file=file,
            ))
        return batches

    def _merge_in_background(self) -> None:
        if os.getpid() != self._pid:  # a forked copy of this store: the parent's thread is not ours
            self._start_merger_state()
        self._merge_wanted.set()
        with self._merger_guard:
            if self._merger is not None and self._merger.is_alive():
                return
            # Not a daemon: the interpreter lets a merge in flight finish (milliseconds)
            # instead of stopping it inside DuckDB.
            self._merger = threading.Thread(target=self._background_merges, name="mixmesh-metrics-merge")
            self._merger.start()

    def _background_merges(self) -> None:
        while self._merge_wanted.is_set():
            self._merge_wanted.clear()
            try:
                self._merge_once()
            except _Busy:
                return  # another process is merging; it, the next write or a reader takes ours
            except MetricsStoreCorrupt as error:
                self._tell_console(error)
                return
            except Exception as error:
                self._warn(f"mixmesh could not merge metrics into {self.location}: {error}")
                return

    def _merge_once(self, limit: int = 5000) -> int:
        assert self.path is not None
        files = self._spool_files()
        if not files:
            return 0
        added = 0
        with _file_lock(self.path), self._open(read_only=False, wait=0) as connection, self._unless_corrupt():
            for start in range(0, len(files), limit):
                batches = self._load_spool(files[start : start + limit])
                if not batches:
                    continue
                merged = self._merged_ids(connection, batches)
                new = [batch for batch in batches if batch.batch_id not in merged]
                if new:
                    self._insert(connection, new)
                    added += len(new)
                for batch in batches:  # only after the commit: a crash before it keeps them
                    batch.file.unlink(missing_ok=True)
        self._remove_stale_temporaries()
        return added

    def _insert(self, connection: t.Any, batches: t.Sequence[_Batch]) -> None:
        import pyarrow as pa

        now = _utc_naive(dt.datetime.now(dt.timezone.utc))
        batch_table = pa.table({
            "batch_id": pa.array([batch.batch_id for batch in batches], pa.string()),
            "written_at": pa.array([batch.written_at for batch in batches], pa.timestamp("us")),
            "merged_at": pa.array([now] * len(batches), pa.timestamp("us")),
            "pid": pa.array([batch.pid for batch in batches], pa.int64()),
        })
        tables = {
            name: _arrow(types, [row for batch in batches for row in getattr(batch, name)])
            for name, types in _TABLES.items()
        }
        connection.execute("BEGIN TRANSACTION")
        try:
            for name, table in [("batches", batch_table), *tables.items()]:
                connection.register("incoming", table)
                columns = ", ".join(table.column_names)
                connection.execute(f"INSERT INTO {self._table(name)} ({columns}) SELECT {columns} FROM incoming")
                connection.unregister("incoming")
            connection.execute("COMMIT")
        except Exception:
            connection.execute("ROLLBACK")
            raise

    def _remove_stale_temporaries(self, age_s: float = 3600.0) -> None:
        # A writer that died between writing and renaming leaves a hidden temporary file.
        if self.spool is None:
            return
        for temporary in self.spool.glob(".*.tmp"):
            try:
                if time.time() - temporary.stat().st_mtime > age_s:
                    temporary.unlink()
            except OSError:
                pass

    # ------------------------------------------------------------------ DuckDB

    def _table(self, name: str) -> str:
        # The schema is configurable: quoted by sqlglot, never pasted into the SQL as given.
        return exp.table_(name, db=self.schema, quoted=True).sql("duckdb")

    def _merged_ids(self, connection: t.Any, batches: t.Sequence[_Batch]) -> t.Set[str]:
        """Which of ``batches`` the file holds already (only those are looked up: the spool is small)."""
        if not batches:
            return set()
        rows = connection.execute(
            f"SELECT batch_id FROM {self._table('batches')} WHERE batch_id IN (SELECT unnest(?::VARCHAR[]))",
            [[batch.batch_id for batch in batches]],
        ).fetchall()
        return {row[0] for row in rows}

    def _stored_columns(self, connection: t.Any, table: str) -> str:
        """The select list of a stored table in the records' order: NULL for a column added
        since the file was written (it was opened read-only, so not brought up to date)."""
        present = {row[0] for row in connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [self.schema, table],
        ).fetchall()}
        types = _TABLES[table]
        return ", ".join(c if c in present else f"CAST(NULL AS {types[c].split()[0]}) AS {c}" for c in types)

    def _reader(self) -> t.ContextManager[t.Tuple[t.Any, bool]]:
        """A connection on the stored rows (read-only), or an empty in-memory one if none yet."""
        import contextlib

        import duckdb

        @contextlib.contextmanager
        def opened() -> t.Iterator[t.Tuple[t.Any, bool]]:
            assert self.path is not None
            if self.path.exists():
                try:
                    connection = self._open(read_only=True, wait=self.lock_timeout)
                except _Busy as busy:
                    raise MetricsStoreError(f"metrics store {self.location} is busy: {busy}") from None
                with connection:
                    if _has_table(connection, self.schema, "batches"):
                        yield connection, True
                        return
            with duckdb.connect(":memory:") as connection:
                yield connection, False

        return opened()

    def _open(self, *, read_only: bool, wait: float) -> t.Any:
        """Open the file (creating the schema when writing); ``_Busy`` past ``wait`` seconds."""
        import duckdb

        assert self.path is not None
        if not read_only:
            _make_folder(self.path.parent)
        deadline = time.monotonic() + wait
        delay = 0.005
        while True:
            try:
                connection = duckdb.connect(str(self.path), read_only=read_only)
                break
            except (duckdb.IOException, duckdb.ConnectionException) as error:
                # "Could not set lock on file" (another process) or "different configuration"
                # (this process holds the file, e.g. SQLMesh on the warehouse).
                if _CORRUPT.search(str(error)):
                    raise self._corrupt(error) from None
                if not _HELD.search(str(error)):
                    raise MetricsStoreError(f"metrics store {self.location}: {error}") from None
                if time.monotonic() + delay > deadline:
                    raise _Busy(str(error)) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
            except duckdb.Error as error:
                if _CORRUPT.search(str(error)):
                    raise self._corrupt(error) from None
                raise MetricsStoreError(f"metrics store {self.location}: {error}") from None
        try:
            with self._unless_corrupt():
                if not read_only:
                    self._create(connection)
                self._check_version(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def _create(self, connection: t.Any) -> None:
        connection.execute(f"CREATE SCHEMA IF NOT EXISTS {exp.to_identifier(self.schema, quoted=True).sql('duckdb')}")
        connection.execute(f"CREATE TABLE IF NOT EXISTS {self._table('schema_version')} (version INTEGER NOT NULL)")
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {self._table('batches')} (batch_id VARCHAR PRIMARY KEY, "
            "written_at TIMESTAMP NOT NULL, merged_at TIMESTAMP NOT NULL, pid BIGINT)"
        )
        for name, types in _TABLES.items():
            columns = ", ".join(f"{column} {kind}" for column, kind in types.items())
            connection.execute(f"CREATE TABLE IF NOT EXISTS {self._table(name)} ({columns})")
            for column in ADDED_COLUMNS[name]:  # a file written before the column existed
                connection.execute(f"ALTER TABLE {self._table(name)} ADD COLUMN IF NOT EXISTS {column} {types[column]}")
        table = self._table("schema_version")
        connection.execute(
            f"INSERT INTO {table} SELECT ? WHERE NOT EXISTS (SELECT 1 FROM {table})", [SCHEMA_VERSION]
        )

    def _check_version(self, connection: t.Any) -> None:
        if not _has_table(connection, self.schema, "schema_version"):
            return
        version = connection.execute(f"SELECT max(version) FROM {self._table('schema_version')}").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise MetricsStoreError(
                f"metrics store {self.location} has schema version {version}; "
                f"this mixmesh reads and writes version {SCHEMA_VERSION}"
            )

    # ------------------------------------------------------------------ a file that cannot be read

    def recover(self) -> t.Optional[str]:
        """If the DuckDB file cannot be read: move it aside (``<name>.corrupt-<UTC time>``, its
        WAL with it) and rebuild the store from the spool. Returns what was done, in a
        sentence, or None when the file reads well. A warehouse database is never moved:
        that raises ``MetricsStoreError``, saying what to do instead."""
        if self.path is None or not self.path.exists():
            return None
        try:
            self._read_everything()
        except MetricsStoreCorrupt as error:
            if self.schema != "main":
                raise MetricsStoreError(str(error)) from None
            reason = error.reason
        else:
            return None
        aside = self._move_aside()
        added = self._merge_waiting(self.lock_timeout)
        moved = f"moved it to {aside}" if aside is not None else "another process moved it aside"
        return (
            f"metrics store {self.path.absolute()} could not be read ({reason}): {moved} and rebuilt the "
            f"store from the spool ({added} spooled batch{'' if added == 1 else 'es'} of figures). Figures "
            "merged into it before it broke are not in the spool; they stay only in the moved file."
        )

    def _read_everything(self) -> None:
        """Read every row of the file: a damaged block shows only when it is read."""
        with self._reader() as (connection, stored), self._unless_corrupt():
            for name in ("batches", *_TABLES) if stored else ():
                cursor = connection.execute(f"SELECT * FROM {self._table(name)}")
                while cursor.fetchmany(100_000):
                    pass

    def _move_aside(self) -> t.Optional[Path]:
        """``path`` renamed ``<name>.corrupt-<UTC time>``, its WAL too (else DuckDB would replay
        it into the new file); None if another process moved it first."""
        assert self.path is not None
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        with _file_lock(self.path):
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
            copies = 1
            while aside.exists():
                copies += 1
                aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{copies}")
            try:
                os.replace(self.path, aside)
            except FileNotFoundError:
                return None
            wal = self.path.with_name(self.path.name + ".wal")
            if wal.exists():
                os.replace(wal, aside.with_name(aside.name + ".wal"))
        return aside.absolute()

    @contextlib.contextmanager
    def _unless_corrupt(self) -> t.Iterator[None]:
        """DuckDB's errors about a damaged file, as ``MetricsStoreCorrupt``."""
        import duckdb

        try:
            yield
        except duckdb.Error as error:
            if _CORRUPT.search(str(error)):
                raise self._corrupt(error) from None
            raise

    def _corrupt(self, error: BaseException) -> MetricsStoreCorrupt:
        assert self.path is not None
        reason = " ".join(str(error).split())
        if self.schema == "main":
            remedy = "`mixmesh stats` or `mixmesh report` moves it aside and rebuilds it from the spool"
        else:
            remedy = (
                "mixmesh does not move a warehouse database aside: restore it from a backup, or keep the "
                f"metrics in a file of their own ({ENVIRONMENT_VARIABLE} unset)"
            )
        schema = "" if self.schema == "main" else f" (schema {self.schema})"
        return MetricsStoreCorrupt(
            f"metrics store {self.path.absolute()}{schema} is not a readable DuckDB file ({reason}); {remedy}", reason
        )

    def _tell_console(self, error: MetricsStoreCorrupt) -> None:
        """Once per file and process, one line on stderr: a run's output is where it is seen
        (a log line alone went unnoticed while the figures piled up in the spool)."""
        key = str(self.path)
        if key in _TOLD:
            return
        _TOLD.add(key)
        message = f"mixmesh: {error}. This run's figures are kept in the spool {self.spool}."
        if logger.hasHandlers():  # a log file's record; without handlers, logging would print it twice
            logger.warning(message)
        try:
            print(" ".join(message.split()), file=sys.stderr, flush=True)
        except (OSError, ValueError):  # stderr closed at exit: the log line stays
            pass

    def _warn(self, message: str) -> None:
        # Once per store and message: a broken store must not flood a long run's log.
        if message not in self._warned:
            self._warned.add(message)
            logger.warning(message)
        else:
            logger.debug(message)


_T = t.TypeVar("_T")


def recovering(store: MetricsStore, read: t.Callable[[], _T], tell: t.Callable[[str], None]) -> _T:
    """``read()``; when it meets a DuckDB file that cannot be read, ``store.recover()`` moves it
    aside and rebuilds the store, ``tell`` says so, and ``read()`` runs again."""
    try:
        return read()
    except MetricsStoreCorrupt:
        told = store.recover()
        if told:
            tell(told)
        return read()


def default_spool(path: Path, schema: str = "main") -> Path:
    """Where a store's batches wait: ``spool/<file stem>`` in the ``.mixmesh`` folder beside the file.

    One folder per file and schema, so two stores never take each other's batches, and
    the same for every process that opens the same file.
    """
    base = path.parent if path.parent.name == ".mixmesh" else path.parent / ".mixmesh"
    return base / "spool" / (path.stem if schema == "main" else f"{path.stem}.{schema}")


def warehouse_database(project: t.Union[str, Path], gateway: t.Optional[str] = None) -> Path:
    """The DuckDB file of the project's gateway (its default one unless named).

    Read from the project's SQLMesh configuration; a relative path is taken from the
    project folder, where SQLMesh runs. Raises ``MetricsStoreError`` for a gateway that is
    not DuckDB or keeps its database in memory: the store needs a file it can open.
    """
    project = Path(project)
    try:
        from sqlmesh.core.config import Config
        from sqlmesh.core.config.loader import load_configs

        config = load_configs(None, Config, [project])[project.absolute()]
        connection = config.get_connection(gateway)
    except Exception as error:
        raise MetricsStoreError(f"metrics in the warehouse: cannot read the SQLMesh config of {project}: {error}") from None
    if getattr(connection, "type_", None) != "duckdb":
        raise MetricsStoreError(
            f"metrics in the warehouse need a DuckDB gateway; {gateway or 'the default gateway'} is "
            f"{getattr(connection, 'type_', type(connection).__name__)}"
        )
    database = getattr(connection, "database", None)
    catalogs = getattr(connection, "catalogs", None) or {}
    if not database and catalogs:
        first = next(iter(catalogs.values()))
        database = first if isinstance(first, str) else getattr(first, "path", None)
    if not database or database == ":memory:" or str(database).startswith(("md:", "motherduck:")):
        raise MetricsStoreError("metrics in the warehouse need a DuckDB gateway with a database file, not an in-memory one")
    return project / Path(database).expanduser()


# ------------------------------------------------------------------ helpers


def _make_folder(folder: Path) -> None:
    if folder.is_dir():
        return
    folder.mkdir(parents=True, exist_ok=True)
    # mixmesh's own folder keeps out of version control, as .pytest_cache does.
    own = next((parent for parent in (folder, *folder.parents) if parent.name == ".mixmesh"), None)
    if own is not None and not (own / ".gitignore").exists():
        try:
            (own / ".gitignore").write_text("# Created by mixmesh: run metrics, not sources.\n*\n")
        except OSError:
            pass


def _utc_naive(value: t.Optional[dt.datetime]) -> t.Optional[dt.datetime]:
    """Timestamps are stored as naive UTC: aware ones are converted, naive ones taken as UTC."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _row(record: t.Any, types: t.Mapping[str, str]) -> t.Dict[str, t.Any]:
    row = {}
    for column in types:
        value = getattr(record, column)
        if isinstance(value, dt.datetime):
            value = _utc_naive(value).isoformat()  # type: ignore[union-attr]
        elif hasattr(value, "item"):  # numpy scalars
            value = value.item()
        row[column] = value
    return row


def _decode(row: t.Mapping[str, t.Any], types: t.Mapping[str, str]) -> t.Dict[str, t.Any]:
    decoded = {}
    for column, kind in types.items():
        value = row.get(column)
        if value is not None and kind.startswith("TIMESTAMP"):
            value = dt.datetime.fromisoformat(value)
        decoded[column] = value
    return decoded


_ARROW_TYPES = {"VARCHAR": "string", "TIMESTAMP": "timestamp[us]", "DOUBLE": "float64", "BIGINT": "int64", "INTEGER": "int32"}


def _arrow(types: t.Mapping[str, str], rows: t.Sequence[t.Mapping[str, t.Any]]) -> t.Any:
    import pyarrow as pa

    schema = pa.schema([(column, pa.type_for_alias(_ARROW_TYPES[kind.split()[0]])) for column, kind in types.items()])
    return pa.Table.from_pylist(list(rows), schema=schema)


def _has_table(connection: t.Any, schema: str, table: str) -> bool:
    return bool(connection.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", [schema, table]
    ).fetchone()[0])

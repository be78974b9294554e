"""The result cache of ``@udf(cache=...)`` functions, kept in the project's warehouse.

Each cached function has a table in the schema ``mixmesh_cache`` (``<name>__<8 hex digits
of its return type>``) holding, per call, its key (``mixmesh.core.caching.row_key``: the
function's fingerprint and the argument values), the fingerprint, the result typed as the
function returns it (no pickle), when it was written and when it expires (NULL: never).

A cached function runs over batches (``CachedRows``): the batch's keys are looked up in one
query, the function is called for the misses only (once per distinct argument tuple, as a
smaller batch, under its retries, timeout and on_error), and the new results are written in
one statement. Rows that
got an on_error value are not kept: the next run calls them again. An entry past its time
to live is a miss and is overwritten.

DuckDB runs a function inside its query, on its own threads; the cache reads and writes
through other cursors of the same database (``Warehouse``), which DuckDB allows while the
query runs, even in its open transaction. The engine says which database that is
(``use_warehouse``); a function with no warehouse (a plain Python call, Spark's executors)
is called for every row, and says so once.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import hashlib
import logging
import threading
import typing as t
import uuid

import pyarrow as pa

from mixmesh import sink
from mixmesh.core import caching
from mixmesh.core import sql_types as types
from mixmesh.core.conversion import to_python
from mixmesh.core.functions import FunctionSpec
from mixmesh.runtime.batches import BatchFunction
from mixmesh.runtime import quarantine
from mixmesh.runtime.rows import RowBatchFunction
from mixmesh.runtime import provenance
from mixmesh.runtime.values import _as_array, _broadcast, _fallback

logger = logging.getLogger(__name__)

SCHEMA = "mixmesh_cache"


def table_name(spec: FunctionSpec) -> str:
    """The function's table: its SQL name and its return type (a changed type, a new table)."""
    returns = hashlib.sha256(types.sql(spec.returns).encode()).hexdigest()[:8]
    return f"{spec.name}__{returns}"


def function_of_table(table: str) -> str:
    return table.rsplit("__", 1)[0]


class Warehouse:
    """The cache's tables in one DuckDB database, read and written through cursors of
    ``connection`` (one per thread: DuckDB runs a function's batches on several)."""

    def __init__(self, connection: t.Any) -> None:
        self.connection = connection
        self._cursors = threading.local()
        self._writing = threading.Lock()

    def _cursor(self) -> t.Any:
        cursor = getattr(self._cursors, "cursor", None)
        if cursor is None:
            cursor = self._cursors.cursor = self.connection.cursor()
        return cursor

    def lookup(self, table: str, keys: t.Sequence[bytes], value_type: pa.DataType) -> t.Tuple[t.List[int], pa.Array]:
        """The positions in ``keys`` with a live entry, and their values (in that order)."""
        import duckdb

        cursor = self._cursor()
        view = f"__mixmesh_cache_keys_{uuid.uuid4().hex[:8]}"
        cursor.register(view, pa.table({"position": pa.array(range(len(keys)), pa.int64()), "key": pa.array(keys, pa.binary())}))
        try:
            found = cursor.execute(
                f"SELECT k.position, c.value FROM {view} AS k JOIN {_qualified(table)} AS c ON c.key = k.key "
                "WHERE c.expires_at IS NULL OR c.expires_at > now()"
            ).to_arrow_table()
        except duckdb.CatalogException:  # nothing was ever kept for this function
            return [], pa.array([], value_type)
        finally:
            cursor.unregister(view)
        # Writes replace a key's entry (Warehouse.write), so each position is found once.
        return found.column("position").to_pylist(), _cast(found.column("value"), value_type)

    def write(
        self, table: str, sql_type: str, fingerprint: str, keys: t.Sequence[bytes], values: pa.Array,
        cached_at: dt.datetime, expires_at: t.Optional[dt.datetime],
    ) -> None:
        """Keep ``values`` under ``keys``, replacing any entry (an expired one) under the same key."""
        cursor = self._cursor()
        now = cached_at
        rows = len(keys)
        entries = pa.table({
            "key": pa.array(keys, pa.binary()),
            "fingerprint": pa.array([fingerprint] * rows, pa.string()),
            "value": values,
            "cached_at": pa.array([now] * rows, pa.timestamp("us", tz="UTC")),
            "expires_at": pa.array([expires_at] * rows, pa.timestamp("us", tz="UTC")),
        })
        view = f"__mixmesh_cache_new_{uuid.uuid4().hex[:8]}"
        cursor.register(view, entries)
        # One write at a time: two batches missing the same key (DuckDB's threads run batches
        # at once) then replace each other's entry instead of adding a second one.
        try:
            with self._writing:
                # Created each time: `mixmesh cache --clear` may have dropped it since.
                self._create(cursor, table, sql_type)
                cursor.execute("BEGIN TRANSACTION")
                try:
                    cursor.execute(f"DELETE FROM {_qualified(table)} WHERE key IN (SELECT key FROM {view})")
                    cursor.execute(f"INSERT INTO {_qualified(table)} BY NAME SELECT * FROM {view}")
                    cursor.execute("COMMIT")
                except Exception:
                    cursor.execute("ROLLBACK")
                    raise
        finally:
            cursor.unregister(view)

    @staticmethod
    def _create(cursor: t.Any, table: str, sql_type: str) -> None:
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {_qualified(table)} (key BLOB NOT NULL, fingerprint VARCHAR NOT NULL, "
            f"value {sql_type}, cached_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ)"
        )

    # ------------------------------------------------------------------ what `mixmesh cache` shows

    def tables(self) -> t.List[str]:
        rows = self._cursor().execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = ? AND database_name = current_database() "
            "ORDER BY table_name",
            [SCHEMA],
        ).fetchall()
        return [row[0] for row in rows]

    def sizes(self) -> t.List[t.Dict[str, t.Any]]:
        """Per function: entries, live entries, code versions and bytes (of the entries as Arrow data)."""
        sizes: t.Dict[str, t.Dict[str, t.Any]] = {}
        for table in self.tables():
            entries = self._cursor().execute(f"SELECT * FROM {_qualified(table)}").to_arrow_table()
            live = self._cursor().execute(
                f"SELECT count(*) FILTER (WHERE expires_at IS NULL OR expires_at > now()), count(DISTINCT fingerprint) "
                f"FROM {_qualified(table)}"
            ).fetchone()
            figures = sizes.setdefault(
                function_of_table(table), {"function": function_of_table(table), "entries": 0, "live": 0,
                                           "versions": 0, "bytes": 0}
            )
            figures["entries"] += entries.num_rows
            figures["live"] += live[0]
            figures["versions"] += live[1]
            figures["bytes"] += entries.nbytes
        return sorted(sizes.values(), key=lambda figures: figures["function"])

    def clear(self, function: t.Optional[str] = None) -> int:
        """Drop the entries of ``function`` (of every function when None); the number dropped."""
        dropped = 0
        for table in self.tables():
            if function is not None and function_of_table(table) != function.lower():
                continue
            dropped += self._cursor().execute(f"SELECT count(*) FROM {_qualified(table)}").fetchone()[0]
            self._cursor().execute(f"DROP TABLE {_qualified(table)}")
        return dropped


def _qualified(table: str) -> str:
    return f'{SCHEMA}."{table}"'


def _cast(values: t.Union[pa.Array, pa.ChunkedArray], value_type: pa.DataType) -> pa.Array:
    values = _as_array(values)
    return values if values.type == value_type else values.cast(value_type)


# ------------------------------------------------------------------ the warehouse of this process

_warehouse: t.Optional[Warehouse] = None
_warehouse_lock = threading.Lock()


def use_warehouse(connection: t.Any) -> Warehouse:
    """The engine's database, where the cached functions this process runs keep results."""
    global _warehouse
    with _warehouse_lock:
        if _warehouse is None or _warehouse.connection is not connection:
            _warehouse = Warehouse(connection)
        return _warehouse


def current_warehouse() -> t.Optional[Warehouse]:
    return _warehouse


_told_uncached: t.Set[str] = set()


def say_uncached(spec: FunctionSpec, why: str) -> None:
    """Say once per function that its cache= is not applied here, and why."""
    if spec.name not in _told_uncached:
        _told_uncached.add(spec.name)
        logger.warning("%s is declared cache=, but %s: it is called for every row", spec.qualified, why)


# ------------------------------------------------------------------ a cached row function


class CachedRows:
    """A cached function over an Arrow batch: cached rows read, the misses called as a
    smaller batch (a row function's ``RowBatchFunction``, a vectorized one's
    ``BatchFunction``), their results written. ``warehouse``: where the
    results are kept (the process's, ``use_warehouse``, when None)."""

    def __init__(
        self, spec: FunctionSpec, model: t.Optional[str] = None, source: t.Optional[str] = None,
        dialect: str = "duckdb", warehouse: t.Optional[Warehouse] = None,
    ) -> None:
        self.spec, self.model, self._warehouse = spec, model, warehouse
        self._fingerprint = caching.fingerprint(spec)
        self._table = table_name(spec)
        self._sql_type = types.sql(spec.returns)
        # The values RowBatchFunction hands the function (and its fallback): maps as dicts.
        self._maps_as_dicts = [types.holds_map(types.to_arrow(arg.sql_type)) for arg in spec.args]
        # Rows given an on_error value are not kept: the fallback notes them on the way.
        self._fell_back: t.Set[str] = set()
        self._lock = threading.Lock()
        self._fallback = _fallback(spec)
        self._rows: t.Callable[..., pa.Array]
        if spec.vectorized:
            self._rows = _NotingBatches(spec, model, self._note_fallback_batch)
        else:
            noting = spec if spec.on_error == "raise" else dataclasses.replace(spec, on_error=self._note_fallback)
            self._rows = RowBatchFunction(noting, model, source=source, dialect=dialect)
        self.return_type = self._rows.return_type
        self.__signature__ = self._rows.__signature__

    def _note_fallback(self, *row: t.Any) -> t.Any:
        with self._lock:
            self._fell_back.add(caching.encode_row(row))
        return self._fallback(*row)

    def _note_fallback_batch(self, arrays: t.List[pa.Array]) -> None:
        """A vectorized function's rows given the on_error value (its failing rows, isolated)."""
        encoded = self._encoded_rows(self._python_values(arrays), len(arrays[0]) if arrays else 0)
        with self._lock:
            self._fell_back.update(row for row in encoded if row is not None)

    def _python_values(self, arrays: t.List[pa.Array]) -> t.List[t.List[t.Any]]:
        return [
            to_python(array, maps_as_pydicts="strict" if as_dicts else None)
            for array, as_dicts in zip(arrays, self._maps_as_dicts)
        ]

    def __call__(self, *columns: t.Union[pa.Array, pa.ChunkedArray]) -> pa.Array:
        warehouse = self._warehouse or current_warehouse()
        arrays = _broadcast([_as_array(column) for column in columns])
        rows = len(arrays[0]) if arrays else 0
        if warehouse is None:
            say_uncached(self.spec, "no warehouse is known to this process (Spark's executors, a plain call)")
            return self._rows(*arrays)
        if rows == 0:
            return self._rows(*arrays)
        values = self._python_values(arrays)
        # Each distinct argument tuple once: rows often repeat them (a currency and a day).
        encoded = self._encoded_rows(values, rows)
        distinct: t.Dict[str, int] = {}
        for row_encoded in encoded:
            if row_encoded is not None:
                distinct.setdefault(row_encoded, len(distinct))
        keys = [caching.key_of_encoded(self._fingerprint, row_encoded) for row_encoded in distinct]
        found, cached = warehouse.lookup(self._table, keys, self.return_type)
        cached_at = dict(zip(found, range(len(found))))  # distinct position -> its cached value
        # Each row's value: ("cached", index in cached) or ("called", index in the called batch).
        source: t.List[t.Tuple[bool, int]] = []
        called: t.List[int] = []  # rows the function is called for: one per distinct missed tuple
        called_at: t.Dict[int, int] = {}  # distinct position -> index in the called batch
        for row, row_encoded in enumerate(encoded):
            position = None if row_encoded is None else distinct[row_encoded]
            if position is not None and position in cached_at:
                source.append((True, cached_at[position]))
            elif position is not None and position in called_at:
                source.append((False, called_at[position]))
            else:
                if position is not None:
                    called_at[position] = len(called)
                source.append((False, len(called)))
                called.append(row)
        keyed = rows - encoded.count(None)
        sink.record_cache(self.model, self.spec.name, hits=keyed - len(called_at), misses=len(called_at))
        if not called:
            return self._marked(_merged(source, cached, None), source)
        computed = _cast(self._rows(*[array.take(pa.array(called, pa.int64())) for array in arrays]), self.return_type)
        self._quarantine_repeats(source, called, encoded, values)
        new = [(index, keys[position], encoded[called[index]]) for position, index in called_at.items()]
        self._keep(warehouse, new, computed)
        return self._marked(_merged(source, cached, computed), source)

    def _marked(self, values: pa.Array, source: t.List[t.Tuple[bool, int]]) -> pa.Array:
        """Values recording their provenance (``@with_provenance``) say which the cache gave."""
        if not provenance.is_variant(self.spec):
            return values
        return provenance.from_cache(values, [is_cached for is_cached, _ in source])

    def _quarantine_repeats(
        self, source: t.List[t.Tuple[bool, int]], called: t.List[int], encoded: t.List[t.Optional[str]],
        values: t.List[t.List[t.Any]],
    ) -> None:
        """A called row that got its on_error value was quarantined once; the rows that shared
        its arguments (and so its value) got it too: its entry counts them (``row_count``)."""
        if self.spec.on_error == "raise" or not self._fell_back:
            return
        sharing = collections.Counter(index for is_cached, index in source if not is_cached)
        names = [argument.name for argument in self.spec.args]
        for index, row in enumerate(called):
            with self._lock:
                fell_back = encoded[row] in self._fell_back
            if fell_back and sharing[index] > 1:
                quarantine.repeated(self.model, self.spec.name, names, [column[row] for column in values], sharing[index] - 1)

    def _encoded_rows(self, values: t.List[t.List[t.Any]], rows: int) -> t.List[t.Optional[str]]:
        """Each row's canonical encoding; None for a row no result is kept for (strict NULL
        handling gives NULL without a call)."""
        strict = self.spec.null_handling == "strict"
        encode = caching.encode_row
        return [
            None if strict and None in row else encode(row)
            for row in (zip(*values) if values else ())
        ]

    def _keep(self, warehouse: Warehouse, new: t.List[t.Tuple[int, bytes, str]], computed: pa.Array) -> None:
        """Write the results of the called rows (``new``: index in the called batch, key,
        encoded arguments), but those given an on_error value."""
        kept_positions, kept_keys = [], []
        for index, key, row_encoded in new:
            if self._fell_back:
                with self._lock:
                    if row_encoded in self._fell_back:
                        self._fell_back.discard(row_encoded)
                        continue
            kept_positions.append(index)
            kept_keys.append(key)
        if not kept_keys:
            return
        now = dt.datetime.now(dt.timezone.utc)
        try:
            warehouse.write(
                self._table, self._sql_type, self._fingerprint, kept_keys,
                computed.take(pa.array(kept_positions, pa.int64())), now, self.spec.cache.expires_at(now),
            )
        except Exception as error:  # noqa: BLE001 - a result not kept is called again next time
            logger.warning("%s: results not kept in the cache (%s: %s)", self.spec.qualified, type(error).__name__, error)


class _NotingBatches(BatchFunction):
    """A vectorized function whose rows given the on_error value are noted (not kept)."""

    def __init__(self, spec: FunctionSpec, model: t.Optional[str], note: t.Callable[[t.List[pa.Array]], None]) -> None:
        super().__init__(spec, model)
        self._note = note

    def _fallback_batch(self, arrays: t.List[pa.Array], error: Exception, rows: int) -> pa.Array:
        self._note(arrays)
        return super()._fallback_batch(arrays, error, rows)


def _merged(source: t.List[t.Tuple[bool, int]], cached: pa.Array, computed: t.Optional[pa.Array]) -> pa.Array:
    """The batch's results in row order: each row's value from the cached or the called ones."""
    offset = len(cached)
    order = pa.array([position if from_cache else offset + position for from_cache, position in source], pa.int64())
    combined = cached if computed is None else pa.concat_arrays([cached, computed])
    return combined.take(order)

"""Where captured figures are kept: a DuckDB file, append-only, with a schema version.

By default ``.mixmesh/metrics.duckdb`` in the project. ``MetricsStore.append`` adds the
rows of one model evaluation in one transaction; ``model_runs`` and ``function_runs`` read
them back as pandas DataFrames, newest last.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing as t
from pathlib import Path

from mixmesh.errors import MixmeshError
from mixmesh.monitor.records import FUNCTION_RUN_COLUMNS, MODEL_RUN_COLUMNS, SCHEMA_VERSION, FunctionRun, ModelRun

if t.TYPE_CHECKING:
    import pandas as pd

DEFAULT_PATH = Path(".mixmesh") / "metrics.duckdb"

_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """
    CREATE TABLE IF NOT EXISTS model_runs (
        run_id VARCHAR NOT NULL, model VARCHAR NOT NULL, command VARCHAR, environment VARCHAR, engine VARCHAR,
        interval_start TIMESTAMP, interval_end TIMESTAMP, started_at TIMESTAMP NOT NULL, ended_at TIMESTAMP NOT NULL,
        total_s DOUBLE NOT NULL, python_s DOUBLE NOT NULL, sql_s DOUBLE NOT NULL,
        rows_in BIGINT, rows_out BIGINT, rows_per_s DOUBLE, peak_rss_mb DOUBLE,
        retries INTEGER, fallbacks INTEGER, errors INTEGER, breaker_transitions INTEGER,
        status VARCHAR NOT NULL, error VARCHAR, project VARCHAR
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS function_runs (
        run_id VARCHAR NOT NULL, model VARCHAR NOT NULL, function VARCHAR NOT NULL, mode VARCHAR NOT NULL,
        calls BIGINT, rows BIGINT, total_s DOUBLE, p50_batch_s DOUBLE, p95_batch_s DOUBLE, errors BIGINT,
        mean_list_length DOUBLE
    )
    """,
)


class MetricsStoreError(MixmeshError, RuntimeError):
    """The metrics store cannot be opened or written (another schema version, a bad path)."""


class MetricsStore:
    """The figures of past model evaluations, in a DuckDB file."""

    def __init__(self, path: t.Union[str, Path] = DEFAULT_PATH) -> None:
        self.path = Path(path)

    def append(self, model_runs: t.Sequence[ModelRun], function_runs: t.Sequence[FunctionRun] = ()) -> None:
        """Add the rows in one transaction: all of them, or none."""
        with self._connect(read_only=False) as connection:
            connection.execute("BEGIN")
            _insert(connection, "model_runs", MODEL_RUN_COLUMNS, model_runs)
            _insert(connection, "function_runs", FUNCTION_RUN_COLUMNS, function_runs)
            connection.execute("COMMIT")

    def model_runs(self, model: t.Optional[str] = None, days: t.Optional[float] = None) -> "pd.DataFrame":
        """Model evaluations, oldest first; only ``model``'s, only the last ``days`` days, if given."""
        return self._read("model_runs", MODEL_RUN_COLUMNS, model, days)

    def function_runs(self, model: t.Optional[str] = None, days: t.Optional[float] = None) -> "pd.DataFrame":
        """Function figures of those evaluations, in the same order."""
        return self._read("function_runs", FUNCTION_RUN_COLUMNS, model, days)

    def _read(self, table: str, columns: t.Sequence[str], model: t.Optional[str], days: t.Optional[float]) -> "pd.DataFrame":
        import pandas as pd

        if not self.path.exists():
            return pd.DataFrame(columns=list(columns))
        conditions, params = [], []
        if model is not None:
            conditions.append("m.model = ?")
            params.append(model)
        if days is not None:
            conditions.append("m.started_at >= ?")
            params.append(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(days=days))
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        selected = ", ".join(f"t.{column}" for column in columns)
        source = "model_runs m" if table == "model_runs" else "function_runs t JOIN model_runs m USING (run_id)"
        if table == "model_runs":
            selected = selected.replace("t.", "m.")
        with self._connect(read_only=True) as connection:
            return connection.execute(f"SELECT {selected} FROM {source} {where} ORDER BY m.started_at", params).df()

    def _connect(self, read_only: bool) -> t.Any:
        import duckdb

        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as error:
            raise MetricsStoreError(f"metrics store {self.path}: {error}") from None
        if not read_only:
            for statement in _DDL:
                connection.execute(statement)
            if connection.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 0:
                connection.execute("INSERT INTO schema_version VALUES (?)", [SCHEMA_VERSION])
        version = connection.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            connection.close()
            raise MetricsStoreError(
                f"metrics store {self.path} has schema version {version}; this mixmesh reads version {SCHEMA_VERSION}"
            )
        return connection


def _insert(connection: t.Any, table: str, columns: t.Sequence[str], rows: t.Sequence[t.Any]) -> None:
    if not rows:
        return
    placeholders = ", ".join("?" for _ in columns)
    connection.executemany(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",
        [[getattr(row, column) for column in columns] for row in rows],
    )

"""The figures kept for each model evaluation and for each Python function it called.

One ``ModelRun`` per model interval (batch) SQLMesh evaluates; one ``FunctionRun`` per
function the evaluation called. Times are seconds; memory is MiB; timestamps are UTC.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing as t
import uuid

SCHEMA_VERSION = 1


def new_id() -> str:
    return uuid.uuid4().hex


@dataclasses.dataclass
class ModelRun:
    run_id: str  # one evaluation of one model interval
    model: str  # schema.name
    command: str  # plan, run, test, evaluate...
    environment: t.Optional[str]  # the SQLMesh environment (prod, dev...); None where none applies
    engine: str  # duckdb, spark...
    interval_start: t.Optional[dt.datetime]
    interval_end: t.Optional[dt.datetime]
    started_at: dt.datetime
    ended_at: dt.datetime
    total_s: float
    python_s: float  # inside Python functions and Python model code
    sql_s: float  # the rest: the engine
    rows_in: t.Optional[int]  # rows a Python model read through context.sql (engines do not say for SQL)
    rows_out: t.Optional[int]  # rows written
    rows_per_s: t.Optional[float]  # rows_out / total_s
    peak_rss_mb: float  # the process's peak resident memory during the evaluation
    retries: int = 0
    fallbacks: int = 0
    errors: int = 0
    breaker_transitions: int = 0
    status: str = "ok"  # ok or failed
    error: t.Optional[str] = None
    project: t.Optional[str] = None
    # A retry's backoff between attempts: waiting, neither Python nor the engine
    # (total_s = python_s + sql_s + wait_s); None in runs recorded before it was kept.
    wait_s: t.Optional[float] = None
    # The model version: SQLMesh's snapshot fingerprint (``Snapshot.identifier``), which changes
    # with the model's code, its metadata or an upstream model's; and the snapshot's table
    # version (``Snapshot.version``, the suffix of its physical table). None in runs recorded
    # before they were kept, and for unit tests (no snapshot).
    fingerprint: t.Optional[str] = None
    snapshot_version: t.Optional[str] = None
    # What the evaluation added to the process's resident memory: its peak during the
    # evaluation less the resident memory when it began (peak_rss_mb is the whole process's).
    added_rss_mb: t.Optional[float] = None


@dataclasses.dataclass
class FunctionRun:
    run_id: str  # the ModelRun it belongs to
    model: str
    function: str  # the @udf's SQL name
    mode: str  # row, vectorized, or model (a Python model's own code)
    calls: t.Optional[int]  # batches the function ran on; None where not counted (row mode called per row, model)
    rows: t.Optional[int]
    total_s: float
    p50_batch_s: t.Optional[float]
    p95_batch_s: t.Optional[float]
    errors: int = 0
    mean_list_length: t.Optional[float] = None  # over list arguments, when it has any
    # What the function counted with mixmesh.count, as a JSON object {"finding": n}; None when
    # it counted nothing (or in runs recorded before findings were kept).
    findings: t.Optional[str] = None
    # How the run's statements ran it on DuckDB: "fast path", or "plain binding: <why>"
    # (several, "; "-separated, when its statements differed); None where no statement
    # decided (Spark, Python models, runs recorded before it was kept).
    path: t.Optional[str] = None
    # @udf(concurrency=N): the most calls in flight at once in a process; @udf(rate_limit=...):
    # the attempts per second it let through. None for functions without them.
    max_in_flight: t.Optional[int] = None
    calls_per_s: t.Optional[float] = None
    # A cached function (@udf(cache=...)): rows read from the result cache, and calls made for
    # the arguments it did not hold; None for other functions (and runs recorded before).
    cache_hits: t.Optional[int] = None
    cache_misses: t.Optional[int] = None


MODEL_RUN_COLUMNS = tuple(field.name for field in dataclasses.fields(ModelRun))
FUNCTION_RUN_COLUMNS = tuple(field.name for field in dataclasses.fields(FunctionRun))

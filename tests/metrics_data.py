"""ModelRun / FunctionRun records for the monitoring tests, built the way capture builds them."""

from __future__ import annotations

import datetime as dt
import typing as t

from mixmesh.monitor.records import FunctionRun, ModelRun, new_id

START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def model_run(
    model: str = "analytics.m",
    *,
    at: t.Optional[dt.datetime] = None,
    total_s: float = 1.0,
    python_s: float = 0.25,
    rows_out: t.Optional[int] = 1000,
    peak_rss_mb: float = 100.0,
    status: str = "ok",
    **extra: t.Any,
) -> ModelRun:
    started = at or dt.datetime.now(dt.timezone.utc)
    fields: t.Dict[str, t.Any] = dict(
        run_id=new_id(), model=model, command="run", environment="prod", engine="duckdb",
        interval_start=None, interval_end=None, started_at=started,
        ended_at=started + dt.timedelta(seconds=total_s), total_s=total_s, python_s=python_s,
        sql_s=total_s - python_s, rows_in=rows_out, rows_out=rows_out,
        rows_per_s=None if rows_out is None or total_s == 0 else rows_out / total_s,
        peak_rss_mb=peak_rss_mb, status=status,
    )
    fields.update(extra)
    return ModelRun(**fields)


def function_run(
    run: ModelRun,
    function: str = "score",
    *,
    mode: str = "row",
    calls: int = 1000,
    rows: int = 1000,
    total_s: float = 0.2,
    p50_batch_s: t.Optional[float] = 0.0001,
    p95_batch_s: t.Optional[float] = 0.0005,
    errors: int = 0,
    mean_list_length: t.Optional[float] = None,
) -> FunctionRun:
    return FunctionRun(
        run_id=run.run_id, model=run.model, function=function, mode=mode, calls=calls, rows=rows, total_s=total_s,
        p50_batch_s=p50_batch_s, p95_batch_s=p95_batch_s, errors=errors, mean_list_length=mean_list_length,
    )


def days_ago(days: float) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)

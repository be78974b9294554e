"""Capture: what each model evaluation cost, saved to the metrics store.

Around each model interval SQLMesh evaluates (``mixmesh.sqlmesh.monitoring`` hooks its
evaluator), ``evaluating`` opens an evaluation in the sink (``mixmesh.sink``), where the
functions' wrappers and the sampler record, and then saves what it holds: the wall time,
the rows written (SQLMesh's own count), the process's peak memory and what the evaluation
added to it, the model version (SQLMesh's snapshot fingerprint), the environment, the
resilience events of the model, and how the time splits between Python, the engine and waiting (a retry's backoff
between attempts). Vectorized functions are timed exactly, batch by batch; row-mode ones, a
Python model's code and the backoff by the sink's sampler (see there).

SQLMesh unit tests (``sqlmesh test``) are captured only when asked, with
``MIXMESH_MONITOR_TESTS=1`` (command "test"): fixture rows say little about production
costs. ``MIXMESH_MONITOR=off`` switches capture off. A failure to record is logged, never
raised: monitoring does not fail a model.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import functools
import json
import logging
import sys
import time
import typing as t
from pathlib import Path

from mixmesh.core import settings
from mixmesh.core.names import short_name
from mixmesh.monitor import writer
from mixmesh.monitor.records import FunctionRun, ModelRun, new_id
from mixmesh.runtime.counting import PREFIX as FINDING
from mixmesh.sink import (
    Evaluation,
    FunctionFigures,
    close_evaluation,
    mode_of,
    open_evaluation,
    record_batch,
    record_pace,
    register_wait_code,
)

logger = logging.getLogger(__name__)

MONITOR_VARIABLE = "MIXMESH_MONITOR"
TESTS_VARIABLE = "MIXMESH_MONITOR_TESTS"
# The SQLMesh command running and its project: process-wide, as SQLMesh may evaluate models
# on threads of its own, where a context variable set by the command would not be seen.
_command: t.Optional[t.Tuple[str, Path]] = None
COMMANDS = ("plan", "run", "evaluate", "test")
# The SQLMesh environment the scheduler evaluates for: per thread of execution, as SQLMesh
# evaluates models on worker threads, each calling the evaluator on its own thread.
_environment: contextvars.ContextVar[t.Optional[str]] = contextvars.ContextVar("mixmesh_environment", default=None)


class Version(t.NamedTuple):
    """A model version as SQLMesh names it: the snapshot's fingerprint and table version."""

    fingerprint: t.Optional[str]
    snapshot_version: t.Optional[str]


NO_VERSION = Version(None, None)


def _register_backoff() -> None:
    """A retry's backoff is tenacity's ``Retrying.__call__`` sleeping between attempts
    (``mixmesh.core.resilience.Retry``): while it is a thread's innermost frame, that thread waits."""
    import tenacity

    register_wait_code(tenacity.Retrying.__call__.__code__)


_register_backoff()


def enabled() -> bool:
    return settings.switch(MONITOR_VARIABLE, default=True)


def tests_captured() -> bool:
    return enabled() and settings.switch(TESTS_VARIABLE, default=False)


@contextlib.contextmanager
def running(command: str, project: Path) -> t.Iterator[None]:
    """Figures recorded meanwhile come from ``command`` (plan, run...) on ``project``."""
    global _command
    outer, _command = _command, (command, project)
    try:
        yield
    finally:
        _command = outer
        if outer is None:  # its figures go to the spool now, not a second later
            writer.write_soon()


def current_command() -> t.Optional[t.Tuple[str, Path]]:
    return _command


@contextlib.contextmanager
def in_environment(name: t.Optional[str]) -> t.Iterator[None]:
    """Evaluations meanwhile, on this thread, are for SQLMesh environment ``name``."""
    token = _environment.set(name)
    try:
        yield
    finally:
        _environment.reset(token)


@contextlib.contextmanager
def evaluating(
    name: str,
    engine: t.Optional[str],
    interval: t.Tuple[t.Any, t.Any],
    rows_written: t.Callable[[], t.Optional[int]],
    version: Version = NO_VERSION,
) -> t.Iterator[None]:
    from mixmesh.core.resilience import events

    model = short_name(name)
    before = _resilience_counts(events(), model)
    started_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    started = time.perf_counter()
    evaluation = open_evaluation(model)
    error: t.Optional[BaseException] = None
    try:
        yield
    except BaseException as raised:
        error = raised
        raise
    finally:
        _file_remote_batches()  # while this evaluation is still among the active ones
        close_evaluation(evaluation)
        total = time.perf_counter() - started
        try:
            _save(engine, interval, rows_written, evaluation, started_at, total, before, error, version)
        except Exception:  # noqa: BLE001 - monitoring must never fail a model
            logger.warning("mixmesh could not record the figures of %s", model, exc_info=True)


def _save(
    engine: t.Optional[str],
    interval: t.Tuple[t.Any, t.Any],
    rows_written: t.Callable[[], t.Optional[int]],
    evaluation: Evaluation,
    started_at: dt.datetime,
    total: float,
    before: t.Dict[t.Tuple[str, str], int],
    error: t.Optional[BaseException],
    version: Version = NO_VERSION,
) -> None:
    """Hand the evaluation's figures to the store's writer. What only this moment knows (the
    command, the environment, the events since the start, the rows written) is read here;
    the rows are built on the writer thread, off the model's (0.2 ms an evaluation)."""
    from mixmesh.core.resilience import events

    command, project = _command or _running_command() or ("evaluate", Path.cwd())
    after = _resilience_counts(events(), evaluation.model)
    moment = _Moment(
        command=command,
        project=project,
        environment=_environment.get(),
        engine=engine or "unknown",
        interval=interval,
        started_at=started_at,
        total=total,
        changes={key: after[key] - before.get(key, 0) for key in after},
        rows_out=evaluation.rows_written if evaluation.rows_written is not None else rows_written(),
        # As text now: the exception's traceback would keep its frames' data alive meanwhile.
        error=None if error is None else f"{type(error).__name__}: {error}"[:2000],
        version=version,
    )
    _store_for(project).append_later(functools.partial(_records, evaluation, moment), evaluation.model)


class _Moment(t.NamedTuple):
    """What an evaluation's rows need that is known only when it ends."""

    command: str
    project: Path
    environment: t.Optional[str]
    engine: str
    interval: t.Tuple[t.Any, t.Any]
    started_at: dt.datetime
    total: float
    changes: t.Dict[t.Tuple[str, str], int]  # resilience events counted during it
    rows_out: t.Optional[int]
    error: t.Optional[str]  # the evaluation's error, if it failed
    version: Version


def _records(evaluation: Evaluation, moment: _Moment) -> t.Tuple[t.List[ModelRun], t.List[FunctionRun]]:
    """The evaluation's row of model runs and its rows of function runs."""
    run_id = evaluation.run_id or new_id()
    changes, total, rows_out, error = moment.changes, moment.total, moment.rows_out, moment.error
    findings = _findings(changes)
    counted_only = {name: FunctionFigures(mode_of(name)) for name in findings if name not in evaluation.functions}
    functions = [
        _function_run(
            run_id, evaluation.model, name, figures, handled=changes.get((name, "fallbacks"), 0), findings=findings.get(name)
        )
        for name, figures in {**evaluation.functions, **counted_only}.items()
    ]
    python_s, wait_s = time_split(evaluation, functions, total)
    counts = _by_event(changes)
    run = ModelRun(
        run_id=run_id,
        model=evaluation.model,
        command=moment.command,
        environment=moment.environment,
        engine=moment.engine,
        interval_start=_naive(moment.interval[0]),
        interval_end=_naive(moment.interval[1]),
        started_at=moment.started_at,
        ended_at=moment.started_at + dt.timedelta(seconds=total),
        total_s=total,
        python_s=python_s,
        sql_s=max(total - python_s - wait_s, 0.0),
        rows_in=evaluation.rows_read,
        rows_out=rows_out,
        rows_per_s=rows_out / total if rows_out is not None and total > 0 else None,
        peak_rss_mb=evaluation.peak_rss / (1 << 20),
        retries=counts.get("retries", 0),
        fallbacks=counts.get("fallbacks", 0),
        errors=counts.get("timeouts", 0) + sum(f.errors for f in functions) + int(error is not None),
        breaker_transitions=counts.get("breaker_transitions", 0),
        status="ok" if error is None else "failed",
        error=error,
        project=str(moment.project),
        wait_s=wait_s,
        fingerprint=moment.version.fingerprint,
        snapshot_version=moment.version.snapshot_version,
        added_rss_mb=max(evaluation.peak_rss - evaluation.start_rss, 0) / (1 << 20),
    )
    return [run], functions


def time_split(evaluation: Evaluation, functions: t.Sequence[FunctionRun], total: float) -> t.Tuple[float, float]:
    """Python's seconds and the backoff's out of ``total``; the engine has the rest.

    Batch-timed functions (vectorized ones, and row ones on the fast path) are timed exactly,
    but a batch's time includes the backoff of the retries inside it: that part is waiting."""
    wait_s = min(evaluation.wait_sampled, total)
    timed = sum(f.total_s for f in functions if f.calls is not None)
    return min(total - wait_s, max(evaluation.python_sampled, timed - wait_s)), wait_s


_stores: t.Dict[Path, t.Any] = {}


def _store_for(project: Path) -> t.Any:
    """The project's store, merging its spooled rows when the process exits, not meanwhile.

    A merge opens the DuckDB file and writes to it: done in the background after each
    model, it competed with the next model for the cores and cost it several percent.
    """
    store = _stores.get(project)
    if store is None:
        import atexit

        from mixmesh.monitor.store import MetricsStore

        store = _stores[project] = MetricsStore.for_project(project)
        store.background_merge = False
        atexit.register(_merge_quietly, store)
    return store


def _merge_quietly(store: t.Any) -> None:
    try:
        store.merge(wait=1.0)
    except Exception as error:  # noqa: BLE001 - held by another process: a reader merges later
        logger.debug("metrics left in the spool: %s", error)


def _running_command() -> t.Optional[t.Tuple[str, Path]]:
    """The Context command under way, found on the threads' stacks.

    ``sqlmesh run`` enters ``Context.run`` before mixmesh is imported (it loads mixmesh
    only with the models' stored code), so the method was not wrapped when it was called.
    """
    from sqlmesh.core.context import GenericContext

    for frame in sys._current_frames().values():
        while frame is not None:
            context = frame.f_locals.get("self") if frame.f_code.co_name in COMMANDS else None
            if isinstance(context, GenericContext):
                return frame.f_code.co_name, Path(context.path)
            frame = frame.f_back
    return None


def _function_run(
    run_id: str, model: str, name: str, figures: FunctionFigures, handled: int, findings: t.Optional[t.Dict[str, int]] = None
) -> FunctionRun:
    batches = sorted(figures.batch_seconds)
    total = sum(batches) if batches else figures.sampled_seconds
    return FunctionRun(
        run_id=run_id,
        model=model,
        function=name,
        mode=figures.mode,
        calls=figures.calls if batches else None,
        rows=figures.rows if batches else None,
        total_s=total,
        p50_batch_s=_percentile(batches, 0.50),
        p95_batch_s=_percentile(batches, 0.95),
        errors=figures.errors + handled,  # raised out of the function, or caught by its on_error
        mean_list_length=sum(figures.list_lengths) / len(figures.list_lengths) if figures.list_lengths else None,
        findings=json.dumps(findings, sort_keys=True) if findings else None,
        path="; ".join(figures.paths) or None,
        max_in_flight=figures.max_in_flight,
        calls_per_s=figures.calls_per_s,
        cache_hits=figures.cache_hits if figures.cache_hits or figures.cache_misses else None,
        cache_misses=figures.cache_misses if figures.cache_hits or figures.cache_misses else None,
    )


def _percentile(ordered: t.Sequence[float], q: float) -> t.Optional[float]:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))
    return ordered[index]


def rows_written(evaluator: t.Any, snapshot: t.Any, kwargs: t.Mapping[str, t.Any]) -> t.Optional[int]:
    from sqlmesh.core.snapshot.execution_tracker import SnapshotIdBatch

    stats = evaluator.execution_tracker.get_execution_stats(
        SnapshotIdBatch(snapshot_id=snapshot.snapshot_id, batch_id=kwargs.get("batch_index", 0))
    )
    return None if stats is None else stats.total_rows_processed


def _resilience_counts(events: t.Mapping[t.Tuple[t.Optional[str], str, str], int], model: str) -> t.Dict[t.Tuple[str, str], int]:
    """The model's event counts by (function, event)."""
    counts: t.Dict[t.Tuple[str, str], int] = {}
    for (event_model, function, event), count in events.items():
        if event_model is not None and short_name(event_model) == model:
            counts[function, event] = counts.get((function, event), 0) + count
    return counts


def _findings(changes: t.Mapping[t.Tuple[str, str], int]) -> t.Dict[str, t.Dict[str, int]]:
    """What each function counted with mixmesh.count during the evaluation, by finding."""
    found: t.Dict[str, t.Dict[str, int]] = {}
    for (function, event), count in changes.items():
        if event.startswith(FINDING) and count > 0:
            found.setdefault(function, {})[event[len(FINDING):]] = count
    return found


def _by_event(counts: t.Mapping[t.Tuple[str, str], int]) -> t.Dict[str, int]:
    totals: t.Dict[str, int] = {}
    for (_function, event), count in counts.items():
        totals[event] = totals.get(event, 0) + count
    return totals


def _naive(value: t.Any) -> t.Optional[dt.datetime]:
    if value is None:
        return None
    from sqlmesh.utils.date import to_datetime

    return to_datetime(value).replace(tzinfo=None)


def _file_remote_batches() -> None:
    """Batches functions ran in other processes (Spark's executors), and the resilience
    events counted there, under their models."""
    from mixmesh import engines
    from mixmesh.core.resilience import record

    try:
        batches = engines.collect_remote_batches()
    except Exception:  # noqa: BLE001 - monitoring must never fail a model
        logger.warning("mixmesh could not collect the executors' figures", exc_info=True)
        return
    for batch in batches:
        record_batch(batch.model, batch.function, batch.rows, batch.seconds, batch.failed, batch.list_length,
                     mode=batch.mode)
        for event, count in batch.events:
            record(batch.model, batch.function, event, "on a Spark executor", times=count)
        if batch.in_flight is not None:  # per worker process; a rate limit's pace is not sent back
            record_pace(batch.model, batch.function, batch.in_flight, 0, 0.0, None)

"""Capture: what each model evaluation cost, recorded while SQLMesh evaluates it.

``install`` wraps SQLMesh's ``SnapshotEvaluator.evaluate``, which ``plan`` and ``run``
call once per model interval (batch). Around each call mixmesh records the wall time, the
rows written (SQLMesh's own count), the process's peak memory, the resilience events of
the model, and how the time splits between Python and the engine.

How the split is measured. Vectorized functions are timed exactly, batch by batch. A
row-mode function is called by the engine once per row, where even a clock read per call
would cost more than the 3% monitoring may add; so a sampler thread looks at every
thread's stack every few milliseconds (``MIXMESH_MONITOR_SAMPLE_MS``, default 5) and
counts the interval as Python when the innermost frame it recognises is a project function
(a ``@udf``, a Python model) rather than a query being run for one (``context.sql``,
SQLMesh's engine adapter). Python time is the sampled time, or the exact batch time when
that is larger; SQL time is the rest of the model's time. The sampler also reads the
process's resident memory, and what list arguments a row-mode function receives.

SQLMesh unit tests (``sqlmesh test``) are captured only when asked, with
``MIXMESH_MONITOR_TESTS=1`` (command "test"): fixture rows say little about production
costs. ``MIXMESH_MONITOR=off`` switches capture off. A failure to record is logged, never raised: monitoring does not
fail a model.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import os
import sys
import threading
import time
import types
import typing as t
from pathlib import Path

from mixmesh.monitor.records import FunctionRun, ModelRun, new_id

logger = logging.getLogger(__name__)

MONITOR_VARIABLE = "MIXMESH_MONITOR"
SAMPLE_MS_VARIABLE = "MIXMESH_MONITOR_SAMPLE_MS"
TESTS_VARIABLE = "MIXMESH_MONITOR_TESTS"
DEFAULT_SAMPLE_MS = 5.0
_RSS_EVERY = 20  # samples between two readings of the resident memory (every 100 ms by default)

# Code objects of project functions (entry points: @udf functions and their compiled
# copies, Python model functions) and of the places where Python waits for the engine.
# code -> (function name, mode, the model it runs for when the code is that model's own)
_user_code: t.Dict[types.CodeType, t.Tuple[str, str, t.Optional[str]]] = {}
_engine_code: t.Set[types.CodeType] = set()
# The evaluations under way, by model: SQLMesh may evaluate several at once on its threads.
_active: t.Dict[str, "Evaluation"] = {}
_active_lock = threading.Lock()
# The SQLMesh command running and its project: process-wide, as SQLMesh may evaluate models
# on threads of its own, where a context variable set by the command would not be seen.
_command: t.Optional[t.Tuple[str, Path]] = None
_COMMANDS = ("plan", "run", "evaluate", "test")


def enabled() -> bool:
    return os.environ.get(MONITOR_VARIABLE, "on").lower() not in ("off", "0", "false", "no")


def register_user_code(code: types.CodeType, function: str, mode: str, model: t.Optional[str] = None) -> None:
    """Mark ``code`` as a project function's: time inside it is Python time (``model``'s, if given)."""
    _user_code[code] = (function, mode, None if model is None else short_name(model))


def register_engine_code(code: types.CodeType) -> None:
    """Mark ``code`` as running a query: time under it (and not in user code) is the engine's."""
    _engine_code.add(code)


# ------------------------------------------------------------------------- batch timing


def active_model() -> t.Optional[str]:
    """The model being evaluated in this process, when there is exactly one (events recorded
    outside any function, such as an artifact's fallback, are filed under it)."""
    with _active_lock:
        return next(iter(_active)) if len(_active) == 1 else None


def evaluating() -> bool:
    """Whether some model evaluation is being recorded (figures worth computing)."""
    return bool(_active)


def record_batch(
    model: t.Optional[str],
    function: str,
    rows: int,
    seconds: float,
    failed: bool,
    list_length: t.Optional[float],
    mode: str = "vectorized",
) -> None:
    """One batch's figures, from the function's wrapper (on one of the engine's threads): a
    vectorized call, or a row function run over a batch on the fast path."""
    evaluation = _evaluation_of(model)
    if evaluation is not None:
        evaluation.batch(function, rows, seconds, failed, list_length, mode)


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


def _evaluation_of(model: t.Optional[str]) -> t.Optional["Evaluation"]:
    """The evaluation of ``model``, or the only one under way when the model is not known."""
    if model is not None:
        found = _active.get(short_name(model))
        if found is not None:
            return found
    evaluations = list(_active.values())
    return evaluations[0] if len(evaluations) == 1 else None


def _evaluation_on_this_thread() -> t.Optional["Evaluation"]:
    """The evaluation SQLMesh runs on the calling thread (its writes and a Python model's reads)."""
    me = threading.get_ident()
    return next((evaluation for evaluation in list(_active.values()) if evaluation.thread == me), None)


def record_rows_read(rows: int) -> None:
    """Rows a Python model read through ``context.sql``."""
    evaluation = _evaluation_on_this_thread()
    if evaluation is not None:
        with evaluation.lock:
            evaluation.rows_read = (evaluation.rows_read or 0) + rows


class _FunctionFigures:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.calls = 0
        self.rows = 0
        self.errors = 0
        self.batch_seconds: t.List[float] = []
        self.sampled_seconds = 0.0
        self.list_lengths: t.List[float] = []


# ------------------------------------------------------------------------- one evaluation


class Evaluation:
    """The figures of one model interval being evaluated."""

    def __init__(self, model: str, sample_seconds: float) -> None:
        self.model = model
        self.thread = threading.get_ident()
        self.functions: t.Dict[str, _FunctionFigures] = {}
        self.lock = threading.Lock()
        self.python_sampled = 0.0
        self.rows_written: t.Optional[int] = None
        self.rows_read: t.Optional[int] = None  # known for what Python models read
        self.peak_rss = _rss_bytes()
        self._interval = sample_seconds
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name="mixmesh-monitor", daemon=True)

    def batch(
        self, function: str, rows: int, seconds: float, failed: bool, list_length: t.Optional[float], mode: str
    ) -> None:
        with self.lock:
            figures = self.functions.setdefault(function, _FunctionFigures(mode))
            figures.calls += 1
            figures.rows += rows
            figures.errors += int(failed)
            figures.batch_seconds.append(seconds)
            if list_length is not None:
                figures.list_lengths.append(list_length)

    def add_rows_written(self, rows: int) -> None:
        with self.lock:
            self.rows_written = (self.rows_written or 0) + rows

    def start(self) -> None:
        self._sampler.start()

    def stop(self) -> None:
        self._stop.set()
        self._sampler.join()
        self.peak_rss = max(self.peak_rss, _rss_bytes())

    def _sample(self) -> None:
        me = threading.get_ident()
        last = time.perf_counter()
        ticks = 0
        while not self._stop.wait(self._interval):
            now = time.perf_counter()
            elapsed, last = now - last, now
            ticks += 1
            if ticks % _RSS_EVERY == 0:  # a peak needs no reading every few milliseconds
                self.peak_rss = max(self.peak_rss, _rss_bytes())
            found = self._python_frame(me)
            if found is None:
                continue
            function, mode, frame = found
            with self.lock:
                self.python_sampled += elapsed
                figures = self.functions.setdefault(function, _FunctionFigures(mode))
                figures.sampled_seconds += elapsed
                if mode == "row":
                    length = _list_argument_length(frame)
                    if length is not None:
                        figures.list_lengths.append(length)

    def _python_frame(self, sampler: int) -> t.Optional[t.Tuple[str, str, types.FrameType]]:
        """A thread running Python for this model now: its function, mode and frame."""
        alone = len(_active) <= 1
        for ident, frame in sys._current_frames().items():
            found = None if ident == sampler else _innermost_user_frame(frame)
            if found is None:
                continue
            function, mode, model, frame = found
            # With other models evaluating, only code known to be this model's counts.
            if model == self.model or (model is None and alone):
                return function, mode, frame
        return None


def _innermost_user_frame(frame: t.Optional[types.FrameType]) -> t.Optional[t.Tuple[str, str, t.Optional[str], types.FrameType]]:
    """Walking out from the innermost frame: a project function's frame, or None at an engine call."""
    while frame is not None:
        code = frame.f_code
        if code in _user_code:
            function, mode, model = _user_code[code]
            return function, mode, model, frame
        if code in _engine_code:
            return None
        frame = frame.f_back
    return None


def _list_argument_length(frame: types.FrameType) -> t.Optional[float]:
    code = frame.f_code
    lengths = [len(value) for value in (frame.f_locals.get(name) for name in code.co_varnames[: code.co_argcount])
               if isinstance(value, (list, tuple))]
    return float(max(lengths)) if lengths else None


def _rss_bytes() -> int:
    """The process's resident memory now (Linux), or its peak so far (elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


# ------------------------------------------------------------------------- the SQLMesh hook


def evaluate_hook(evaluate: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """Wrap ``SnapshotEvaluator.evaluate`` to record each model interval it evaluates."""

    @functools.wraps(evaluate)
    def hook(self: t.Any, snapshot: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        if not enabled() or not getattr(snapshot, "is_model", False):
            return evaluate(self, snapshot, *args, **kwargs)
        engine = getattr(getattr(self, "adapter", None), "dialect", None)
        interval = (kwargs.get("start"), kwargs.get("end"))
        with _evaluating(snapshot.name, engine, interval, lambda: _rows_written(self, snapshot, kwargs)):
            return evaluate(self, snapshot, *args, **kwargs)

    return hook


def test_hook(run_test: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """Wrap a SQLMesh unit test's ``runTest``: recorded as command "test" when asked."""

    @functools.wraps(run_test)
    def hook(self: t.Any) -> t.Any:
        if not (enabled() and os.environ.get(TESTS_VARIABLE, "").lower() in ("1", "true", "yes", "on")):
            return run_test(self)
        variables = self.body.get("vars", {}) if isinstance(getattr(self, "body", None), dict) else {}
        global _command
        outer = _command
        _command = ("test", outer[1] if outer else Path.cwd())
        try:
            with _evaluating(self.model.name, self.engine_adapter.dialect, (variables.get("start"), variables.get("end")), lambda: None):
                return run_test(self)
        finally:
            _command = outer

    return hook


def command_hook(name: str, method: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """Wrap a ``Context`` method (plan, run...) so the figures say which command produced them."""

    @functools.wraps(method)
    def hook(context: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        global _command
        outer, _command = _command, (name, Path(context.path))
        try:
            return method(context, *args, **kwargs)
        finally:
            _command = outer

    return hook


def rows_written_hook(execute: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """Wrap ``EngineAdapter._execute`` to count the rows a model's writes insert.

    SQLMesh marks its data-writing statements with ``track_rows_processed`` and reads the
    cursor's ``rowcount``, which DuckDB leaves at -1: DuckDB returns the count as the
    statement's one result row instead, which nothing else reads.
    """

    @functools.wraps(execute)
    def hook(self: t.Any, sql: str, track_rows_processed: bool = False, **kwargs: t.Any) -> t.Any:
        result = execute(self, sql, track_rows_processed=track_rows_processed, **kwargs)
        evaluation = _evaluation_on_this_thread() if track_rows_processed else None
        if evaluation is not None and self.dialect == "duckdb":
            try:
                row = self.cursor.fetchone()
            except Exception:  # noqa: BLE001 - no result to read: nothing to count
                row = None
            if row and len(row) == 1 and isinstance(row[0], int):
                evaluation.add_rows_written(row[0])
        return result

    return hook


def install() -> None:
    """Wrap SQLMesh's evaluator and commands (called once, by mixmesh's SQLMesh hooks)."""
    from sqlmesh.core.context import GenericContext
    from sqlmesh.core.engine_adapter.base import EngineAdapter
    from sqlmesh.core.snapshot.evaluator import SnapshotEvaluator

    from mixmesh.pymodels.context import SqlResult
    from mixmesh.engines import duckdb as duckdb_engine

    from sqlmesh.core.test.definition import PythonModelTest, SqlModelTest

    SnapshotEvaluator.evaluate = evaluate_hook(SnapshotEvaluator.evaluate)
    for test_class in (SqlModelTest, PythonModelTest):
        test_class.runTest = test_hook(test_class.runTest)
    EngineAdapter._execute = rows_written_hook(EngineAdapter._execute)
    # A Python model waiting for its query, or staging its rows, waits for the engine.
    for value in [*vars(SqlResult).values(), *vars(duckdb_engine).values()]:
        if isinstance(value, types.FunctionType):
            register_engine_code(value.__code__)
    for name in _COMMANDS:
        setattr(GenericContext, name, command_hook(name, getattr(GenericContext, name)))


@contextlib.contextmanager
def _evaluating(
    name: str, engine: t.Optional[str], interval: t.Tuple[t.Any, t.Any], rows_written: t.Callable[[], t.Optional[int]]
) -> t.Iterator[None]:
    from mixmesh.core.resilience import events

    model = short_name(name)
    evaluation = Evaluation(model, _sample_seconds())
    before = _resilience_counts(events(), model)
    started_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    started = time.perf_counter()
    with _active_lock:
        _active[model] = evaluation
    evaluation.start()
    error: t.Optional[BaseException] = None
    try:
        yield
    except BaseException as raised:
        error = raised
        raise
    finally:
        _file_remote_batches()  # while this evaluation is still among the active ones
        evaluation.stop()
        with _active_lock:
            _active.pop(model, None)
        total = time.perf_counter() - started
        try:
            _save(engine, interval, rows_written, evaluation, started_at, total, before, error)
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
) -> None:
    from mixmesh.core.resilience import events

    name, project = _command or _running_command() or ("evaluate", Path.cwd())
    run_id = new_id()
    after = _resilience_counts(events(), evaluation.model)
    changes = {key: after[key] - before.get(key, 0) for key in after}
    functions = [
        _function_run(run_id, evaluation.model, name, figures, handled=changes.get((name, "fallbacks"), 0))
        for name, figures in evaluation.functions.items()
    ]
    # Batch-timed functions (vectorized ones, and row ones on the fast path) are timed exactly.
    timed = sum(f.total_s for f in functions if f.calls is not None)
    python_s = min(total, max(evaluation.python_sampled, timed))
    rows_out = evaluation.rows_written if evaluation.rows_written is not None else rows_written()
    counts = _by_event(changes)
    run = ModelRun(
        run_id=run_id,
        model=evaluation.model,
        command=name,
        environment=None,
        engine=engine or "unknown",
        interval_start=_naive(interval[0]),
        interval_end=_naive(interval[1]),
        started_at=started_at,
        ended_at=started_at + dt.timedelta(seconds=total),
        total_s=total,
        python_s=python_s,
        sql_s=max(total - python_s, 0.0),
        rows_in=evaluation.rows_read,
        rows_out=rows_out,
        rows_per_s=rows_out / total if rows_out is not None and total > 0 else None,
        peak_rss_mb=evaluation.peak_rss / (1 << 20),
        retries=counts.get("retries", 0),
        fallbacks=counts.get("fallbacks", 0),
        errors=counts.get("timeouts", 0) + sum(f.errors for f in functions) + int(error is not None),
        breaker_transitions=counts.get("breaker_transitions", 0),
        status="ok" if error is None else "failed",
        error=None if error is None else f"{type(error).__name__}: {error}"[:2000],
        project=str(project),
    )
    _store_for(project).append([run], functions)


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
            context = frame.f_locals.get("self") if frame.f_code.co_name in _COMMANDS else None
            if isinstance(context, GenericContext):
                return frame.f_code.co_name, Path(context.path)
            frame = frame.f_back
    return None


def _function_run(run_id: str, model: str, name: str, figures: _FunctionFigures, handled: int) -> FunctionRun:
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
    )


def _percentile(ordered: t.Sequence[float], q: float) -> t.Optional[float]:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))
    return ordered[index]


def _rows_written(evaluator: t.Any, snapshot: t.Any, kwargs: t.Mapping[str, t.Any]) -> t.Optional[int]:
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


@functools.lru_cache(maxsize=1024)
def short_name(name: str) -> str:
    """``schema.name`` of a model however it is spelled; cached: batches look it up."""
    from mixmesh.advice.structure import short_name as written_as_people_do

    return written_as_people_do(name)


def _sample_seconds() -> float:
    try:
        return max(float(os.environ.get(SAMPLE_MS_VARIABLE, DEFAULT_SAMPLE_MS)), 0.5) / 1000
    except ValueError:
        return DEFAULT_SAMPLE_MS / 1000

"""The fast path: Python functions in SQL run on batches of 262,144 rows, not 2048.

Every statement SQLMesh runs passes through ``EngineAdapter._execute``; when it calls a
bound mixmesh function (its engine-side name is in the text: no parsing otherwise), the
statement is split with ``mixmesh.fastpath.hoisting`` and run by the engine as a stream: the part
of the query below the calls streams out in large Arrow batches, each call's results are
appended per batch (on a pool of threads, as many as the engine's), and the rest of the
statement reads the stream. Results are those of the plain binding, which runs whenever
the split would not be exact (``hoisting`` says why), the engine cannot stream the
statement (``engines.<engine>.execute_split`` says why), the cost rule says the plain binding
is as fast (``choice``; ``MIXMESH_FAST_PATH=auto``, the default), or ``MIXMESH_FAST_PATH=off``.
``MIXMESH_FAST_PATH=on`` takes the fast path whenever the split is possible.
Unless it is ``off``, the engine may also run an equivalent statement it computes faster,
staged or not (``faster_statement``; DuckDB: ordered list aggregates built by sorting each
list, ``engines.duckdb.ordered_lists``).
Row functions run in worker processes where that is safe (``parallel="auto"``, the default;
``mixmesh.runtime.parallel`` decides) or declared (``parallel="processes"``), see ``workers``.
The first statement of a run also clears what killed runs left: staging tables of Python
models and the workers' scratch folders.

What was decided for the last statements is kept in ``decisions`` (and logged at DEBUG on
``mixmesh.fastpath``), for tests and for anyone wondering why a model is slow; the
monitor records it per function run (``sink.record_path``: ``mixmesh stats``' path column).
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import typing as t
import uuid

import pyarrow as pa

from mixmesh.core import settings
from mixmesh import engines, sink
from mixmesh.fastpath import choice, hoisting
from mixmesh.core import sql_types as types
from mixmesh.core.errors import MixmeshError
from mixmesh.runtime import parallel, workers
from mixmesh.core.cpus import usable_cpus

logger = logging.getLogger(__name__)

VARIABLE = "MIXMESH_FAST_PATH"  # auto (the default: the cost rule), on (whenever possible), off
THREADS_VARIABLE = "MIXMESH_FAST_PATH_THREADS"  # computing threads; default: the engine's
# Large enough that handing a batch over costs nothing next to computing it (x * 2 over 10M
# rows: 0.046 s in 1M-row batches, 0.041 s in these), small enough that a few hundred
# thousand rows still keep every thread busy.
BATCH_ROWS = 262_144


class Decision(t.NamedTuple):
    functions: t.Tuple[str, ...]  # the plain names of the functions the statement calls
    staged: bool
    reason: str  # why the fast path or the plain binding ("fast path: ...", "plain binding: ..." or a refusal)
    # Where each function's batches ran, when staged: (name, "processes (auto)" or
    # "threads (auto: <why not processes>)", ...) (``mixmesh.runtime.parallel``).
    parallel: t.Tuple[t.Tuple[str, str], ...] = ()
    # What the engine ran faster than written, either way (also in ``reason``): "1 ordered
    # list aggregate built by sorting each list"; "" when the statement ran as written.
    rewritten: str = ""


decisions: "collections.deque[Decision]" = collections.deque(maxlen=200)


# What each accepted spelling of MIXMESH_FAST_PATH means (unset or empty: auto).
_SETTINGS = {
    "auto": "auto", "": "auto",
    "on": "on", "1": "on", "true": "on", "yes": "on",
    "off": "off", "0": "off", "false": "off", "no": "off",
}


def enabled() -> bool:
    return _setting() != "off"


def _setting() -> str:
    """``MIXMESH_FAST_PATH``: auto, on or off (or 1/true/yes, 0/false/no); anything else fails
    the statement, naming the variable: a typo must not silently leave the choice to the rule."""
    given = settings.get(VARIABLE, "auto")
    setting = _SETTINGS.get(given.strip().lower())
    if setting is None:
        raise FastPathSettingError(
            f"{settings.named(VARIABLE)} must be auto (the default), on or off (also 1, true, yes / 0, false, no); got {given!r}"
        )
    return setting


def try_execute(adapter: t.Any, sql: str, run: t.Callable[[str], t.Any], parameters: bool) -> bool:
    """Run ``sql`` on the fast path if it can be (``run`` runs a statement as the caller
    would); False when the caller must run ``sql`` plainly."""
    if adapter.dialect not in engines.ENGINE_MODULES:
        return False
    engine = engines.engine(adapter.dialect)
    if not engine.FAST_PATH:
        return False
    _clear_what_killed_runs_left(adapter, engine)
    engine.observe_statement(adapter, sql)
    bound = engines.bindings_called(sql)
    if not bound:
        return False
    functions = tuple(sorted({binding.spec.name for binding in bound.values()}))
    setting = _setting()
    if parameters or setting == "off":
        return _decided(functions, False, "the statement has parameters" if setting != "off" else f"{VARIABLE} is off")
    chosen = choice.choose([_call_of(binding) for binding in bound.values() if binding.spec.deterministic])
    faster = engine.faster_statement(adapter, sql)
    statement, rewritten = faster if faster is not None else (None, "")
    if setting == "auto" and not chosen.staged:
        return _unstaged(adapter, engine, functions, chosen.reason, faster, run)
    split = _plan(statement.copy() if statement is not None else sql, adapter.dialect, bound)  # a split consumes it
    if isinstance(split, hoisting.Declined):
        return _unstaged(adapter, engine, functions, split.reason, faster, run)
    calls = [(call, _batch_function(call.name.lower(), bound[call.name.lower()])) for call in split.calls]
    placements = {function.spec.name: parallel.place(function.spec, can_fork=workers.can_fork()) for _, function in calls}
    calls = _placed(calls, placements)
    try:
        refused = engine.execute_split(adapter, split, BatchComputer(calls, chosen.batch_rows), run)
    except Exception as error:
        _decided(functions, True, f"raised {type(error).__name__}", _where_ran(calls, placements), rewritten)
        raise
    taken = chosen.reason if setting == "auto" else f"fast path: {VARIABLE} is on"
    if refused is not None:  # nothing ran
        return _unstaged(adapter, engine, functions, refused, faster, run)
    return _decided(functions, True, _also(taken, rewritten), _where_ran(calls, placements), rewritten)


def _unstaged(
    adapter: t.Any, engine: t.Any, functions: t.Tuple[str, ...], reason: str,
    faster: t.Optional[t.Tuple[t.Any, str]], run: t.Callable[[str], t.Any],
) -> bool:
    """The plain binding, on the engine's faster equivalent of the statement where it has one
    (True: it ran); else False: the caller runs the statement as written."""
    if faster is None:
        return _decided(functions, False, reason)
    statement, rewritten = faster
    try:
        refused = engine.execute_faster(adapter, statement, run)
    except Exception as error:
        _decided(functions, False, _also(_also(reason, rewritten), f"raised {type(error).__name__}"), rewritten=rewritten)
        raise
    if refused is not None:
        return _decided(functions, False, _also(reason, refused))
    _decided(functions, False, _also(reason, rewritten), rewritten=rewritten)
    return True  # it ran


def _also(reason: str, more: str) -> str:
    return f"{reason}; {more}" if more else reason


def _where_ran(
    calls: t.Sequence[t.Tuple[hoisting.HoistedCall, t.Any]], placements: t.Mapping[str, parallel.Placement]
) -> t.Dict[str, parallel.Placement]:
    """The placements, but threads for an automatic one whose batches all stayed in the model's
    process: none was large enough to pay for a worker, or the workers were still starting."""
    ran = dict(placements)
    for _, function in calls:
        if isinstance(function, workers.InWorkers) and not function.always and not function.batches_sent:
            why = "the workers were starting" if function.large_batches else f"no batch of {parallel.MIN_ROWS:,} rows"
            ran[function.spec.name] = parallel.Placement(False, f"threads (auto: {why})")
    return ran


def _placed(
    calls: t.Sequence[t.Tuple[hoisting.HoistedCall, t.Any]], placements: t.Mapping[str, parallel.Placement]
) -> t.List[t.Tuple[hoisting.HoistedCall, t.Any]]:
    """The calls, those placed in worker processes wrapped to run there (``workers``); the
    workers of functions declared parallel="processes" are started now, before the engine's
    threads get busy, the others' when a batch is large enough to pay for them."""
    in_processes = {call.name.lower(): function for call, function in calls if placements[function.spec.name].processes}
    if not in_processes:
        return list(calls)
    workers.offer(in_processes)
    declared = [key for key, function in in_processes.items() if function.spec.parallel == "processes"]
    if declared:
        workers.ready(declared, wait=True)
    return [
        (call, workers.InWorkers(call.name.lower(), function, always=function.spec.parallel == "processes",
                                 min_rows=parallel.MIN_ROWS) if call.name.lower() in in_processes else function)
        for call, function in calls
    ]


def _call_of(binding: engines.Binding) -> choice.Call:
    spec = binding.spec
    # Where its batches would run decides what large batches gain a row function: worker
    # processes use every core; on threads, a scalar row function gains nothing.
    placed = "processes" if parallel.place(spec, can_fork=workers.can_fork()).processes else "threads"
    return choice.Call(
        spec.name, spec.vectorized, tuple(argument.sql_type for argument in spec.args), spec.is_protected, placed,
        cached=spec.cache is not None,
    )


_scratch_cleared = False


def _clear_what_killed_runs_left(adapter: t.Any, engine: t.Any) -> None:
    """At the first statements of a run: a killed run (kill -9 runs no clean-up) left staging
    tables in the database and scratch folders of its workers; they go now, not when some
    later run happens to land a Python model or start workers."""
    global _scratch_cleared
    try:
        engine.drop_dead_staging(adapter)  # once per connection pool
        if not _scratch_cleared:
            _scratch_cleared = True
            workers.remove_dead_scratch()
    except Exception as error:  # noqa: BLE001 - tidying never fails a statement; a later run tidies
        logger.debug("leftovers of killed runs not cleared: %s", error)


def _plan(
    sql: t.Union[str, t.Any], dialect: str, bound: t.Mapping[str, engines.Binding]
) -> t.Union[hoisting.Split, hoisting.Declined]:
    """The split of ``sql`` (its text, or the statement already parsed)."""
    import sqlglot

    try:
        statement = sqlglot.parse_one(sql, read=dialect) if isinstance(sql, str) else sql
    except sqlglot.errors.SqlglotError as error:
        return hoisting.Declined(f"sqlglot cannot parse the statement: {error}")
    # A non-deterministic function stays with the plain binding, called for each occurrence.
    argument_types = {
        name: [types.arrow_carried(arg.sql_type) for arg in binding.spec.args]
        for name, binding in bound.items()
        if binding.spec.deterministic
    }
    return hoisting.plan(statement, argument_types, f"{hoisting.PREFIX}stream_{uuid.uuid4().hex[:12]}")


_batch_functions: t.Dict[str, t.Callable[..., pa.Array]] = {}  # by engine-side name


def _batch_function(sql_name: str, binding: engines.Binding) -> t.Callable[..., pa.Array]:
    """Built once per binding (a row function's compiled copy costs a parse)."""
    function = _batch_functions.get(sql_name)
    if function is None:
        function = _batch_functions.setdefault(sql_name, engines.batch_function(binding))
    return function


def _decided(
    functions: t.Tuple[str, ...], staged: bool, reason: str,
    placements: t.Optional[t.Mapping[str, parallel.Placement]] = None, rewritten: str = "",
) -> bool:
    reason = engines.plain_names(reason)
    where = tuple((name, placement.reason) for name, placement in sorted((placements or {}).items())) if staged else ()
    decisions.append(Decision(functions, staged, reason, where, rewritten))
    for function in functions:
        sink.record_path((function,), _path(staged, reason, dict(where).get(function)))
    logger.debug("fast path %s for %s%s%s", "taken" if staged else "not taken", ", ".join(functions),
                 f": {reason}" if reason else "", "".join(f"; {name} on {placed}" for name, placed in where))
    return staged


def _path(staged: bool, reason: str, placed: t.Optional[str] = None) -> str:
    """How the monitor names the decision: "fast path: <why>, <where its batches ran>", or
    "plain binding: <why>"."""
    if staged:
        taken = reason if reason.startswith("fast path") else "fast path"
        return f"{taken}, {placed}" if placed else taken
    return reason if reason.startswith("plain binding") else f"plain binding: {reason}"


class BatchComputer:
    """Appends the hoisted calls' results to each batch the inner query streams out."""

    batch_rows = BATCH_ROWS  # the rows the engine streams per batch

    def __init__(
        self, calls: t.Sequence[t.Tuple[hoisting.HoistedCall, t.Any]], batch_rows: t.Optional[int] = None
    ) -> None:
        """``batch_rows``: at most this many rows per batch (``choice``: fewer for nested arguments)."""
        self.calls = list(calls)
        # Threads wait on worker processes; one per core keeps every worker busy.
        in_workers = any(isinstance(function, workers.InWorkers) for _, function in calls)
        self.least_threads = usable_cpus() if in_workers else 1
        # Smaller batches for worker processes: they start sooner and finish together
        # (a row function over 10M rows: 1M-row batches 0.76 s, 500k 0.71 s, 250k 0.71 s).
        rows = min(self.batch_rows, batch_rows or self.batch_rows)
        self.rows_per_batch = max(1, rows // 2) if in_workers else rows
        # Row functions computed here hold the GIL: a second thread only contends for it
        # (sum(row_fn(x)) over 1M rows: 0.168 s of CPU on two threads, 0.158 s on one).
        self.holds_the_gil = bool(calls) and not in_workers and all(
            not getattr(getattr(function, "spec", None), "vectorized", True) for _, function in calls
        )

    def result_fields(self) -> t.List[pa.Field]:
        return [pa.field(call.result, function.return_type) for call, function in self.calls]

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        columns = list(batch.columns)
        names = list(batch.schema.names)
        for call, function in self.calls:
            columns.append(function(*[batch.column(name) for name in call.arguments]))
            names.append(call.result)
        return pa.RecordBatch.from_arrays(columns, names=names)

    def stream(self, batches: t.Iterable[pa.RecordBatch], engine_threads: int) -> "ComputedStream":
        """``engine_threads``: how many threads the engine runs the query on."""
        threads = _threads_setting() or (1 if self.holds_the_gil else engine_threads)
        return ComputedStream(batches, self, max(threads, self.least_threads))


class FastPathSettingError(MixmeshError, ValueError):
    """An environment variable of the fast path holds what it cannot mean."""


def _threads_setting() -> t.Optional[int]:
    """``MIXMESH_FAST_PATH_THREADS``: a whole number of threads, at least 1; None when unset."""
    given = settings.get(THREADS_VARIABLE).strip()
    if not given:
        return None
    try:
        threads = int(given)
    except ValueError:
        threads = 0
    if threads < 1:
        raise FastPathSettingError(
            f"{settings.named(THREADS_VARIABLE)} must be a whole number of threads, at least 1 (or unset: as many as the "
            f"engine runs); got {given!r}"
        )
    return threads


class ComputedStream:
    """The computed batches, in order, with at most ``threads`` computing at once (the next
    batch is read while they compute).

    The engine pulls batches from its own threads; an error of the function is kept in
    ``error`` (the engine would only report that the stream failed), for the caller to raise.
    """

    def __init__(self, batches: t.Iterable[pa.RecordBatch], compute: BatchComputer, threads: int) -> None:
        self._batches = batches
        self._compute = compute
        self._threads = max(1, threads)
        self.error: t.Optional[BaseException] = None

    def __iter__(self) -> t.Iterator[pa.RecordBatch]:
        pending: "collections.deque[concurrent.futures.Future[pa.RecordBatch]]" = collections.deque()
        try:
            for batch in self._batches:  # read while the threads compute
                if batch.num_rows == 0:
                    continue
                done = pending.popleft().result() if len(pending) >= self._threads else None
                pending.append(_pool().submit(self._compute, batch))  # the freed thread goes on at once
                if done is not None:
                    yield done
            while pending:
                yield pending.popleft().result()
        except Exception as error:
            self.error = error
            raise
        finally:  # also when the engine stops reading early (a LIMIT)
            for future in pending:
                future.cancel()


_pool_lock = threading.Lock()
_executor: t.Optional[concurrent.futures.ThreadPoolExecutor] = None


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    """One pool for the process: computing threads are reused across statements."""
    global _executor
    with _pool_lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=max(usable_cpus(), 2), thread_name_prefix="mixmesh-fastpath"
            )
        return _executor

"""Quarantined rows: every row whose call failed after its retries and got its ``on_error``
value (NULL, a constant, a fallback) is kept, so nothing is lost silently.

The functions' wrappers (``rows``, ``batches``) call ``quarantine`` where they apply
``on_error``. While SQLMesh evaluates a model, a ``Collector`` opened around its statement
(``collecting``) holds that model's rows; ``mixmesh.sqlmesh.quarantine`` writes them to the
warehouse once the model's data is written. On a Spark executor no collector is open: the
rows wait here (``keep_for_shipping``) until the batch's report carries them to the driver
(``ship``), which files them under their models (``receive``). (Worker processes,
``parallel="processes"``, need nothing of this: they refuse ``on_error``.)

A run where every row fails must not flood the warehouse: each collector keeps the first
``max_rows()`` rows in full (``MIXMESH_QUARANTINE_MAX_ROWS``, 10,000 by default) and counts
the rest per function; the count becomes one summary row.

Arguments are recorded by name as JSON text, by pydantic-core's encoder: dates and times in
ISO 8601, decimals as text (no precision lost), bytes in base64, NaN and infinities as text,
map keys as text, anything else as its ``repr``.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import threading
import typing as t

from mixmesh.core import settings
from mixmesh.core.names import short_name
from mixmesh.core.functions import FunctionSpec
from mixmesh.core.resilience import attempts_of, record
from mixmesh.runtime.values import _fallback

MAX_ROWS_VARIABLE = "MIXMESH_QUARANTINE_MAX_ROWS"
DEFAULT_MAX_ROWS = 10_000
OVER_THE_CAP = "mixmesh.QuarantineCapReached"  # the error_type of a summary row
_MESSAGE_CHARS = 2000


class QuarantinedRow(t.NamedTuple):
    """One failed row (``rows == 1``), or a summary of ``rows`` failed rows over the cap."""

    model: t.Optional[str]
    function: str
    arguments: t.Optional[str]  # JSON text, by argument name; None in a summary row
    error_type: str
    error_message: str
    attempts: t.Optional[int]  # calls made, the first included; 0 when the circuit was open
    rows: int = 1


def max_rows() -> int:
    """How many rows one model evaluation records in full."""
    try:
        return max(int(settings.get(MAX_ROWS_VARIABLE, str(DEFAULT_MAX_ROWS))), 0)
    except ValueError:
        return DEFAULT_MAX_ROWS


class Collector:
    """The quarantined rows of one model evaluation (or of one executor's batches)."""

    def __init__(self, model: t.Optional[str], cap: t.Optional[int] = None) -> None:
        self.model = model
        self._cap = cap
        self.kept: t.List[QuarantinedRow] = []
        self.over_cap: t.Counter[str] = collections.Counter()  # by function
        self.lock = threading.Lock()

    @functools.cached_property
    def cap(self) -> int:
        """Read when a row fails, not when the collector is made: a Spark executor makes one a
        batch, and most batches quarantine nothing."""
        return max_rows() if self._cap is None else self._cap

    def add(self, row: QuarantinedRow) -> None:
        with self.lock:
            if row.arguments is not None and len(self.kept) < self.cap:
                self.kept.append(row)
            else:
                self.over_cap[row.function] += row.rows

    def repeat(self, function: str, arguments: str, extra: int) -> None:
        """``extra`` more rows had the same arguments as a kept row of ``function``, and the
        same failed call (the result cache calls each distinct argument tuple once)."""
        with self.lock:
            for index in range(len(self.kept) - 1, -1, -1):
                kept = self.kept[index]
                if kept.function == function and kept.arguments == arguments:
                    self.kept[index] = kept._replace(rows=kept.rows + extra)
                    return
            self.over_cap[function] += extra

    def rows(self) -> t.List[QuarantinedRow]:
        """The rows kept in full, then one summary row per function that went over the cap."""
        with self.lock:
            summaries = [
                QuarantinedRow(self.model, function, None, OVER_THE_CAP,
                               f"{count} more failed rows of function {function!r} were counted, not recorded "
                               f"one by one: a model evaluation records the first {self.cap} in full "
                               f"({MAX_ROWS_VARIABLE})", None, count)
                for function, count in sorted(self.over_cap.items())
            ]
            return [*self.kept, *summaries]

    def take(self) -> t.List[QuarantinedRow]:
        """``rows()``, emptying the collector."""
        found = self.rows()
        with self.lock:
            self.kept, self.over_cap = [], collections.Counter()
        return found

    def __len__(self) -> int:
        return len(self.kept) + sum(self.over_cap.values())


_active: t.Dict[str, Collector] = {}
_active_lock = threading.Lock()
_shipping: t.Optional[Collector] = None  # on a Spark executor: rows waiting for the batch's report


_model_locks: t.Dict[str, threading.Lock] = collections.defaultdict(threading.Lock)


@contextlib.contextmanager
def collecting(model: str) -> t.Iterator[Collector]:
    """Collect the rows quarantined while ``model`` is evaluated.

    A failed row knows its model, not which of the model's intervals it belongs to (a Spark
    executor's report names the model only; DuckDB calls functions on threads of its own),
    so the intervals of one model are evaluated one at a time in a process: another of its
    intervals waits here (other models run on meanwhile)."""
    name = short_name(model)
    with _active_lock:
        lock = _model_locks[name]
    with lock:
        collector = Collector(name)
        with _active_lock:
            _active[name] = collector
        try:
            yield collector
        finally:
            with _active_lock:
                del _active[name]


def _collector_of(model: t.Optional[str]) -> t.Optional[Collector]:
    """The open collector of ``model``, or the only one open when the model is not known;
    in a process that ships its rows (a Spark executor), the rows waiting to go."""
    if _shipping is not None:
        return _shipping
    with _active_lock:
        if model is not None:
            found = _active.get(short_name(model))
            if found is not None:
                return found
        return next(iter(_active.values())) if len(_active) == 1 else None


def fall_back(
    spec: FunctionSpec, model: t.Optional[str], row: t.Sequence[t.Any], error: BaseException, reason: str
) -> t.Any:
    """The on_error value of a row whose call failed (``reason`` says how), counted as a
    fallback and quarantined; an awaitable when the fallback is an ``async def`` function."""
    record(model, spec.name, "fallbacks", f"{reason}; on_error gives the row's value")
    quarantine(model, spec.name, [arg.name for arg in spec.args], row, error)
    return _fallback(spec)(*row)


def quarantine(
    model: t.Optional[str], function: str, names: t.Sequence[str], row: t.Sequence[t.Any], error: BaseException
) -> None:
    """Keep one row whose call failed and got its on_error value (called by the wrappers)."""
    _refuse_if_unshippable(model, function, error)
    collector = _collector_of(model)
    if collector is None:  # no model evaluation (a plain call, a unit test, a preview): nothing is written
        return
    collector.add(QuarantinedRow(
        model=short_name(model) if model else collector.model,
        function=function,
        arguments=encode_arguments(names, row),
        error_type=type(error).__name__,
        error_message=str(error)[:_MESSAGE_CHARS],
        attempts=attempts_of(error),
    ))


def repeated(model: t.Optional[str], function: str, names: t.Sequence[str], row: t.Sequence[t.Any], extra: int) -> None:
    """``extra`` more rows shared ``row``'s arguments and its failed call: its entry stands
    for them too (``row_count``), so that every row given the on_error value is counted."""
    _refuse_if_unshippable(model, function, None)
    collector = _collector_of(model)
    if collector is not None and extra > 0:
        collector.repeat(function, encode_arguments(names, row), extra)


def encode_arguments(names: t.Sequence[str], row: t.Sequence[t.Any]) -> str:
    """A row's arguments as JSON text, by name; any value encodes (see the module's docstring)."""
    import pydantic_core

    values = dict(zip(names, row))
    return pydantic_core.to_json(values, inf_nan_mode="strings", bytes_mode="base64", fallback=repr).decode()


# --------------------------------------------------------------- rows made in other processes


def keep_for_shipping() -> None:
    """In a process where no model is evaluated (a Spark executor), at the start of a batch:
    keep its rows for ``ship``. A Python worker runs one task at a time and is reused for
    other models' tasks: what an earlier batch left unshipped is not this batch's."""
    global _shipping
    _shipping = Collector(None)


def refuse_unshippable(reason: t.Optional[str]) -> None:
    """In a process that cannot send rows back (a Spark Connect executor: no accumulators), at
    the start of a batch: a row that would be quarantined fails the batch instead, saying
    ``reason``, so no failed row is hidden behind its on_error value. ``None`` lifts it."""
    global _unshippable
    _unshippable = reason


_unshippable: t.Optional[str] = None


def _refuse_if_unshippable(model: t.Optional[str], function: str, error: t.Optional[BaseException]) -> None:
    if _unshippable is None:
        return
    from mixmesh.core.errors import FunctionRuntimeError, where

    failure = f"{type(error).__name__}: {error}; " if error is not None else ""
    raise FunctionRuntimeError(
        f"{where(function, model)}: {failure}a failed row would get its on_error value and be quarantined, but "
        f"{_unshippable}"
    )


def ship() -> t.Tuple[t.Tuple[t.Any, ...], ...]:
    """The rows kept for shipping since the last call, as plain tuples (``QuarantinedRow``)."""
    return () if _shipping is None or not len(_shipping) else tuple(tuple(row) for row in _shipping.take())


def receive(rows: t.Iterable[t.Sequence[t.Any]]) -> None:
    """On the driver: file rows shipped from executors under their models' collectors."""
    for fields in rows:
        row = QuarantinedRow(*fields)
        with _active_lock:  # its own model's collector only: never another evaluation's
            collector = _active.get(short_name(row.model)) if row.model else None
        if collector is not None:
            collector.add(row)

"""Monitoring figures from Spark's executors.

Functions run in the executors' Python processes, where mixmesh's monitoring (which lives in
the driver, around SQLMesh's evaluation) cannot see them. So each batch a function runs
there adds one entry to a Spark accumulator, with the resilience events (retries,
fallbacks, breaker transitions) the executor's process counted since its last entry: Spark
sends accumulator updates back to the driver with each finished task, before the query
returns. When a model's evaluation ends, monitoring takes the entries that arrived since it
last looked (``collect_batches``) and files them under their models, as it files the
batches and events of a function run by DuckDB.
"""

from __future__ import annotations

import threading
import typing as t
import weakref

if t.TYPE_CHECKING:
    from pyspark import Accumulator


class Batch(t.NamedTuple):
    model: t.Optional[str]
    function: str
    mode: str  # vectorized or row
    rows: int
    seconds: float
    failed: bool
    list_length: t.Optional[float]
    events: t.Tuple[t.Tuple[str, int], ...] = ()  # resilience events counted meanwhile: retries...
    in_flight: t.Optional[int] = None  # concurrency: the most calls in flight in its worker process
    quarantined: t.Tuple[t.Tuple[t.Any, ...], ...] = ()  # rows quarantined meanwhile (runtime.quarantine)


def _batches_param() -> t.Any:
    from pyspark.accumulators import AccumulatorParam

    class Batches(AccumulatorParam):  # type: ignore[misc]
        """Entries concatenate: a list per task, merged on the driver."""

        def zero(self, value: t.List[Batch]) -> t.List[Batch]:
            return []

        def addInPlace(self, value1: t.List[Batch], value2: t.List[Batch]) -> t.List[Batch]:
            value1.extend(value2)
            return value1

    return Batches()


# SparkContext -> its accumulator, and how many of its entries were collected already (by
# monitoring, and apart from it by the quarantine, which must write its rows even when
# monitoring is off).
_accumulators: "weakref.WeakKeyDictionary[t.Any, Accumulator]" = weakref.WeakKeyDictionary()
_collected: t.Dict[int, int] = {}
_quarantine_collected: t.Dict[int, int] = {}
_lock = threading.Lock()


def accumulator(spark: t.Any) -> "Accumulator":
    """The session's accumulator of batches (one per SparkContext)."""
    context = spark.sparkContext
    with _lock:
        found = _accumulators.get(context)
        if found is None:
            found = _accumulators[context] = context.accumulator([], _batches_param())
        return found


def events_since_last_report(model: t.Optional[str], function: str) -> t.Tuple[t.Tuple[str, int], ...]:
    """On an executor: the function's resilience events counted since it last reported."""
    from mixmesh.core.resilience import events

    now = {key[2]: count for key, count in events().items() if key[:2] == (model, function)}
    with _lock:
        new = tuple((event, count - _reported.get((model, function, event), 0)) for event, count in now.items())
        _reported.update({(model, function, event): count for event, count in now.items()})
    return tuple((event, count) for event, count in new if count)


_reported: t.Dict[t.Tuple[t.Optional[str], str, str], int] = {}  # on an executor


def collect_batches() -> t.List[Batch]:
    """The batches reported since the last call (on the driver)."""
    new: t.List[Batch] = []
    with _lock:
        for found in list(_accumulators.values()):
            entries = found.value
            start = _collected.get(id(found), 0)
            new.extend(Batch(*entry) for entry in entries[start:])
            _collected[id(found)] = len(entries)
    return new


def collect_quarantined() -> t.List[t.Tuple[t.Any, ...]]:
    """The rows quarantined on executors since the last call (on the driver)."""
    new: t.List[t.Tuple[t.Any, ...]] = []
    with _lock:
        for found in list(_accumulators.values()):
            entries = found.value
            start = _quarantine_collected.get(id(found), 0)
            new.extend(row for entry in entries[start:] for row in Batch(*entry).quarantined)
            _quarantine_collected[id(found)] = len(entries)
    return new

"""Spark Connect: a SparkSession that is a client of a remote Spark driver (``spark.remote``,
https://spark.apache.org/docs/latest/spark-connect-overview.html).

Queries, temporary functions, Arrow UDFs and DataFrames work over Connect as on a classic
session; what needs the driver's JVM in this process (``sparkContext``, and with it
accumulators) does not. mixmesh uses an accumulator for one thing: bringing what functions
did on the executors back to the driver (``figures``: monitoring's per-function figures and
quarantined rows). Over Connect those stay where they are, and say so.
"""

from __future__ import annotations

import logging
import typing as t
import weakref

logger = logging.getLogger(__name__)

CLASSIC_SESSION = "a classic Spark session (the gateway's spark.master, without spark.remote)"

# Why a failed row cannot be quarantined on a Connect executor (runtime.quarantine).
NO_QUARANTINE = (
    "Spark Connect cannot bring quarantined rows back from its executors (it has no accumulators). "
    f"Run the model on {CLASSIC_SESSION} to quarantine failed rows, or use on_error='raise'."
)

_warned: "weakref.WeakSet[t.Any]" = weakref.WeakSet()


def is_connect(spark: t.Any) -> bool:
    """Whether ``spark`` is a Spark Connect session (found without importing pyspark)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def say_no_function_figures(spark: t.Any) -> None:
    """Once per session: monitoring gets no per-function figures from Connect's executors."""
    if spark in _warned:
        return
    _warned.add(spark)
    logger.warning(
        "Spark Connect: the figures of functions run on the executors (batches, rows, Python time, retries) "
        "are not collected, as Spark Connect has no accumulators; model figures still are. Use %s for them.",
        CLASSIC_SESSION,
    )

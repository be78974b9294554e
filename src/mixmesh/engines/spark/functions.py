"""Functions bound as Arrow UDFs on the SparkSession SQLMesh runs queries on.

Every function is registered with ``spark.udf.register`` as an Arrow UDF
(``pyspark.sql.functions.arrow_udf``, Spark 4.1+,
https://spark.apache.org/docs/latest/api/python/user_guide/sql/arrow_pandas.html): Spark hands
it batches of rows as Arrow arrays (``spark.sql.execution.arrow.maxRecordsPerBatch`` rows, 10,000
by default), so vectorized functions receive Arrow arrays as on DuckDB, and row functions are
called once per row of each batch. Functions run on Spark's executors, Python processes apart
from the driver: ``shipping`` sends the project's code along, ``calls`` is what runs there.

Functions registered on a session are the session's temporary functions: nothing is written
to the catalog, and every query of the session (SQLMesh uses one per gateway) sees them.
"""

from __future__ import annotations

import threading
import typing as t
import warnings
import weakref

from sqlglot import exp

if t.TYPE_CHECKING:
    from mixmesh.runtime.bindings import Binding
from mixmesh.engines.spark.dialect import NAME, spark_type, sql_type_of

# session -> {engine-side name -> (spec, shipping.Shipped)}: what is registered where, and what
# its registration sent the executors.
_registered: "weakref.WeakKeyDictionary[t.Any, t.Dict[str, t.Tuple[t.Any, t.Any]]]" = weakref.WeakKeyDictionary()


_lock = threading.Lock()


def bind(binding: "Binding", sql_name: str, adapter: t.Any) -> None:
    """Register a binding as ``sql_name`` on the adapter's SparkSession, once."""
    bind_session(binding, sql_name, adapter.spark)


def describe(
    adapter: t.Any, query: exp.Query, params: t.Optional[t.Mapping[str, t.Any]] = None, *, cursor: t.Any = None
) -> t.List[exp.DataType]:
    """The types of a query's columns as Spark analyzes it; nothing runs."""
    frame = adapter.spark.sql(query.sql(NAME), args=dict(params) if params else None)
    return [sql_type_of(field.dataType.simpleString()) for field in frame.schema.fields]


def register(
    spark: t.Any, udf: t.Any, *, name: t.Optional[str] = None, args: t.Optional[t.Mapping[str, str]] = None
) -> str:
    """Make a ``@udf`` function callable in queries of a plain SparkSession.

    Returns the SQL name to call it by (``name``, or the function's SQL name). ``args``: SQL
    types of the arguments whose hints leave the type to the call site (``Any``, ``dict``...),
    which a plain connection does not show. Registering
    another function under a name already used in this session replaces the first.
    """
    from mixmesh.runtime.bindings import Binding, registered_spec

    sql_name = name or udf.spec.name
    spec = registered_spec(udf.spec, args)
    bind_session(Binding(spec, None), sql_name, spark, replace=True)
    return sql_name


def bind_session(binding: "Binding", sql_name: str, spark: t.Any, *, replace: bool = False) -> None:
    """Register ``binding`` as ``sql_name`` in a SparkSession.

    SQLMesh's names carry a digest of the code, so a name already bound is the same function
    (``replace=False``); ``register`` names are the user's and may change hands.
    """
    from mixmesh.engines.spark import connect as spark_connect
    from mixmesh.engines.spark import figures as spark_figures
    from mixmesh.engines.spark import shipping as spark_shipping

    with _lock:
        registered = _registered.setdefault(spark, {})
        known = registered.get(sql_name)
        # Registered already, unless what it shipped went stale: its resources' files changed or
        # went missing on the driver (retrained, re-pinned, deleted), or another project runs.
        if known is not None and (not replace or known[0] is binding.spec) and known[1].current():
            return
        if binding.spec.cache is not None:
            from mixmesh.runtime.cache import say_uncached

            say_uncached(binding.spec, "Spark's executors do not reach the warehouse the result cache is kept in")
        spark_shipping.ship_project_modules()
        with spark_shipping.shipping() as shipped:  # the function is pickled as it is registered
            if spark_connect.is_connect(spark):
                spark_connect.say_no_function_figures(spark)
                udf = arrow_udf(binding, sql_name, unshippable=spark_connect.NO_QUARANTINE, local=False)
            else:
                udf = arrow_udf(binding, sql_name, spark_figures.accumulator(spark), local=runs_locally(spark))
            spark.udf.register(sql_name, udf)
        registered[sql_name] = (binding.spec, shipped)


def runs_locally(spark: t.Any) -> bool:
    """Whether the executors share the driver's machine and files: Spark's local mode
    (``local``, ``local[N]``), not a cluster (``spark://``, ``yarn``, ``k8s://``, Connect)."""
    try:
        # The context's master is the one it runs on; a session's conf may have been given
        # another by a later builder (getOrCreate copies its options into a running session).
        master = spark.sparkContext.master
    except Exception:  # Spark Connect has no SparkContext: the server runs the executors
        return False
    return master == "local" or master.startswith("local[")


def arrow_udf(
    binding: "Binding", sql_name: str, figures: t.Any = None, *, unshippable: t.Optional[str] = None, local: bool = True
) -> t.Any:
    """The Arrow UDF Spark registers: a ``SparkCall`` declared with its Spark return type.

    ``figures``: the accumulator its batches report to (``figures``), if any; ``unshippable``:
    why failed rows cannot reach the driver, where they cannot (Spark Connect); ``local``:
    whether its executors share the driver's files (``runs_locally``)."""
    from pyspark.sql.functions import ArrowUDFType
    from pyspark.sql.functions import arrow_udf as spark_arrow_udf

    from mixmesh.engines.spark.calls import SparkCall

    returns = spark_type(binding.spec.returns, binding)
    with warnings.catch_warnings():
        # Spark prefers reading the kind of UDF from type hints; a SparkCall takes any number of
        # arguments, which its hint reader refuses, so the kind is stated and the advice muted.
        warnings.filterwarnings("ignore", "It is preferred to specify type hints", UserWarning)
        udf = spark_arrow_udf(SparkCall(binding, sql_name, figures, unshippable, local=local), returns, ArrowUDFType.SCALAR)
    # Spark's optimizer may merge, reorder or repeat calls it believes deterministic.
    return udf if binding.spec.deterministic else udf.asNondeterministic()

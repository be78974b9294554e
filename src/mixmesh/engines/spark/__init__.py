"""Apache Spark: functions bound as Arrow UDFs on the SparkSession SQLMesh runs queries on.

Every function is registered with ``spark.udf.register`` as an Arrow UDF
(``pyspark.sql.functions.arrow_udf``, Spark 4.1+,
https://spark.apache.org/docs/latest/api/python/user_guide/sql/arrow_pandas.html): Spark hands
it batches of rows as Arrow arrays (``spark.sql.execution.arrow.maxRecordsPerBatch`` rows, 10,000
by default), so vectorized functions receive Arrow arrays as on DuckDB, and row functions are
called once per row of each batch. Functions run on Spark's executors, Python processes apart
from the driver: ``spark_shipping`` sends the project's code along, ``spark_calls`` is what
runs there.

Functions registered on a session are the session's temporary functions: nothing is written
to the catalog, and every query of the session (SQLMesh uses one per gateway) sees them.
Project SQL functions (``sql/udfs``) become temporary SQL functions of the session, likewise.

Errors raised on an executor reach the driver as the worker's traceback, in text: mixmesh's own
errors are read back from it, so they name the model, the function and the row as on DuckDB.
"""

from __future__ import annotations

import contextlib
import re
import threading
import typing as t
import uuid
import warnings
import weakref

import pyarrow as pa
from sqlglot import exp

from mixmesh.core.errors import FunctionCallError, FunctionDefinitionError, FunctionRuntimeError, MixmeshError
from mixmesh.runtime import bindings

if t.TYPE_CHECKING:
    from mixmesh.engines import Binding, SqlFunctionBinding

NAME = "spark"
SUPPORTS_ARROW_UDF = True
"""Functions receive and return Arrow arrays (no pandas in between)."""
SHIPS_FUNCTIONS_BY_VALUE = True
"""Functions run in other processes than the driver: project code is pickled by value."""

# session -> {engine-side name -> spec}: what is registered where.
_registered: "weakref.WeakKeyDictionary[t.Any, t.Dict[str, t.Any]]" = weakref.WeakKeyDictionary()
# session -> {engine-side name -> CREATE statement}: the project SQL functions created there.
_created: "weakref.WeakKeyDictionary[t.Any, t.Dict[str, str]]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()

# The last of mixmesh's errors in a worker's traceback: "mixmesh.core.errors.FunctionRuntimeError: ...".
_RAISED = re.compile(r"^mixmesh\.errors\.(?P<kind>\w+): (?P<message>.*)$", re.MULTILINE)
_UNRESOLVED = re.compile(r"\[UNRESOLVED_ROUTINE\] Cannot resolve routine `(?P<name>\w+)`")


def bind(binding: "Binding", sql_name: str, adapter: t.Any) -> None:
    """Register a binding as ``sql_name`` on the adapter's SparkSession, once."""
    bind_session(binding, sql_name, adapter.spark)


def describe(
    adapter: t.Any, query: exp.Query, params: t.Optional[t.Mapping[str, t.Any]] = None, *, cursor: t.Any = None
) -> t.List[exp.DataType]:
    """The types of a query's columns as Spark analyzes it; nothing runs."""
    frame = adapter.spark.sql(query.sql(NAME), args=dict(params) if params else None)
    return [sql_type_of(field.dataType.simpleString()) for field in frame.schema.fields]


def sql_type_of(spark_type_name: str) -> exp.DataType:
    """A Spark type (``array<struct<a:int>>``) as a sqlglot type. Spark's TIMESTAMP is an
    instant shown in the session's time zone: TIMESTAMPLTZ, which naive and aware datetime
    hints both take (``mixmesh.core.accepts``); TIMESTAMP_NTZ is a naive TIMESTAMP."""
    parsed = exp.DataType.build(spark_type_name, dialect=NAME)
    for node in list(parsed.find_all(exp.DataType)):
        if node.this == exp.DataType.Type.TIMESTAMPTZ:
            node.set("this", exp.DataType.Type.TIMESTAMPLTZ)
        elif node.this == exp.DataType.Type.TIMESTAMPNTZ:
            node.set("this", exp.DataType.Type.TIMESTAMP)
    return parsed


def register(
    spark: t.Any, udf: t.Any, *, name: t.Optional[str] = None, args: t.Optional[t.Mapping[str, str]] = None
) -> str:
    """Make a ``@udf`` function callable in queries of a plain SparkSession.

    Returns the SQL name to call it by (``name``, or the function's SQL name). ``args``: SQL
    types of the arguments whose hints leave the type to the call site (``Any``, ``dict``...),
    which a plain connection does not show. Registering
    another function under a name already used in this session replaces the first.
    """
    from mixmesh.engines import Binding, registered_spec

    sql_name = name or udf.spec.name
    spec = registered_spec(udf.spec, args)
    bind_session(Binding(spec, None), sql_name, spark, replace=True)
    return sql_name


def bind_session(binding: "Binding", sql_name: str, spark: t.Any, *, replace: bool = False) -> None:
    """Register ``binding`` as ``sql_name`` in a SparkSession.

    SQLMesh's names carry a digest of the code, so a name already bound is the same function
    (``replace=False``); ``register`` names are the user's and may change hands.
    """
    from mixmesh.engines.spark import figures as spark_figures, shipping as spark_shipping

    with _lock:
        registered = _registered.setdefault(spark, {})
        if sql_name in registered and (not replace or registered[sql_name] is binding.spec):
            return
        spark_shipping.ship_project_modules()
        spark.udf.register(sql_name, arrow_udf(binding, sql_name, spark_figures.accumulator(spark)))
        registered[sql_name] = binding.spec


def arrow_udf(binding: "Binding", sql_name: str, figures: t.Any = None) -> t.Any:
    """The Arrow UDF Spark registers: a ``SparkCall`` declared with its Spark return type.

    ``figures``: the accumulator its batches report to (``spark_figures``), if any."""
    from pyspark.sql.functions import ArrowUDFType
    from pyspark.sql.functions import arrow_udf as spark_arrow_udf

    from mixmesh.engines.spark.calls import SparkCall

    returns = spark_type(binding.spec.returns, binding)
    with warnings.catch_warnings():
        # Spark prefers reading the kind of UDF from type hints; a SparkCall takes any number of
        # arguments, which its hint reader refuses, so the kind is stated and the advice muted.
        warnings.filterwarnings("ignore", "It is preferred to specify type hints", UserWarning)
        return spark_arrow_udf(SparkCall(binding, sql_name, figures), returns, ArrowUDFType.SCALAR)


def spark_type(sql_type: exp.DataType, binding: t.Optional["Binding"] = None) -> str:
    """A SQL type as Spark's DDL writes it (``ARRAY<STRUCT<`at`: DOUBLE>>``), or a clear error."""
    unsupported = [
        node.sql("duckdb")
        for node in sql_type.find_all(exp.DataType)
        if node.this in _NO_SPARK_TYPE
    ]
    if unsupported:
        named = f"{binding.spec.qualified}: " if binding is not None else ""
        raise FunctionDefinitionError(
            f"{named}Spark has no type {unsupported[0]}; declare a type Spark has (a signed integer, "
            "DOUBLE, VARCHAR...)"
        )
    return sql_type.sql(NAME, identify=True)


_NO_SPARK_TYPE = {
    exp.DataType.Type.UTINYINT, exp.DataType.Type.USMALLINT, exp.DataType.Type.UINT, exp.DataType.Type.UBIGINT,
    exp.DataType.Type.TIME, exp.DataType.Type.INT128, exp.DataType.Type.UINT128,
}


# --- project SQL functions -------------------------------------------------------------------


def create_sql_functions(adapter: t.Any, functions: t.Sequence["SqlFunctionBinding"]) -> None:
    """Create project SQL functions in the adapter's session, each once (callees first)."""
    create_sql_functions_in(adapter.spark, functions)


def create_sql_functions_in(spark: t.Any, functions: t.Sequence["SqlFunctionBinding"]) -> None:
    """``CREATE OR REPLACE TEMPORARY FUNCTION`` for each function not yet created in ``spark``."""
    for binding in functions:
        statement = temporary_function(binding)
        with _lock:
            created = _created.setdefault(spark, {})
            if created.get(binding.sql_name) == statement:
                continue
        try:
            spark.sql(statement)
        except Exception as error:
            raise _cannot_create(binding, error) from error
        with _lock:
            created[binding.sql_name] = statement


def temporary_function(binding: "SqlFunctionBinding") -> str:
    """A project SQL function as a Spark temporary SQL function; Spark's SQL functions declare
    their parameters' types (``CREATE FUNCTION f(a DOUBLE) RETURNS DOUBLE RETURN ...``).

    A DuckDB macro with typed parameters (``CREATE MACRO f(a DOUBLE) AS ...``, DuckDB 1.3+)
    is the same function: it becomes ``CREATE FUNCTION f(a DOUBLE) RETURN ...``, its return
    type derived by Spark from the body, as DuckDB derives a macro's.
    """
    definition = binding.definition()
    untyped = [p.name for p in definition.this.expressions if not isinstance(p, exp.ColumnDef) or p.kind is None]
    kind = definition.args.get("kind", "").upper()
    if untyped or kind not in ("FUNCTION", "MACRO"):
        raise _cannot_hold(binding, untyped)
    if kind == "MACRO":
        definition.set("kind", "FUNCTION")
        definition.set("expression", exp.Return(this=definition.expression))
    definition.set("replace", True)
    properties = definition.args.get("properties")
    kept = [p for p in (properties.expressions if properties is not None else []) if not isinstance(p, exp.TemporaryProperty)]
    definition.set("properties", exp.Properties(expressions=[exp.TemporaryProperty(), *kept]))
    return definition.sql(NAME)


def _cannot_hold(binding: "SqlFunctionBinding", untyped: t.List[str]) -> Exception:
    from mixmesh.core import sql_functions

    reason = (
        f"its parameter(s) {', '.join(untyped)} have no type" if untyped else "it is not a scalar SQL function"
    )
    return sql_functions.SqlFunctionError(
        f"{binding.function.describe()}: Spark cannot hold it as a temporary function: {reason}. Spark's "
        "SQL functions are written CREATE FUNCTION name(a DOUBLE, b STRING) RETURNS DOUBLE RETURN expression "
        "(in DuckDB's SQL: CREATE MACRO name(a DOUBLE, b VARCHAR) AS expression)"
    )


def _cannot_create(binding: "SqlFunctionBinding", error: Exception) -> Exception:
    from mixmesh import engines
    from mixmesh.core import sql_functions

    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return sql_functions.SqlFunctionError(
        f"{binding.function.describe()}: Spark cannot create it: {engines.plain_names(first_line)}"
    )


# --- queries of Python models -----------------------------------------------------------------


def render(expression: exp.Expr) -> str:
    """A query as Spark reads it; ``:name`` placeholders stay Spark's named parameters."""
    return expression.sql(NAME)


@contextlib.contextmanager
def run(
    adapter: t.Any, expression: exp.Expr, params: t.Mapping[str, t.Any], *, staging: bool = False
) -> t.Iterator["SparkResult"]:
    """Run a query with its parameters bound by Spark (``spark.sql(query, args=...)``)."""
    from mixmesh import engines

    spark = adapter.spark
    sql = render(expression)
    create_sql_functions_in(spark, engines.sql_functions_called(sql))
    try:
        frame = spark.sql(sql, args=dict(params) or None)
    except Exception as error:
        explained = explain_error(error, sql, engines._bound)
        if explained is None:
            raise
        raise explained from error
    yield SparkResult(frame)


class SparkResult:
    """A Spark DataFrame behind the verbs every engine's result speaks (DuckDB's names)."""

    def __init__(self, frame: t.Any) -> None:
        self.frame = frame

    def to_arrow_table(self) -> pa.Table:
        return self._collect(self.frame.toArrow)

    def df(self) -> t.Any:
        return self._collect(self.frame.toPandas)

    def to_arrow_reader(self, rows: int) -> pa.RecordBatchReader:
        """The rows in batches of up to ``rows``; Spark collects them to the driver first."""
        table = self.to_arrow_table()
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=rows))

    def fetchall(self) -> t.List[t.Tuple[t.Any, ...]]:
        return [tuple(row) for row in self._collect(self.frame.collect)]

    def fetchone(self) -> t.Optional[t.Tuple[t.Any, ...]]:
        rows = self._collect(lambda: self.frame.take(1))
        return tuple(rows[0]) if rows else None

    @staticmethod
    def _collect(action: t.Callable[[], t.Any]) -> t.Any:
        """Spark runs functions when results are collected: their errors surface here."""
        try:
            return action()
        except Exception as error:
            from mixmesh import engines

            explained = explain_error(error, "", engines._bound)
            if explained is None:
                raise
            raise explained from error


# --- where a Python model's batches land ------------------------------------------------------

STAGING_SCHEMA = "mixmesh_staging"


def create_staging(adapter: t.Any, columns: t.Mapping[str, exp.DataType]) -> str:
    """A table for a model's batches, dropped once SQLMesh has written from it."""
    import os

    spark = adapter.spark
    spark.sql(exp.Create(kind="SCHEMA", this=exp.to_identifier(STAGING_SCHEMA), exists=True).sql(NAME))
    name = f"{STAGING_SCHEMA}.s_{os.getpid()}_{uuid.uuid4().hex}"
    schema = exp.Schema(
        this=exp.to_table(name),
        expressions=[exp.ColumnDef(this=exp.to_identifier(c, quoted=True), kind=k.copy()) for c, k in columns.items()],
    )
    spark.sql(exp.Create(kind="TABLE", this=schema).sql(NAME))
    return name


def append_staging(adapter: t.Any, staging: str, table: t.Any) -> None:
    """Append a batch: an Arrow table, or a Spark DataFrame (written by the executors)."""
    spark = adapter.spark
    frame = table if is_engine_frame(table) else spark.createDataFrame(table)
    columns = spark.table(staging).columns
    try:
        frame.select(*[frame[column] for column in columns]).write.insertInto(staging)
    except Exception as error:
        refused = _GRAIN_REFUSED.search(str(error))
        if refused is None:
            raise
        from mixmesh.pymodels.validation import ModelOutputError

        raise ModelOutputError(refused.group("message")) from None


def drop_staging(adapter: t.Any, staging: str) -> None:
    adapter.spark.sql(exp.Drop(kind="TABLE", this=exp.to_table(staging), exists=True).sql(NAME))


def is_engine_frame(value: t.Any) -> bool:
    """A PySpark DataFrame (classic or Spark Connect), which a model may return to keep its rows
    distributed (found without importing pyspark)."""
    return type(value).__module__.startswith("pyspark.") and hasattr(value, "sparkSession")


def conform_frame(frame: t.Any, spec: t.Any) -> t.Any:
    """A returned Spark DataFrame with exactly the declared columns, of the declared types.

    Names are checked now (as for any batch); types are cast and grain columns checked for
    NULL by Spark itself as it writes, without a pass of their own over the rows.
    """
    from pyspark.sql import functions as F

    from mixmesh.pymodels import validation

    validation.conform(pa.table({name: pa.nulls(0) for name in frame.columns}), spec)  # the names alone
    columns = []
    for name, sql_type in spec.columns.items():
        column = frame[name].cast(spark_type(sql_type))
        if name in spec.grain:
            message = (
                f"{_GRAIN_MARK}model {spec.name}: grain column {name!r} is NULL in a row; every row needs its whole grain"
            )
            column = F.when(column.isNull(), F.raise_error(F.lit(message))).otherwise(column)
        columns.append(column.alias(name))
    return frame.select(*columns)


_GRAIN_MARK = "mixmesh: "
_GRAIN_REFUSED = re.compile(re.escape(_GRAIN_MARK) + r"(?P<message>model .*? every row needs its whole grain)")


def dataframe(adapter: t.Any, expression: exp.Expr, params: t.Mapping[str, t.Any]) -> t.Any:
    """A model's query as a Spark DataFrame: nothing is computed until it is written or read."""
    with run(adapter, expression, params) as result:
        return result.frame


def materialized(adapter: t.Any, query: exp.Expr) -> t.Any:
    """A staging table's rows as a Spark DataFrame that no longer reads the table: a local
    checkpoint, kept by the executors (memory, then disk), so the table may be dropped before
    SQLMesh writes the rows (see ``mixmesh.core.models._rows_to_write``)."""
    return dataframe(adapter, query, {}).localCheckpoint(eager=True)


# --- errors -----------------------------------------------------------------------------------


def explain_error(error: BaseException, sql: str, bound: t.Mapping[str, "Binding"]) -> t.Optional[Exception]:
    """The mixmesh error a Spark error stands for, if it is about a bound function."""
    if not type(error).__module__.startswith(("pyspark", "py4j")):
        return None
    message = str(error)
    raised = _RAISED.findall(message)
    if raised:
        kind, text = raised[-1]
        return _OUR_ERRORS.get(kind, MixmeshError)(text.strip())
    unresolved = _UNRESOLVED.search(message)
    if unresolved:
        return _unknown_function(unresolved.group("name"), message)
    return None


_OUR_ERRORS: t.Dict[str, t.Type[MixmeshError]] = {
    cls.__name__: cls for cls in (FunctionRuntimeError, FunctionCallError, FunctionDefinitionError, MixmeshError)
}


def _unknown_function(name: str, message: str) -> t.Optional[Exception]:
    """A misspelt project SQL function: say which one was likely meant."""
    import difflib


    known = bindings.known_functions()
    close = difflib.get_close_matches(name.lower(), list(known), n=1, cutoff=0.75)
    if not close:
        return None
    function = known[close[0]]
    hint = f'Did you mean the project SQL function "{function.name}"' + (
        f" ({function.location})?" if function.location else "?"
    )
    return FunctionCallError(f"{message.strip().splitlines()[0]} {hint}")

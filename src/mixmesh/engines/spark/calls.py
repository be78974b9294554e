"""A function as Spark's executors call it: a batch of argument columns in, one column out.

Spark hands an Arrow UDF each batch of rows as one Arrow array per argument and expects one
Arrow array back. ``SparkCall`` is what Spark pickles on the driver and calls on its Python
workers: it checks the arguments' types (Spark, unlike DuckDB, does not match a call against
declared argument types), then runs the function the way ``mixmesh.runtime`` runs it on every
engine: vectorized functions through ``BatchFunction``, row functions through
``RowBatchFunction`` (once per row of the batch, as on DuckDB's fast path). Both are built
once per worker process, so a
circuit breaker counts a process's failures across its batches.
"""

from __future__ import annotations

import os
import threading
import time
import typing as t
import uuid

import pyarrow as pa

from mixmesh.runtime import quarantine, resources
from mixmesh.core import sql_types as types
from mixmesh.core.errors import FunctionCallError, where

if t.TYPE_CHECKING:
    from mixmesh.runtime.bindings import Binding

NAME = "spark"

# What each worker process built, by SparkCall key: built once, kept across batches and tasks.
_built: t.Dict[str, t.Callable[..., pa.Array]] = {}
_built_lock = threading.Lock()


class SparkCall:
    """One binding, called by Spark with Arrow arrays; pickled to the executors."""

    def __init__(
        self, binding: "Binding", sql_name: str, figures: t.Any = None, unshippable: t.Optional[str] = None,
        *, local: bool = True,
    ) -> None:
        self.spec = binding.spec
        self.figures = figures  # a Spark accumulator each batch reports to (figures)
        self.unshippable = unshippable  # why failed rows cannot reach the driver (Spark Connect)
        self.model = binding.model
        self.source = binding.source
        # Unique per registration: a worker never mistakes another function bound under this name.
        self.key = f"{sql_name}:{uuid.uuid4().hex}"
        self.working_directory = os.getcwd()
        self.project_root = resources.project_root()  # where artifact paths resolve, as on the driver
        # Local mode: the executors share the driver's machine and files. Otherwise (a
        # cluster) they have no copy of the project, and run in their own directory.
        self.local = local

    def __call__(self, *columns: t.Union[pa.Array, pa.ChunkedArray]) -> pa.Array:
        self._settle()
        if self.figures is not None:
            quarantine.keep_for_shipping()
        quarantine.refuse_unshippable(self.unshippable)
        arrays = [self._checked(position, column) for position, column in enumerate(columns)]
        started = time.perf_counter()
        failed = True
        try:
            result = self._function()(*arrays)
            failed = False
            return result
        finally:
            if self.figures is not None:
                self._report(arrays, time.perf_counter() - started, failed)

    def _settle(self) -> None:
        """Where the project's relative paths resolve in this process: the driver's project
        folder in local mode; on a cluster, the copy of the files its resources brought."""
        if self.local:
            _work_in(self.working_directory)
            root = self.project_root
        else:
            from mixmesh.engines.spark.shipping import project_copy

            root = project_copy(str(self.project_root or self.working_directory))
        if root is not None and resources.project_root() != root:
            resources.set_project_root(root)

    def _report(self, arrays: t.List[pa.Array], seconds: float, failed: bool) -> None:
        """One batch's figures, for monitoring on the driver (a plain tuple: figures.Batch)."""
        from mixmesh.runtime.values import mean_list_length
        from mixmesh.engines.spark.figures import events_since_last_report

        mode = "vectorized" if self.spec.vectorized else "row"
        rows = len(arrays[0]) if arrays else 0
        events = events_since_last_report(self.model, self.spec.name)
        in_flight = getattr(self._function(), "in_flight_of_last_batch", lambda: None)()
        quarantined = quarantine.ship()  # written on the driver, after the model's statement
        self.figures.add([(self.model, self.spec.name, mode, rows, seconds, failed, mean_list_length(arrays), events,
                           in_flight, quarantined)])

    def _function(self) -> t.Callable[..., pa.Array]:
        function = _built.get(self.key)
        if function is None:
            with _built_lock:
                function = _built.get(self.key)
                if function is None:
                    _forget_earlier_registrations(self.key)
                    function = _built[self.key] = self._build()
        return function

    def _build(self) -> t.Callable[..., pa.Array]:
        from mixmesh.runtime.batches import BatchFunction
        from mixmesh.runtime.rows import RowBatchFunction

        if self.spec.vectorized:
            return BatchFunction(self.spec, self.model)
        return RowBatchFunction(self.spec, self.model, self.source, dialect=NAME)

    def _checked(self, position: int, column: t.Union[pa.Array, pa.ChunkedArray]) -> pa.Array:
        """The argument as declared: converted between kinds that convert (numbers, struct
        field order), refused between kinds that do not (text for a number), as DuckDB does."""
        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        arg = self.spec.args[position]
        expected = types.to_arrow(arg.sql_type)
        if array.type == expected:
            return array
        if same_kind(array.type, expected):
            try:
                return array.cast(expected)
            except (pa.ArrowException, TypeError, ValueError):
                pass
        raise FunctionCallError(
            f"{where(self.spec.name, self.model)}: argument {position + 1} ({arg.name}) is "
            f"{spark_type_name(array.type)}, declared {types.sql(arg.sql_type, NAME)}. Cast the argument "
            "in SQL (CAST(x AS type)) or change the function's type hint."
        )


def _forget_earlier_registrations(key: str) -> None:
    """A name registered again replaces what it was (its resources' files changed on the
    driver): what this process built for it before holds a stale model, and memory."""
    name = key.rpartition(":")[0]
    for earlier in [known for known in _built if known.rpartition(":")[0] == name]:
        del _built[earlier]


def _work_in(directory: str) -> None:
    """Run in the driver's working directory, where the executor has it (local mode, a shared
    file system), so relative paths mean what they mean on the driver and on DuckDB: SQLMesh
    runs a project from its folder, and the project's code opens its files (the ML artifacts
    an ``@resource`` loads) relative to it. A Python worker runs one batch at a time, so
    changing its directory affects nothing else. Elsewhere the executor's own directory stays.
    """
    if os.getcwd() != directory and os.path.isdir(directory):
        os.chdir(directory)


def same_kind(actual: pa.DataType, expected: pa.DataType) -> bool:
    """Whether values of ``actual`` may stand for ``expected`` (a NULL for anything)."""
    if pa.types.is_null(actual):
        return True
    for kind in _SCALAR_KINDS:
        if kind(expected):
            return kind(actual)
    if _is_list(expected):
        return _is_list(actual) and same_kind(actual.value_type, expected.value_type)
    if pa.types.is_map(expected):
        return (
            pa.types.is_map(actual)
            and same_kind(actual.key_type, expected.key_type)
            and same_kind(actual.item_type, expected.item_type)
        )
    if pa.types.is_struct(expected):
        return pa.types.is_struct(actual) and _same_fields(actual, expected)
    return False


def _same_fields(actual: pa.StructType, expected: pa.StructType) -> bool:
    fields = {field.name: field.type for field in actual}
    return set(fields) == {field.name for field in expected} and all(
        same_kind(fields[field.name], field.type) for field in expected
    )


def _is_number(data_type: pa.DataType) -> bool:
    return pa.types.is_integer(data_type) or pa.types.is_floating(data_type) or pa.types.is_decimal(data_type)


def _is_text(data_type: pa.DataType) -> bool:
    return pa.types.is_string(data_type) or pa.types.is_large_string(data_type) or pa.types.is_string_view(data_type)


def _is_bytes(data_type: pa.DataType) -> bool:
    return pa.types.is_binary(data_type) or pa.types.is_large_binary(data_type) or pa.types.is_fixed_size_binary(data_type)


def _is_list(data_type: pa.DataType) -> bool:
    return pa.types.is_list(data_type) or pa.types.is_large_list(data_type) or pa.types.is_fixed_size_list(data_type)


_SCALAR_KINDS = (
    _is_number, _is_text, _is_bytes, pa.types.is_boolean, pa.types.is_date, pa.types.is_timestamp, pa.types.is_time,
)


def spark_type_name(data_type: pa.DataType) -> str:
    """An Arrow type as Spark SQL names it (STRING, ARRAY<STRUCT<A:DOUBLE>>)."""
    from pyspark.sql.pandas.types import from_arrow_type

    try:
        return from_arrow_type(data_type).simpleString().upper()
    except Exception:  # a type Spark has no name for: Arrow's own is still clear
        return str(data_type)

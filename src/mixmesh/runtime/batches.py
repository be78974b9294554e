"""``BatchFunction``: a vectorized function as an engine calls it, one Arrow batch at a time.

The engine hands over the argument columns of a batch as Arrow arrays and gets one Arrow
array back, of the declared type and the same length. NULL handling, checking what the
function returned (``values.ReturnedValues``), errors that name the model, the function and
the batch, and finding a failed batch's failing rows (for ``on_error``) all live here.
"""

from __future__ import annotations

import inspect
import time
import typing as t

import pyarrow as pa
import pyarrow.compute as pc

from mixmesh import sink
from mixmesh.core import sql_types as types
from mixmesh.core.errors import FunctionRuntimeError, where
from mixmesh.core.functions import FunctionSpec
from mixmesh.runtime.quarantine import quarantine
from mixmesh.runtime.values import (
    STOPS,
    ReturnedValues,
    _all_valid,
    _as_array,
    _broadcast,
    _row_of,
    _scatter,
    describe_row,
    mean_list_length,
    raised,
)


class BatchFunction:
    """A vectorized function ready to run on Arrow batches for one calling model."""

    def __init__(self, spec: FunctionSpec, model: t.Optional[str] = None) -> None:
        self.spec = spec
        self.model = model
        self.where = where(spec.name, model)
        # None: an argument the call site types (a plain-Python call): taken as it comes.
        self.arg_types = [None if arg.sql_type is None else types.to_arrow(arg.sql_type) for arg in spec.args]
        self.return_type = types.to_arrow(spec.returns)
        self._returns = ReturnedValues(spec, model)
        self.as_pandas = [spec.receives_pandas(arg) for arg in spec.args]
        self._protected = (
            spec.policies.protect(spec.func, function=spec.name, model=model) if spec.policies else spec.func
        )
        # While a failed batch is split to find its failing rows, the parts are calls of the
        # search, not of the service: the breaker does not count them and they are not retried
        # (the batch was, once); a timeout still bounds each.
        self._isolating = _without_breaker_and_retries(spec, model)
        sink.register_user_code(spec.func.__code__, spec.name, "vectorized")
        # Engines count a callable's parameters: show one per SQL argument.
        self.__signature__ = inspect.Signature(
            [inspect.Parameter(arg.name, inspect.Parameter.POSITIONAL_ONLY) for arg in spec.args]
        )

    def __call__(self, *columns: t.Union[pa.Array, pa.ChunkedArray]) -> pa.Array:
        started = time.perf_counter()
        arrays = _broadcast([_as_array(column) for column in columns])
        rows = len(arrays[0]) if arrays else 0
        failed = True
        try:
            result = self._call(arrays, rows)
            failed = False
            return result
        finally:  # one clock read per batch: the figures monitoring keeps
            if sink.evaluating():
                lengths = mean_list_length(arrays)
                sink.record_batch(self.model, self.spec.name, rows, time.perf_counter() - started, failed, lengths)

    def _call(self, arrays: t.List[pa.Array], rows: int) -> pa.Array:
        if self.spec.null_handling == "strict":
            valid = _all_valid(arrays)
            if valid is not None:
                kept = self._run([array.filter(valid) for array in arrays]) if pc.any(valid).as_py() else None
                return _scatter(kept, valid, self.return_type)
        return self._run(arrays) if rows else pa.array([], type=self.return_type)

    def _failure(self, error: BaseException, arrays: t.List[pa.Array]) -> FunctionRuntimeError:
        first = tuple(array[0].as_py() for array in arrays)
        return FunctionRuntimeError(
            f"{self.where} {raised(error)}; on a batch of {len(arrays[0])} rows "
            f"whose first row's arguments were {describe_row(self.spec, first)}"
        )

    def _run(self, arrays: t.List[pa.Array], *, isolating: bool = False) -> pa.Array:
        """Call with the whole batch; when it raises, fail naming the batch (on_error="raise")
        or split it in halves until only the failing rows are left, and give those (and only
        those) the on_error value. Retries and the breaker apply to the batch once, never to
        the parts of the search: one bad row costs one breaker failure and one round of
        retries, wherever it sits, and gives one on_error value."""
        from mixmesh.core.resilience import CircuitOpenError, record

        rows = len(arrays[0])
        call = self._isolating if isolating else self._protected
        try:
            result = call(*[self._batch_input(array, i) for i, array in enumerate(arrays)])
        except CircuitOpenError as error:
            if self.spec.on_error != "raise":
                self._quarantine(arrays, error)
            return self._fallback_batch(arrays, error, rows)
        except STOPS as error:
            raise self._failure(error, arrays) from error
        except Exception as error:
            if self.spec.on_error == "raise":
                raise self._failure(error, arrays) from error
            if rows == 1:
                record(self.model, self.spec.name, "fallbacks", f"{type(error).__name__}: {error}; isolated row")
                self._quarantine(arrays, error)
                return self._fallback_batch(arrays, error, 1)
            half = rows // 2
            parts = [self._run([a.slice(start, length) for a in arrays], isolating=True)
                     for start, length in ((0, half), (half, rows - half))]
            return pa.concat_arrays(parts)
        return self._batch_result(result, arrays)

    def _quarantine(self, arrays: t.List[pa.Array], error: Exception) -> None:
        """Keep the rows given the on_error value (``mixmesh.runtime.quarantine``)."""
        names = [arg.name for arg in self.spec.args]
        for row in zip(*(array.to_pylist() for array in arrays)):
            quarantine(self.model, self.spec.name, names, row, error)

    def _fallback_batch(self, arrays: t.List[pa.Array], error: Exception, rows: int) -> pa.Array:
        on_error = self.spec.on_error
        if on_error == "raise":
            raise self._failure(error, arrays) from error
        if on_error in ("null", None):
            return pa.nulls(rows, type=self.return_type)
        if callable(on_error):
            return self._batch_result(on_error(*[self._batch_input(a, i) for i, a in enumerate(arrays)]), arrays)
        return self._returns.to_arrow([on_error] * rows, _row_of(arrays))

    def _batch_input(self, array: pa.Array, index: int) -> t.Any:
        expected = self.arg_types[index]
        if expected is not None and array.type != expected:
            array = array.cast(expected)
        return _to_pandas(array) if self.as_pandas[index] else array

    def _batch_result(self, result: t.Any, arrays: t.List[pa.Array]) -> pa.Array:
        """What the function returned, as an array of the declared type (the return rules)."""
        rows = len(arrays[0]) if arrays else 0
        array = _to_arrow_array(result, self.where)
        self._check_length(len(array), rows)
        if isinstance(array, list):  # Python values: converted as a row function's are
            return self._returns.to_arrow(array, _row_of(arrays))
        try:
            return types.returned_array(array, self.spec.returns)
        except types.ValueRefused as refused:
            raise self._returns.refused(refused, _row_of(arrays)(refused.position or 0)) from None

    def batch_values(self, result: t.Any, rows: int) -> pa.Array:
        """What the function returned for a batch of ``rows`` rows, as an array of its declared
        type (``@with_provenance`` pairs it with the batch's provenance)."""
        return self._batch_result(result, [pa.nulls(rows)])

    def _check_length(self, length: int, rows: int) -> None:
        if length != rows:
            raise FunctionRuntimeError(
                f"{self.where} returned {length} values for a batch of {rows} rows; "
                "a vectorized function returns one value per row"
            )


def _without_breaker_and_retries(spec: FunctionSpec, model: t.Optional[str]) -> t.Callable[..., t.Any]:
    from mixmesh.core.resilience import timeout_of

    timeout = timeout_of(spec.policies)
    return timeout.protect(spec.func, function=spec.name, model=model) if timeout else spec.func


def _to_pandas(array: pa.Array) -> t.Any:
    """A pandas Series that keeps NULL apart from NaN and large ints exact.

    Nested values use pandas' Arrow-backed dtype (numpy would turn a NULL in a list into
    NaN); scalar columns holding NULLs use pandas' nullable dtypes (numpy would make an int
    column with a NULL a float column).
    """
    import pandas as pd

    if pa.types.is_nested(array.type):
        return array.to_pandas(types_mapper=pd.ArrowDtype)
    if array.null_count == 0:
        return array.to_pandas()
    nullable = {
        pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int32Dtype(), pa.int16(): pd.Int16Dtype(),
        pa.int8(): pd.Int8Dtype(), pa.float64(): pd.Float64Dtype(), pa.float32(): pd.Float32Dtype(),
        pa.bool_(): pd.BooleanDtype(), pa.string(): pd.StringDtype(),
    }
    return array.to_pandas(types_mapper=nullable.get)


def _to_arrow_array(result: t.Any, where_: str) -> t.Union[pa.Array, t.List[t.Any]]:
    """A returned batch as an Arrow array of the type it holds (Arrow, pandas, numpy), or as
    a list of Python values (a list, or values of mixed kinds); the return rules then make
    it the declared type."""
    if isinstance(result, pa.ChunkedArray):
        return result.combine_chunks()
    if isinstance(result, pa.Array):
        return result
    if isinstance(result, (list, tuple)):
        return list(result)
    if getattr(result, "dtype", None) == object:  # Python values in a pandas Series or numpy array
        # Arrow would guess one type for them (True in a column of floats becomes 1.0): the
        # rules take them one by one instead; pandas' missing markers are NULL.
        return [None if type(value).__name__ in ("NAType", "NaTType") else value for value in result.tolist()]
    try:
        # NaN stays NaN (from_pandas=False): strict NULL handling kept NULLs out of the batch.
        return pa.array(result, from_pandas=False)
    except (pa.ArrowException, TypeError, ValueError) as error:
        if hasattr(result, "tolist"):  # a pandas Series or numpy array of mixed values
            return list(result.tolist())
        raise FunctionRuntimeError(
            f"{where_} returned a {type(result).__name__} that is not an array of values: {error}"
        ) from None

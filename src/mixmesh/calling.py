"""Calling a function from an engine, so that every engine behaves the same.

Two calling conventions:

- ``BatchFunction``, for vectorized functions: the engine hands over the argument columns
  of a batch as Arrow arrays and gets one Arrow array back, of the declared type and the
  same length. NULL handling, checking what the function returned and errors that say
  which model, function and batch all live here.
- ``row_function``, for row functions: the engine calls Python once per row with Python
  values; the wrapper adds only what the engine cannot: errors naming the model, the
  function and the row, and the value conversions the engine asks for.
"""

from __future__ import annotations

import inspect
import time
import typing as t

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mixmesh import inlining, types
from mixmesh.errors import FunctionRuntimeError, truncate, where
from mixmesh.functions import FunctionSpec
from mixmesh.monitor import capture


class BatchFunction:
    """A vectorized function ready to run on Arrow batches for one calling model."""

    def __init__(self, spec: FunctionSpec, model: t.Optional[str] = None) -> None:
        self.spec = spec
        self.model = model
        self.where = where(spec.name, model)
        # None: an argument the call site types (a plain-Python call): taken as it comes.
        self.arg_types = [None if arg.sql_type is None else types.to_arrow(arg.sql_type) for arg in spec.args]
        self.return_type = types.to_arrow(spec.returns)
        self.as_pandas = [spec.receives_pandas(arg) for arg in spec.args]
        self._protected = (
            spec.policies.protect(spec.func, function=spec.name, model=model) if spec.policies else spec.func
        )
        capture.register_user_code(spec.func.__code__, spec.name, "vectorized")
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
            if capture.evaluating():
                lengths = mean_list_length(arrays)
                capture.record_batch(self.model, self.spec.name, rows, time.perf_counter() - started, failed, lengths)

    def _call(self, arrays: t.List[pa.Array], rows: int) -> pa.Array:
        if self.spec.null_handling == "strict":
            valid = _all_valid(arrays)
            if valid is not None:
                kept = self._run([array.filter(valid) for array in arrays]) if pc.any(valid).as_py() else None
                return _scatter(kept, valid, self.return_type)
        return self._run(arrays) if rows else pa.array([], type=self.return_type)

    def _failure(self, error: Exception, arrays: t.List[pa.Array]) -> FunctionRuntimeError:
        first = tuple(array[0].as_py() for array in arrays)
        return FunctionRuntimeError(
            f"{self.where} raised {type(error).__name__}: {error}; on a batch of {len(arrays[0])} rows "
            f"whose first row's arguments were {describe_row(self.spec, first)}"
        )

    def _run(self, arrays: t.List[pa.Array]) -> pa.Array:
        """Call with the whole batch; when it raises, fail naming the batch (on_error="raise")
        or split it in halves until only the failing rows are left, and give those (and only
        those) the on_error value."""
        from mixmesh.resilience import CircuitOpenError, record

        rows = len(arrays[0])
        try:
            result = self._protected(*[self._batch_input(array, i) for i, array in enumerate(arrays)])
        except CircuitOpenError as error:
            return self._fallback_batch(arrays, error, rows)
        except Exception as error:
            if self.spec.on_error == "raise":
                raise self._failure(error, arrays) from error
            if rows == 1:
                record(self.model, self.spec.name, "fallbacks", f"{type(error).__name__}: {error}; isolated row")
                return self._fallback_batch(arrays, error, 1)
            half = rows // 2
            parts = [self._run([a.slice(start, length) for a in arrays])
                     for start, length in ((0, half), (half, rows - half))]
            return pa.concat_arrays(parts)
        return self._batch_result(result, rows)

    def _fallback_batch(self, arrays: t.List[pa.Array], error: Exception, rows: int) -> pa.Array:
        on_error = self.spec.on_error
        if on_error == "raise":
            raise self._failure(error, arrays) from error
        if on_error in ("null", None):
            return pa.nulls(rows, type=self.return_type)
        if callable(on_error):
            return self._batch_result(on_error(*[self._batch_input(a, i) for i, a in enumerate(arrays)]), rows)
        return pa.array([types.arrow_ready(on_error)] * rows, type=self.return_type)

    def _batch_input(self, array: pa.Array, index: int) -> t.Any:
        expected = self.arg_types[index]
        if expected is not None and array.type != expected:
            array = array.cast(expected)
        return _to_pandas(array) if self.as_pandas[index] else array

    def _batch_result(self, result: t.Any, rows: int) -> pa.Array:
        array = _to_arrow_array(result, self.where, self.return_type)
        if len(array) != rows:
            raise FunctionRuntimeError(
                f"{self.where} returned {len(array)} values for a batch of {rows} rows; "
                "a vectorized function returns one value per row"
            )
        if array.type == self.return_type:
            return array
        try:
            return array.cast(self.return_type, safe=True)
        except (pa.ArrowException, TypeError, ValueError) as error:
            raise FunctionRuntimeError(
                f"{self.where} returned values of type {array.type}, which do not convert to the "
                f"declared {types.sql(self.spec.returns)}: {error}"
            ) from None


class RowBatchFunction:
    """A row function run over a whole Arrow batch: one Python call per row, but the
    batch converted to and from Python values at once (the fast path's row mode).

    The rows' values are what an engine's per-row binding passes (``to_pylist``: dicts for
    STRUCTs and MAPs, lists, datetimes, Decimals); strict NULL handling skips a row with a
    NULL argument without calling, as the engine's binding does. Used by DuckDB's fast path
    and by Spark's executors; ``dialect`` names types in messages as the engine does.
    """

    def __init__(
        self, spec: FunctionSpec, model: t.Optional[str] = None, source: t.Optional[str] = None, dialect: str = "duckdb"
    ) -> None:
        self.spec = spec
        self.model = model
        self.dialect = dialect
        self.return_type = types.to_arrow(spec.returns)
        # Maps become dicts; asked for only where there are maps, as it makes converting a
        # batch to Python values many times slower.
        self._maps_as_dicts = [_holds_map(types.to_arrow(arg.sql_type)) for arg in spec.args]
        self._call = row_function(spec, model, skip_nulls=spec.null_handling == "strict", source=source)
        # Engines bind such a function as never returning NULL for a row without NULLs.
        self._promises_value = spec.null_handling == "strict" and not spec.may_return_null

    def __call__(self, *columns: t.Union[pa.Array, pa.ChunkedArray]) -> pa.Array:
        started = time.perf_counter()
        arrays = [_as_array(column) for column in columns]
        failed = True
        try:
            values = [
                array.to_pylist(maps_as_pydicts="strict") if as_dicts else array.to_pylist()
                for array, as_dicts in zip(arrays, self._maps_as_dicts)
            ]
            results = list(map(self._call, *values)) if values else []  # no tuple per row
            array = self._to_arrow(results, values)
            if self._promises_value and array.null_count:
                self._check_no_null_returned(array, arrays)
            failed = False
            return array
        finally:
            if capture.evaluating():
                rows = len(arrays[0]) if arrays else 0
                seconds = time.perf_counter() - started
                lengths = mean_list_length(arrays)
                capture.record_batch(self.model, self.spec.name, rows, seconds, failed, lengths, mode="row")

    def _check_no_null_returned(self, results: pa.Array, arrays: t.List[pa.Array]) -> None:
        valid = _all_valid(arrays)
        returned_null = results.is_null() if valid is None else pc.and_(results.is_null(), valid)
        if pc.any(returned_null).as_py():
            raise FunctionRuntimeError(
                f"{where(self.spec.name, self.model)} returned None for a row without NULL arguments, but its "
                "return hint does not allow None; hint Optional[...] (e.g. -> Optional[float]) for a function "
                "that returns NULL"
            )

    def _to_arrow(self, results: t.List[t.Any], values: t.List[t.List[t.Any]]) -> pa.Array:
        try:
            return pa.array(results, type=self.return_type, from_pandas=False)
        except (pa.ArrowException, TypeError, ValueError):
            pass
        try:  # values of another type that convert, as the engine converts them ('1' for an INT...)
            return pa.array(results, from_pandas=False).cast(self.return_type, safe=True)
        except (pa.ArrowException, TypeError, ValueError) as error:
            raise FunctionRuntimeError(
                f"{where(self.spec.name, self.model)} (declared {types.sql(self.spec.returns, self.dialect)}) returned "
                f"a value that does not convert to its declared type: {self._first_wrong(results, values) or error}"
            ) from None

    def _first_wrong(self, results: t.List[t.Any], values: t.List[t.List[t.Any]]) -> t.Optional[str]:
        for result, row in zip(results, zip(*values)):
            try:
                pa.array([result], type=self.return_type, from_pandas=False)
            except (pa.ArrowException, TypeError, ValueError):
                return (
                    f"{truncate(result, 80)} ({type(result).__name__}); the row's arguments were "
                    f"{describe_row(self.spec, row)}"
                )
        return None


def row_function(
    spec: FunctionSpec,
    model: t.Optional[str] = None,
    *,
    nan_as_text: bool = False,
    skip_nulls: bool = False,
    source: t.Optional[str] = None,
) -> t.Callable[..., t.Any]:
    """The function an engine calls once per row, failing with the model, function and row.

    This wrapper is on the hot path of every row: it has the function's exact arity and does
    nothing but call, unless values need building (dataclasses in, dataclasses out), or the
    engine asks for more: ``nan_as_text`` hands NaN over as text (for engines that read NaN
    as NULL); ``skip_nulls`` returns NULL for a row with a NULL argument without calling
    (for engines that pass NULLs through). ``source``: the function's source where Python
    cannot find it (functions SQLMesh re-created from its state), for ``inlining``.
    """
    func = spec.func
    context = where(spec.name, model)
    names = [arg.name for arg in spec.args]

    def failure(error: Exception, row: t.Tuple[t.Any, ...]) -> FunctionRuntimeError:
        return FunctionRuntimeError(
            f"{context} raised {type(error).__name__}: {error}; the row's arguments were {describe_row(spec, row)}"
        )

    converters = [arg.python_converter() for arg in spec.args]
    fix_nan = types.nan_as_text(spec.returns) if nan_as_text else None
    builds_result = types.holds_dataclass(spec.returns_hint)
    if spec.is_protected:
        transform = _result_transform(builds_result, fix_nan)
        call = _protected_call(spec, model, converters, transform, failure, skip_nulls)
    elif any(converters) or builds_result or (fix_nan and not spec.returns.is_type("double", "float")):
        call = _building_call(func, converters, _result_transform(builds_result, fix_nan), failure, skip_nulls)
    else:
        keep_nan = fix_nan is not None
        call = inlining.compile_row_call(
            func, source, failure, keep_nan=keep_nan, skip_nulls=skip_nulls
        ) or _plain_call(func, len(spec.args), failure, keep_nan=keep_nan, skip_nulls=skip_nulls)
    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_ONLY) for name in names]
    )
    # The engine calls `call` (an inlined copy or a wrapper); time inside it or func is Python's.
    capture.register_user_code(func.__code__, spec.name, "row")
    if call.__code__ is not func.__code__:  # this binding's own copy: its time is this model's
        capture.register_user_code(call.__code__, spec.name, "row", model)
    return call


def _holds_map(data_type: pa.DataType) -> bool:
    if pa.types.is_map(data_type):
        return True
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type) or pa.types.is_fixed_size_list(data_type):
        return _holds_map(data_type.value_type)
    if pa.types.is_struct(data_type):
        return any(_holds_map(field.type) for field in data_type)
    return False


def mean_list_length(arrays: t.Sequence[pa.Array]) -> t.Optional[float]:
    """The mean length of the longest list argument, for the advice on large lists."""
    lengths = [pc.mean(pc.list_value_length(array)).as_py() for array in arrays if pa.types.is_list(array.type)]
    lengths = [length for length in lengths if length is not None]
    return max(lengths) if lengths else None


def describe_row(spec: FunctionSpec, row: t.Sequence[t.Any]) -> str:
    """A row's arguments for an error message: names and values, each shortened."""
    return ", ".join(f"{arg.name}={truncate(value, 80)}" for arg, value in zip(spec.args, row))


def _result_transform(
    builds_result: bool, fix_nan: t.Optional[t.Callable[[t.Any], t.Any]]
) -> t.Callable[[t.Any], t.Any]:
    """Dataclasses become dicts first, then NaN becomes text where the engine needs it."""
    if fix_nan is None:
        return types.arrow_ready if builds_result else (lambda result: result)
    return lambda result: types.apply(fix_nan, types.arrow_ready(result) if builds_result else result)


# The per-row wrapper, compiled for the function's exact arity: on the hot path, packing
# the row into *args would cost as much as the check it exists for. Only parameter names
# generated here enter the template, never user text.
_ROW_CALL = """
def call({params}):
    {null_guard}
    try:
        result = func({params})
    except Exception as error:
        raise failure(error, ({params},)) from error
    return {result}
"""


def _plain_call(
    func: t.Callable[..., t.Any],
    arity: int,
    failure: t.Callable[..., Exception],
    keep_nan: bool,
    skip_nulls: bool,
) -> t.Callable[..., t.Any]:
    params = ", ".join(f"a{i}" for i in range(arity))
    checks = " or ".join(f"a{i} is None" for i in range(arity))
    null_guard = f"if {checks}:\n        return None" if skip_nulls else "pass"
    # For engines that read a returned NaN as NULL but the text 'NaN' as NaN.
    result = "result if result == result else 'NaN'" if keep_nan else "result"
    namespace: t.Dict[str, t.Any] = {"func": func, "failure": failure}
    source = _ROW_CALL.format(params=params, result=result, null_guard=null_guard)
    exec(compile(source, "<mixmesh row call>", "exec"), namespace)
    return namespace["call"]


def _building_call(
    func: t.Callable[..., t.Any],
    converters: t.List[t.Optional[t.Callable[[t.Any], t.Any]]],
    transform: t.Callable[[t.Any], t.Any],
    failure: t.Callable[..., Exception],
    skip_nulls: bool,
) -> t.Callable[..., t.Any]:
    def call(*row: t.Any) -> t.Any:
        if skip_nulls and any(value is None for value in row):
            return None
        try:
            result = func(*(types.apply(convert, value) for convert, value in zip(converters, row)))
        except Exception as error:
            raise failure(error, row) from error
        return transform(result)

    return call


def _protected_call(
    spec: FunctionSpec,
    model: t.Optional[str],
    converters: t.List[t.Optional[t.Callable[[t.Any], t.Any]]],
    transform: t.Callable[[t.Any], t.Any],
    failure: t.Callable[..., Exception],
    skip_nulls: bool,
) -> t.Callable[..., t.Any]:
    """The per-row call behind the function's policies: retries, breaker, then on_error."""
    from mixmesh.resilience import record

    func = spec.func

    def converted(*row: t.Any) -> t.Any:
        return func(*(types.apply(convert, value) for convert, value in zip(converters, row)))

    protected = spec.policies.protect(converted, function=spec.name, model=model) if spec.policies else converted
    fallback = _fallback(spec)

    def call(*row: t.Any) -> t.Any:
        if skip_nulls and any(value is None for value in row):
            return None
        try:
            return transform(protected(*row))
        except Exception as error:
            if spec.on_error == "raise":
                raise failure(error, row) from error
            record(model, spec.name, "fallbacks", f"{type(error).__name__}: {error}; on_error gives the row's value")
            return transform(fallback(*row))

    return call


def _fallback(spec: FunctionSpec) -> t.Callable[..., t.Any]:
    """What a failing row gets: NULL, the constant, or the fallback function's answer."""
    on_error = spec.on_error
    if on_error in ("null", None):
        return lambda *row: None
    if callable(on_error):
        return on_error
    return lambda *row: on_error


def _as_array(column: t.Union[pa.Array, pa.ChunkedArray]) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return column


def _broadcast(arrays: t.List[pa.Array]) -> t.List[pa.Array]:
    """Constant arguments may arrive as one value; repeat them to the batch's length."""
    rows = max((len(array) for array in arrays), default=0)
    return [
        array.take(pa.array(np.zeros(rows, dtype=np.int64))) if len(array) == 1 and rows > 1 else array
        for array in arrays
    ]


def _all_valid(arrays: t.List[pa.Array]) -> t.Optional[pa.Array]:
    """Where every argument is non-NULL, or None when no argument holds a NULL."""
    valid = None
    for array in arrays:
        if array.null_count:
            mask = array.is_valid()
            valid = mask if valid is None else pc.and_(valid, mask)
    return valid


def _scatter(kept: t.Optional[pa.Array], valid: pa.Array, return_type: pa.DataType) -> pa.Array:
    """Put the results for the non-NULL rows back in place, NULL elsewhere."""
    if kept is None:
        return pa.nulls(len(valid), type=return_type)
    positions = pc.subtract(pc.cumulative_sum(valid.cast(pa.int64())), 1)
    return kept.take(pc.if_else(valid, positions, pa.scalar(None, pa.int64())))


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


def _to_arrow_array(result: t.Any, where_: str, return_type: pa.DataType) -> pa.Array:
    if isinstance(result, pa.ChunkedArray):
        return result.combine_chunks()
    if isinstance(result, pa.Array):
        return result
    try:
        # NaN stays NaN (from_pandas=False): strict NULL handling kept NULLs out of the batch.
        try:
            return pa.array(result, type=return_type, from_pandas=False)
        except (pa.ArrowException, TypeError, ValueError):
            return pa.array(result, from_pandas=False)  # the caller casts, or says why not
    except (pa.ArrowException, TypeError, ValueError) as error:
        raise FunctionRuntimeError(
            f"{where_} returned a {type(result).__name__} that is not an array of values: {error}"
        ) from None

"""Calling a function from an engine, so that every engine behaves the same.

Two calling conventions:

- ``BatchFunction``, for vectorized functions: the engine hands over the argument columns
  of a batch as Arrow arrays and gets one Arrow array back, of the declared type and the
  same length. NULL handling, checking what the function returned and errors that say
  which model, function and batch all live here.
- ``row_function``, for row functions: the engine calls Python once per row with Python
  values; the wrapper adds only what the engine cannot: errors naming the model, the
  function and the row, and the value conversions the engine asks for.

Whatever the path, a returned value converts by one set of rules (``types.return_converter``,
docs/return-values.md): the plain binding checks each row's value before DuckDB converts it,
``RowBatchFunction`` a whole batch's before Arrow does, ``BatchFunction`` the array returned.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
import typing as t

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mixmesh.runtime import inlining
from mixmesh.core import resilience
from mixmesh.core import sql_types as types
from mixmesh.core.errors import FunctionRuntimeError, truncate, where
from mixmesh.core.functions import FunctionSpec
from mixmesh import sink

# What a call of the user's function turns into an error naming the row: its exceptions,
# and a sys.exit() or KeyboardInterrupt inside it (a bug, never a row's on_error value).
STOPS = (SystemExit, KeyboardInterrupt)
CAUGHT = (Exception,) + STOPS


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
            return self._fallback_batch(arrays, error, rows)
        except STOPS as error:
            raise self._failure(error, arrays) from error
        except Exception as error:
            if self.spec.on_error == "raise":
                raise self._failure(error, arrays) from error
            if rows == 1:
                record(self.model, self.spec.name, "fallbacks", f"{type(error).__name__}: {error}; isolated row")
                return self._fallback_batch(arrays, error, 1)
            half = rows // 2
            parts = [self._run([a.slice(start, length) for a in arrays], isolating=True)
                     for start, length in ((0, half), (half, rows - half))]
            return pa.concat_arrays(parts)
        return self._batch_result(result, arrays)

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

    def _check_length(self, length: int, rows: int) -> None:
        if length != rows:
            raise FunctionRuntimeError(
                f"{self.where} returned {length} values for a batch of {rows} rows; "
                "a vectorized function returns one value per row"
            )


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
        self._maps_as_dicts = [types.holds_map(types.to_arrow(arg.sql_type)) for arg in spec.args]
        self._timeout = resilience.timeout_of(spec.policies)
        # A timeout alone is kept by the batch's waiter, not by each row (see _run_rows).
        timed_alone = self._timeout is not None and _policies(spec) == (self._timeout,)
        called = dataclasses.replace(spec, policies=None) if timed_alone else spec
        self._timed_out = _timed_out(spec, model, self._timeout) if timed_alone else None
        # Rows return unconverted; the batch's values are checked together (see _to_arrow).
        self._call = row_function(
            called, model, skip_nulls=spec.null_handling == "strict", source=source, convert_result=False
        )
        self._returns = ReturnedValues(spec, model, dialect)
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
            if self._timeout is not None:  # the rows in one worker thread, the caller watching
                results = self._timeout.run_rows(self._call, values, self._timed_out)
            else:
                results = list(map(self._call, *values)) if values else []  # no tuple per row
            array = self._to_arrow(results, values)
            if self._promises_value and array.null_count:
                self._check_no_null_returned(array, arrays)
            failed = False
            return array
        finally:
            if sink.evaluating():
                rows = len(arrays[0]) if arrays else 0
                seconds = time.perf_counter() - started
                lengths = mean_list_length(arrays)
                sink.record_batch(self.model, self.spec.name, rows, seconds, failed, lengths, mode="row")

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
        return self._returns.to_arrow(results, lambda position: tuple(column[position] for column in values))


class ReturnedValues:
    """A batch of values a row function returned, as the Arrow array of its declared type,
    by the rules every path follows (``types.return_converter``).

    Where no value needs converting (floats for a DOUBLE, naive datetimes for a TIMESTAMP,
    dicts with exactly the fields for a STRUCT...: ``types.unchanged_values``), Arrow
    converts the list at once, and refuses values out of range itself; otherwise each value
    goes through the rules, and the first refused names its row.
    """

    def __init__(self, spec: FunctionSpec, model: t.Optional[str], dialect: str = "duckdb") -> None:
        self.spec = spec
        self.model = model
        self.dialect = dialect
        self.return_type = types.to_arrow(spec.returns)
        self.convert = types.return_converter(spec.returns)

    def to_arrow(self, results: t.List[t.Any], row: t.Callable[[int], t.Tuple[t.Any, ...]]) -> pa.Array:
        """``row(position)``: the arguments of the row at ``position``, for messages."""
        if types.unchanged_values(results, self.spec.returns):
            try:
                return pa.array(results, type=self.return_type, from_pandas=False)
            except (pa.ArrowException, OverflowError, TypeError, ValueError):
                pass  # a value out of range: the rules below name it
        converted = self.converted(results, row)
        try:
            return pa.array(converted, type=self.return_type, from_pandas=False)
        except (pa.ArrowException, OverflowError, TypeError, ValueError) as error:  # not expected: the rules passed it
            raise FunctionRuntimeError(
                f"{self._declared()} returned values Arrow does not convert to its declared type: {error}"
            ) from None

    def converted(self, results: t.Sequence[t.Any], row: t.Callable[[int], t.Tuple[t.Any, ...]]) -> t.List[t.Any]:
        convert = self.convert
        position = 0
        try:
            converted = []
            for position, value in enumerate(results):
                converted.append(None if value is None else convert(value))
            return converted
        except types.ValueRefused as refused:
            raise self.refused(refused, row(position)) from None

    def refused(self, refused: "types.ValueRefused", row: t.Sequence[t.Any]) -> FunctionRuntimeError:
        return FunctionRuntimeError(
            f"{self._declared()} returned a value that does not convert to its declared type: "
            f"{refused.describe()}; the row's arguments were {describe_row(self.spec, row)}"
        )

    def _declared(self) -> str:
        return f"{where(self.spec.name, self.model)} (declared {types.sql(self.spec.returns, self.dialect)})"


def row_function(
    spec: FunctionSpec,
    model: t.Optional[str] = None,
    *,
    nan_as_text: bool = False,
    skip_nulls: bool = False,
    source: t.Optional[str] = None,
    convert_result: bool = True,
) -> t.Callable[..., t.Any]:
    """The function an engine calls once per row, failing with the model, function and row.

    This wrapper is on the hot path of every row: it has the function's exact arity and does
    nothing but call, unless values need building (dataclasses in), and check what the
    function returned (``convert_result``; see ``types.return_converter``): a value of the
    type that needs no conversion passes at the cost of one inline test, others are
    converted or refused, naming the row. ``nan_as_text`` (a part of that conversion) hands
    NaN over as text (for engines that read NaN as NULL); ``skip_nulls`` returns NULL for a row with a NULL
    argument without calling (for engines that pass NULLs through). ``source``: the
    function's source where Python cannot find it (functions SQLMesh re-created from its
    state), for ``inlining``. Without ``convert_result`` the value is returned as the
    function gave it, for callers that convert whole batches (``ReturnedValues``).
    """
    func = spec.func
    context = where(spec.name, model)
    names = [arg.name for arg in spec.args]

    def failure(error: BaseException, row: t.Tuple[t.Any, ...]) -> FunctionRuntimeError:
        return FunctionRuntimeError(f"{context} {raised(error)}; the row's arguments were {describe_row(spec, row)}")

    converters = [arg.python_converter() for arg in spec.args]
    check = _result_check(spec, model, nan_as_text) if convert_result else None
    if spec.is_protected:
        call = _protected_call(spec, model, converters, check, failure, skip_nulls)
    elif any(converters):
        call = _building_call(func, converters, check, failure, skip_nulls)
    else:
        call = inlining.compile_row_call(
            func, source, failure, keep_nan=False, skip_nulls=skip_nulls, result=check.inline if check else None
        ) or _plain_call(func, len(spec.args), failure, check, skip_nulls=skip_nulls)
    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_ONLY) for name in names]
    )
    # The engine calls `call` (an inlined copy or a wrapper); time inside it or func is Python's.
    sink.register_user_code(func.__code__, spec.name, "row")
    if call.__code__ is not func.__code__:  # this binding's own copy: its time is this model's
        sink.register_user_code(call.__code__, spec.name, "row", model)
    return call


class _Refusal(BaseException):
    """A refused result's error, carried through the function's own ``except Exception``
    (an inlined copy converts at the function's ``return`` statements: inlining.ResultCheck)."""


class _ResultCheck(t.NamedTuple):
    """The return rules as a row call applies them: ``test`` (inline, over inlining.RESULT,
    with ``names``) lets the values that pass as they are through (a float for a DOUBLE, an
    int in range for a BIGINT...); ``convert(value, row)`` does the rest, raising the error
    that names the row; ``inline`` is the same for an inlined copy."""

    test: str
    names: t.Dict[str, t.Any]
    convert: t.Callable[[t.Any, t.Tuple[t.Any, ...]], t.Any]
    inline: inlining.ResultCheck


def _result_check(spec: FunctionSpec, model: t.Optional[str], nan_as_text: bool) -> _ResultCheck:
    returned = ReturnedValues(spec, model)
    convert = types.return_converter(spec.returns, nan_as_text=nan_as_text)

    def converted(result: t.Any, row: t.Tuple[t.Any, ...]) -> t.Any:
        if result is None:
            return None
        try:
            return convert(result)
        except types.ValueRefused as refused:
            raise returned.refused(refused, row) from None

    def carried(result: t.Any, row: t.Tuple[t.Any, ...]) -> t.Any:
        try:
            return converted(result, row)
        except FunctionRuntimeError as error:
            raise _Refusal(error) from None

    test, names = _passes_as_is(spec.returns, nan_as_text)
    return _ResultCheck(test, names, converted, inlining.ResultCheck(test, names, carried, _Refusal))


def _passes_as_is(sql_type: t.Any, nan_as_text: bool) -> t.Tuple[str, t.Dict[str, t.Any]]:
    """A Python test over ``inlining.RESULT``, true where the value needs no conversion."""
    rule = types.unchanged_return(sql_type)
    if rule is None:
        return "False", {}
    value = inlining.RESULT
    tests = [f"__mixmesh_type({value}) is __mixmesh_kind"]
    if rule.bounds is not None:  # integer literals of our own, not user text
        low, high = int(rule.bounds[0]), int(rule.bounds[1])
        if low == -(high + 1) and high & (high + 1) == 0:  # -2**k .. 2**k - 1: one call, not two
            tests.append(f"{value}.bit_length() < {high.bit_length()}")  # -2**k itself is converted
        else:
            tests.append(f"{low} <= {value} <= {high}")
    if rule.aware is not None:
        tests.append(f"{value}.tzinfo is {'not None' if rule.aware else 'None'}")
    if nan_as_text and rule.kind is float:
        tests.append(f"{value} == {value}")  # NaN, the one value unequal to itself, becomes text
    return " and ".join(tests), {"__mixmesh_type": type, "__mixmesh_kind": rule.kind}


def raised(error: BaseException) -> str:
    """What the function did, for an error message."""
    if isinstance(error, SystemExit):
        return f"called sys.exit({error.code!r}), which a function may not do: return a value or raise an exception"
    if isinstance(error, KeyboardInterrupt):
        return "was interrupted (KeyboardInterrupt)"
    return f"raised {type(error).__name__}: {error}"


def mean_list_length(arrays: t.Sequence[pa.Array]) -> t.Optional[float]:
    """The mean length of the longest list argument, for the advice on large lists."""
    lengths = [pc.mean(pc.list_value_length(array)).as_py() for array in arrays if pa.types.is_list(array.type)]
    lengths = [length for length in lengths if length is not None]
    return max(lengths) if lengths else None


def describe_row(spec: FunctionSpec, row: t.Sequence[t.Any]) -> str:
    """A row's arguments for an error message: names and values, each shortened."""
    return ", ".join(f"{arg.name}={truncate(value, 80)}" for arg, value in zip(spec.args, row))


# The per-row wrapper, compiled for the function's exact arity: on the hot path, packing
# the row into *args would cost as much as the check it exists for. Only parameter names
# generated here enter the template, never user text.
_ROW_CALL = """
def call({params}):
    {null_guard}
    try:
        {result} = func({params})
    except CAUGHT as error:
        raise failure(error, {row}) from error
    {returned}
"""


def _plain_call(
    func: t.Callable[..., t.Any],
    arity: int,
    failure: t.Callable[..., Exception],
    check: t.Optional[_ResultCheck],
    skip_nulls: bool,
) -> t.Callable[..., t.Any]:
    params = ", ".join(f"a{i}" for i in range(arity))
    row = f"({params},)" if arity else "()"
    checks = " or ".join(f"a{i} is None" for i in range(arity))
    null_guard = f"if {checks}:\n        return None" if skip_nulls and arity else "pass"
    result = inlining.RESULT
    namespace: t.Dict[str, t.Any] = {"func": func, "failure": failure, "CAUGHT": CAUGHT}
    if check is None:
        returned = f"return {result}"
    else:
        returned = f"if {check.test}:\n        return {result}\n    return convert({result}, {row})"
        namespace.update(check.names, convert=check.convert)
    source = _ROW_CALL.format(params=params, row=row, null_guard=null_guard, result=result, returned=returned)
    exec(compile(source, "<mixmesh row call>", "exec"), namespace)
    return namespace["call"]


def _building_call(
    func: t.Callable[..., t.Any],
    converters: t.List[t.Optional[t.Callable[[t.Any], t.Any]]],
    check: t.Optional[_ResultCheck],
    failure: t.Callable[..., Exception],
    skip_nulls: bool,
) -> t.Callable[..., t.Any]:
    def call(*row: t.Any) -> t.Any:
        if skip_nulls and any(value is None for value in row):
            return None
        try:
            result = func(*(types.apply(convert, value) for convert, value in zip(converters, row)))
        except CAUGHT as error:
            raise failure(error, row) from error
        return result if check is None else check.convert(result, row)

    return call


def _protected_call(
    spec: FunctionSpec,
    model: t.Optional[str],
    converters: t.List[t.Optional[t.Callable[[t.Any], t.Any]]],
    check: t.Optional[_ResultCheck],
    failure: t.Callable[..., Exception],
    skip_nulls: bool,
) -> t.Callable[..., t.Any]:
    """The per-row call behind the function's policies: retries, breaker, then on_error.

    A returned value (the function's or the fallback's) that the return rules refuse is an
    error whatever on_error says, as it is when a whole batch's values are converted."""
    from mixmesh.core.resilience import record

    func = spec.func

    def converted(*row: t.Any) -> t.Any:
        return func(*(types.apply(convert, value) for convert, value in zip(converters, row)))

    protected = spec.policies.protect(converted, function=spec.name, model=model) if spec.policies else converted
    fallback = _fallback(spec)

    def call(*row: t.Any) -> t.Any:
        if skip_nulls and any(value is None for value in row):
            return None
        try:
            result = protected(*row)
        except STOPS as error:
            raise failure(error, row) from error
        except Exception as error:
            if spec.on_error == "raise":
                raise failure(error, row) from error
            record(model, spec.name, "fallbacks", f"{type(error).__name__}: {error}; on_error gives the row's value")
            result = fallback(*row)
        return result if check is None else check.convert(result, row)

    return call


def _policies(spec: FunctionSpec) -> t.Tuple[t.Any, ...]:
    policies = spec.policies
    return tuple(getattr(policies, "policies", (policies,))) if policies is not None else ()


def _timed_out(
    spec: FunctionSpec, model: t.Optional[str], timeout: t.Any
) -> t.Callable[[t.Tuple[t.Any, ...]], t.Any]:
    """What a row given up by its timeout gets, when the timeout is the function's only policy:
    the on_error value, or an error naming the row."""
    from mixmesh.core.resilience import record

    gave_up, fallback = timeout.gave_up(spec.name, model), _fallback(spec)

    def timed_out(row: t.Tuple[t.Any, ...]) -> t.Any:
        error = gave_up()
        if spec.on_error == "raise":
            raise FunctionRuntimeError(f"{error}; the row's arguments were {describe_row(spec, row)}")
        record(model, spec.name, "fallbacks", f"{error}; on_error gives the row's value")
        return fallback(*row)

    return timed_out


def _fallback(spec: FunctionSpec) -> t.Callable[..., t.Any]:
    """What a failing row gets: NULL, the constant, or the fallback function's answer."""
    on_error = spec.on_error
    if on_error in ("null", None):
        return lambda *row: None
    if callable(on_error):
        return on_error
    return lambda *row: on_error


def _without_breaker_and_retries(spec: FunctionSpec, model: t.Optional[str]) -> t.Callable[..., t.Any]:
    from mixmesh.core.resilience import Policies, Timeout

    kept = [p for p in (spec.policies.policies if isinstance(spec.policies, Policies) else ()) if isinstance(p, Timeout)]
    return Policies(kept).protect(spec.func, function=spec.name, model=model) if kept else spec.func


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


def _row_of(arrays: t.List[pa.Array]) -> t.Callable[[int], t.Tuple[t.Any, ...]]:
    """The arguments of a batch's row, by position, for messages."""
    return lambda position: tuple(array[position].as_py() for array in arrays)


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

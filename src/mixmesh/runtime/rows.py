"""Row functions as engines call them: once per row (``row_function``), or over a whole
Arrow batch (``RowBatchFunction``, the fast path's and Spark's row mode).

The per-row wrapper adds only what the engine cannot: errors naming the model, the function
and the row, the value conversions the engine asks for, and the function's policies. Where
the function's source is known it is compiled into a copy of the function (``inlining``).
"""

from __future__ import annotations

import dataclasses
import inspect
import time
import typing as t

import pyarrow as pa
import pyarrow.compute as pc

from mixmesh import sink
from mixmesh.core import resilience
from mixmesh.core import sql_types as types
from mixmesh.core.conversion import to_python
from mixmesh.core.errors import FunctionRuntimeError, where
from mixmesh.core.functions import FunctionSpec
from mixmesh.core.rate_limit import limiter_of
from mixmesh.runtime import concurrency, inlining
from mixmesh.runtime.quarantine import fall_back
from mixmesh.runtime.values import (
    CAUGHT,
    STOPS,
    ReturnedValues,
    _all_valid,
    _as_array,
    describe_row,
    mean_list_length,
    raised,
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
        # Rows in flight together (concurrency, async def) keep their policies, a timeout
        # included, per row: each row is its own task (see mixmesh.runtime.concurrency).
        self._together = concurrency.runner_of(spec) if spec.runs_rows_together else None
        self._limiter = limiter_of(spec.name, spec.rate_limit) if spec.rate_limit is not None else None
        self._timeout = None if self._together is not None else resilience.timeout_of(spec.policies)
        # A timeout alone is kept by the batch's waiter, not by each row (see _run_rows).
        timed_alone = self._timeout is not None and resilience.policies_in(spec.policies) == (self._timeout,)
        called = dataclasses.replace(spec, policies=None) if timed_alone else spec
        self._timed_out = _timed_out(spec, model, self._timeout) if timed_alone else None
        # Rows return unconverted; the batch's values are checked together (see _to_arrow).
        skip_nulls = spec.null_handling == "strict"
        if spec.is_async:
            self._call = concurrency.async_row_function(spec, model, skip_nulls=skip_nulls)
        else:
            self._call = row_function(called, model, skip_nulls=skip_nulls, source=source, convert_result=False)
        self._returns = ReturnedValues(spec, model, dialect)
        # Engines bind such a function as never returning NULL for a row without NULLs.
        self._promises_value = spec.null_handling == "strict" and not spec.may_return_null
        # Engines count a callable's parameters (DuckDB refuses `*columns` for two or more
        # arguments): show one per SQL argument, as BatchFunction does.
        self.__signature__ = inspect.Signature(
            [inspect.Parameter(arg.name, inspect.Parameter.POSITIONAL_ONLY) for arg in spec.args]
        )

    def __call__(self, *columns: t.Union[pa.Array, pa.ChunkedArray]) -> pa.Array:
        started = time.perf_counter()
        tokens_before = self._limiter.taken()[0] if self._limiter is not None else 0
        arrays = [_as_array(column) for column in columns]
        failed = True
        try:
            values = [
                to_python(array, maps_as_pydicts="strict" if as_dicts else None)
                for array, as_dicts in zip(arrays, self._maps_as_dicts)
            ]
            if self._together is not None:  # up to `concurrency` rows in flight
                results = self._together.run(self._call, values)
            elif self._timeout is not None:  # the rows in one worker thread, the caller watching
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
                if self._together is not None or self._limiter is not None:
                    self._record_pace(started, tokens_before)

    def in_flight_of_last_batch(self) -> t.Optional[int]:
        """The most calls in flight while this thread's last batch ran (None: one at a time)."""
        return self._together.last_peak() if self._together is not None else None

    def _record_pace(self, started: float, tokens_before: int) -> None:
        """The most calls in flight during the batch, and the rate limit's tokens it took."""
        in_flight = self.in_flight_of_last_batch()
        tokens, last_token = 0, None
        if self._limiter is not None:
            taken, _, last_token = self._limiter.taken()
            tokens = taken - tokens_before
        sink.record_pace(self.model, self.spec.name, in_flight, tokens, started, last_token)

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
    func = spec.func

    def converted(*row: t.Any) -> t.Any:
        return func(*(types.apply(convert, value) for convert, value in zip(converters, row)))

    protected = spec.policies.protect(converted, function=spec.name, model=model) if spec.policies else converted

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
            result = fall_back(spec, model, row, error, f"{type(error).__name__}: {error}")
        return result if check is None else check.convert(result, row)

    return call


def _timed_out(
    spec: FunctionSpec, model: t.Optional[str], timeout: t.Any
) -> t.Callable[[t.Tuple[t.Any, ...]], t.Any]:
    """What a row given up by its timeout gets, when the timeout is the function's only policy:
    the on_error value, or an error naming the row."""
    gave_up = timeout.gave_up(spec.name, model)

    def timed_out(row: t.Tuple[t.Any, ...]) -> t.Any:
        error = gave_up()
        if spec.on_error == "raise":
            raise FunctionRuntimeError(f"{error}; the row's arguments were {describe_row(spec, row)}")
        return fall_back(spec, model, row, error, str(error))

    return timed_out

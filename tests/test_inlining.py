"""The per-row work compiled into a copy of the user's function behaves as the function."""

from __future__ import annotations

import math
import traceback
import typing as t

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mixmesh import FunctionRuntimeError, udf
from mixmesh.runtime.rows import row_function
from mixmesh.runtime.inlining import compile_row_call

OFFSET = 0.5


def _helper(x: float) -> float:
    return x + OFFSET


def branches(x: float, y: float = 2.0) -> float:
    """Several returns, a loop, try/finally, a nested function and a lambda with their own."""

    def inner(v: float) -> float:
        return v * 100  # the nested function's return is not rewritten

    scale = lambda v: v / 2  # noqa: E731
    if x > 10:
        return inner(x)
    for i in range(3):
        if x < -i * 10:
            return scale(x) + i
    try:
        if x == 0:
            return float("nan")
    finally:
        y = y + 0
    return _helper(x) * y


def reassigns(x: float) -> float:
    x = x * 2
    if x > 100:
        raise ValueError("too big after doubling")
    return x


def recursive(n: int) -> int:
    return 1 if n <= 1 else n * recursive(n - 1)


def no_return_value(x: float) -> t.Optional[float]:
    if x > 0:
        return None
    return


def failing(x: float) -> float:
    return 1 / x


def compiled(func: t.Callable[..., t.Any], keep_nan: bool = True, skip_nulls: bool = False) -> t.Callable[..., t.Any]:
    def failure(error: Exception, row: t.Tuple[t.Any, ...]) -> Exception:
        return FunctionRuntimeError(f"{func.__name__} failed on {row}: {error}")

    copy = compile_row_call(func, None, failure, keep_nan=keep_nan, skip_nulls=skip_nulls)
    assert copy is not None and copy is not func
    return copy


def same(left: t.Any, right: t.Any) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        return (math.isnan(left) and math.isnan(right)) or left == right
    return left == right


@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(-5, 5))
def test_copy_returns_what_the_function_returns(x: float, y: float) -> None:
    expected = branches(x, y)
    got = compiled(branches)(x, y)
    if isinstance(expected, float) and math.isnan(expected):
        assert got == "NaN"  # what the engine casts back to NaN
    else:
        assert same(got, expected)
    assert same(compiled(branches, keep_nan=False)(x, y), expected)


def test_defaults_recursion_and_bare_returns() -> None:
    assert compiled(branches)(5.0) == branches(5.0)
    assert compiled(recursive)(5) == 120
    assert compiled(no_return_value)(1.0) is None and compiled(no_return_value)(-1.0) is None


def test_errors_name_the_row_as_it_came_in() -> None:
    with pytest.raises(FunctionRuntimeError, match=r"reassigns failed on \(60.0,\): too big after doubling"):
        compiled(reassigns)(60.0)
    with pytest.raises(FunctionRuntimeError, match=r"failing failed on \(0.0,\): float division by zero"):
        compiled(failing)(0.0)


def test_tracebacks_point_at_the_functions_own_lines() -> None:
    with pytest.raises(FunctionRuntimeError) as raised:
        compiled(failing)(0.0)
    frames = traceback.extract_tb(raised.value.__cause__.__traceback__)
    assert frames[-1].filename == __file__ and frames[-1].line == "return 1 / x"


def test_null_guard() -> None:
    copy = compiled(branches, skip_nulls=True)
    assert copy(None, 1.0) is None and copy(1.0, None) is None
    assert copy(1.0, 1.0) == branches(1.0, 1.0)


def test_what_cannot_be_copied_exactly_is_left_to_the_wrapper() -> None:
    factor = 3.0

    def closure(x: float) -> float:
        return x * factor

    def generator(x: float) -> t.Iterator[float]:
        yield x

    def failure(error: Exception, row: t.Tuple[t.Any, ...]) -> Exception:
        return error

    for func in (closure, generator, print):
        assert compile_row_call(func, None, failure, keep_nan=True, skip_nulls=False) is None

    exec_namespace: t.Dict[str, t.Any] = {}
    exec("def from_text(x):\n    return x + 1\n", exec_namespace)
    assert compile_row_call(exec_namespace["from_text"], None, failure, keep_nan=True, skip_nulls=False) is None
    given_source = compile_row_call(
        exec_namespace["from_text"], "def from_text(x):\n    return x + 1\n", failure, keep_nan=True, skip_nulls=False
    )
    assert given_source is not None and given_source(1) == 2


def test_row_function_uses_the_copy_and_the_wrapper_alike() -> None:
    factor = 2.0

    @udf
    def module_level_like(x: float) -> float:
        return x * 2.0

    @udf
    def with_closure(x: float) -> float:
        return x * factor

    inlined = row_function(module_level_like.spec, "analytics.m", nan_as_text=True)
    wrapped = row_function(with_closure.spec, "analytics.m", nan_as_text=True)
    assert inlined.__name__ == "module_level_like" and wrapped.__name__ == "call"
    assert inlined(2.0) == wrapped(2.0) == 4.0
    assert inlined(float("nan")) == wrapped(float("nan")) == "NaN"
    with pytest.raises(FunctionRuntimeError, match="function 'module_level_like' in model analytics.m raised TypeError"):
        inlined("text")  # type: ignore[arg-type]

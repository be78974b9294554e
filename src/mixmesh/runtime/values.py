"""Values between engines and functions: what a function returned, checked and converted by
one set of rules whatever the path (``ReturnedValues``, ``sql_types.return_converter``,
docs/return-values.md), a row as an error message shows it, and Arrow helpers the calling
conventions share.
"""

from __future__ import annotations

import typing as t

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mixmesh.core import sql_types as types
from mixmesh.core.errors import FunctionRuntimeError, truncate, where
from mixmesh.core.functions import FunctionSpec

# What a call of the user's function turns into an error naming the row: its exceptions,
# and a sys.exit() or KeyboardInterrupt inside it (a bug, never a row's on_error value).
STOPS = (SystemExit, KeyboardInterrupt)


CAUGHT = (Exception,) + STOPS


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


def _row_of(arrays: t.List[pa.Array]) -> t.Callable[[int], t.Tuple[t.Any, ...]]:
    """The arguments of a batch's row, by position, for messages."""
    return lambda position: tuple(array[position].as_py() for array in arrays)

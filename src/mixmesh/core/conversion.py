"""Arrow arrays to Python values, as ``pyarrow.Array.to_pylist`` gives them, faster on
nested values.

``to_pylist`` builds every STRUCT of a ``LIST<STRUCT>`` column one scalar at a time, and
converts every DATE and TIMESTAMP again even where a column holds a few distinct days. Here
each column of the flattened values is converted once (a leaf column's ``to_pylist`` is
many times faster than the same values reached through their structs), dicts are rebuilt
with ``zip``, lists are cut out of the flat values with the offsets, and a temporal or
decimal column converts its distinct values only, reusing the (immutable) objects.

What comes out is exactly what ``to_pylist`` gives: the same types and values, NULLs at
every level, dicts with the fields in order, datetimes with the same tzinfo. Types this
module does not speed up (unions, dictionaries, extension types, list views...) go through
``to_pylist`` itself.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import threading
import typing as t

import numpy as np
import pyarrow as pa

MapsAsDicts = t.Optional[str]  # to_pylist's ``maps_as_pydicts``: None, "lossy" or "strict"


def to_python(array: t.Union[pa.Array, pa.ChunkedArray], maps_as_pydicts: MapsAsDicts = None) -> t.List[t.Any]:
    """The array's values as ``array.to_pylist(maps_as_pydicts=...)`` gives them."""
    with _collection_paused():
        if isinstance(array, pa.ChunkedArray):
            values: t.List[t.Any] = []
            for chunk in array.iterchunks():
                values.extend(_convert(chunk, maps_as_pydicts))
            return values
        return _convert(array, maps_as_pydicts)


_pause_lock = threading.Lock()
_pausing = 0  # conversions under way, in any thread
_was_enabled = False


@contextlib.contextmanager
def _collection_paused() -> t.Iterator[None]:
    """The garbage collector off while a batch converts: a batch creates millions of dicts
    and lists, none of them garbage, and the collections they trigger would scan them all
    again and again (half the conversion's time on a LIST<STRUCT> column). Conversions on
    several threads at once turn it back on when the last one ends."""
    global _pausing, _was_enabled
    with _pause_lock:
        if _pausing == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pausing += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pausing -= 1
            if _pausing == 0 and _was_enabled:
                gc.enable()


def _convert(array: pa.Array, maps_as_pydicts: MapsAsDicts) -> t.List[t.Any]:
    kind = array.type
    if len(array) == 0:
        return []
    if array.null_count == len(array):
        return [None] * len(array)
    if pa.types.is_struct(kind) and _unique_names(kind):
        return _structs(array, maps_as_pydicts)
    if (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and _worth_splitting(kind):
        return _lists(array, maps_as_pydicts)
    if _reusable(kind):
        return _distinct_values_reused(array)
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind) or kind in (pa.float32(), pa.float64()):
        return _numbers(array)
    if maps_as_pydicts is not None:
        return array.to_pylist(maps_as_pydicts=maps_as_pydicts)
    return array.to_pylist()


def _unique_names(kind: pa.StructType) -> bool:
    # to_pylist refuses a struct with a repeated field name; it keeps its own error.
    names = [field.name for field in kind]
    return len(set(names)) == len(names)


def _worth_splitting(kind: pa.DataType) -> bool:
    """Lists of plain numbers or strings convert as fast through ``to_pylist``; lists of
    nested or temporal values do not."""
    value_type = kind.value_type
    return pa.types.is_nested(value_type) or _reusable(value_type)


def _reusable(kind: pa.DataType) -> bool:
    return pa.types.is_date(kind) or pa.types.is_timestamp(kind) or pa.types.is_time(kind) or pa.types.is_decimal(kind)


def _valid(array: pa.Array) -> t.Optional[t.List[bool]]:
    """Which positions hold a value, or None when all do."""
    if array.null_count == 0:
        return None
    return array.is_valid().to_numpy(zero_copy_only=False).tolist()


def _structs(array: pa.StructArray, maps_as_pydicts: MapsAsDicts) -> t.List[t.Any]:
    names = [field.name for field in array.type]
    # flatten() slices the fields as the struct is sliced, and gives NULL where it is NULL.
    columns = [_convert(field, maps_as_pydicts) for field in array.flatten()]
    rows = _dict_builder(tuple(names))(len(array), *columns)
    valid = _valid(array)
    if valid is None:
        return rows
    return [row if ok else None for row, ok in zip(rows, valid)]


@functools.lru_cache(maxsize=256)
def _dict_builder(names: t.Tuple[str, ...]) -> t.Callable[..., t.List[t.Dict[str, t.Any]]]:
    """A function building the rows' dicts from the fields' columns with a dict display
    (``{"a": v0, "b": v1}``): three times faster than ``dict(zip(names, row))``."""
    if not names:
        return lambda rows: [{} for _ in range(rows)]
    values = [f"v{position}" for position in range(len(names))]
    columns = [f"c{position}" for position in range(len(names))]
    display = ", ".join(f"{name!r}: {value}" for name, value in zip(names, values))
    source = (
        f"def build(rows, {', '.join(columns)}):\n"
        f"    return [{{{display}}} for {', '.join(values)}, in zip({', '.join(columns)})]\n"
    )
    scope: t.Dict[str, t.Any] = {}
    exec(source, scope)  # the names are repr()'d literals: no name can inject code
    return scope["build"]


def _lists(array: t.Union[pa.ListArray, pa.LargeListArray], maps_as_pydicts: MapsAsDicts) -> t.List[t.Any]:
    # offsets holds len + 1 positions into the (unsliced) values, the array's slice applied.
    offsets = array.offsets.to_numpy()
    first, last = int(offsets[0]), int(offsets[-1])
    flat = _convert(array.values.slice(first, last - first), maps_as_pydicts)
    bounds = (offsets - first).tolist()
    valid = _valid(array)
    if valid is None:
        return [flat[start:end] for start, end in zip(bounds, bounds[1:])]
    return [flat[start:end] if ok else None for start, end, ok in zip(bounds, bounds[1:], valid)]


def _numbers(array: pa.Array) -> t.List[t.Any]:
    """Through numpy, three times faster than ``to_pylist`` (the same Python ints, floats,
    bools); NULLs filled for numpy, then put back."""
    values = array.fill_null(False if pa.types.is_boolean(array.type) else 0).to_numpy(zero_copy_only=False).tolist()
    valid = _valid(array)
    if valid is None:
        return values
    return [value if ok else None for value, ok in zip(values, valid)]


def _distinct_values_reused(array: pa.Array) -> t.List[t.Any]:
    """Convert each distinct value once (dates, timestamps, times, decimals repeat a lot in
    a column) and hand out the same object wherever the value recurs."""
    encoded = array.dictionary_encode()
    distinct = encoded.dictionary.to_pylist()
    if len(distinct) * 2 > len(array):  # mostly distinct: encoding gains nothing
        return array.to_pylist()
    distinct.append(None)  # where the value is NULL
    indices = encoded.indices.fill_null(len(distinct) - 1).to_numpy(zero_copy_only=False)
    return np.array(distinct, dtype=object)[indices].tolist()

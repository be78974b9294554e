"""Checking what a Python model returns against what it declared, batch by batch.

Each check fails with a message naming the model, the column and an example offending
value, before anything reaches the model's table.
"""

from __future__ import annotations

import typing as t

import pyarrow as pa

from mixmesh.core import sql_types as types
from mixmesh.core.errors import MixmeshError, truncate

if t.TYPE_CHECKING:
    from mixmesh.core.models import ModelSpec

# How far the search for an offending value goes before the message gives up on an example.
_EXAMPLE_SEARCH_ROWS = 100_000


class ModelOutputError(MixmeshError, ValueError):
    """What a Python model returned does not match its declaration."""


def conform(table: pa.Table, spec: "ModelSpec") -> pa.Table:
    """The batch with exactly the declared columns, in order, of the declared types."""
    _check_names(table.column_names, spec)
    columns = []
    for name, sql_type in spec.columns.items():
        column = table.column(name)
        target = types.to_arrow(sql_type)
        if column.type != target:
            column = _cast(column, target, spec, name, types.sql(sql_type))
        if name in spec.grain and column.null_count:
            _null_in_grain(table, column, spec, name)
        columns.append(column)
    return pa.Table.from_arrays(columns, names=list(spec.columns))


def _check_names(names: t.Sequence[str], spec: "ModelSpec") -> None:
    missing = [c for c in spec.columns if c not in names]
    extra = [c for c in names if c not in spec.columns]
    if missing or extra:
        parts = [f"missing column(s) {missing}" if missing else "", f"undeclared column(s) {extra}" if extra else ""]
        raise ModelOutputError(
            f"model {spec.name} returned {' and '.join(p for p in parts if p)}; it declares {list(spec.columns)}"
        )


def _cast(
    column: pa.ChunkedArray, target: pa.DataType, spec: "ModelSpec", name: str, sql_type: str
) -> pa.ChunkedArray:
    try:
        return column.cast(target, safe=True)
    except (pa.ArrowException, TypeError, ValueError) as error:
        example = _first_unconvertible(column, target)
        shown = f"; for example {truncate(example)}" if example is not _NONE else ""
        raise ModelOutputError(
            f"model {spec.name}: column {name!r} holds {column.type} values that do not convert to "
            f"the declared {sql_type}{shown} ({error})"
        ) from None


_NONE = object()


def _first_unconvertible(column: pa.ChunkedArray, target: pa.DataType) -> t.Any:
    for position in range(min(len(column), _EXAMPLE_SEARCH_ROWS)):
        value = column[position]
        try:
            pa.array([value.as_py()], type=column.type).cast(target, safe=True)
        except (pa.ArrowException, TypeError, ValueError):
            return value.as_py()
    return _NONE


def _null_in_grain(table: pa.Table, column: pa.ChunkedArray, spec: "ModelSpec", name: str) -> None:
    position = column.is_null().to_pylist().index(True)
    row = {grain: table.column(grain)[position].as_py() for grain in spec.grain}
    raise ModelOutputError(
        f"model {spec.name}: grain column {name!r} is NULL in {column.null_count} row(s), for example "
        f"the row with grain {truncate(row)}; every row needs its whole grain"
    )

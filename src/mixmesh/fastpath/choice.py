"""Whether the fast path is worth taking for a statement, before it is split: a cost rule.

The fast path gains by calling a function on 262,144-row batches instead of DuckDB's
2,048-row vectors, and pays for staging: the part of the query below the calls is
streamed out as Arrow and read back. What the gain and the cost are depends on what is
known before running anything (``benchmarks/fast_path_choice.py`` measures each shape):

- a row function gains most: the per-row conversion DuckDB's binding pays goes;
- a vectorized function with scalar arguments gains by threads and larger batches (the
  plain binding holds the GIL per vector);
- a vectorized function whose arguments are nested (LIST, STRUCT, MAP: the document's
  ``ARRAY_AGG(STRUCT ...)`` per customer) gains little, as DuckDB already hands it whole
  vectors, while staging the lists costs as much as the function: the plain binding is as
  fast or faster.

So a statement goes on the fast path unless every function it calls is a vectorized one
with a nested argument. ``MIXMESH_FAST_PATH=on`` takes the fast path whenever the split is
possible, ``off`` never; ``auto`` (the default) applies this rule.
"""

from __future__ import annotations

import typing as t

from sqlglot import exp

# Types whose values are staged element by element: a list of structs per row.
_NESTED = {exp.DataType.Type.ARRAY, exp.DataType.Type.LIST, exp.DataType.Type.STRUCT, exp.DataType.Type.MAP}


class Call(t.NamedTuple):
    """What the rule knows of one function a statement calls."""

    function: str  # its plain name
    vectorized: bool
    argument_types: t.Tuple[t.Optional[exp.DataType], ...]  # declared; None where any type is accepted


class Choice(t.NamedTuple):
    staged: bool  # True: the fast path
    reason: str  # why the plain binding, when not staged


def choose(calls: t.Sequence[Call]) -> Choice:
    """The fast path, unless no call gains from it (see the module's docstring)."""
    if not calls:
        return Choice(True, "")
    losing = [(call, nested) for call in calls if (nested := _nested_argument(call)) and call.vectorized]
    if len(losing) < len(calls):
        return Choice(True, "")
    described = ", ".join(f"{call.function} ({nested})" for call, nested in losing)
    return Choice(False, (
        f"plain binding: nested arguments to vectorized functions stage slower than DuckDB hands them over: "
        f"{described}"
    ))


def _nested_argument(call: Call) -> t.Optional[str]:
    """The first nested argument type of ``call``, written as in SQL (``STRUCT(...)[]``)."""
    for sql_type in call.argument_types:
        if sql_type is not None and sql_type.this in _NESTED:
            return describe(sql_type)
    return None


def describe(sql_type: exp.DataType) -> str:
    """A short name of a nested type: LIST<STRUCT>, MAP, STRUCT, LIST<DOUBLE>."""
    kind = sql_type.this
    if kind in (exp.DataType.Type.ARRAY, exp.DataType.Type.LIST):
        inner = sql_type.expressions[0] if sql_type.expressions else None
        element = inner if isinstance(inner, exp.DataType) else None
        return f"LIST<{describe(element) if element is not None else '?'}>"
    if kind == exp.DataType.Type.STRUCT:
        return "STRUCT"
    if kind == exp.DataType.Type.MAP:
        return "MAP"
    return kind.value

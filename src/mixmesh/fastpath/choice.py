"""Whether the fast path is worth taking for a statement, before it is split: a cost rule.

The fast path gains by calling a function on large batches instead of DuckDB's 2,048-row
vectors, and pays for staging: the part of the query below the calls is streamed out as
Arrow and read back (a few milliseconds per statement, whatever its size). What the gain
is depends on what is known before running anything, per call (``benchmarks/fast_path_choice.py``
and ``benchmarks/timeout_overhead.py`` measure each shape):

- a vectorized function with scalar arguments gains by threads and larger batches (the
  plain binding holds the GIL per vector): 8x on ``x * 2``;
- a vectorized function whose arguments are nested (LIST, STRUCT, MAP: the document's
  ``ARRAY_AGG(STRUCT ...)`` per customer) gains little, as DuckDB already hands it whole
  vectors, while staging the lists costs as much as the function: the plain binding;
- a row function over nested arguments gains the per-row conversion (lists of structs
  convert per batch 1.8x faster than DuckDB converts each row);
- a row function with policies (``retry``, ``timeout_s``, ``on_error``...) gains: the plain
  binding pays them per row, or per vector in a watched thread (1.1x to 3.7x);
- a row function in worker processes (``parallel="processes"``) gains every core;
- a row function over scalar arguments whose batches run on threads, without policies,
  gains nothing: DuckDB's native binding converts each row as fast as a batch converts,
  the GIL keeps a second thread idle, and staging adds its fixed cost (0.95x): the plain binding.

So a statement goes on the fast path when one of its calls gains from it, and gets the plain
binding when none does. ``MIXMESH_FAST_PATH=on`` takes the fast path whenever the split is
possible, ``off`` never; ``auto`` (the default) applies this rule. Either way, a nested
argument lowers the batch size (``NESTED_BATCH_ROWS``).
"""

from __future__ import annotations

import typing as t

from sqlglot import exp

# Types whose values are staged element by element: a list of structs per row.
_NESTED = {exp.DataType.Type.ARRAY, exp.DataType.Type.LIST, exp.DataType.Type.STRUCT, exp.DataType.Type.MAP}
# Rows per batch where an argument is nested: a batch holds its rows' list elements too
# (20 per row make 5M elements in 262,144 rows), and work over them grows faster than the
# rows (the example's risk features: 0.19 s of CPU in 32,768-row batches, 0.38 s in
# 262,144-row ones, over the same 203,605 customer-days); more batches also keep every
# thread busy on fewer rows.
NESTED_BATCH_ROWS = 32_768


class Call(t.NamedTuple):
    """What the rule knows of one function a statement calls."""

    function: str  # its plain name
    vectorized: bool
    argument_types: t.Tuple[t.Optional[exp.DataType], ...]  # declared; None where any type is accepted
    protected: bool = False  # retry, circuit breaker, timeout or on_error
    parallel: str = "threads"  # where the fast path runs its batches (FunctionSpec.parallel)
    cached: bool = False  # @udf(cache=...): its results are looked up per batch


class Choice(t.NamedTuple):
    staged: bool  # True: the fast path
    reason: str  # why, either way ("" when nothing is called)
    batch_rows: t.Optional[int] = None  # rows per batch on the fast path; None: the default


class Verdict(t.NamedTuple):
    """One call's side of the rule."""

    gains: bool
    why: str


def choose(calls: t.Sequence[Call]) -> Choice:
    """The fast path when a call gains from it, else the plain binding (see the module's docstring)."""
    batch_rows = batch_rows_for(calls)
    if not calls:
        return Choice(True, "", batch_rows)
    verdicts = [(call, verdict(call)) for call in calls]
    gaining = [f"{call.function} ({found.why})" for call, found in verdicts if found.gains]
    if gaining:
        return Choice(True, f"fast path: {', '.join(gaining)}", batch_rows)
    described = ", ".join(f"{call.function} ({found.why})" for call, found in verdicts)
    return Choice(False, f"plain binding: no call gains from large batches: {described}", batch_rows)


def verdict(call: Call) -> Verdict:
    """Whether ``call`` gains from the fast path, and why, in a few words."""
    nested = _nested_argument(call)
    if call.cached:
        # 10,000 cached rows: 47 ms in the plain binding's five 2,048-row vectors (a look-up
        # each, about 6 ms), under 20 ms in one batch.
        return Verdict(True, "a result cache: one look-up per large batch, not one per vector")
    if call.vectorized:
        if nested:
            return Verdict(False, f"vectorized over {nested}, which DuckDB hands over whole and staging copies")
        return Verdict(True, "vectorized over scalars: large batches on every core")
    if nested:
        return Verdict(True, f"row function over {nested}: converted per batch, not per row")
    if call.protected:
        return Verdict(True, "row function with policies, which the plain binding pays per row")
    if call.parallel != "threads":
        return Verdict(True, f"row function with parallel={call.parallel!r}: worker processes on every core")
    return Verdict(False, "row function over scalars on threads: converted as fast per row, and the GIL keeps one core")


def batch_rows_for(calls: t.Sequence[Call]) -> t.Optional[int]:
    """``NESTED_BATCH_ROWS`` where a call has a nested argument, else None (the default)."""
    return NESTED_BATCH_ROWS if any(_nested_argument(call) for call in calls) else None


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

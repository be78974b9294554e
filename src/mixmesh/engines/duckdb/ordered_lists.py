"""Ordered list aggregates built by sorting each finished list, as DuckDB runs them fastest.

DuckDB computes ``ARRAY_AGG(x ORDER BY k)`` by buffering and sorting each group's rows on
their own, which costs far more than the aggregate: the seed's
``ARRAY_AGG(STRUCT(...) ORDER BY transaction_time, amount)`` over 1M transactions in 511k
customer-days takes 2.9 s, the same lists unordered 0.22 s. So, in a statement calling a
mixmesh function (``mixmesh.fastpath``), each such aggregate collects every row's value with
its sort keys, unordered, and sorts each finished list once (0.57 s)::

    LIST_TRANSFORM(
      LIST_SORT(LIST_TRANSFORM(ARRAY_AGG({'k0': k, 'v': x}),
                               LAMBDA e, i : {'n0': e.k0 IS NULL, 'k0': e.k0, 'i': i, 'v': e.v}), 'ASC'),
      LAMBDA e : e.v)

The lists are those of the ordered aggregate, element for element, up to the order of ties
(rows with equal keys), which SQL leaves open:

- each key is computed once per row, as the ordered aggregate computes it; its NULL flag
  (``n``) puts NULLs first or last as the ORDER BY says, whatever the direction, where a NULL
  inside a struct would sort as the greatest value;
- ``i``, the row's place in the unordered list, breaks ties: they keep the order the rows
  arrived in (DuckDB's own sort does not always); being unique, it also means the values
  themselves are never compared;
- a ``FILTER`` stays on the aggregate; no row, or none passing it, gives NULL either way.

Sorting each list wins only where groups are small (a list sorts on one thread, where DuckDB
sorts a large group on every one: ``MAX_GROUP_ROWS``), so it applies only where DuckDB's plan
estimates at most that many rows per group for every list aggregate: not without a GROUP BY,
nor where DuckDB has no statistics to estimate from (grouping by an expression).

The aggregate is kept as written where the sort could differ: keys in both directions (a
list sorts one way), ``DISTINCT``, a window's aggregate, or a collation that might apply
(``COLLATE`` in the statement or in the catalog's tables, views and macros, or a default
collation: a struct field drops a VARCHAR's collation), or where the session orders
differently from how sqlglot reads an ORDER BY (``default_order``, ``default_null_order``).
"""

from __future__ import annotations

import re
import typing as t

from sqlglot import exp

from mixmesh.engines.duckdb import plans
from mixmesh.engines.duckdb.dialect import NAME

_ELEMENT, _POSITION = "__mixmesh_e", "__mixmesh_i"
_VALUE = "v"
# The session settings under which the rewrite sorts as the ORDER BY does: sqlglot reads an
# ORDER BY as ascending with NULLs last, and a struct field has no collation.
_SQLGLOT_READS = {"default_order": "ASCENDING", "default_null_order": "NULLS_LAST", "default_collation": ""}
_COLLATE = re.compile(r"\bCOLLATE\b", re.IGNORECASE)
_LIST_AGGREGATE = re.compile(r"\b(array_agg|list)\(")
# Rows per group up to which sorting each list is taken (benchmarks/ordered_lists.py, 2M rows:
# written / sorted 7.0x in groups of 2, 3.6x of 20, 0.98x of 200, 0.76x of 500, 0.49x in one
# group: a list sorts on one thread, where DuckDB sorts a large group on every one), with a
# margin for DuckDB's estimate of the groups.
MAX_GROUP_ROWS = 64
_HINT = re.compile(r"\b(ARRAY_AGG|LIST)\s*\(", re.IGNORECASE)
_ORDER_BY = re.compile(r"\bORDER\s+BY\b", re.IGNORECASE)


def may_hold(sql: str) -> bool:
    """Whether ``sql`` may hold an ordered list aggregate: worth parsing to find out."""
    return bool(_HINT.search(sql)) and bool(_ORDER_BY.search(sql))


def rewritable(statement: exp.Expr) -> t.List[exp.ArrayAgg]:
    """The ordered list aggregates of ``statement`` that sorting each list computes exactly
    (every other condition is the session's: ``sort_each_list``)."""
    if any(statement.find_all(exp.Collate)):
        return []
    return [aggregate for aggregate in statement.find_all(exp.ArrayAgg) if _sortable(aggregate)]


def sort_each_list(cursor: t.Any, statement: exp.Expr) -> t.Tuple[exp.Expr, int]:
    """``statement`` (a copy) with each rewritable aggregate built by sorting each list, and
    how many were; ``statement`` itself and 0 where none is, where the session's ``cursor``
    could order differently (see the module's docstring), or where DuckDB's plan does not
    expect small groups (``_small_groups``)."""
    if not rewritable(statement) or not _session_orders_as_read(cursor) or not _small_groups(cursor, statement):
        return statement, 0
    return rewrite(statement)


def rewrite(statement: exp.Expr) -> t.Tuple[exp.Expr, int]:
    """``statement`` (a copy) with each rewritable aggregate built by sorting each list, and
    how many were, whatever the session: ``sort_each_list`` decides whether it applies."""
    rewritten = statement.copy()
    aggregates = rewritable(rewritten)
    for aggregate in aggregates:
        _replace(aggregate)
    return rewritten, len(aggregates)


def _sortable(aggregate: exp.ArrayAgg) -> bool:
    order = aggregate.this
    if not isinstance(order, exp.Order) or isinstance(order.this, exp.Distinct):
        return False
    keys = order.expressions
    if not keys or any(not isinstance(key, exp.Ordered) for key in keys):
        return False
    if len({bool(key.args.get("desc")) for key in keys}) > 1:
        return False
    outermost = aggregate.parent if isinstance(aggregate.parent, exp.Filter) else aggregate
    return not isinstance(outermost.parent, exp.Window)


def _session_orders_as_read(cursor: t.Any) -> bool:
    names = list(_SQLGLOT_READS)
    (settings,) = cursor.execute(
        f"SELECT {', '.join(f'current_setting(${n})' for n in range(1, len(names) + 1))}", names
    ).fetchall()
    if any(str(found).upper() != expected for found, expected in zip(settings, _SQLGLOT_READS.values())):
        return False
    (collations,) = cursor.execute(
        "SELECT (SELECT count(*) FROM duckdb_tables() WHERE regexp_matches(sql, $p, 'i'))"
        " + (SELECT count(*) FROM duckdb_views() WHERE regexp_matches(sql, $p, 'i'))"
        " + (SELECT count(*) FROM duckdb_functions() WHERE regexp_matches(coalesce(macro_definition, ''), $p, 'i'))",
        {"p": _COLLATE.pattern},
    ).fetchone()
    return collations == 0


def _small_groups(cursor: t.Any, statement: exp.Expr) -> bool:
    """Whether DuckDB's plan expects every list aggregate's groups to hold at most
    ``MAX_GROUP_ROWS`` rows on average (``estimated_group_rows``)."""
    try:
        plan = plans.explained(cursor, statement.sql(NAME))
    except Exception:  # noqa: BLE001 - a statement DuckDB cannot plan: left as written, to fail as itself
        return False
    sizes = estimated_group_rows(plan)
    return bool(sizes) and all(size is not None and size <= MAX_GROUP_ROWS for size in sizes)


def estimated_group_rows(plan: t.Any) -> t.List[t.Optional[float]]:
    """For each aggregate operator of an ``EXPLAIN (FORMAT JSON)`` plan computing a list
    (``array_agg``, ``list``): its input rows per group as DuckDB estimates them, or None where
    it does not know (no GROUP BY: one group; DuckDB's guess without statistics: half the rows)."""
    found: t.List[t.Optional[float]] = []
    for node, parent in plans.operators(plan):
        name = node.get("name", "").strip()
        aggregates = str((node.get("extra_info", {}) or {}).get("Aggregates", "")).lower()
        if ("GROUP_BY" in name or "AGGREGATE" in name) and _LIST_AGGREGATE.search(aggregates):
            found.append(_rows_per_group(node, parent, name))
    return found


def _rows_per_group(node: t.Any, parent: t.Any, name: str) -> t.Optional[float]:
    if "GROUP_BY" not in name:
        return None
    groups = _estimate(node) or (_estimate(parent) if parent is not None else None)
    rows = sum(_estimate(child) or 0 for child in node.get("children", []))
    if not groups or not rows or groups * 2 == rows:  # DuckDB's guess when it has no statistics
        return None
    return rows / groups


def _estimate(node: t.Any) -> t.Optional[float]:
    value = (node.get("extra_info", {}) or {}).get("Estimated Cardinality")
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _replace(aggregate: exp.ArrayAgg) -> None:
    """Replace ``aggregate`` (with its FILTER) by the sort of its unordered list."""
    order: exp.Order = aggregate.this
    keys: t.List[exp.Ordered] = list(order.expressions)
    descending = bool(keys[0].args.get("desc"))
    aggregate.set("this", _struct([(f"k{n}", key.this.copy()) for n, key in enumerate(keys)] + [(_VALUE, order.this)]))
    outermost = aggregate.parent if isinstance(aggregate.parent, exp.Filter) else aggregate
    outermost.replace(_sorted_list(outermost.copy(), keys, descending))


def _sorted_list(unordered: exp.Expr, keys: t.Sequence[exp.Ordered], descending: bool) -> exp.Expr:
    element = exp.to_identifier(_ELEMENT)
    fields: t.List[t.Tuple[str, exp.Expr]] = []
    for n, key in enumerate(keys):
        value = exp.Dot(this=element.copy(), expression=exp.to_identifier(f"k{n}"))
        # The flag sorts before the key: false first, so a NULL key goes last where the flag
        # is "IS NULL" under ASC, or "IS NOT NULL" under DESC; the other way for NULLS FIRST.
        flag: exp.Expr = exp.Is(this=value, expression=exp.Null())
        if bool(key.args.get("nulls_first")) != descending:
            flag = exp.Not(this=flag)
        fields += [(f"n{n}", flag), (f"k{n}", value.copy())]
    position: exp.Expr = exp.to_identifier(_POSITION)
    # Ties keep their place in the list under either direction.
    fields += [("i", exp.Neg(this=position) if descending else position)]
    fields += [(_VALUE, exp.Dot(this=element.copy(), expression=exp.to_identifier(_VALUE)))]
    keyed = exp.Transform(
        this=unordered,
        expression=exp.Lambda(this=_struct(fields), expressions=[element.copy(), exp.to_identifier(_POSITION)], colon=True),
    )
    ordered = exp.SortArray(this=keyed, asc=exp.Literal.string("DESC" if descending else "ASC"))
    values = exp.Lambda(
        this=exp.Dot(this=element.copy(), expression=exp.to_identifier(_VALUE)), expressions=[element.copy()], colon=True
    )
    return exp.Transform(this=ordered, expression=values)


def _struct(fields: t.Sequence[t.Tuple[str, exp.Expr]]) -> exp.Struct:
    return exp.Struct(
        expressions=[exp.PropertyEQ(this=exp.to_identifier(name), expression=value) for name, value in fields]
    )

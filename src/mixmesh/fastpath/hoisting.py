"""Splitting a query so that its Python function calls run on large batches (the fast path).

An engine calls a bound Python function once per small vector (DuckDB: 2048 rows), and
handing each vector over costs more than most functions. So, where it is exact, one SELECT
of the statement (``S``) is split in two:

- the *inner* query: ``S``'s FROM, joins and WHERE, projecting every column the rest of
  ``S`` reads (``__mixmesh_c<i>``) and the arguments of each hoisted call
  (``__mixmesh_a<i>``, cast to the function's declared types);
- the *outer* query, which replaces ``S`` in the statement: ``S``'s projections, GROUP BY,
  HAVING, windows, QUALIFY, ORDER BY and LIMIT, reading a stage (``__mixmesh_stage``) in
  which each call is a column (``__mixmesh_r<i>``).

The engine streams the inner query out in large batches, appends each call's results per
batch and feeds the stream to the outer statement: the rows the function sees are exactly
the rows ``S`` computes it on, evaluated once, in one pass.

A call is hoisted only from ``S``'s projections and only where the plain query would call
it on every row too: not under CASE, IF, COALESCE, NULLIF, AND, OR, an aggregate's FILTER,
or another function mixmesh cannot see into (a project SQL function may branch); with
arguments that read the row only (no aggregate, window or subquery). ``S`` itself must
not be correlated to an enclosing query. Everything else keeps the plain binding, which is
always right, only slower; ``plan`` says why it declined (``Declined.reason``).
"""

from __future__ import annotations

import dataclasses
import typing as t

from sqlglot import exp

PREFIX = "__mixmesh_"
STAGE_ALIAS = PREFIX + "stage"
STAGED = PREFIX + "staged"  # the stage as a MATERIALIZED CTE, where it must be read twice

# Nodes under which the engine may skip a call for some rows, or call it per list element.
_CONDITIONAL = (
    exp.Case, exp.If, exp.Coalesce, exp.Nullif, exp.And, exp.Or, exp.Filter, exp.Try, exp.Lambda, exp.Anonymous,
)
# What an argument may not hold: it must be computable from one row of S's FROM.
_NOT_ROW_LEVEL = (exp.AggFunc, exp.Window, exp.Select, exp.Subquery, exp.Star, exp.Placeholder, exp.Parameter)
# SELECT parts the split understands; any other (SAMPLE, LATERAL VIEW, PIVOT...) declines.
_INNER_ARGS = ("from_", "joins", "where", "with_")
_OUTER_ARGS = ("expressions", "distinct", "group", "having", "qualify", "windows", "order", "limit", "offset")
_CLAUSES_WITH_ALIASES = ("group", "having", "qualify", "order")
_CALL = PREFIX + "call"  # meta key marking a hoisted call: its result column


@dataclasses.dataclass(frozen=True)
class HoistedCall:
    """One distinct call: its engine-side name, argument columns and result column."""

    name: str
    arguments: t.Tuple[str, ...]
    result: str


@dataclasses.dataclass
class Split:
    """A statement split around one SELECT: run ``inner``, stream it with ``calls`` appended
    as columns under the name ``stage``, then run ``statement``."""

    inner: exp.Select
    calls: t.List[HoistedCall]
    statement: exp.Expr
    stage: str
    # The calls as written, over the inner query's FROM: binding it checks the arguments'
    # types as the plain statement would (the inner query casts them to the declared ones).
    binding_check: exp.Select

    def statement_sql(self, dialect: str, casts: t.Mapping[str, exp.DataType], materialized: bool = False) -> str:
        """The outer statement, each stage column cast back to the type the inner query gave
        it where the trip out and back changes it (``casts``: column -> type).

        Every stage column is read as ``COALESCE(c, c)``: the same value, but a filter on it
        is not pushed into the stream, where the engine would have Arrow evaluate it with
        Arrow's semantics (``NaN > 0`` is true in DuckDB, false in Arrow).

        ``materialized``: the stage is read through a MATERIALIZED CTE, for an engine whose
        plan would otherwise read the stream twice (it can be read once).
        """

        def read_stage(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Column) and node.table == STAGE_ALIAS:
                value: exp.Expr = exp.Coalesce(this=node.copy(), expressions=[node.copy()])
                return exp.Cast(this=value, to=casts[node.name].copy()) if node.name in casts else value
            if materialized and isinstance(node, exp.Table) and node.name == self.stage:
                return exp.Table(this=exp.to_identifier(STAGED, quoted=True), alias=node.args.get("alias"))
            return node

        statement = self.statement.transform(read_stage, copy=True)
        if materialized:
            staged = exp.CTE(
                this=exp.select("*").from_(exp.Table(this=exp.to_identifier(self.stage, quoted=True))),
                alias=exp.TableAlias(this=exp.to_identifier(STAGED, quoted=True)),
                materialized=True,
            )
            query = _query_of(statement)
            existing = query.args.get("with_")
            query.set("with_", exp.With(expressions=[staged, *(existing.expressions if existing else [])]))
        return statement.sql(dialect)


@dataclasses.dataclass(frozen=True)
class Declined:
    reason: str


def plan(
    statement: exp.Expr,
    argument_types: t.Mapping[str, t.Sequence[exp.DataType]],
    stage: str,
) -> t.Union[Split, Declined]:
    """Split ``statement`` (consumed) around the first SELECT holding hoistable calls of the
    functions in ``argument_types`` (engine-side name in lower case -> declared types)."""
    query = _query_of(statement)
    if query is None:
        return Declined("not a query, an INSERT ... SELECT or a CREATE TABLE ... AS")
    if any(with_.args.get("recursive") for with_ in statement.find_all(exp.With)):
        return Declined("a recursive CTE")
    reasons = []
    for select in list(query.find_all(exp.Select)):
        calls = _calls_in_projections(select, argument_types)
        if calls:
            split = _split(statement, select, calls, argument_types, stage)
            if isinstance(split, Split):
                return split
            reasons.append(split.reason)
    return Declined("; ".join(reasons) or "no call of a bound function in a projection")


def _query_of(statement: exp.Expr) -> t.Optional[exp.Query]:
    if isinstance(statement, exp.Query):
        return statement
    if isinstance(statement, exp.Insert) and isinstance(statement.expression, exp.Query):
        return statement.expression
    if isinstance(statement, exp.Create) and statement.kind == "TABLE" and isinstance(statement.expression, exp.Query):
        return statement.expression
    return None


def _calls_in_projections(select: exp.Select, names: t.Mapping[str, t.Any]) -> t.List[exp.Anonymous]:
    return [
        call
        for projection in select.expressions
        for call in projection.find_all(exp.Anonymous)
        if call.name.lower() in names and _scope_select(call) is select
    ]


def _scope_select(node: exp.Expr) -> t.Optional[exp.Expr]:
    """The SELECT whose clause holds ``node``."""
    parent = node.parent
    while parent is not None and not isinstance(parent, exp.Select):
        parent = parent.parent
    return parent


def _split(
    statement: exp.Expr,
    select: exp.Select,
    calls: t.List[exp.Anonymous],
    argument_types: t.Mapping[str, t.Sequence[exp.DataType]],
    stage: str,
) -> t.Union[Split, Declined]:
    problem = _select_problem(select) or _position_problem(select)
    if problem:
        return Declined(problem)
    hoisted = [call for call in calls if _hoistable(call, select)]
    if not hoisted:
        return Declined(f"{calls[0].name}: every call is conditional or reads more than its row")
    arguments: t.List[exp.Expr] = []
    by_sql: t.Dict[str, HoistedCall] = {}
    for call in hoisted:  # the same call twice is computed once
        key = call.sql()
        if key not in by_sql:
            names = []
            for argument, sql_type in zip(call.expressions, argument_types[call.name.lower()]):
                names.append(f"{PREFIX}a{len(arguments)}")
                arguments.append(exp.alias_(exp.Cast(this=argument.copy(), to=sql_type.copy()), names[-1], quoted=True))
            by_sql[key] = HoistedCall(call.name, tuple(names), f"{PREFIX}r{len(by_sql)}")
        call.meta[_CALL] = by_sql[key].result
    outer, sources = _outer_select(select, _read_projections(statement, select))
    inner = exp.Select(expressions=[exp.alias_(source, alias, quoted=True) for alias, source in sources.items()] + arguments)
    for key in _INNER_ARGS:
        value = select.args.get(key)
        if value:
            inner.set(key, [part.copy() for part in value] if isinstance(value, list) else value.copy())
    _add_visible_ctes(inner, select)
    check = inner.copy()
    check.set("expressions", [call.copy() for call in hoisted])
    outer.set("from_", exp.From(this=exp.Table(
        this=exp.to_identifier(stage, quoted=True),
        alias=exp.TableAlias(this=exp.to_identifier(STAGE_ALIAS, quoted=True)),
    )))
    if select is statement:
        statement = outer
    else:
        select.replace(outer)
    _materialize_enclosing_ctes(statement, outer)
    _drop_unread_ctes(statement)
    return Split(inner, list(by_sql.values()), statement, stage, check)


def _select_problem(select: exp.Select) -> t.Optional[str]:
    for key, value in select.args.items():
        if value and key not in _INNER_ARGS + _OUTER_ARGS:
            return f"the SELECT has {key.upper()}, which the split does not handle"
    if not select.args.get("from_"):
        return "the SELECT has no FROM"
    for projection in select.expressions:
        if any(not isinstance(star.parent, exp.Count) for star in projection.find_all(exp.Star)):
            return "the SELECT projects * (its columns are not known here)"
    for key in _OUTER_ARGS:
        value = select.args.get(key)
        for part in value if isinstance(value, list) else [value] if isinstance(value, exp.Expr) else []:
            if part.find(exp.Select, exp.Subquery) is not None:
                return "a subquery outside FROM and WHERE"
    return _alias_problem(select)


def _alias_problem(select: exp.Select) -> t.Optional[str]:
    """GROUP BY/HAVING/QUALIFY/ORDER BY may mean a projection by its alias or an input
    column by the same bare name; the outer query could not tell them apart, unless the
    projection is that very column."""
    aliases = {
        projection.alias_or_name
        for projection in select.expressions
        if not (isinstance(projection.unalias(), exp.Column) and not projection.unalias().table
                and projection.unalias().name == projection.alias_or_name)
    }
    for key in _CLAUSES_WITH_ALIASES:
        clause = select.args.get(key)
        for column in clause.find_all(exp.Column) if clause else ():
            if not column.table and column.name in aliases:
                return f"{key.upper()} names {column.name}, a projection alias"
    return None


def _position_problem(select: exp.Select) -> t.Optional[str]:
    """``select`` must be evaluated on its own, once: the statement's query, a CTE, a
    derived table (not LATERAL) or a branch of a set operation, all the way up."""
    node: exp.Expr = select
    while node.parent is not None:
        parent = node.parent
        if isinstance(parent, (exp.Insert, exp.Create)):
            return None if node.arg_key == "expression" else "the SELECT is not the statement's query"
        if isinstance(parent, exp.Lateral) or (isinstance(parent, exp.Subquery) and parent.args.get("lateral")):
            return "the SELECT is LATERAL"
        in_from = isinstance(parent, exp.Select) and node.arg_key in ("from_", "joins", "with_")
        if not (in_from or isinstance(parent, (exp.Subquery, exp.CTE, exp.With, exp.From, exp.Join, exp.SetOperation))):
            return "the SELECT sits inside an expression (it may be correlated)"
        if isinstance(parent, exp.Join) and node.arg_key != "this":
            return "the SELECT sits in a join condition"
        node = parent
    return None


def _hoistable(call: exp.Anonymous, select: exp.Select) -> bool:
    if any(argument.find(*_NOT_ROW_LEVEL) is not None for argument in call.expressions):
        return False
    parent = call.parent
    while parent is not None and parent is not select:
        if isinstance(parent, _CONDITIONAL):
            return False
        parent = parent.parent
    return True


def _read_projections(statement: exp.Expr, select: exp.Select) -> t.Optional[t.Set[str]]:
    """The names of ``select``'s projections the rest of the statement may read, or None
    for all of them. The plain query's optimizer drops the others; the stream must not
    carry them either (a list column copied out and back costs more than the function)."""
    if select.args.get("distinct") or _has_ordinals(select) or not isinstance(select.parent, (exp.CTE, exp.Subquery)):
        return None
    holder = select.parent
    if isinstance(holder, exp.CTE):
        qualifiers = {table.alias_or_name for table in _readers(statement, holder)}
    elif isinstance(holder.parent, (exp.From, exp.Join)) and holder.alias:
        qualifiers = {holder.alias}
    else:
        return None
    read: t.Set[str] = set()
    for node in statement.find_all(exp.Column, exp.Star):
        if _contains(select, node):
            continue
        if isinstance(node, exp.Star) or isinstance(node.this, exp.Star):
            if not isinstance(node.parent, exp.Count):
                return None
        elif not node.table or node.table in qualifiers:
            read.add(node.name)
    return read


def _has_ordinals(select: exp.Select) -> bool:
    """GROUP BY 2, ORDER BY 1, GROUP BY ALL: positions that dropping a projection would move."""
    for key in ("group", "order"):
        clause = select.args.get(key)
        if clause is not None and (clause.args.get("all") or any(
            isinstance(part.this if isinstance(part, exp.Ordered) else part, exp.Literal)
            for part in clause.expressions
        )):
            return True
    return False


def _outer_select(
    select: exp.Select, read: t.Optional[t.Set[str]]
) -> t.Tuple[exp.Select, t.Dict[str, exp.Column]]:
    """``select`` reading the stage: each hoisted call becomes its result column, each
    column of S's sources a stage column; only the projections in ``read`` (all if None)
    and at least one. Returns it, and stage column -> source column."""
    aliases: t.Dict[str, str] = {}
    sources: t.Dict[str, exp.Column] = {}

    def to_stage(node: exp.Expr) -> exp.Expr:
        if _CALL in node.meta:
            return exp.column(node.meta[_CALL], table=STAGE_ALIAS, quoted=True)
        if isinstance(node, exp.Column) and not isinstance(node.this, exp.Star):
            key = node.sql()
            if key not in aliases:
                aliases[key] = f"{PREFIX}c{len(aliases)}"
                sources[aliases[key]] = node.copy()
            return exp.column(aliases[key], table=STAGE_ALIAS, quoted=True)
        return node

    projections = [p for p in select.expressions if read is None or p.alias_or_name in read] or select.expressions[:1]
    outer = exp.Select()
    for key in _OUTER_ARGS:
        value = projections if key == "expressions" else select.args.get(key)
        if isinstance(value, list):
            outer.set(key, [part.transform(to_stage, copy=True) for part in value])
        elif isinstance(value, exp.Expr):
            outer.set(key, value.transform(to_stage, copy=True))
        elif value:
            outer.set(key, value)
    # A projection keeps the name the statement knows it by.
    outer.set("expressions", [
        projection if isinstance(projection, exp.Alias) or not original.alias_or_name
        else exp.alias_(projection, original.alias_or_name, quoted=True)
        for projection, original in zip(outer.expressions, projections)
    ])
    return outer, sources


def _add_visible_ctes(inner: exp.Select, select: exp.Select) -> None:
    """Give the inner query the CTEs ``select`` sees (of enclosing queries, defined before
    the one holding it), only those it reads, in their order; then its own."""
    visible: t.List[exp.CTE] = []
    node: exp.Expr = select
    while node.parent is not None:
        if isinstance(node.parent, exp.Query) and node.parent.args.get("with_") is not None:
            ctes = list(node.parent.args["with_"].expressions)
            holder = next((cte for cte in ctes if _contains(cte, select)), None)
            visible = (ctes[: ctes.index(holder)] if holder is not None else ctes) + visible
        node = node.parent
    own = list(inner.args["with_"].expressions) if inner.args.get("with_") else []
    needed = _read_ctes(inner, visible + own)
    kept = [cte.copy() for cte in visible if cte.alias_or_name in needed] + own
    inner.set("with_", exp.With(expressions=kept) if kept else None)


def _contains(outer: exp.Expr, node: exp.Expr) -> bool:
    parent = node.parent
    while parent is not None:
        if parent is outer:
            return True
        parent = parent.parent
    return False


def _read_ctes(query: exp.Expr, ctes: t.List[exp.CTE]) -> t.Set[str]:
    """Names of ``ctes`` that ``query`` reads, directly or through other CTEs."""
    by_name = {cte.alias_or_name: cte for cte in ctes}
    needed: t.Set[str] = set()
    pending = [query]
    while pending:
        for table in pending.pop().find_all(exp.Table):
            if not table.db and table.name in by_name and table.name not in needed:
                needed.add(table.name)
                pending.append(by_name[table.name].this)
    return needed


def _readers(statement: exp.Expr, cte: exp.CTE) -> t.List[exp.Table]:
    name = cte.alias_or_name
    return [table for table in statement.find_all(exp.Table)
            if not table.db and table.name == name and not _contains(cte, table)]


def _materialize_enclosing_ctes(statement: exp.Expr, outer: exp.Select) -> None:
    """The stream can be read once: a CTE around it that is read twice is computed once."""
    node: t.Optional[exp.Expr] = outer
    while node is not None:
        if isinstance(node, exp.CTE) and len(_readers(statement, node)) > 1:
            node.set("materialized", True)
        node = node.parent


def _drop_unread_ctes(statement: exp.Expr) -> None:
    """CTEs only the split SELECT read are computed by the inner query now."""
    for with_ in list(statement.find_all(exp.With)):
        dropped = True
        while dropped:
            dropped = False
            for cte in list(with_.expressions):
                if not _readers(statement, cte):
                    cte.pop()
                    dropped = True
        if not with_.expressions and with_.parent is not None:
            with_.parent.set("with_", None)

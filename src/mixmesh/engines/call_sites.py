"""Argument types from the call site: each call in a statement is bound with the types the
engine gives its arguments there.

A model renders ``@python_risk_score(details, total, n)`` as a call of the function's
*call name* (``python_risk_score__<digest>``), which no engine knows. Right before a statement
runs (``mixmesh.engines.resolve_calls``), or a Python model's query (``context.sql``), each
such call is resolved here:

1. The engine describes the call's arguments where they stand (``describe``): a probe query
   built from the SELECT the call sits in, with the same FROM, joins, CTEs and grouping, that
   projects the arguments. It is bound, never run. The engine is the one source that is
   always right (sqlglot's inference says BIGINT for ``SUM(int)``, DuckDB HUGEINT); where the
   probe cannot be bound (a correlated subquery), an argument that states its own type (a
   CAST, a literal) still resolves; anything else is an error asking for a CAST.
2. What each parameter accepts (``mixmesh.core.accepts``) turns the call site's type into the
   type the function is bound with, or fails naming the model, the function, the argument,
   both types and the fix.
3. The call becomes a call of a *binding name* for exactly those types (two call sites with
   different types get two bindings), with a CAST where the bound type differs from the
   call site's (a DECIMAL into ``float``: DOUBLE).
"""

from __future__ import annotations

import hashlib
import typing as t

from sqlglot import exp

from mixmesh.runtime import bindings
from mixmesh.core import accepts as accepts_
from mixmesh.core.errors import FunctionCallError, where

if t.TYPE_CHECKING:
    from mixmesh.runtime.bindings import Binding

# (probe query) -> the types of its columns, or an exception saying why it does not bind.
Describe = t.Callable[[exp.Query], t.List[exp.DataType]]

_PROBE = "__mixmesh_argument_"
# Clauses that do not change the type of anything a probe projects, and may refer to what it
# drops (aliases, windows).
_NOT_NEEDED = ("order", "limit", "offset", "qualify", "distinct", "windows", "sort", "cluster", "distribute", "into", "locks")


class Resolved(t.NamedTuple):
    """A call as bound: its binding name, and the binding to make under it."""

    sql_name: str
    binding: "Binding"


def resolve(
    statement: exp.Expr,
    calls: t.Mapping[str, "Binding"],
    describe: Describe,
    *,
    dialect: str,
) -> t.Tuple[exp.Expr, t.List[Resolved]]:
    """``statement`` with every call of a call name in ``calls`` bound for its argument types,
    and the bindings it now needs."""
    # Innermost first (a call inside another's argument): each is replaced before its parent
    # copies its arguments. Every probe reads the statement as it was rendered.
    found = [node for node in statement.find_all(exp.Anonymous, bfs=False) if node.name.lower() in calls][::-1]
    if not found:
        return statement, []
    names = set(calls)
    described = _described_together(found, names, describe)
    planned = []
    for call in found:
        binding = calls[call.name.lower()]
        call_types = described.get(id(call)) or argument_types(call, names, describe, binding, dialect)
        planned.append((call, binding, *_bound_types(binding, call, _literal_types(call, call_types), dialect)))
    resolved: t.Dict[str, Resolved] = {}
    for call, binding, bound, casts in planned:
        sql_name = binding_name(call.name.lower(), bound)
        resolved.setdefault(sql_name, Resolved(sql_name, binding._replace(spec=binding.spec.resolved(bound))))
        arguments = [exp.Cast(this=arg.copy(), to=b.copy()) if cast else arg.copy()
                     for arg, b, cast in zip(call.expressions, bound, casts)]
        replacement = exp.Anonymous(this=sql_name, expressions=arguments)
        if call is statement:
            statement = replacement
        else:
            call.replace(replacement)
    return statement, list(resolved.values())


def binding_name(call_name: str, bound: t.Sequence[exp.DataType]) -> str:
    """The engine-side name of a call name bound with these argument types."""
    digest = hashlib.sha256(call_name.encode())
    for sql_type in bound:
        digest.update(b"|" + sql_type.sql("duckdb").encode())
    return f"{call_name.rsplit('__', 1)[0]}__{digest.hexdigest()[:10]}"


# --- what the call site passes ---------------------------------------------------------------


def _described_together(
    found: t.Sequence[exp.Anonymous], names: t.Set[str], describe: Describe
) -> t.Dict[int, t.List[exp.DataType]]:
    """The argument types of every call, one probe per SELECT (and per kind of place in it)
    for all the calls it holds; a probe that does not bind leaves its calls to
    ``argument_types``, which tries each call's own."""
    groups: t.Dict[t.Tuple[int, bool], t.Tuple[exp.Select, t.List[exp.Anonymous]]] = {}
    for call in found:
        select = call.find_ancestor(exp.Select)
        if select is not None and call.expressions:
            groups.setdefault((id(select), _row_level(call, select)), (select, []))[1].append(call)
    types: t.Dict[int, t.List[exp.DataType]] = {}
    for (_, row_level), (select, members) in groups.items():
        arguments = [arg for call in members for arg in call.expressions]
        try:
            described = describe(_select_probe(arguments, select, names, row_level=row_level))
        except Exception:  # noqa: BLE001 - each call tries its own probes next
            continue
        tail = described[len(described) - len(arguments):]
        for call in members:
            types[id(call)], tail = tail[: len(call.expressions)], tail[len(call.expressions):]
    return types


def argument_types(
    call: exp.Anonymous, names: t.Set[str], describe: Describe, binding: "Binding", dialect: str
) -> t.List[exp.DataType]:
    """The engine's types of a call's arguments, where the call stands."""
    arguments = list(call.expressions)
    if not arguments:
        return []
    error: t.Optional[Exception] = None
    for probe in _probes(call, names):
        try:
            described = describe(probe)
            return described[len(described) - len(arguments):]
        except Exception as failure:  # noqa: BLE001 - the engine's reason goes in the message
            error = error or failure
    stated = [_stated_type(arg) for arg in arguments]
    if all(sql_type is not None for sql_type in stated):
        return t.cast(t.List[exp.DataType], stated)
    position = next(i for i, sql_type in enumerate(stated) if sql_type is None)
    arg = binding.spec.args[position]
    reason = f": {_first_line(error)}" if error is not None else ""
    raise FunctionCallError(
        f"{where(binding.spec.name, binding.model)}: the type of argument {position + 1} ({arg.name}), "
        f"{_shorten(arguments[position].sql(dialect))}, cannot be determined at this call site, which the "
        f"engine cannot describe on its own{reason}. State it with a CAST: "
        f"CAST({_shorten(arguments[position].sql(dialect))} AS <type>)"
    )


def _probes(call: exp.Anonymous, names: t.Set[str]) -> t.Iterator[exp.Query]:
    """Queries, bound but never run, whose last columns are the call's arguments: the SELECT
    the call stands in, as it stands (grouped where it is grouped), then over its rows
    before any grouping (a call in GROUP BY, or grouped by through its alias); then, for a
    correlated subquery (a LATERAL join), the same with the enclosing queries' tables beside
    its own, so that outer columns resolve."""
    select = call.find_ancestor(exp.Select)
    if select is None:
        statement = call.find_ancestor(exp.Update, exp.Delete)
        if statement is not None:
            yield _statement_probe(call, statement, names)
        return
    row_level = _row_level(call, select)
    styles = (row_level,) if row_level else (False, True)
    outer = _outer_sources(select, names)
    for with_outer in (False, True) if outer else (False,):
        for style in styles:
            probe = _select_probe(list(call.expressions), select, names, row_level=style)
            if with_outer:
                probe.set("joins", [*(probe.args.get("joins") or []), *[join.copy() for join in outer]])
                if probe.args.get("from_") is None:
                    first, *rest = probe.args["joins"]
                    probe.set("from_", exp.From(this=first.this))
                    probe.set("joins", rest)
            yield probe


def _select_probe(
    arguments: t.Sequence[exp.Expr], select: exp.Select, names: t.Set[str], *, row_level: bool
) -> exp.Select:
    copies = [_without_calls(arg.copy(), names) for arg in arguments]
    probe = _without_calls(select.copy(), names)
    aliased = [exp.alias_(arg, f"{_PROBE}{i}", quoted=True) for i, arg in enumerate(copies)]
    for clause in _NOT_NEEDED:
        probe.set(clause, None)
    if row_level:
        # Inside an aggregate, a FILTER, a WHERE or a join: the rows before any grouping.
        for clause in ("group", "having", "where"):
            probe.set(clause, None)
        probe.set("expressions", aliased)
    else:
        probe.set("expressions", [*probe.expressions, *aliased])  # aliases it refers to stay
    with_ = _with_in_scope(select, names)
    if with_ is not None:
        probe.set("with_", with_)
    return probe


def _statement_probe(call: exp.Anonymous, statement: exp.Expr, names: t.Set[str]) -> exp.Select:
    """``UPDATE t SET y = f(x) FROM s``, ``DELETE FROM t WHERE f(x)``: the rows of its tables."""
    arguments = [_without_calls(arg.copy(), names) for arg in call.expressions]
    probe = exp.select(*arguments).from_(statement.this.copy())
    extra = statement.args.get("from_") or statement.args.get("using")
    for source in ([extra.this] if isinstance(extra, exp.From) else extra.expressions if extra else []):
        probe = probe.join(source.copy())
    return probe


def _outer_sources(select: exp.Select, names: t.Set[str]) -> t.List[exp.Join]:
    """The tables of the queries enclosing ``select`` (not the part holding it), as joins."""
    sources: t.List[exp.Join] = []
    node: t.Optional[exp.Expr] = select
    while node is not None:
        parent = node.parent
        if isinstance(parent, exp.Select):
            from_ = parent.args.get("from_")
            candidates = ([from_.this] if from_ is not None else []) + [j.this for j in parent.args.get("joins") or []]
            for source in candidates:
                if not any(inner is node for inner in source.find_all(type(node))):
                    sources.append(exp.Join(this=_without_calls(source.copy(), names)))
        node = parent
    return sources


def _row_level(call: exp.Expr, select: exp.Select) -> bool:
    node: t.Optional[exp.Expr] = call
    while node is not None and node is not select:
        parent = node.parent
        if isinstance(node, exp.AggFunc) and not isinstance(parent, exp.Window):
            return True
        if isinstance(parent, exp.Filter) and node.arg_key == "expression":  # COUNT(*) FILTER (WHERE ...)
            return True
        if parent is select and node.arg_key in ("where", "joins", "from_", "laterals"):
            return True
        node = parent
    return False


def _with_in_scope(select: exp.Select, names: t.Set[str]) -> t.Optional[exp.With]:
    """The CTEs the select may read: those of every enclosing WITH, outermost first."""
    scopes: t.List[t.List[exp.CTE]] = []
    recursive = False
    seen: t.Set[str] = set()  # an inner CTE shadows an outer one of the same name
    node: t.Optional[exp.Expr] = select
    while node is not None:
        with_ = node.args.get("with_")
        if isinstance(with_, exp.With):
            visible = [cte for cte in with_.expressions if cte.alias_or_name.lower() not in seen]
            seen.update(cte.alias_or_name.lower() for cte in with_.expressions)
            scopes.append([_without_calls(cte.copy(), names) for cte in visible])
            recursive = recursive or bool(with_.args.get("recursive"))
        node = node.parent
    ctes = [cte for scope in reversed(scopes) for cte in scope]
    return exp.With(expressions=ctes, recursive=recursive) if ctes else None


def _without_calls(expression: exp.Expr, names: t.Set[str]) -> exp.Expr:
    """Calls of mixmesh functions as NULL: they are not bound yet, and their CAST keeps the type."""

    def null(node: exp.Expr) -> exp.Expr:
        return exp.Null() if isinstance(node, exp.Anonymous) and node.name.lower() in names else node

    return expression.transform(null, copy=False)


def _stated_type(arg: exp.Expr) -> t.Optional[exp.DataType]:
    """The type an argument states itself: a CAST's, or a literal's."""
    if isinstance(arg, (exp.Cast, exp.TryCast)):
        return arg.to
    if isinstance(arg, exp.Literal):
        return accepts_.build("VARCHAR" if arg.is_string else ("DOUBLE" if "." in arg.this else "BIGINT"))
    if isinstance(arg, exp.Boolean):
        return accepts_.build("BOOLEAN")
    return None


def _literal_types(call: exp.Anonymous, call_types: t.Sequence[exp.DataType]) -> t.List[exp.DataType]:
    """A literal NULL (or an empty list) has no type of its own (DuckDB calls it INTEGER):
    such an argument is typed NULL (a list of NULL), which every parameter accepts."""
    typed = []
    for arg, sql_type in zip(call.expressions, call_types):
        if isinstance(arg, exp.Null):
            sql_type = exp.DataType.build("NULL")
        elif isinstance(arg, exp.Array) and not arg.expressions:
            sql_type = exp.DataType(this=exp.DataType.Type.ARRAY, expressions=[exp.DataType.build("NULL")], nested=True)
        typed.append(sql_type)
    return typed


def _stand_in(accepts: accepts_.Accepts, call_type: exp.DataType) -> exp.DataType:
    """The type a NULL (or an empty list) is passed as: the parameter's own, where it has one."""
    if call_type.this in accepts_.LISTS:
        element = accepts.element if isinstance(accepts, accepts_.ListOf) else accepts_.AnyType()
        inner = _stand_in(element, call_type.expressions[0])
        return exp.DataType(this=exp.DataType.Type.ARRAY, expressions=[inner], nested=True)
    default = accepts.default()
    if default is not None:
        return default
    if isinstance(accepts, accepts_.DictOf):
        return exp.DataType(
            this=exp.DataType.Type.MAP, expressions=[accepts_.build("VARCHAR"), _stand_in(accepts.value, call_type)],
            nested=True,
        )
    return accepts_.build("VARCHAR")


def _untyped(call_type: exp.DataType) -> bool:
    return call_type.this == exp.DataType.Type.NULL or (
        call_type.this in accepts_.LISTS and _untyped(call_type.expressions[0])
    )


# --- what the function is bound with ----------------------------------------------------------


def _bound_types(
    binding: "Binding", call: exp.Anonymous, call_types: t.Sequence[exp.DataType], dialect: str
) -> t.Tuple[t.List[exp.DataType], t.List[bool]]:
    spec = binding.spec
    bound, casts = [], []
    for position, (arg, expression, call_type) in enumerate(zip(spec.args, call.expressions, call_types), start=1):
        accepts = arg.accepts or accepts_.Exact(arg.sql_type)
        if _untyped(call_type):
            bound.append(_stand_in(accepts, call_type))
            casts.append(True)
            continue
        try:
            sql_type = accepts.resolve(call_type, vectorized=spec.vectorized)
        except accepts_.Mismatch as mismatch:
            raise FunctionCallError(_mismatch_message(binding, position, expression, call_type, mismatch, dialect)) from None
        bound.append(sql_type)
        casts.append(sql_type != call_type)
    return bound, casts


def _mismatch_message(
    binding: "Binding", position: int, expression: exp.Expr, call_type: exp.DataType,
    mismatch: accepts_.Mismatch, dialect: str,
) -> str:
    spec = binding.spec
    arg = spec.args[position - 1]
    declared = arg.accepts.shown if arg.accepts is not None else accepts_.shown(arg.sql_type, dialect)
    passed = _shorten(_plain(expression).sql(dialect))
    message = (
        f"{where(spec.name, binding.model)}: argument {position} ({arg.name}) is "
        f"{accepts_.shown(call_type, dialect)} at this call site ({passed}), declared {declared}: {mismatch.reason}."
    )
    fixes = []
    if mismatch.fix is not None:
        fixes.append(f"cast it in the call: CAST({passed} AS {accepts_.shown(mismatch.fix, dialect)})")
    fixes.append(f"or declare what the call site passes: @udf(args={{{arg.name!r}: {accepts_.shown(call_type)!r}}})")
    return message + " Fix: " + ", ".join(fixes)


def _plain(expression: exp.Expr) -> exp.Expr:
    """An argument as the model wrote it: nested calls by their function names."""
    copy = expression.copy()
    for node in copy.find_all(exp.Anonymous):
        node.set("this", bindings.plain_names(node.name))
    return copy


def _shorten(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(error: t.Optional[BaseException]) -> str:
    return str(error).strip().splitlines()[0] if error is not None and str(error).strip() else type(error).__name__

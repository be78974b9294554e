"""What is bound in this process: every function as a model calls it, under its engine-side
name, and every project SQL function; engines bind them, errors are explained from them.

Engine-side names are mixmesh's, the same on every engine: ``name__<10 hex digits>``
(``mixmesh.core.names.binding_name`` for functions, ``sql_functions.engine_names`` for
project SQL functions).
"""

from __future__ import annotations

import re
import threading
import typing as t

from sqlglot import exp

from mixmesh.core import sql_functions
from mixmesh.core.errors import FunctionCallError, where
from mixmesh.core.names import binding_name

if t.TYPE_CHECKING:
    from mixmesh.core.functions import FunctionSpec
    from mixmesh.core.sql_functions import SqlFunction


class Binding(t.NamedTuple):
    """A function as one model calls it: what an engine binds under one SQL name."""

    spec: "FunctionSpec"
    model: t.Optional[str]
    source: t.Optional[str] = None  # where Python cannot find it (re-created from state)


class SqlFunctionBinding(t.NamedTuple):
    """A project SQL function under its engine-side name, and the names of those it calls."""

    function: "SqlFunction"
    sql_name: str
    callees: t.Tuple[t.Tuple[str, str], ...] = ()  # (name, engine-side name) of each callee

    def definition(self) -> t.Any:
        """The ``CREATE`` statement (project dialect) under the engine-side names."""
        return self.function.renamed(self.sql_name, dict(self.callees))


# Every binding made in this process, by engine-side name; errors are explained from it.
_bound: t.Dict[str, Binding] = {}
# Every call name rendered in this process (``mixmesh.engines.call_sites`` binds them), by name.
_calls: t.Dict[str, Binding] = {}
_sql_functions: t.Dict[str, SqlFunctionBinding] = {}  # by engine-side name, in lower case
_lock = threading.Lock()
# Engine-side names (mixmesh's, engine independent): name__<10 hex digits>; engines may
# change their case (sqlglot writes DuckDB function names in upper case).
_ENGINE_NAME = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*?__[0-9A-Fa-f]{10})\b")


def register_call(
    spec: "FunctionSpec", model: t.Optional[str], call_name: str, source: t.Optional[str] = None
) -> None:
    """Make a rendered call name known, for ``resolve_calls`` to bind at its call sites."""
    with _lock:
        _calls.setdefault(call_name.lower(), Binding(spec, model, source))


def calls_in(sql: str) -> t.Dict[str, Binding]:
    """The call names a statement holds, by name in lower case."""
    if not _calls:
        return {}
    found = {}
    for match in _ENGINE_NAME.finditer(sql):
        binding = _calls.get(match.group(1).lower())
        if binding is not None:
            found[match.group(1).lower()] = binding
    return found


def remember(sql_name: str, binding: Binding) -> Binding:
    """Record a binding made under ``sql_name`` (the first one made under it wins)."""
    with _lock:
        return _bound.setdefault(sql_name, binding)


def calls_known() -> t.Dict[str, Binding]:
    with _lock:
        return dict(_calls)


def anything_bound() -> bool:
    """Whether this process bound any function or SQL function, or loaded a project's."""
    return bool(_bound or _sql_functions or sql_functions.any_loaded())


def registered_spec(
    spec: "FunctionSpec", args: t.Optional[t.Mapping[str, str]] = None
) -> "FunctionSpec":
    """A function as ``register`` binds it on a plain connection, where no call site is seen:
    each argument with its hint's own type, ``args=`` for those the call site would decide
    (a vectorized function's plain ``pa.Array``/``pd.Series``: DOUBLE, as before)."""
    from mixmesh.core import sql_types as types
    from mixmesh.core.errors import FunctionDefinitionError

    given = dict(args or {})
    unknown = sorted(set(given) - {arg.name for arg in spec.args})
    if unknown:
        raise FunctionDefinitionError(f"register {spec.name}: args= names {unknown}, which are not parameters")
    bound = []
    for arg in spec.args:
        if arg.name in given:
            bound.append(types.parse_sql_type(given[arg.name]))
        elif arg.sql_type is not None:
            bound.append(arg.sql_type)
        elif spec.vectorized:
            bound.append(types.parse_sql_type("DOUBLE"))
        else:
            raise FunctionDefinitionError(
                f"register {spec.name}: argument {arg.name!r} takes its type from the call site, which a "
                f"plain connection does not show; give it: register(connection, {spec.name}, "
                f"args={{{arg.name!r}: 'STRUCT(amount DOUBLE, category VARCHAR)[]'}})"
            )
    return spec.resolved(bound)


def bindings_called(sql: str) -> t.Dict[str, Binding]:
    """The mixmesh functions a statement calls, by engine-side name in lower case."""
    if not _bound:
        return {}
    called = {}
    for match in _ENGINE_NAME.finditer(sql):
        binding = _bound.get(match.group(1).lower())
        if binding is not None:
            called[match.group(1).lower()] = binding
    return called


def batch_function(binding: Binding) -> t.Callable[..., t.Any]:
    """The function as the fast path calls it: Arrow columns of a batch in, one array out."""
    from mixmesh.runtime.batches import BatchFunction
    from mixmesh.runtime.rows import RowBatchFunction

    if binding.spec.cache is not None:
        from mixmesh.runtime.cache import CachedRows

        return CachedRows(binding.spec, binding.model, source=binding.source)
    if binding.spec.vectorized:
        return BatchFunction(binding.spec, binding.model)
    return RowBatchFunction(binding.spec, binding.model, source=binding.source)


def register_sql_function(binding: SqlFunctionBinding) -> None:
    """Make a project SQL function known under its engine-side name (idempotent)."""
    with _lock:
        _sql_functions.setdefault(binding.sql_name.lower(), binding)


def bound_sql_functions() -> t.List[SqlFunctionBinding]:
    with _lock:
        return list(_sql_functions.values())


def sql_functions_called(sql: str) -> t.List[SqlFunctionBinding]:
    """The project SQL functions a statement calls, with the ones they call, callees first."""
    if not _sql_functions:
        return []
    ordered: t.List[SqlFunctionBinding] = []
    seen: t.Set[str] = set()

    def visit(sql_name: str) -> None:
        binding = _sql_functions.get(sql_name)
        if binding is None or sql_name in seen:
            return
        seen.add(sql_name)
        for _, callee in binding.callees:
            visit(callee.lower())
        ordered.append(binding)

    for match in _ENGINE_NAME.finditer(sql):
        visit(match.group(1).lower())
    return ordered


def known_functions() -> t.Dict[str, SqlFunction]:
    """The functions of every project loaded in this process and every one bound (by name)."""
    known = sql_functions.loaded_functions()
    for binding in bound_sql_functions():
        known.setdefault(binding.function.name, binding.function)
    return known




def bind_sql_functions(functions: t.Mapping[str, "SqlFunction"]) -> t.Dict[str, str]:
    """The engine-side names, each known to the engines so they create it before a statement
    that calls it runs."""
    names = sql_functions.engine_names(functions)
    for name, function in functions.items():
        callees = tuple(sorted((c, names[c]) for c in function.calls & functions.keys()))
        register_sql_function(SqlFunctionBinding(function, names[name], callees))
    return names


def bind_calls(expressions: t.Any, entries: t.Mapping[str, t.Any]) -> t.Any:
    """Rendered SQLMesh expressions with the calls of the functions ``entries`` stores
    renamed (in place); the functions known to the engines."""
    if not any(key.startswith(sql_functions.ENV_PREFIX) for key in entries):
        return expressions
    names = bind_sql_functions(sql_functions.stored_functions(entries))
    for expression in expressions if isinstance(expressions, list) else [expressions]:
        if isinstance(expression, exp.Expr):
            sql_functions.rename_calls(expression, names)
    return expressions


def plain_names(text: str) -> str:
    """``text`` with functions named as models call them, not as engines do
    (``activity_level``, not ``activity_level__3f9a0c2b1d``)."""

    def plain(match: "re.Match[str]") -> str:
        sql_name = match.group(1).lower()
        if sql_name in _sql_functions:
            return _sql_functions[sql_name].function.name
        binding = _bound.get(sql_name) or _calls.get(sql_name)
        return binding.spec.name if binding is not None else match.group(1)

    return _ENGINE_NAME.sub(plain, text)


def bound() -> t.Dict[str, Binding]:
    """Every binding made in this process, by engine-side name in lower case."""
    with _lock:
        return dict(_bound)


# --- a call as a model or a Python model's query writes it -----------------------------------


def call_arguments(
    spec: "FunctionSpec",
    model: t.Optional[str],
    args: t.Sequence[t.Any],
    kwargs: t.Mapping[str, t.Any],
    *,
    twice: t.Sequence[str] = (),
) -> t.List[exp.Expr]:
    """A call's arguments in parameter order: positional ones, then ``name := value`` ones,
    bound as Python binds them; a clear error otherwise (``twice``: keywords the call gave
    more than once, which a mapping of keywords cannot show)."""
    try:
        if twice:
            raise TypeError(f"keyword argument(s) {list(twice)} given more than once")
        ordered = spec.order_arguments(list(args), dict(kwargs))
    except TypeError as error:
        parameters = ", ".join(arg.name for arg in spec.args)
        written = ", ".join([_sql(arg) for arg in args] + [f"{key} := {_sql(value)}" for key, value in kwargs.items()])
        raise FunctionCallError(
            f"{where(spec.name, model)} takes {len(spec.args)} argument(s) ({parameters}); the call "
            f"@{spec.name}({written}) does not fit: {error}"
        ) from None
    return [_expression(arg) for arg in ordered]


def bound_call(
    spec: "FunctionSpec",
    model: t.Optional[str],
    args: t.List[exp.Expr],
    adapter: t.Any,
    *,
    source: t.Optional[str] = None,
) -> exp.Expr:
    """``CAST(name__digest(args) AS type)`` (SQL models and ``context.sql`` alike): a call name
    that ``mixmesh.engines.call_sites`` binds for the call site's argument types before it runs."""
    sql_name = binding_name(spec, model)
    register_call(spec, model, sql_name, source=source)
    return exp.Cast(this=exp.Anonymous(this=sql_name, expressions=args), to=spec.returns.copy())


def _expression(arg: t.Any) -> exp.Expr:
    return arg if isinstance(arg, exp.Expr) else exp.convert(arg)


def _sql(arg: t.Any) -> str:
    return arg.sql() if isinstance(arg, exp.Expr) else repr(arg)

"""Engines: each module binds functions in one engine and explains that engine's errors.

Every engine module offers the same small interface:

- ``bind(binding: Binding, sql_name: str, adapter) -> None``: make ``sql_name`` callable
  in the queries the SQLMesh engine adapter runs (idempotent);
- ``describe(adapter, query, params, cursor=None) -> List[exp.DataType]``: the types of a
  query's columns as the engine binds it, without running it (``mixmesh.engines.call_sites`` asks
  it for the types of a call's arguments);
- ``explain_error(error, sql, bound: Mapping[str, Binding]) -> Exception | None``: the
  mixmesh error an engine error stands for, if it is about a bound function;
- ``render(expression) -> str`` and ``run(adapter, expression, params)``: a Python model's
  query with its parameters bound by the engine (a context manager yielding the result);
- ``create_staging(adapter, columns) -> name``, ``append_staging(adapter, name, arrow)``,
  ``drop_staging(adapter, name)``: where a Python model's batches land before the write;
- ``create_sql_functions(adapter, functions: Sequence[SqlFunctionBinding]) -> None``: create
  project SQL functions (``sql/udfs``, see ``mixmesh.core.sql_functions``) under their engine-side
  names, in the order given (callees first), in the session that runs the adapter's next
  statement. It is called right before every statement that calls one, so it must be cheap
  and idempotent (``CREATE OR REPLACE``); the functions must live only as long as that session
  and never be stored in the user's database (DuckDB: TEMP macros on the statement's cursor).
  ``SqlFunctionBinding.function.renamed(...)`` gives the definition to create, in the
  project's dialect; an engine that cannot create one (a table function, say) raises a clear
  error naming it.

Engines whose DataFrames a Python model may return (Spark's, which stay distributed) also
offer ``is_engine_frame(value) -> bool``, ``conform_frame(frame, spec)`` (the declared columns
and types) and ``dataframe(adapter, expression, params)`` (``context.sql(...).to_spark()``).
"""

from __future__ import annotations

import importlib
import re
import sys
import threading
import types
import typing as t

from sqlglot import exp

from mixmesh.core.errors import FunctionCallError

if t.TYPE_CHECKING:
    from mixmesh.core.functions import FunctionSpec
    from mixmesh.core.sql_functions import SqlFunction

# SQLMesh dialect -> the module that binds functions in that engine.
ENGINE_MODULES = {"duckdb": "mixmesh.engines.duckdb", "spark": "mixmesh.engines.spark"}


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


def engine(dialect: str) -> types.ModuleType:
    """The engine module for a SQLMesh dialect, or a clear error when there is none."""
    module = ENGINE_MODULES.get(dialect)
    if module is None:
        raise FunctionCallError(
            f"mixmesh functions run on {', '.join(sorted(ENGINE_MODULES))}; this gateway's engine "
            f"is {dialect!r}"
        )
    return importlib.import_module(module)


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


def resolve_calls(adapter: t.Any, sql: str) -> str:
    """The statement with each call bound for its call site's argument types (the functions
    bound in the engine first); the statement as it is when it calls none."""
    calls = calls_in(sql) if adapter.dialect in ENGINE_MODULES else {}
    if not calls:
        return sql
    import sqlglot

    module = engine(adapter.dialect)
    try:
        statement = sqlglot.parse_one(sql, read=module.NAME)
    except sqlglot.errors.SqlglotError:
        return sql  # the engine's own error says more
    resolved = resolve_expression(adapter, statement, calls=calls)
    return resolved.sql(module.NAME)


def resolve_expression(
    adapter: t.Any,
    expression: t.Any,
    params: t.Optional[t.Mapping[str, t.Any]] = None,
    *,
    calls: t.Optional[t.Mapping[str, Binding]] = None,
    cursor: t.Any = None,
) -> t.Any:
    """``resolve_calls`` for a parsed query (a Python model's, with its parameters)."""
    from mixmesh.engines import call_sites

    module = engine(adapter.dialect)
    if calls is None:
        with _lock:
            calls = dict(_calls)

    def describe(probe: t.Any) -> t.Any:
        # Only the parameters the probe still holds (it drops WHERE clauses, other calls).
        used = {node.name for node in probe.find_all(exp.Placeholder, exp.Parameter)}
        given = {name: value for name, value in (params or {}).items() if name in used}
        return module.describe(adapter, probe, given, cursor=cursor)

    resolved, bindings = call_sites.resolve(expression, calls, describe, dialect=module.NAME)
    for sql_name, binding in bindings:
        with _lock:
            binding = _bound.setdefault(sql_name, binding)
        module.bind(binding, sql_name, adapter)
    return resolved


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
    from mixmesh.runtime.calling import BatchFunction, RowBatchFunction

    if binding.spec.vectorized:
        return BatchFunction(binding.spec, binding.model)
    return RowBatchFunction(binding.spec, binding.model, source=binding.source)


def collect_remote_batches() -> t.List[t.Any]:
    """Batches functions ran in other processes (Spark's executors) since the last call, as
    ``spark_figures.Batch``; empty where no such engine was used."""
    figures = sys.modules.get("mixmesh.engines.spark.figures")
    return figures.collect_batches() if figures is not None else []


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


def create_sql_functions(adapter: t.Any, sql: str) -> None:
    """Create, where the adapter runs its next statement, the project SQL functions ``sql`` calls.

    Statements on engines mixmesh does not run on (a state database, say) are left alone.
    """
    called = sql_functions_called(sql) if adapter.dialect in ENGINE_MODULES else None
    if called:
        engine(adapter.dialect).create_sql_functions(adapter, called)


def explain_error(error: BaseException, sql: t.Any = None) -> t.Optional[Exception]:
    """The mixmesh error behind an engine error, or None when it is not about a function."""
    loaded = sys.modules.get("mixmesh.core.sql_functions")
    if not _bound and not _sql_functions and not (loaded and loaded._projects):
        return None  # nothing of mixmesh's in this process: the engine's error as it is
    text = sql if isinstance(sql, str) else ""
    for module_name in ENGINE_MODULES.values():
        explained = importlib.import_module(module_name).explain_error(error, text, _bound)
        if explained is not None:
            return explained
    return _with_plain_names(error)


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


def _with_plain_names(error: BaseException) -> t.Optional[Exception]:
    """The engine's own error, with functions named as models call them."""
    message = str(error)
    readable = plain_names(message)
    if readable == message:
        return None
    try:
        return type(error)(readable)
    except Exception:
        return FunctionCallError(readable)

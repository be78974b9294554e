"""Engines: one package per engine (``duckdb/``, ``spark/``) behind one ``Engine`` protocol
(``protocol``), and what is engine independent: which engine a dialect runs on
(``engine``), binding each call for its call site's types (``resolve_calls``, with
``call_sites``), creating the project SQL functions a statement calls, and explaining errors.
"""

from __future__ import annotations

import importlib
import sys
import typing as t

from sqlglot import exp

from mixmesh.core.errors import FunctionCallError
from mixmesh.engines.protocol import Engine
from mixmesh.runtime.bindings import (  # the engines' vocabulary, re-exported for their callers
    Binding,
    SqlFunctionBinding,
    batch_function,
    bindings_called,
    bound_sql_functions,
    calls_in,
    plain_names,
    register_call,
    register_sql_function,
    registered_spec,
    sql_functions_called,
)
from mixmesh.runtime import bindings

__all__ = [
    "Binding",
    "SqlFunctionBinding",
    "batch_function",
    "bindings_called",
    "bound_sql_functions",
    "calls_in",
    "collect_remote_batches",
    "collect_remote_quarantined",
    "create_sql_functions",
    "engine",
    "explain_error",
    "plain_names",
    "register_call",
    "register_sql_function",
    "registered_spec",
    "resolve_calls",
    "resolve_expression",
    "sql_functions_called",
]

# SQLMesh dialect -> the module that binds functions in that engine.
ENGINE_MODULES = {"duckdb": "mixmesh.engines.duckdb", "spark": "mixmesh.engines.spark"}


def engine(dialect: str) -> Engine:
    """The engine package for a SQLMesh dialect, or a clear error when there is none."""
    module = ENGINE_MODULES.get(dialect)
    if module is None:
        raise FunctionCallError(
            f"mixmesh functions run on {', '.join(sorted(ENGINE_MODULES))}; this gateway's engine "
            f"is {dialect!r}"
        )
    return t.cast(Engine, importlib.import_module(module))


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
        calls = bindings.calls_known()

    def describe(probe: t.Any) -> t.Any:
        # Only the parameters the probe still holds (it drops WHERE clauses, other calls).
        used = {node.name for node in probe.find_all(exp.Placeholder, exp.Parameter)}
        given = {name: value for name, value in (params or {}).items() if name in used}
        return module.describe(adapter, probe, given, cursor=cursor)

    resolved, bound = call_sites.resolve(expression, calls, describe, dialect=module.NAME)
    for sql_name, binding in bound:
        module.bind(bindings.remember(sql_name, binding), sql_name, adapter)
    return resolved


def collect_remote_batches() -> t.List[t.Any]:
    """Batches functions ran in other processes (Spark's executors) since the last call, as
    ``spark.figures.Batch``; empty where no such engine was used."""
    figures = sys.modules.get("mixmesh.engines.spark.figures")
    return figures.collect_batches() if figures is not None else []


def collect_remote_quarantined() -> None:
    """File the rows functions quarantined in other processes (Spark's executors) since the
    last call under their models' collectors (``mixmesh.runtime.quarantine``)."""
    figures = sys.modules.get("mixmesh.engines.spark.figures")
    if figures is not None:
        from mixmesh.runtime import quarantine

        quarantine.receive(figures.collect_quarantined())


def create_sql_functions(adapter: t.Any, sql: str) -> None:
    """Create, where the adapter runs its next statement, the project SQL functions ``sql`` calls.

    Statements on engines mixmesh does not run on (a state database, say) are left alone.
    """
    called = sql_functions_called(sql) if adapter.dialect in ENGINE_MODULES else None
    if called:
        engine(adapter.dialect).create_sql_functions(adapter, called)


def explain_error(error: BaseException, sql: t.Any = None) -> t.Optional[Exception]:
    """The mixmesh error behind an engine error, or None when it is not about a function."""
    if not bindings.anything_bound():
        return None  # nothing of mixmesh's in this process: the engine's error as it is
    text = sql if isinstance(sql, str) else ""
    for module_name in ENGINE_MODULES.values():
        explained = importlib.import_module(module_name).explain_error(error, text, bindings.bound())
        if explained is not None:
            return explained
    return _with_plain_names(error)


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

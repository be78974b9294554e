"""The statements SQLMesh runs, as mixmesh sees them (wrappers of ``EngineAdapter._execute``,
innermost first): a statement calling functions takes the fast path where it can; each call
is bound for its call site's argument types; the project SQL functions it calls are
created in its session; an engine error about a mixmesh function is explained."""

from __future__ import annotations

import functools
import typing as t


def create_sql_functions_hook(execute: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """The engine creates the project SQL functions a statement calls right before running it,
    in the session that runs it (whatever thread, transaction or test connection that is)."""

    @functools.wraps(execute)
    def hook(self: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        sql = args[0] if args else kwargs.get("sql")
        if isinstance(sql, str):
            from mixmesh import engines

            engines.create_sql_functions(self, sql)
        return execute(self, *args, **kwargs)

    return hook


def call_sites_hook(execute: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """Each call of a mixmesh function is bound for its call site's argument types right
    before the statement runs (``mixmesh.engines.call_sites``): the first statement of a plan that
    reads the query (SQLMesh creates the table from it) fails on a mismatch, before any
    interval is written."""

    @functools.wraps(execute)
    def hook(self: t.Any, sql: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        if isinstance(sql, str):
            from mixmesh import engines

            sql = engines.resolve_calls(self, sql)
        return execute(self, sql, *args, **kwargs)

    return hook


def fast_path_hook(execute: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """A statement calling mixmesh functions runs them on large batches where it can
    (``mixmesh.fastpath``); everything else runs as it was."""

    @functools.wraps(execute)
    def hook(self: t.Any, sql: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        if isinstance(sql, str):
            from mixmesh import fastpath

            def run(statement: str) -> t.Any:
                return execute(self, statement, *args, **kwargs)

            parameters = any(key != "track_rows_processed" for key in kwargs) or len(args) > 1
            if fastpath.try_execute(self, sql, run, parameters):
                return None
        return execute(self, sql, *args, **kwargs)

    return hook


def explain_errors_hook(execute: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """An engine error about a mixmesh function becomes a message naming the model, the
    function and the argument."""

    @functools.wraps(execute)
    def hook(self: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        try:
            return execute(self, *args, **kwargs)
        except Exception as error:
            from mixmesh import engines

            explained = engines.explain_error(error, args[0] if args else kwargs.get("sql"))
            if explained is None:
                raise
            raise explained from error

    return hook

"""The SQLMesh side of monitoring: wrappers of its evaluator, its unit tests, its commands
and its engine adapter, which open and close evaluations (``mixmesh.monitor.capture``)."""

from __future__ import annotations

import functools
import typing as t
from pathlib import Path

from mixmesh.monitor import capture
from mixmesh.sink import evaluation_on_this_thread


def evaluate_hook(evaluate: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """Wrap ``SnapshotEvaluator.evaluate`` to record each model interval it evaluates."""

    @functools.wraps(evaluate)
    def hook(self: t.Any, snapshot: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        if not capture.enabled() or not getattr(snapshot, "is_model", False):
            return evaluate(self, snapshot, *args, **kwargs)
        engine = getattr(getattr(self, "adapter", None), "dialect", None)
        interval = (kwargs.get("start"), kwargs.get("end"))

        def rows() -> t.Optional[int]:
            return capture.rows_written(self, snapshot, kwargs)

        with capture.evaluating(snapshot.name, engine, interval, rows, _version(snapshot)):
            return evaluate(self, snapshot, *args, **kwargs)

    return hook


def environment_hook(evaluate: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """Wrap ``Scheduler.evaluate``, which knows the environment a plan or run is for (the
    snapshot evaluator it calls, on the same thread, does not)."""

    @functools.wraps(evaluate)
    def hook(self: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        naming = kwargs.get("environment_naming_info")
        if naming is None and len(args) > ENVIRONMENT_ARGUMENT:
            naming = args[ENVIRONMENT_ARGUMENT]
        with capture.in_environment(getattr(naming, "name", None)):
            return evaluate(self, *args, **kwargs)

    return hook


# Scheduler.evaluate(self, snapshot, start, end, execution_time, deployability_index, batch_index,
# environment_naming_info, ...): its place among the arguments after self (the patch table pins it).
ENVIRONMENT_ARGUMENT = 6


def _version(snapshot: t.Any) -> capture.Version:
    """The snapshot's fingerprint and table version, as strings (None where it has none)."""
    fingerprint, version = getattr(snapshot, "identifier", None), getattr(snapshot, "version", None)
    return capture.Version(None if fingerprint is None else str(fingerprint), None if version is None else str(version))


def evaluate_and_fetch_hook(evaluate_and_fetch: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """Wrap ``SnapshotEvaluator.evaluate_and_fetch`` (``sqlmesh evaluate``, ``Context.evaluate``):
    a preview runs the model's query and returns its first rows without writing a table, so
    it is recorded as command "evaluate" with no rows written."""

    @functools.wraps(evaluate_and_fetch)
    def hook(self: t.Any, snapshot: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        if not capture.enabled() or not getattr(snapshot, "is_model", False):
            return evaluate_and_fetch(self, snapshot, *args, **kwargs)
        engine = getattr(getattr(self, "adapter", None), "dialect", None)
        interval = (kwargs.get("start"), kwargs.get("end"))
        with capture.evaluating(snapshot.name, engine, interval, lambda: None, _version(snapshot)):
            return evaluate_and_fetch(self, snapshot, *args, **kwargs)

    return hook


def test_hook(run_test: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """Wrap a SQLMesh unit test's ``runTest``: recorded as command "test" when asked."""

    @functools.wraps(run_test)
    def hook(self: t.Any) -> t.Any:
        if not capture.tests_captured():
            return run_test(self)
        variables = self.body.get("vars", {}) if isinstance(getattr(self, "body", None), dict) else {}
        outer = capture.current_command()
        interval = (variables.get("start"), variables.get("end"))
        with capture.running("test", outer[1] if outer else Path.cwd()):
            with capture.evaluating(self.model.name, self.engine_adapter.dialect, interval, lambda: None):
                return run_test(self)

    return hook


def command_hook(name: str, method: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """Wrap a ``Context`` method (plan, run...) so the figures say which command produced them."""

    @functools.wraps(method)
    def hook(context: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        with capture.running(name, Path(context.path)):
            return method(context, *args, **kwargs)

    return hook


def rows_written_hook(execute: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """Wrap ``EngineAdapter._execute`` to count the rows a model's writes insert.

    SQLMesh marks its data-writing statements with ``track_rows_processed`` and reads the
    cursor's ``rowcount``, which DuckDB leaves at -1: DuckDB returns the count as the
    statement's one result row instead, which nothing else reads.
    """

    @functools.wraps(execute)
    def hook(self: t.Any, sql: str, track_rows_processed: bool = False, **kwargs: t.Any) -> t.Any:
        result = execute(self, sql, track_rows_processed=track_rows_processed, **kwargs)
        evaluation = evaluation_on_this_thread() if track_rows_processed else None
        if evaluation is not None and self.dialect == "duckdb":
            try:
                row = self.cursor.fetchone()
            except Exception:  # noqa: BLE001 - no result to read: nothing to count
                row = None
            if row and len(row) == 1 and isinstance(row[0], int):
                evaluation.add_rows_written(row[0])
        return result

    return hook


def register_engine_code() -> None:
    """Time under SQLMesh's statements, a Python model's queries and its staged writes is the
    engine's, not Python's (the sink's sampler stops at these frames): every function of the
    DuckDB engine's modules, whether its package re-exports it or not."""
    import importlib
    import pkgutil
    import types

    from sqlmesh.core.engine_adapter.base import EngineAdapter

    from mixmesh.engines import duckdb as duckdb_engine
    from mixmesh.pymodels.context import SqlResult
    from mixmesh.sink import register_engine_code as register

    register(EngineAdapter._execute.__code__)
    modules = [importlib.import_module(m.name) for m in pkgutil.iter_modules(duckdb_engine.__path__, "mixmesh.engines.duckdb.")]
    engine_functions = (v for module in modules for v in vars(module).values() if getattr(v, "__module__", "") == module.__name__)
    for value in [*vars(SqlResult).values(), *engine_functions]:
        if isinstance(value, types.FunctionType):
            register(value.__code__)

"""Engines: each module binds functions in one engine and explains that engine's errors.

Every engine module offers the same small interface:

- ``bind(binding: Binding, sql_name: str, adapter) -> None``: make ``sql_name`` callable
  in the queries the SQLMesh engine adapter runs (idempotent);
- ``explain_error(error, sql, bound: Mapping[str, Binding]) -> Exception | None``: the
  mixmesh error an engine error stands for, if it is about a bound function;
- ``render(expression) -> str`` and ``run(adapter, expression, params)``: a Python model's
  query with its parameters bound by the engine (a context manager yielding the result);
- ``create_staging(adapter, columns) -> name``, ``append_staging(adapter, name, arrow)``,
  ``drop_staging(adapter, name)``: where a Python model's batches land before the write.
"""

from __future__ import annotations

import importlib
import threading
import types
import typing as t

from mixmesh.errors import FunctionCallError

if t.TYPE_CHECKING:
    from mixmesh.functions import FunctionSpec

# SQLMesh dialect -> the module that binds functions in that engine.
ENGINE_MODULES = {"duckdb": "mixmesh.engines.duckdb"}


class Binding(t.NamedTuple):
    """A function as one model calls it: what an engine binds under one SQL name."""

    spec: "FunctionSpec"
    model: t.Optional[str]
    source: t.Optional[str] = None  # where Python cannot find it (re-created from state)


# Every binding made in this process, by engine-side name; errors are explained from it.
_bound: t.Dict[str, Binding] = {}
_lock = threading.Lock()


def engine(dialect: str) -> types.ModuleType:
    """The engine module for a SQLMesh dialect, or a clear error when there is none."""
    module = ENGINE_MODULES.get(dialect)
    if module is None:
        raise FunctionCallError(
            f"mixmesh functions run on {', '.join(sorted(ENGINE_MODULES))}; this gateway's engine "
            f"is {dialect!r}"
        )
    return importlib.import_module(module)


def bind(
    spec: "FunctionSpec", model: t.Optional[str], sql_name: str, adapter: t.Any, source: t.Optional[str] = None
) -> None:
    """Bind a function for a model in the engine behind a SQLMesh engine adapter."""
    with _lock:
        binding = _bound.setdefault(sql_name, Binding(spec, model, source))
    engine(adapter.dialect).bind(binding, sql_name, adapter)


def explain_error(error: BaseException, sql: t.Any = None) -> t.Optional[Exception]:
    """The mixmesh error behind an engine error, or None when it is not about a function."""
    if not _bound:
        return None
    text = sql if isinstance(sql, str) else ""
    for module_name in ENGINE_MODULES.values():
        explained = importlib.import_module(module_name).explain_error(error, text, _bound)
        if explained is not None:
            return explained
    return None

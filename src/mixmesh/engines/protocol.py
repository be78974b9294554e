"""What an engine offers mixmesh: one ``Engine`` per package (``duckdb/``, ``spark/``), with the
same module names in each, and capability flags for what only some engines do.

Every engine:

- ``bind(binding, sql_name, adapter)``: make ``sql_name`` callable in the queries the SQLMesh
  engine adapter runs (idempotent); ``register(connection, udf, ...)`` does it on a plain
  connection or session, for tests and notebooks;
- ``describe(adapter, query, params, cursor=None) -> List[exp.DataType]``: the types of a
  query's columns as the engine binds it, without running it (``call_sites`` asks it for the
  types of a call's arguments);
- ``explain_error(error, sql, bound) -> Exception | None``: the mixmesh error an engine error
  stands for, if it is about a bound function;
- ``render(expression) -> str`` and ``run(adapter, expression, params)``: a Python model's
  query with its parameters bound by the engine (a context manager yielding the result);
- ``create_staging(adapter, columns, model=None) -> name``, ``append_staging(adapter, name, arrow)``,
  ``drop_staging(adapter, name)``: where a Python model's batches land before the write;
  ``release_memory(adapter, name)`` after batches and ``write_budget(adapter, name)`` (a
  context manager held while SQLMesh copies the staged rows) keep the engine's caches from
  holding what the landing read and wrote (``drop_staging`` ends what they started);
- ``create_sql_functions(adapter, functions)``: create project SQL functions (``sql/udfs``)
  under their engine-side names, callees first, in the session that runs the adapter's next
  statement. It runs right before every statement that calls one, so it is cheap and
  idempotent, and the functions live only as long as that session, never stored in the
  user's database. An engine that cannot create one raises a clear error naming it.

Capabilities (class-level flags in each engine's ``__init__``), each with the functions it
promises:

- ``FAST_PATH``: statements calling functions can run split around a stream
  (``observe_statement``, ``execute_split``, ``drop_dead_staging``; see ``mixmesh.fastpath``),
  and be rewritten to an equivalent the engine runs faster (``faster_statement``,
  ``execute_faster``);
- ``ENGINE_FRAMES``: a Python model may return the engine's own DataFrames, which stay in the
  engine (``is_engine_frame``, ``conform_frame``, ``dataframe`` for ``context.sql(...).to_spark()``);
- ``OVERWRITES_PARTITIONS``: SQLMesh reads every batch of a time-range model before it writes
  (INSERT OVERWRITE), so the engine keeps the rows apart from the staging table first
  (``materialized``).

A new engine: a package ``engines/<name>/`` with the same module names (``dialect``,
``functions``, ``sql_functions``, ``queries``, ``staging``, ``errors``), its ``__init__``
naming the flags and re-exporting the functions; an entry in ``ENGINE_MODULES``
(``mixmesh.engines``); and the engine's row in the differential tests.
"""

from __future__ import annotations

import typing as t

from sqlglot import exp

if t.TYPE_CHECKING:
    from mixmesh.runtime.bindings import Binding, SqlFunctionBinding

REQUIRED = (
    "NAME", "bind", "register", "describe", "explain_error", "render", "run",
    "create_staging", "append_staging", "drop_staging", "release_memory", "write_budget",
    "create_sql_functions",
)
CAPABILITIES = {
    "FAST_PATH": ("observe_statement", "execute_split", "drop_dead_staging", "faster_statement", "execute_faster"),
    "ENGINE_FRAMES": ("is_engine_frame", "conform_frame", "dataframe"),
    "OVERWRITES_PARTITIONS": ("materialized",),
}


class Engine(t.Protocol):
    """An engine package as mixmesh calls it (engine packages satisfy it as modules)."""

    NAME: str
    FAST_PATH: bool
    ENGINE_FRAMES: bool
    OVERWRITES_PARTITIONS: bool

    def bind(self, binding: "Binding", sql_name: str, adapter: t.Any) -> None: ...

    def register(self, connection: t.Any, function: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any: ...

    def describe(
        self, adapter: t.Any, query: exp.Expr, params: t.Mapping[str, t.Any], cursor: t.Any = None
    ) -> t.List[exp.DataType]: ...

    def explain_error(
        self, error: BaseException, sql: str, bound: t.Mapping[str, "Binding"]
    ) -> t.Optional[Exception]: ...

    def render(self, expression: exp.Expr) -> str: ...

    def run(self, adapter: t.Any, expression: exp.Expr, params: t.Mapping[str, t.Any], **kwargs: t.Any) -> t.Any: ...

    def create_staging(
        self, adapter: t.Any, columns: t.Mapping[str, exp.DataType], *, model: t.Optional[str] = None
    ) -> str: ...

    def append_staging(self, adapter: t.Any, staging: str, table: t.Any) -> None: ...

    def drop_staging(self, adapter: t.Any, staging: str) -> None: ...

    def release_memory(self, adapter: t.Any, staging: str) -> None: ...

    def write_budget(self, adapter: t.Any, staging: str) -> t.ContextManager[None]: ...

    def create_sql_functions(self, adapter: t.Any, functions: t.Sequence["SqlFunctionBinding"]) -> None: ...


def missing(engine: t.Any) -> t.List[str]:
    """What an engine package lacks of the protocol and of the capabilities it claims."""
    absent = [name for name in REQUIRED if not hasattr(engine, name)]
    for flag, functions in CAPABILITIES.items():
        if not isinstance(getattr(engine, flag, None), bool):
            absent.append(flag)
        elif getattr(engine, flag):
            absent += [name for name in functions if not hasattr(engine, name)]
    return absent

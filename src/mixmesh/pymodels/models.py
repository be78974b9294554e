"""``@python_model``: a Python function becomes a SQLMesh Python model.

Built on SQLMesh's own ``@model``: the decorator builds the model's declaration
(``mixmesh.core.models``), registers the model in SQLMesh's terms, and returns a runner.
SQLMesh calls the runner with its ExecutionContext; the runner hands the function a
``ModelContext`` (safe SQL, ``start_date``/``end_date``), then lands what the function
returns through ``mixmesh.pymodels.landing``: validated at the language boundary, written
atomically.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import typing as t

from sqlglot import exp

from mixmesh import sink
from mixmesh.core import sql_types as types
from mixmesh.core.models import (
    BY_TIME_RANGE,
    BY_UNIQUE_KEY,
    ModelDefinitionError,
    ModelKind,
    ModelSpec,
    _fallbacks,
    _requirements,
    _retry,
    _timeout,
    build_spec,
    kind_name,
    signature_accepts,
)
from mixmesh.core.names import keep_import_path
from mixmesh.core.requirements import REQUIREMENTS_PROPERTY, requirements_expression

__all__ = ["ModelDefinitionError", "ModelKind", "ModelRunner", "ModelSpec", "python_model"]


def python_model(
    name: t.Optional[str] = None,
    *,
    kind: t.Any = ModelKind.FULL,
    columns: t.Optional[t.Mapping[str, str]] = None,
    grain: t.Optional[t.Union[str, t.Sequence[str]]] = None,
    time_column: t.Optional[str] = None,
    unique_key: t.Optional[t.Union[str, t.Sequence[str]]] = None,
    retry: t.Any = None,
    fallbacks: t.Optional[t.Mapping[t.Any, t.Callable[..., t.Any]]] = None,
    timeout_s: t.Optional[float] = None,
    requirements: t.Optional[t.Mapping[str, t.Any]] = None,
    **sqlmesh_arguments: t.Any,
) -> t.Callable[[t.Callable[..., t.Any]], t.Callable[..., t.Any]]:
    """Make a function a SQLMesh Python model that SQLMesh's plan, run and test execute.

    Args:
        name: the model's name (``analytics.customer_ltv_prediction``).
        kind: ``ModelKind.FULL`` (default), ``ModelKind.INCREMENTAL`` (by time range),
            ``ModelKind.INCREMENTAL_BY_UNIQUE_KEY``, or a SQLMesh kind.
        columns: column name -> SQL type; or leave it out and annotate the function's
            return with a TypedDict or dataclass describing one row.
        grain: the columns that identify a row.
        time_column: the time column of an incremental model; by default the one date or
            timestamp column of ``grain``.
        unique_key: the key of an INCREMENTAL_BY_UNIQUE_KEY model; ``grain`` by default.
        retry: a ``Retry``: the whole model runs again after a recoverable error
            (ConnectionError and TimeoutError unless ``on=`` says otherwise).
        fallbacks: error type (or tuple of types) -> a function with the model's own
            signature that produces the rows another way, e.g. ``{ArtifactError:
            rule_based, MemoryError: in_smaller_batches, ConnectionError: from_cache}``;
            used when the model still fails (after its retries) with an error of that kind.
        timeout_s: give up on a run of the function that takes longer (a hung external
            API): a TimeoutError, retried by ``retry``, then handled by ``fallbacks``.
        requirements: what the seed's decision framework weighs for ``mixmesh advise``
            (``latency_sla_ms``, ``daily_row_count``, ``machine_learning``...; see
            ``mixmesh.advice.advisor``). Metadata: SQLMesh keeps it as the session property
            ``mixmesh_requirements``, and editing it rebuilds nothing (write it as a literal
            dict: SQLMesh stores a module-level name used there with the model's code).
        sqlmesh_arguments: passed to SQLMesh's ``@model`` unchanged (owner, cron, start,
            description, depends_on, audits...).
    """

    def decorate(func: t.Callable[..., t.Any]) -> "ModelRunner":
        _check_sqlmesh_arguments(name or func.__name__, kind, sqlmesh_arguments)
        spec = build_spec(
            func,
            name=name,
            kind=kind,
            columns=columns,
            grain=grain,
            time_column=time_column,
            unique_key=unique_key,
        )
        spec = dataclasses.replace(
            spec,
            retry=_retry(spec.name, retry),
            fallbacks=_fallbacks(spec.name, fallbacks),
            timeout_s=_timeout(spec.name, timeout_s),
            requirements=_requirements(spec.name, requirements),
        )
        func.__mixmesh_spec__ = spec  # type: ignore[attr-defined]
        if _defined_in_a_file(func):  # not when SQLMesh re-creates it from its stored source
            _register(func, spec, name, kind, grain, sqlmesh_arguments)
        return ModelRunner(func, spec)

    return decorate


class ModelRunner:
    """What SQLMesh calls to evaluate the model: the function behind a safe context."""

    def __init__(self, func: t.Callable[..., t.Any], spec: ModelSpec) -> None:
        functools.update_wrapper(self, func)
        self.spec = spec
        sink.register_user_code(func.__code__, spec.name, "model", spec.name)

    def __call__(self, context: t.Any, **kwargs: t.Any) -> t.Iterator[t.Any]:
        """Stage the rows (retrying, falling back as declared), then hand SQLMesh one query."""
        from mixmesh.pymodels.context import ModelContext

        model_context = ModelContext(context, self.spec, kwargs)
        offered = {**model_context.interval_arguments(), **kwargs}
        staged = self._staged(model_context, offered)
        if _is_unit_test(context):
            # SQLMesh's unit tests compare a DataFrame; fixtures are small, so read the rows.
            from mixmesh import engines

            engine = engines.engine(context.engine_adapter.dialect)
            with engine.run(context.engine_adapter, staged.query, {}, staging=True) as rows:
                frame = rows.df()
            staged.drop()
            yield frame
            return
        try:
            yield _rows_to_write(context.engine_adapter, staged, self.spec)
        finally:  # also when SQLMesh's write failed and the generator is closed
            staged.drop()

    def _staged(self, context: t.Any, offered: t.Dict[str, t.Any]) -> t.Any:
        from mixmesh.pymodels.landing import stage
        from mixmesh.core.resilience import Timeout, record

        def attempt(func: t.Callable[..., t.Any]) -> t.Any:
            returned = func(context, **{k: v for k, v in offered.items() if signature_accepts(func, k)})
            return stage(returned, self.spec, context)  # batches are consumed here, inside the attempt

        if self.spec.timeout_s:
            # An abandoned attempt that finishes later drops the rows it staged.
            timeout = Timeout(self.spec.timeout_s, on_late_result=lambda staged: staged.drop())
            attempt = timeout.protect(attempt, function="model", model=self.spec.name)
        retried = self.spec.retry.protect(attempt, function="model", model=self.spec.name) if self.spec.retry else attempt
        try:
            return retried(self.__wrapped__)  # type: ignore[attr-defined]
        except Exception as error:
            fallback = self.spec.fallback_for(error)
            if fallback is None:
                raise
            record(self.spec.name, "model", "fallbacks", f"{type(error).__name__}: {error}; using {fallback.__name__}")
            return attempt(fallback)

    def __repr__(self) -> str:
        return f"<mixmesh python model {self.spec.name}>"


def _rows_to_write(adapter: t.Any, staged: t.Any, spec: ModelSpec) -> t.Any:
    """What SQLMesh writes: the query over the staging table, or the engine's own copy of its rows.

    On engines that overwrite partitions (INSERT OVERWRITE, REPLACE WHERE: Spark), SQLMesh reads
    every batch a time-range model yields before it writes them (it unions them, see
    ``SnapshotEvaluator._evaluate_model`` in sqlmesh/core/snapshot/evaluator.py), so it resumes
    the model's generator, which drops the staging table, before the write. There the engine
    keeps the rows apart from the staging table first (``materialized``).
    """
    from sqlmesh.core.engine_adapter.shared import InsertOverwriteStrategy

    from mixmesh import engines

    overwrites = adapter.INSERT_OVERWRITE_STRATEGY in (
        InsertOverwriteStrategy.INSERT_OVERWRITE,
        InsertOverwriteStrategy.REPLACE_WHERE,
    )
    if spec.time_column is None or not overwrites:
        return staged.query
    engine = engines.engine(adapter.dialect)
    if not engine.OVERWRITES_PARTITIONS:
        raise NotImplementedError(
            f"model {spec.name}: mixmesh cannot keep a time-range Python model's rows on {adapter.dialect}, "
            "which overwrites partitions"
        )
    return engine.materialized(adapter, staged.query)


def _is_unit_test(context: t.Any) -> bool:
    """Whether SQLMesh runs the model for a unit test (``sqlmesh test``, YAML tests)."""
    import sys

    module = sys.modules.get("sqlmesh.core.test.context")
    return module is not None and isinstance(context, module.TestExecutionContext)


def _check_sqlmesh_arguments(model: str, kind: t.Any, arguments: t.Mapping[str, t.Any]) -> None:
    """What SQLMesh would refuse obscurely (or read letter by letter), refused naming the model."""
    from sqlmesh.core.model.kind import ModelKindName

    if isinstance(arguments.get("depends_on"), str):
        raise ModelDefinitionError(
            f"model {model}: depends_on= takes a list of model names, got the string "
            f"{arguments['depends_on']!r}; write depends_on=[{arguments['depends_on']!r}]"
        )
    if kind_name(model, kind) not in {known.value for known in ModelKindName}:
        raw = kind.get("name") if isinstance(kind, dict) else getattr(kind, "name", kind)
        raise ModelDefinitionError(
            f"model {model}: kind {raw!r} is not a model kind; use ModelKind.FULL, ModelKind.INCREMENTAL or "
            "ModelKind.INCREMENTAL_BY_UNIQUE_KEY (or another SQLMesh kind)"
        )


def _defined_in_a_file(func: t.Callable[..., t.Any]) -> bool:
    return os.path.isfile(func.__code__.co_filename)


_TEXT_ARGUMENTS = ("owner", "description")


def _literal_text(key: str, value: t.Any) -> t.Any:
    """Text SQLMesh must keep as written: it reads a string with "@" in it as a macro call,
    so the seed's ``owner="data-science@company.com"`` would come out empty."""
    if key in _TEXT_ARGUMENTS and isinstance(value, str) and "@" in value:
        return exp.Literal.string(value)
    return value


def _register(
    func: t.Callable[..., t.Any],
    spec: ModelSpec,
    name: t.Optional[str],
    kind: t.Any,
    grain: t.Any,
    sqlmesh_arguments: t.Dict[str, t.Any],
) -> None:
    """Register the model with SQLMesh's ``@model``, in SQLMesh's own terms."""
    from sqlmesh.core.model import model
    from mixmesh.pymodels.dependencies import tables_read

    arguments = {key: _literal_text(key, value) for key, value in sqlmesh_arguments.items()}
    arguments["kind"] = _sqlmesh_kind(spec, kind)
    arguments["columns"] = {column: types.sql(sql_type) for column, sql_type in spec.columns.items()}
    if grain is not None:
        arguments["grain"] = list(spec.grain)
    if spec.requirements:
        arguments["session_properties"] = _with_requirements(spec, arguments.get("session_properties"))
    declared = set(arguments.get("depends_on") or ())
    registration = model(name, **arguments)  # no name: SQLMesh infers it from the file's path
    registration(func)
    build = registration.model

    def build_with_dependencies(**kwargs: t.Any) -> t.Any:
        # At load, after the whole module ran: helpers defined below the model count too.
        discovered = tables_read(func, arguments.get("dialect") or kwargs.get("dialect"))
        if discovered - declared:
            registration.kwargs["depends_on"] = sorted(declared | discovered)
        return build(**kwargs)

    registration.model = build_with_dependencies


def _with_requirements(spec: ModelSpec, session_properties: t.Any) -> t.Dict[str, t.Any]:
    """The model's session properties with its requirements added (SQLMesh metadata)."""
    if session_properties is not None and not isinstance(session_properties, t.Mapping):
        raise ModelDefinitionError(
            f"model {spec.name}: with requirements=, pass session_properties= as a dict, not {session_properties!r}"
        )
    if REQUIREMENTS_PROPERTY in (session_properties or {}):
        raise ModelDefinitionError(
            f"model {spec.name}: requirements are declared twice, in requirements= and in "
            f"session_properties[{REQUIREMENTS_PROPERTY!r}]; keep requirements="
        )
    return {**(session_properties or {}), REQUIREMENTS_PROPERTY: requirements_expression(spec.requirements)}


def _sqlmesh_kind(spec: ModelSpec, kind: t.Any) -> t.Any:
    from sqlmesh.core.model.kind import ModelKindName

    if spec.kind == BY_TIME_RANGE:
        extra = dict(kind) if isinstance(kind, dict) else {}
        return {**extra, "name": ModelKindName.INCREMENTAL_BY_TIME_RANGE, "time_column": spec.time_column}
    if spec.kind == BY_UNIQUE_KEY:
        extra = dict(kind) if isinstance(kind, dict) else {}
        return {**extra, "name": ModelKindName.INCREMENTAL_BY_UNIQUE_KEY, "unique_key": list(spec.unique_key)}
    if isinstance(kind, dict):
        return kind
    return {"name": ModelKindName(spec.kind)}




# Public names keep the path projects import them from (see mixmesh.core.names).
keep_import_path(globals(), "mixmesh.models")

"""``@python_model``: a Python function becomes a SQLMesh Python model.

Built on SQLMesh's own ``@model``: the decorator translates the seed document's spelling
(``kind=ModelKind.INCREMENTAL``, ``grain=[...]``, columns from a return annotation) into
SQLMesh's arguments, registers the model, and returns a runner. SQLMesh calls the runner
with its ExecutionContext; the runner hands the function a ``ModelContext`` (safe SQL,
``start_date``/``end_date``), then lands what the function returns through
``mixmesh.landing``: validated at the language boundary, written atomically.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import os
import typing as t

from sqlglot import exp

from mixmesh import types
from mixmesh.errors import MixmeshError


class ModelDefinitionError(MixmeshError, ValueError):
    """A ``@python_model`` declaration SQLMesh cannot run (kind, columns, grain...)."""


class ModelKind(str, enum.Enum):
    """Model kinds in the seed document's spelling (SQLMesh's own kinds are accepted too)."""

    FULL = "FULL"
    INCREMENTAL = "INCREMENTAL"  # incremental by time range, as the seed means it
    INCREMENTAL_BY_TIME_RANGE = "INCREMENTAL_BY_TIME_RANGE"
    INCREMENTAL_BY_UNIQUE_KEY = "INCREMENTAL_BY_UNIQUE_KEY"
    VIEW = "VIEW"
    SEED = "SEED"


BY_TIME_RANGE = ModelKind.INCREMENTAL_BY_TIME_RANGE.value
BY_UNIQUE_KEY = ModelKind.INCREMENTAL_BY_UNIQUE_KEY.value
_REFUSED = {
    "VIEW": "a view is a SQL query; write it as a SQL model",
    "SEED": "a seed is loaded from a CSV file; declare it as a SEED model in SQL",
    "EMBEDDED": "an embedded model is a SQL query inlined into others; write it as a SQL model",
    "EXTERNAL": "an external table is declared in external_models.yaml",
}
_TIME_TYPES = (exp.DataType.Type.DATE, exp.DataType.Type.DATETIME, *exp.DataType.TEMPORAL_TYPES)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A Python model as mixmesh runs it: its function, kind, columns and keys."""

    name: str
    func: t.Callable[..., t.Any]
    kind: str  # a SQLMesh kind name
    columns: t.Dict[str, exp.DataType]
    grain: t.Tuple[str, ...] = ()
    time_column: t.Optional[str] = None
    unique_key: t.Tuple[str, ...] = ()
    columns_from_hint: bool = False
    retry: t.Any = None  # a resilience.Retry for the whole model (recoverable errors)
    fallbacks: t.Tuple[t.Tuple[t.Tuple[type, ...], t.Callable[..., t.Any]], ...] = ()
    timeout_s: t.Optional[float] = None
    # The seed's decision-framework requirements (mixmesh.advisor): metadata, for `mixmesh advise`.
    requirements: t.Mapping[str, t.Any] = dataclasses.field(default_factory=dict)

    def fallback_for(self, error: BaseException) -> t.Optional[t.Callable[..., t.Any]]:
        """The declared fallback for this kind of error, the first that matches."""
        return next((fallback for kinds, fallback in self.fallbacks if isinstance(error, kinds)), None)

    def explicit_decorator_arguments(self) -> t.Dict[str, t.Any]:
        """Decorator arguments that pin what hints said (SQLMesh stores no return hint)."""
        if not self.columns_from_hint:
            return {}
        return {"columns": {column: types.sql(sql_type) for column, sql_type in self.columns.items()}}

    def decorator(self) -> t.Callable[..., t.Any]:
        """The decorator this spec comes from (its stored source calls it again)."""
        return python_model

    def hints_to_keep(self) -> t.List[str]:
        return []

    def metadata_decorator_arguments(self) -> t.Tuple[str, ...]:
        """Decorator arguments the stored source leaves out: SQLMesh keeps them as the model's
        metadata (``requirements`` as a session property), so editing one rebuilds nothing,
        as for a SQL model. In the source they would enter the data fingerprint."""
        return ("requirements", "description", "owner", "tags", "column_descriptions")

    @property
    def is_incremental_by_time(self) -> bool:
        return self.kind == BY_TIME_RANGE


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
            ``mixmesh.advisor``). Metadata: SQLMesh keeps it as the session property
            ``mixmesh_requirements``, and editing it rebuilds nothing (write it as a literal
            dict: SQLMesh stores a module-level name used there with the model's code).
        sqlmesh_arguments: passed to SQLMesh's ``@model`` unchanged (owner, cron, start,
            description, depends_on, audits...).
    """

    def decorate(func: t.Callable[..., t.Any]) -> "ModelRunner":
        if isinstance(sqlmesh_arguments.get("depends_on"), str):
            raise ModelDefinitionError(
                f"model {name or func.__name__}: depends_on= takes a list of model names, got the string "
                f"{sqlmesh_arguments['depends_on']!r}; write depends_on=[{sqlmesh_arguments['depends_on']!r}]"
            )
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
        from mixmesh import sqlmesh_bridge

        sqlmesh_bridge.install()
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
        from mixmesh.monitor import capture

        capture.register_user_code(func.__code__, spec.name, "model", spec.name)

    def __call__(self, context: t.Any, **kwargs: t.Any) -> t.Iterator[t.Any]:
        """Stage the rows (retrying, falling back as declared), then hand SQLMesh one query."""
        from mixmesh.context import ModelContext

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
        from mixmesh.landing import stage
        from mixmesh.resilience import Timeout, record

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
    if not hasattr(engine, "materialized"):
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


def build_spec(
    func: t.Callable[..., t.Any],
    *,
    name: t.Optional[str],
    kind: t.Any,
    columns: t.Optional[t.Mapping[str, str]],
    grain: t.Optional[t.Union[str, t.Sequence[str]]],
    time_column: t.Optional[str],
    unique_key: t.Optional[t.Union[str, t.Sequence[str]]],
) -> ModelSpec:
    """Read the declaration and the function's return hint into a ModelSpec."""
    model = name or func.__name__  # for messages when SQLMesh infers the name from the path
    column_types, from_hint = _columns(func, model, columns)
    grain_columns = _names(grain)
    _check_known(model, "grain", grain_columns, column_types)
    kind_name = _kind_name(model, kind)
    spec_time_column = None
    keys: t.Tuple[str, ...] = ()
    if kind_name == BY_TIME_RANGE:
        spec_time_column = time_column or _time_column_from_grain(model, grain_columns, column_types)
        _check_known(model, "time_column", (spec_time_column,), column_types)
    elif kind_name == BY_UNIQUE_KEY:
        keys = _names(unique_key) or grain_columns
        if not keys:
            raise ModelDefinitionError(
                f"model {model}: an INCREMENTAL_BY_UNIQUE_KEY model needs unique_key=[...] or grain=[...]"
            )
        _check_known(model, "unique_key", keys, column_types)
    return ModelSpec(
        name=model,
        func=func,
        kind=kind_name,
        columns=column_types,
        grain=grain_columns,
        time_column=spec_time_column,
        unique_key=keys,
        columns_from_hint=from_hint,
    )


def _retry(model: str, retry: t.Any) -> t.Any:
    from mixmesh.resilience import Retry

    if retry is not None and not isinstance(retry, Retry):
        raise ModelDefinitionError(f"model {model}: retry= takes a mixmesh Retry(...), got {retry!r}")
    if retry is not None and retry.problems():
        raise ModelDefinitionError(f"model {model}: retry=Retry(...): {'; '.join(retry.problems())}")
    return retry


def _timeout(model: str, timeout_s: t.Any) -> t.Optional[float]:
    from mixmesh.resilience import _seconds

    if timeout_s is not None and not _seconds(timeout_s):
        raise ModelDefinitionError(
            f"model {model}: timeout_s must be a positive, finite number of seconds, got {timeout_s!r}"
        )
    return timeout_s


def _requirements(model: str, requirements: t.Optional[t.Mapping[str, t.Any]]) -> t.Dict[str, t.Any]:
    from mixmesh.advisor import RequirementsError, check_requirements

    if requirements is None:
        return {}
    try:
        check_requirements(requirements)
    except RequirementsError as error:
        raise ModelDefinitionError(f"model {model}: requirements=: {error}") from None
    return dict(requirements)


def _fallbacks(
    model: str, fallbacks: t.Optional[t.Mapping[t.Any, t.Callable[..., t.Any]]]
) -> t.Tuple[t.Tuple[t.Tuple[type, ...], t.Callable[..., t.Any]], ...]:
    declared = []
    for kinds, fallback in (fallbacks or {}).items():
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        if not all(isinstance(kind, type) and issubclass(kind, BaseException) for kind in kinds) or not callable(fallback):
            raise ModelDefinitionError(
                f"model {model}: fallbacks= maps error types to functions, e.g. {{ConnectionError: from_cache}}; "
                f"got {kinds!r}: {fallback!r}"
            )
        declared.append((kinds, fallback))
    return tuple(declared)


def _columns(
    func: t.Callable[..., t.Any], model: str, columns: t.Optional[t.Mapping[str, str]]
) -> t.Tuple[t.Dict[str, exp.DataType], bool]:
    if columns is not None and not isinstance(columns, t.Mapping):
        raise ModelDefinitionError(
            f"model {model}: columns= maps each column's name to its SQL type, e.g. "
            f"columns={{'customer_id': 'INT'}}; got {columns!r}"
        )
    if columns:
        return {name: _sql_type(model, name, sql) for name, sql in columns.items()}, False
    hint = t.get_type_hints(func, include_extras=True).get("return")
    if hint is None or not types.is_struct_hint(hint):
        raise ModelDefinitionError(
            f"model {model}: declare its columns, with columns={{'name': 'SQL type', ...}} or a "
            "return annotation that is a TypedDict or dataclass describing one row"
        )
    row = t.get_type_hints(hint, include_extras=True)
    return {name: types.sql_type_of_hint(field) for name, field in row.items()}, True


def _sql_type(model: str, column: str, sql: t.Any) -> exp.DataType:
    if isinstance(sql, exp.DataType):
        return sql
    try:
        return exp.DataType.build(str(sql), dialect="duckdb")
    except Exception as error:
        raise ModelDefinitionError(f"model {model}: column {column!r}: {sql!r} is not a SQL type ({error})") from None


def _names(value: t.Optional[t.Union[str, t.Sequence[str]]]) -> t.Tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _check_known(model: str, what: str, names: t.Sequence[str], columns: t.Mapping[str, t.Any]) -> None:
    unknown = [n for n in names if n not in columns]
    if unknown:
        raise ModelDefinitionError(
            f"model {model}: {what} names {unknown}, which are not among its columns {list(columns)}"
        )


def _kind_name(model: str, kind: t.Any) -> str:
    raw = kind.get("name") if isinstance(kind, dict) else getattr(kind, "name", kind)
    text = str(getattr(raw, "value", raw)).upper()
    if text == ModelKind.INCREMENTAL.value:
        return BY_TIME_RANGE
    if text in _REFUSED:
        raise ModelDefinitionError(f"model {model}: kind {text} is not for Python models: {_REFUSED[text]}")
    from sqlmesh.core.model.kind import ModelKindName

    if text not in {kind.value for kind in ModelKindName}:
        raise ModelDefinitionError(
            f"model {model}: kind {raw!r} is not a model kind; use ModelKind.FULL, ModelKind.INCREMENTAL or "
            "ModelKind.INCREMENTAL_BY_UNIQUE_KEY (or another SQLMesh kind)"
        )
    return text


def _time_column_from_grain(model: str, grain: t.Sequence[str], columns: t.Mapping[str, exp.DataType]) -> str:
    candidates = [c for c in grain if columns[c].is_type(*_TIME_TYPES)]
    if len(candidates) == 1:
        return candidates[0]
    found = f"its grain has {len(candidates)} date/timestamp columns {candidates}" if candidates else (
        "its grain has no date or timestamp column"
    )
    raise ModelDefinitionError(
        f"model {model}: an INCREMENTAL model needs its time column; {found}. "
        "Add time_column='...' to @python_model"
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
    from mixmesh.dependencies import tables_read

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
    from mixmesh.advice import REQUIREMENTS_PROPERTY, requirements_expression

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


def signature_accepts(func: t.Callable[..., t.Any], name: str) -> bool:
    """Whether ``func`` takes a keyword argument ``name`` (or ``**kwargs``)."""
    parameters = inspect.signature(func).parameters.values()
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in parameters)

"""A Python model's declaration: its kind, columns, grain and policies (``ModelSpec``).

``@python_model`` (``mixmesh.pymodels.models``) builds one from the seed document's spelling
(``kind=ModelKind.INCREMENTAL``, ``grain=[...]``, columns from a return annotation) and
refuses what SQLMesh could not run, naming the model.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import typing as t

from sqlglot import exp

from mixmesh.core import sql_types as types
from mixmesh.core.errors import MixmeshError
from mixmesh.core.names import keep_import_path


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
    # The seed's decision-framework requirements (mixmesh.advice.advisor): metadata, for `mixmesh advise`.
    requirements: t.Mapping[str, t.Any] = dataclasses.field(default_factory=dict)

    def fallback_for(self, error: BaseException) -> t.Optional[t.Callable[..., t.Any]]:
        """The declared fallback for this kind of error, the first that matches."""
        return next((fallback for kinds, fallback in self.fallbacks if isinstance(error, kinds)), None)

    def explicit_decorator_arguments(self) -> t.Dict[str, t.Any]:
        """Decorator arguments that pin what hints said (SQLMesh stores no return hint)."""
        if not self.columns_from_hint:
            return {}
        return {"columns": {column: types.sql(sql_type) for column, sql_type in self.columns.items()}}

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
    named = kind_name(model, kind)
    spec_time_column = None
    keys: t.Tuple[str, ...] = ()
    if named == BY_TIME_RANGE:
        spec_time_column = time_column or _time_column_from_grain(model, grain_columns, column_types)
        _check_known(model, "time_column", (spec_time_column,), column_types)
    elif named == BY_UNIQUE_KEY:
        keys = _names(unique_key) or grain_columns
        if not keys:
            raise ModelDefinitionError(
                f"model {model}: an INCREMENTAL_BY_UNIQUE_KEY model needs unique_key=[...] or grain=[...]"
            )
        _check_known(model, "unique_key", keys, column_types)
    return ModelSpec(
        name=model,
        func=func,
        kind=named,
        columns=column_types,
        grain=grain_columns,
        time_column=spec_time_column,
        unique_key=keys,
        columns_from_hint=from_hint,
    )


def _retry(model: str, retry: t.Any) -> t.Any:
    from mixmesh.core.resilience import Retry

    if retry is not None and not isinstance(retry, Retry):
        raise ModelDefinitionError(f"model {model}: retry= takes a mixmesh Retry(...), got {retry!r}")
    if retry is not None and retry.problems():
        raise ModelDefinitionError(f"model {model}: retry=Retry(...): {'; '.join(retry.problems())}")
    return retry


def _timeout(model: str, timeout_s: t.Any) -> t.Optional[float]:
    from mixmesh.core.resilience import _seconds

    if timeout_s is not None and not _seconds(timeout_s):
        raise ModelDefinitionError(
            f"model {model}: timeout_s must be a positive, finite number of seconds, got {timeout_s!r}"
        )
    return timeout_s


def _requirements(model: str, requirements: t.Optional[t.Mapping[str, t.Any]]) -> t.Dict[str, t.Any]:
    from mixmesh.core.requirements import RequirementsError, check_requirements

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


def kind_name(model: str, kind: t.Any) -> str:
    """The kind's name as SQLMesh spells it (``INCREMENTAL`` is by time range)."""
    raw = kind.get("name") if isinstance(kind, dict) else getattr(kind, "name", kind)
    text = str(getattr(raw, "value", raw)).upper()
    if text == ModelKind.INCREMENTAL.value:
        return BY_TIME_RANGE
    if text in _REFUSED:
        raise ModelDefinitionError(f"model {model}: kind {text} is not for Python models: {_REFUSED[text]}")
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


def signature_accepts(func: t.Callable[..., t.Any], name: str) -> bool:
    """Whether ``func`` takes a keyword argument ``name`` (or ``**kwargs``)."""
    parameters = inspect.signature(func).parameters.values()
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in parameters)


# Public names keep the path projects import them from (see mixmesh.core.names).
keep_import_path(globals(), "mixmesh.models")

"""``mixmesh advise``: per model, the pattern it follows beside the one the seed's framework recommends.

- The pattern a model follows comes from its structure (``mixmesh.advice.structure``).
- The recommendation is ``advisor.explain_pattern`` over the model's requirements:

  - **declared**, in a SQL model's MODEL block as a SQLMesh session property (SQLMesh has no
    free-form metadata field; session properties are metadata, in the model's metadata hash
    and not its data hash, and DuckDB and Spark ignore the ones they do not know)::

        MODEL (
          name analytics.scored,
          session_properties (mixmesh_requirements = (machine_learning = true, latency_sla_ms = 500))
        );

    and in ``@python_model(..., requirements={"machine_learning": True})``, which stores them
    the same way (a SQLMesh ``@model`` can pass ``session_properties={"mixmesh_requirements":
    {...}}`` itself);
  - **measured**, from the metrics store (``mixmesh.advice.measured``): ``daily_row_count``
    is the rows an incremental model wrote per day of the intervals it built, and for a FULL
    model the rows its table holds over the days its time column spans (none stated without
    one). The p95 of its run time is shown beside, never used as ``latency_sla_ms``: an SLA
    is a promise, not a measurement.

  A declared figure beats a measured one; each figure says where it came from.
- A model matches when it follows the recommended pattern; a plain SQL model is compared with
  sql_primary_python_enhancement (SQL, with Python only where it must), a plain Python model
  with python_primary_sql_integration.
"""

from __future__ import annotations

import dataclasses
import typing as t
from pathlib import Path

from sqlglot import exp

from mixmesh.advice import advisor
from mixmesh.advice.measured import (  # noqa: F401 - re-exported
    PREVIEW_COMMANDS,
    DataSpan,
    Measured,
    describe,
    measure,
    measure_model,
)
from mixmesh.core.errors import MixmeshError
from mixmesh.core.requirements import REQUIREMENTS_PROPERTY, requirements_expression  # noqa: F401 - re-exported
from mixmesh.advice.structure import CLOSEST_PATTERN, Structure, is_advisable, model_structure, short_name

if t.TYPE_CHECKING:
    import pandas as pd

    from mixmesh.monitor.store import MetricsStore



class AdviceError(MixmeshError, ValueError):
    """Advice cannot be given: a requirement that cannot be read, a model that does not exist."""


@dataclasses.dataclass(frozen=True)
class Figure:
    """A figure about a model: its value, whether declared or measured, and whether the framework used it."""

    name: str
    value: t.Any
    source: str  # "declared" or "measured"
    detail: str
    used: bool = True


@dataclasses.dataclass(frozen=True)
class Advice:
    """One model: the pattern it follows, the one recommended, and why."""

    model: str
    structure: Structure
    choice: advisor.PatternChoice
    requirements: t.Dict[str, t.Any]  # what the framework was given
    figures: t.Tuple[Figure, ...]
    measured: Measured

    @property
    def matches(self) -> bool:
        return CLOSEST_PATTERN.get(self.structure.pattern, self.structure.pattern) == self.choice.pattern

    @property
    def reasons(self) -> t.List[str]:
        figures = [f"{f.name} = {_show(f.value)}: {f.detail}" for f in self.figures]
        if not any(f.source == "declared" for f in self.figures):
            figures.insert(0, "no requirements declared")
        if not self.measured.runs:
            figures.append("no runs of this model in the metrics store")
        return [f"follows: {self.structure.reason}", f"recommended: {self.choice.reason}", *figures]

    def to_dict(self) -> t.Dict[str, t.Any]:
        return {
            "model": self.model,
            "language": self.structure.language,
            "follows": self.structure.pattern,
            "follows_reason": self.structure.reason,
            "python_functions": list(self.structure.functions),
            "recommended": self.choice.pattern,
            "recommended_reason": self.choice.reason,
            "matches": self.matches,
            "requirements": dict(self.requirements),
            "figures": [dataclasses.asdict(f) for f in self.figures],
            "measured": dataclasses.asdict(self.measured),
            "reasons": self.reasons,
        }


def advise(
    project: t.Union[str, Path],
    *,
    model: t.Optional[str] = None,
    store: t.Optional["MetricsStore"] = None,
    gateway: t.Optional[str] = None,
    config: t.Optional[str] = None,
) -> t.List[Advice]:
    """Advice for each SQL and Python model of the SQLMesh project at ``project`` (loaded, not run).

    ``store`` defaults to the project's ``.mixmesh/metrics.duckdb``; ``model`` limits it to one;
    ``gateway`` and ``config`` mean what they mean to ``sqlmesh`` (the connection whose tables'
    sizes are read, a config.py's config object).
    """
    from sqlmesh import Context

    from mixmesh import sqlmesh as integration
    from mixmesh.monitor.store import MetricsStore

    integration.install()  # a project whose only mixmesh part is sql/udfs
    store = store or MetricsStore.for_project(project)
    context = Context(paths=str(project), gateway=gateway, config=config)
    try:
        models = {short_name(m.fqn): m for m in context.models.values() if is_advisable(m)}
        if model is not None:
            wanted = short_name(model)
            if wanted not in models:
                raise AdviceError(f"no SQL or Python model {model} in {project}; its models: {', '.join(sorted(models)) or 'none'}")
            models = {wanted: models[wanted]}
        runs = _runs_by_model(store)
        return [advise_model(models[name], runs.get(name), adapter=context.engine_adapter) for name in sorted(models)]
    finally:
        context.close()


def advise_model(model: t.Any, runs: t.Optional["pd.DataFrame"] = None, *, adapter: t.Any = None) -> Advice:
    """Advice for one loaded SQLMesh model, given its rows of ``MetricsStore.model_runs()``;
    ``adapter``, the engine adapter a FULL model's table is read through (the days its rows cover)."""
    name = short_name(model.fqn)
    structure = model_structure(model)
    declared = declared_requirements(model)
    measured = measure_model(model, runs, adapter)
    where = "declared in MODEL (session_properties)" if structure.language == "sql" else "declared in the model's decorator"
    figures = [Figure(key, value, "declared", where) for key, value in declared.items()]
    requirements = dict(declared)
    if measured.daily_row_count is not None:
        measurement = describe(measured)
        if "daily_row_count" in declared:
            figures[list(declared).index("daily_row_count")] = Figure(
                "daily_row_count", declared["daily_row_count"], "declared", f"{where}; measured {measurement}"
            )
        else:
            requirements["daily_row_count"] = measured.daily_row_count
            figures.append(Figure("daily_row_count", measured.daily_row_count, "measured", f"measured: {measurement}"))
    elif measured.rows_per_build is not None:
        figures.append(Figure("rows_per_build", measured.rows_per_build, "measured", (
            f"measured: its latest build wrote {measured.rows_per_build:,} rows; a FULL model rebuilds all its rows "
            f"each run, and {measured.no_span}: no rows a day stated"), used=False))
    if measured.p95_total_ms is not None:
        detail = f"measured over {measured.runs} run(s); shown beside, the framework takes a declared latency_sla_ms only"
        sla = declared.get("latency_sla_ms")
        if sla is not None and measured.p95_total_ms > sla:
            detail += f"; above the declared SLA of {sla:,} ms"
        figures.append(Figure("p95_run_ms", round(measured.p95_total_ms, 1), "measured", detail, used=False))
    return Advice(name, structure, advisor.explain_pattern(requirements), requirements, tuple(figures), measured)


def declared_requirements(model: t.Any) -> t.Dict[str, t.Any]:
    """The requirements a model declares (``session_properties`` ``mixmesh_requirements``), checked."""
    expression = model.session_properties.get(REQUIREMENTS_PROPERTY)
    if expression is None:
        return {}
    try:
        requirements = requirements_from_expression(expression)
        advisor.check_requirements(requirements)
    except (AdviceError, advisor.RequirementsError) as error:
        where = f" ({model._path})" if getattr(model, "_path", None) else ""
        raise AdviceError(f"model {short_name(model.fqn)}{where}: {REQUIREMENTS_PROPERTY}: {error}") from None
    return requirements


def requirements_from_expression(expression: t.Any) -> t.Dict[str, t.Any]:
    """Requirements from a session property's value: ``(name = value, ...)``, or a MAP (a dict in Python)."""
    if isinstance(expression, exp.Paren):
        pairs = [_pair(expression.this)]
    elif isinstance(expression, (exp.Tuple, exp.Struct)):
        pairs = [_pair(e) for e in expression.expressions]
    elif isinstance(expression, (exp.Map, exp.VarMap)) and isinstance(expression.args.get("keys"), exp.Array):
        pairs = list(zip(expression.args["keys"].expressions, expression.args["values"].expressions))
    else:
        raise AdviceError(f"write it as (name = value, ...), not {_sql(expression)}")
    return {_key(key): _value(key, value) for key, value in pairs}


def format_text(advice: t.Sequence[Advice]) -> str:
    """The advice as ``mixmesh advise`` prints it."""
    blocks = []
    for item in advice:
        language = "SQL" if item.structure.language == "sql" else "Python"
        lines = [
            f"{item.model} ({language} model)",
            f"  follows      {item.structure.pattern}: {item.structure.reason}",
            f"  recommended  {item.choice.pattern}: {item.choice.reason}",
            f"  match        {'yes' if item.matches else 'no'}",
        ]
        figures = item.reasons[2:]
        for i, figure in enumerate(figures):
            lines.append(f"  {'figures' if i == 0 else '':<12} {figure}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else "no SQL or Python models"


def _runs_by_model(store: "MetricsStore") -> t.Dict[str, "pd.DataFrame"]:
    runs = store.model_runs()
    if runs.empty:
        return {}
    names = runs["model"].map(short_name)
    return {name: rows for name, rows in runs.groupby(names)}


def _pair(expression: exp.Expr) -> t.Tuple[exp.Expr, exp.Expr]:
    if not isinstance(expression, (exp.EQ, exp.PropertyEQ)):
        raise AdviceError(f"write each requirement as name = value, not {_sql(expression)}")
    return expression.this, expression.expression


def _key(key: exp.Expr) -> str:
    if isinstance(key, (exp.Column, exp.Identifier)) or (isinstance(key, exp.Literal) and key.is_string):
        return key.name
    raise AdviceError(f"a requirement's name is a word, not {_sql(key)}")


def _value(key: exp.Expr, value: exp.Expr) -> t.Any:
    if isinstance(value, exp.Boolean):
        return bool(value.this)
    if isinstance(value, exp.Neg) and isinstance(value.this, exp.Literal) and value.this.is_number:
        return -_value(key, value.this)
    if isinstance(value, exp.Literal):
        if value.is_string:
            return value.name
        text = str(value.this)
        try:
            return int(text)
        except ValueError:
            number = float(text)
            return int(number) if number.is_integer() else number
    if isinstance(value, exp.Null):
        return None
    raise AdviceError(f"{key.name} = {_sql(value)}: a requirement's value is a number, true or false")


def _sql(expression: t.Any) -> str:
    return expression.sql() if isinstance(expression, exp.Expr) else repr(expression)


def _show(value: t.Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return f"{value:,}"
    return str(value)

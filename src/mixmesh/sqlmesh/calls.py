"""A ``@function(...)`` call in a model, as SQLMesh's macro evaluator expands it.

``@python_risk_score(a, b)`` becomes ``CAST(python_risk_score__<digest>(a, b) AS DOUBLE)``,
a *call name* (``mixmesh.core.names.binding_name``); right before a statement holding it
runs, the call is bound in the engine for the types its arguments have there
(``mixmesh.engines.call_sites``). The digest changes with the function's code and its calling
model, so two versions of a function never share a binding and every error can name its model.
"""

from __future__ import annotations

import typing as t

from sqlglot import exp

from mixmesh.core.names import short_name
from mixmesh.runtime.bindings import bound_call, call_arguments

if t.TYPE_CHECKING:
    from sqlmesh.core.macros import MacroEvaluator

    from mixmesh.runtime.functions import Udf


def expand_call(
    udf: "Udf", evaluator: "MacroEvaluator", args: t.Sequence[t.Any], kwargs: t.Optional[t.Mapping[str, t.Any]] = None
) -> exp.Expr:
    """The SQL a ``@function(...)`` call becomes: a call the engine binds for its argument types
    right before the statement runs (``mixmesh.engines.call_sites``)."""
    spec = udf.spec
    model = model_name(evaluator)
    arguments = call_arguments(spec, model, args, kwargs or {})
    adapter = evaluator.locals.get("engine_adapter") if evaluator.runtime_stage != "loading" else None
    source = stored_source(evaluator, spec.func) if adapter is not None else None
    return bound_call(spec, model, arguments, adapter, source=source)


def stored_source(evaluator: "MacroEvaluator", func: t.Callable[..., t.Any]) -> t.Optional[str]:
    """The source SQLMesh re-created a function from (Python itself cannot find it)."""
    for executable in evaluator.python_env.values():
        if executable.is_definition and executable.name == func.__name__:
            return executable.payload
    return None


def model_name(evaluator: "MacroEvaluator") -> t.Optional[str]:
    """The calling model as people write it (analytics.scored), when SQLMesh knows it."""
    fqn = getattr(evaluator, "_model_fqn", None)
    return short_name(fqn) if fqn else None

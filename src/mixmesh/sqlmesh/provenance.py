"""Provenance in SQL models: the ``@with_provenance(...)`` macro, and the two audits every
project gets, ``fallback_share`` and ``pinned_artifact``, which read what it recorded.

``@with_provenance(@python_risk_score(details, total, n)) AS risk`` gives one STRUCT per row,
``risk.value`` and ``risk.provenance`` (``mixmesh.runtime.provenance``), from one call of the
function. The audits are added to every project's audits at load time, as ``quarantined_rows``
is (a project's own audit of the same name wins); a failed one names the model, the function
and the artifact.
"""

from __future__ import annotations

import functools
import typing as t

from sqlglot import exp

from mixmesh.core.errors import FunctionCallError
from mixmesh.core.names import binding_name
from mixmesh.runtime import bindings, provenance
from mixmesh.sqlmesh.quarantine import failed_rows_messages, quarantined_rows_audit, with_found

if t.TYPE_CHECKING:
    from sqlmesh.core.macros import MacroEvaluator

MACRO = "with_provenance"
PINNED_MACRO = "mixmesh_pinned_digests"
FALLBACK_AUDIT = "fallback_share"
PINNED_AUDIT = "pinned_artifact"
ARTIFACTS_ENTRY = "__mixmesh_artifacts__"  # sqlmesh.source.ARTIFACTS_ENTRY: the plan's digests

# The share of rows whose value came from a fallback or an on_error value, per function.
FALLBACK_SQL = f"""
AUDIT (name {FALLBACK_AUDIT}, defaults (max_share = 0.0), blocking true);
SELECT function_name, artifact, fell_back, total,
  'function ' || function_name || ': ' || CAST(fell_back AS VARCHAR) || ' of ' || CAST(total AS VARCHAR)
  || ' rows of this interval came from a fallback or an on_error value, more than max_share '
  || CAST(@max_share AS VARCHAR)
  || COALESCE('; artifact ' || artifact || ' did not load: its fallback answered', '') AS message
FROM (
  SELECT recorded.function AS function_name,
    MAX(CASE WHEN recorded.source = 'fallback' THEN recorded.artifact END) AS artifact,
    SUM(CASE WHEN recorded.source IN ('fallback', 'on_error') THEN 1 ELSE 0 END) AS fell_back,
    COUNT(*) AS total
  FROM (SELECT @column AS recorded FROM @this_model) AS rows_recorded
  WHERE recorded IS NOT NULL
  GROUP BY recorded.function
) AS counted
WHERE fell_back > CAST(@max_share AS DOUBLE) * total
"""

# Rows whose artifact digest is not the one the model's plan pinned.
PINNED_SQL = f"""
AUDIT (name {PINNED_AUDIT}, blocking true);
SELECT function_name, artifact, recorded_digest, pinned_digest, COUNT(*) AS row_count,
  'function ' || function_name || ': ' || CAST(COUNT(*) AS VARCHAR) || ' rows came from artifact '
  || artifact || ' with digest ' || recorded_digest || ', not the digest the plan pinned ('
  || COALESCE(pinned_digest, 'none') || ')' AS message
FROM (
  SELECT recorded.function AS function_name, recorded.artifact AS artifact,
    recorded.artifact_digest AS recorded_digest, @{PINNED_MACRO}(recorded.artifact) AS pinned_digest
  FROM (SELECT @column AS recorded FROM @this_model) AS rows_recorded
  WHERE recorded.artifact_digest IS NOT NULL
) AS compared
WHERE pinned_digest IS NULL OR recorded_digest <> pinned_digest OR recorded_digest LIKE 'unpinned %'
GROUP BY function_name, artifact, recorded_digest, pinned_digest
"""

AUDITS = {FALLBACK_AUDIT: FALLBACK_SQL, PINNED_AUDIT: PINNED_SQL}


# ------------------------------------------------------------------------------- the macros


def with_provenance(evaluator: "MacroEvaluator", call: exp.Expr) -> exp.Expr:
    """``@with_provenance(@f(...))``: the call of ``f`` as a STRUCT of its value and provenance."""
    known = bindings.calls_known()
    found = [node for node in call.find_all(exp.Anonymous) if node.name.lower() in known]
    if len(found) != 1:
        raise FunctionCallError(
            f"@{MACRO} takes one call of a mixmesh function, written as a macro call: "
            f"@{MACRO}(@python_risk_score(details, total, n)); got {call.sql()}"
        )
    binding = known[found[0].name.lower()]
    spec = provenance.recorded_spec(binding.spec)
    name = binding_name(spec, binding.model)
    bindings.register_call(spec, binding.model, name)  # no stored source: the wrapper is called
    return exp.Cast(this=exp.Anonymous(this=name, expressions=[arg.copy() for arg in found[0].expressions]),
                    to=spec.returns.copy())


def mixmesh_pinned_digests(evaluator: "MacroEvaluator", artifact: exp.Expr) -> exp.Expr:
    """The digests the model's plan pinned for the artifacts ``artifact`` names (paths joined
    with ", " as provenance records them), joined the same way; NULL when the plan has none."""
    pinned: t.Dict[str, str] = evaluator.locals.get(ARTIFACTS_ENTRY) or {}
    if not pinned:
        return exp.null()
    expression: exp.Expr = artifact.copy()
    for path in sorted(pinned, key=len, reverse=True):  # a path inside another is replaced last
        expression = exp.Anonymous(this="REPLACE", expressions=[
            expression, exp.Literal.string(path), exp.Literal.string(pinned[path])])
    return expression


MACROS = (MACRO, PINNED_MACRO)


def register_macros() -> None:
    """Register the macros with SQLMesh (at install). This module's names become the decorated
    macros: a model stores a package's macro as an import of it, and SQLMesh takes what it
    imports for a macro only when it carries the decorator's mark."""
    from sqlmesh.core.macros import macro

    for name in MACROS:
        function = globals()[name]
        if not hasattr(function, "__wrapped__"):
            globals()[name] = macro(name)(function)


def add_macros(macros: t.MutableMapping[str, t.Any]) -> None:
    """Add the macros to a project's, when mixmesh was imported with the project's own code
    (after SQLMesh copied its registry)."""
    from sqlmesh.core.macros import macro

    register_macros()
    registry = macro.get_registry()
    for name in MACROS:
        if name not in macros:
            macros[name] = registry[name]


# ------------------------------------------------------------------------------- the audits


def audits_hook(load_audits: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """Wrap ``SqlMeshLoader._load_audits``: every project has ``fallback_share`` and
    ``pinned_artifact`` (a project's own audit of either name wins)."""

    @functools.wraps(load_audits)
    def hook(self: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        audits = load_audits(self, *args, **kwargs)
        for name, sql in AUDITS.items():
            if name not in audits:
                audits[name] = quarantined_rows_audit(self.config.model_defaults.dialect, self.config_path, sql)
        return audits

    return hook


def audit_hook(audit: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """Wrap ``SnapshotEvaluator.audit``: a failed provenance audit says, as its argument
    ``found``, which model, function and artifact failed it (SQLMesh shows a failed audit's
    arguments and query, not its rows)."""

    @functools.wraps(audit)
    def hook(self: t.Any, snapshot: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        results = audit(self, snapshot, *args, **kwargs)
        return [_with_findings(self, snapshot, result) for result in results]

    return hook


def _with_findings(evaluator: t.Any, snapshot: t.Any, result: t.Any) -> t.Any:
    if result.audit.name not in AUDITS or not result.count or result.query is None:
        return result
    messages = failed_rows_messages(evaluator, snapshot, result)
    if messages is None:
        return result
    return with_found(result, "; ".join(f"model {snapshot.model.name}: {message}" for message in messages))

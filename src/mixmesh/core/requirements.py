"""Requirements: what a model declares for the seed's decision framework (``mixmesh advise``).

A Python model declares them with ``requirements=``; SQLMesh keeps them as the session
property ``mixmesh_requirements`` (metadata: editing them rebuilds nothing).
"""

from __future__ import annotations

import typing as t

from sqlglot import exp

REQUIREMENTS_PROPERTY = "mixmesh_requirements"
COMPLEXITY_INDICATORS = ("machine_learning", "advanced_statistics", "external_apis", "complex_business_rules", "dynamic_schemas")
REQUIREMENTS = ("latency_sla_ms", "daily_row_count", *COMPLEXITY_INDICATORS)


class RequirementsError(ValueError):
    """A requirement the framework does not know, or a value of the wrong kind."""


def check_requirements(requirements: t.Mapping[str, t.Any]) -> None:
    """Raise a RequirementsError naming what the framework cannot read in ``requirements``."""
    if not isinstance(requirements, t.Mapping):
        raise RequirementsError(f"requirements must be a mapping of {', '.join(REQUIREMENTS)}, not {requirements!r}")
    unknown = sorted(set(requirements) - set(REQUIREMENTS))
    if unknown:
        raise RequirementsError(f"unknown requirement(s) {', '.join(unknown)}; known: {', '.join(REQUIREMENTS)}")
    for name in ("latency_sla_ms", "daily_row_count"):
        value = requirements.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RequirementsError(f"requirement {name} must be a number, not {value!r}")


def requirements_expression(requirements: t.Mapping[str, t.Any]) -> exp.Tuple:
    """``(machine_learning = TRUE, latency_sla_ms = 500)``: requirements as a session property's value."""
    return exp.Tuple(expressions=[exp.column(name).eq(exp.convert(value)) for name, value in requirements.items()])

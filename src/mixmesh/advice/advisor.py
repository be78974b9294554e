"""Which mixed-language pattern a model should follow: the seed document's decision framework.

``choose_pattern(requirements)`` is the seed's ``choose_mixed_language_pattern``, rule for
rule; ``explain_pattern`` returns the same answer with the rule that decided it.
"""

from __future__ import annotations

import dataclasses
import typing as t

from mixmesh.core.requirements import COMPLEXITY_INDICATORS, REQUIREMENTS, RequirementsError, check_requirements

__all__ = ["COMPLEXITY_INDICATORS", "REQUIREMENTS", "RequirementsError", "check_requirements"]

SQL_PRIMARY = "sql_primary_python_enhancement"
PYTHON_PRIMARY = "python_primary_sql_integration"
HYBRID = "hybrid_workflow"
PATTERNS = (SQL_PRIMARY, PYTHON_PRIMARY, HYBRID)

# The seed's thresholds and defaults.
LATENCY_SLA_MS_DEFAULT = 10_000
LATENCY_SLA_MS_BELOW = 1_000  # a tighter SLA keeps the work in the engine
DAILY_ROWS_ABOVE = 100_000_000  # more rows than this stay in the engine
PYTHON_PRIMARY_FROM = 3  # complexity indicators at which Python leads
HYBRID_FROM = 1

@dataclasses.dataclass(frozen=True)
class PatternChoice:
    pattern: str
    reason: str


def choose_pattern(requirements: t.Mapping[str, t.Any]) -> str:
    """The seed's ``choose_mixed_language_pattern``: the pattern for these requirements."""
    return explain_pattern(requirements).pattern


def explain_pattern(requirements: t.Mapping[str, t.Any]) -> PatternChoice:
    """The pattern for ``requirements`` and the rule that chose it, in the seed's order."""
    check_requirements(requirements)
    latency = requirements.get("latency_sla_ms", LATENCY_SLA_MS_DEFAULT)
    if latency < LATENCY_SLA_MS_BELOW:
        return PatternChoice(SQL_PRIMARY, f"latency SLA {latency:,} ms is under {LATENCY_SLA_MS_BELOW:,} ms: keep the work in SQL")
    rows = requirements.get("daily_row_count", 0)
    if rows > DAILY_ROWS_ABOVE:
        return PatternChoice(SQL_PRIMARY, f"{rows:,} rows a day is over {DAILY_ROWS_ABOVE:,}: keep the bulk in SQL")
    present = [name for name in COMPLEXITY_INDICATORS if requirements.get(name, False)]
    listed = ", ".join(present) or "none"
    if len(present) >= PYTHON_PRIMARY_FROM:
        return PatternChoice(PYTHON_PRIMARY, f"{len(present)} complexity needs ({listed}): Python leads, SQL feeds it")
    if len(present) >= HYBRID_FROM:
        return PatternChoice(HYBRID, f"{len(present)} complexity need(s) ({listed}): SQL and Python share the work")
    return PatternChoice(SQL_PRIMARY, "no complexity needs: SQL, with Python only where it must")

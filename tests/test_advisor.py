"""The seed's decision framework, at every threshold."""

from __future__ import annotations

import itertools
import typing as t

import pytest

from mixmesh.advice.advisor import (
    COMPLEXITY_INDICATORS,
    HYBRID,
    PYTHON_PRIMARY,
    SQL_PRIMARY,
    RequirementsError,
    choose_pattern,
    explain_pattern,
)


def seed_choose_mixed_language_pattern(requirements: t.Dict) -> str:
    """The seed document's function, copied verbatim: the reference."""
    if requirements.get('latency_sla_ms', 10000) < 1000:
        return 'sql_primary_python_enhancement'
    if requirements.get('daily_row_count', 0) > 100_000_000:
        return 'sql_primary_python_enhancement'
    complexity_indicators = [
        'machine_learning', 'advanced_statistics', 'external_apis',
        'complex_business_rules', 'dynamic_schemas'
    ]
    complexity_score = sum(
        1 for indicator in complexity_indicators
        if requirements.get(indicator, False)
    )
    if complexity_score >= 3:
        return 'python_primary_sql_integration'
    elif complexity_score >= 1:
        return 'hybrid_workflow'
    else:
        return 'sql_primary_python_enhancement'


@pytest.mark.parametrize(
    ("requirements", "pattern"),
    [
        ({}, SQL_PRIMARY),
        ({"latency_sla_ms": 999}, SQL_PRIMARY),
        ({"latency_sla_ms": 999, **dict.fromkeys(COMPLEXITY_INDICATORS, True)}, SQL_PRIMARY),
        ({"latency_sla_ms": 1000, **dict.fromkeys(COMPLEXITY_INDICATORS, True)}, PYTHON_PRIMARY),
        ({"daily_row_count": 100_000_001, "machine_learning": True}, SQL_PRIMARY),
        ({"daily_row_count": 100_000_000, "machine_learning": True}, HYBRID),
        ({"machine_learning": True, "external_apis": True}, HYBRID),
        ({"machine_learning": True, "external_apis": True, "dynamic_schemas": True}, PYTHON_PRIMARY),
        ({"machine_learning": False}, SQL_PRIMARY),
        ({"machine_learning": 1, "advanced_statistics": "yes", "external_apis": 0}, HYBRID),  # truthiness, as the seed
    ],
)
def test_thresholds(requirements: dict, pattern: str) -> None:
    assert choose_pattern(requirements) == pattern == seed_choose_mixed_language_pattern(requirements)


def test_equal_to_the_seed_over_every_combination() -> None:
    for latency, rows, *flags in itertools.product(
        (None, 0, 999, 999.9, 1000, 10_000), (None, 0, 100_000_000, 100_000_001), *[(False, True)] * 5
    ):
        requirements = {name: flag for name, flag in zip(COMPLEXITY_INDICATORS, flags)}
        if latency is not None:
            requirements["latency_sla_ms"] = latency
        if rows is not None:
            requirements["daily_row_count"] = rows
        assert choose_pattern(requirements) == seed_choose_mixed_language_pattern(requirements), requirements


def test_each_choice_says_why() -> None:
    assert "latency SLA 500 ms is under 1,000 ms" in explain_pattern({"latency_sla_ms": 500}).reason
    assert "200,000,000 rows a day" in explain_pattern({"daily_row_count": 200_000_000}).reason
    choice = explain_pattern({"machine_learning": True, "external_apis": True, "dynamic_schemas": True})
    assert choice.reason.startswith("3 complexity needs (machine_learning, external_apis, dynamic_schemas)")


@pytest.mark.parametrize(
    ("requirements", "message"),
    [
        ({"latency_ms": 5}, r"unknown requirement\(s\) latency_ms; known: latency_sla_ms"),
        ({"daily_row_count": "lots"}, "daily_row_count must be a number, not 'lots'"),
        ({"latency_sla_ms": True}, "latency_sla_ms must be a number, not True"),
        (["machine_learning"], "requirements must be a mapping"),
    ],
)
def test_bad_requirements_are_named(requirements: t.Any, message: str) -> None:
    with pytest.raises(RequirementsError, match=message):
        choose_pattern(requirements)

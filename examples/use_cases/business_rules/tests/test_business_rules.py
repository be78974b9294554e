"""The project built with SQLMesh on DuckDB: violations checked against the rules written out
by hand, and the audit that stops the pipeline when too many orders break them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mixmesh.testing import planned_copy, sqlmesh_output

from python.rules import RULES

PROJECT = Path(__file__).resolve().parents[1]

# What the seed's orders break, worked out by hand from seeds/orders.csv.
EXPECTED_VIOLATIONS = {
    1003: ["discount_above_limit"],  # 50% off for a standard customer (the total is right for it)
    1005: ["invalid_email"],  # eve@example has no top-level domain
    1006: ["quantity_not_positive"],
    1007: ["ships_before_order"],
    1008: ["missing_email"],
    1010: ["total_mismatch"],  # 1 x 10.00 charged 12.00
    1012: ["missing_quantity"],
}


def test_the_yaml_tests_pass(built) -> None:
    result = built.test(stream=io.StringIO())
    assert result.testsRun == 2 and result.wasSuccessful(), [text for _, text in result.failures + result.errors]


def test_violations_are_the_ones_worked_out_by_hand(built) -> None:
    rows = built.fetchdf("SELECT order_id, violations, violation_count, is_valid FROM analytics.order_checks").to_dict("records")
    assert len(rows) == 12
    for row in rows:
        expected = EXPECTED_VIOLATIONS.get(row["order_id"], [])
        assert (list(row["violations"]), row["violation_count"], row["is_valid"]) == (expected, len(expected), not expected), row


def test_one_violation_row_per_order_and_rule(built) -> None:
    rows = built.fetchdf("SELECT order_id, rule FROM analytics.rule_violations ORDER BY order_id").itertuples(index=False)
    assert [tuple(row) for row in rows] == [(order, rule) for order, rules in sorted(EXPECTED_VIOLATIONS.items()) for rule in rules]


def test_every_code_is_documented(built) -> None:
    codes = set(built.fetchdf("SELECT DISTINCT rule FROM analytics.rule_violations")["rule"])
    assert {code for code in codes if not code.startswith("missing_")} <= set(RULES)


def test_the_audit_stops_the_plan_when_most_orders_are_invalid(tmp_path: Path) -> None:
    from sqlmesh.utils.errors import PlanError

    def break_the_seed(copy: Path) -> None:
        seed = copy / "seeds/orders.csv"
        # Two more invalid emails: 9 of 12 orders invalid, above the audit's 60%.
        seed.write_text(seed.read_text().replace("ana@example.com", "ana@example").replace("bo@example.org", "bo@"))

    with sqlmesh_output() as output, pytest.raises(PlanError):
        with planned_copy(PROJECT, tmp_path / "project", leave_out=("tests",), prepare=break_the_seed):
            pass
    assert "'invalid_order_share' audit error: 1 row failed" in output.getvalue()
"""The project built with SQLMesh on DuckDB: mismatches checked against a pandas comparison of
the two CSVs, and the audit that stops the plan when the systems disagree too often."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from mixmesh.testing import planned_copy, sqlmesh_output

PROJECT = Path(__file__).resolve().parents[1]


def expected_mismatches() -> dict[int, list[str]]:
    """The tolerance rules applied with pandas to the CSVs, independently of the model."""
    billing = pd.read_csv(PROJECT / "seeds/billing_orders.csv", parse_dates=["invoiced_on"])
    warehouse = pd.read_csv(PROJECT / "seeds/warehouse_shipments.csv", parse_dates=["shipped_on"])
    warehouse["order_id"] = warehouse["order_ref"].str.removeprefix("WH-").astype(int)
    both = billing.merge(warehouse, on="order_id", how="outer", indicator=True)
    found = {}
    for row in both.rename(columns={"_merge": "side"}).itertuples():
        if row.side == "right_only":
            found[row.order_id] = ["missing_in_billing"]
            continue
        if row.side == "left_only":
            found[row.order_id] = ["missing_in_warehouse"]
            continue
        billed = row.amount_cents / 100
        codes = []
        if abs(billed - row.amount) > max(0.01, 0.005 * billed):
            codes.append("amount_mismatch")
        if {"paid": "SHP", "refunded": "RTN", "cancelled": "CXL"}[row.status] != row.status_code:
            codes.append("status_mismatch")
        if not pd.isna(row.shipped_on) and not 0 <= (row.shipped_on - row.invoiced_on).days <= 3:
            codes.append("shipping_delay")
        found[row.order_id] = codes
    return found


def test_the_yaml_tests_pass(built) -> None:
    result = built.test(stream=io.StringIO())
    assert result.testsRun == 2 and result.wasSuccessful(), [text for _, text in result.failures + result.errors]


def test_mismatches_match_a_pandas_comparison(built) -> None:
    rows = built.fetchdf("SELECT order_id, mismatches, is_consistent FROM analytics.order_reconciliation").to_dict("records")
    actual = {row["order_id"]: list(row["mismatches"]) for row in rows}
    assert actual == expected_mismatches()
    assert all(row["is_consistent"] == (not row["mismatches"].size) for row in rows)


def test_the_rows_to_resolve(built) -> None:
    rows = built.fetchdf("SELECT order_id, mismatch FROM analytics.order_mismatches ORDER BY order_id")
    assert list(rows.itertuples(index=False, name=None)) == [
        (1006, "status_mismatch"),  # billed as paid, returned to the warehouse
        (1007, "shipping_delay"),  # invoiced 2024-03-04, shipped 2024-03-12
        (1008, "amount_mismatch"),  # 19.99 billed, 18.99 in the warehouse
        (1010, "missing_in_warehouse"),
        (1011, "missing_in_warehouse"),
        (1012, "missing_in_billing"),
    ]


def test_the_audit_stops_the_plan_when_the_systems_disagree_too_often(tmp_path: Path) -> None:
    from sqlmesh.utils.errors import PlanError

    def break_the_seed(copy: Path) -> None:
        seed = copy / "seeds/warehouse_shipments.csv"
        # Two more returns the billing system never heard of: 8 of 12 orders disagree, above 60%.
        seed.write_text(seed.read_text().replace("WH-1001,50.00,SHP", "WH-1001,50.00,RTN").replace("WH-1002,129.99,SHP", "WH-1002,129.99,RTN"))

    with sqlmesh_output() as output, pytest.raises(PlanError):
        with planned_copy(PROJECT, tmp_path / "project", leave_out=("tests",), prepare=break_the_seed):
            pass
    assert "'mismatch_share' audit error: 1 row failed" in output.getvalue()
"""The project built with SQLMesh on DuckDB from its two sources: the merged rows checked
against the sources read with the csv module and matched by hand, and a key nobody can match."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest

from mixmesh.testing import ModelTest
from python.keys import canonical_customer_key

PROJECT = Path(__file__).resolve().parents[1]


def read_csv(path: str) -> list[dict]:
    with open(PROJECT / path, newline="") as file:
        return list(csv.DictReader(file))


def test_the_yaml_test_passes(built) -> None:
    result = built.test(stream=io.StringIO())
    assert result.testsRun == 1 and result.wasSuccessful(), [text for _, text in result.failures + result.errors]


def test_every_customer_of_either_source_once(built) -> None:
    rows = built.fetchdf("SELECT * FROM analytics.unified_customers ORDER BY customer_key").to_dict("records")
    # By hand: CRM C1..C5; billing 1, cust_2, C3, 00007 and Dana's keyless account (by email).
    assert [(row["customer_key"], row["in_crm"], row["in_billing"], row["matched_by"]) for row in rows] == [
        ("C00001", True, True, "key"),
        ("C00002", True, True, "key"),
        ("C00003", True, True, "key"),
        ("C00004", True, True, "email"),
        ("C00005", True, False, None),
        ("C00007", False, True, "key"),
    ]


def test_balances_are_billing_s_and_a_crm_only_customer_has_null(built) -> None:
    balances = {row["customer_key"]: row["balance"] for row in built.fetchdf("SELECT * FROM analytics.unified_customers").to_dict("records")}
    billing_total = sum(float(row["balance"]) for row in read_csv("data/billing_accounts.csv"))
    assert sum(value for value in balances.values() if not math.isnan(value)) == pytest.approx(billing_total)
    assert math.isnan(balances["C00005"])  # pandas reads NULL as NaN ...
    assert built.fetchdf("SELECT count(*) AS n FROM analytics.unified_customers WHERE balance IS NULL")["n"][0] == 1  # ... it is NULL


def test_key_spellings() -> None:
    spellings = ["CUST-00012", "cust_12", " 12 ", "C12", "00012", "c 12"]
    assert {canonical_customer_key(raw, "test") for raw in spellings} == {"C00012"}
    assert canonical_customer_key("  ", "test") is None and canonical_customer_key(None, "test") is None


def test_a_key_nobody_can_match_fails_the_model_naming_source_and_value(mixmesh_project) -> None:
    test = ModelTest(
        model_name="analytics.unified_customers",
        inputs={
            "raw.crm_customers": [{"customer_id": "CUST-00001", "name": "Ana", "email": "ana@example.com"}],
            "raw.billing_accounts": [{"account_ref": "N/A", "email": "x@example.com", "balance": 1.0}],
        },
        expected_outputs=[],
    )
    with pytest.raises(Exception, match=r"raw\.billing_accounts: customer key 'N/A' is not a customer number"):
        test.actual_rows()

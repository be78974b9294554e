"""Models run on fixture rows with mixmesh's ModelTest: SQL, Python functions and engine together."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mixmesh.testing import ModelTest

PROJECT = Path(__file__).resolve().parents[2]


def sample(path: str) -> list[dict]:
    """The rows of one of the project's sample CSV files."""
    with open(PROJECT / path, newline="") as file:
        rows = list(csv.DictReader(file))
    for row in rows:
        if "amount" in row:
            row["amount"] = float(row["amount"])
    return rows


def test_risk_tiers_of_the_sample_customers(mixmesh_project) -> None:
    assert ModelTest(
        model_name="analytics.customer_risk_scoring",
        inputs={"raw.transactions": sample("data/transactions.csv")},
        expected_outputs=[
            {"customer_id": "C001", "score_date": "2024-01-01", "ml_risk_score": 0.0, "risk_tier": "LOW"},
            {"customer_id": "C001", "score_date": "2024-01-02", "ml_risk_score": 0.2, "risk_tier": "LOW"},
            {"customer_id": "C002", "score_date": "2024-01-01", "ml_risk_score": 0.8, "risk_tier": "HIGH"},
            {"customer_id": "C003", "score_date": "2024-01-02", "ml_risk_score": 0.5, "risk_tier": "MEDIUM"},
            {"customer_id": "C004", "score_date": "2024-01-03", "ml_risk_score": 0.5, "risk_tier": "MEDIUM"},
        ],
        vars={"start": "2024-01-01", "end": "2024-01-03"},
    ).run()


def test_ltv_of_the_sample_customers(mixmesh_project) -> None:
    assert ModelTest(
        model_name="analytics.customer_ltv_prediction",
        inputs={"raw.customers": sample("seeds/customers.csv"), "raw.transactions": sample("data/transactions.csv")},
        expected_outputs=[
            {"customer_id": "C001", "predicted_ltv": pytest.approx(632.25), "prediction_date": "2024-01-31"},
            {"customer_id": "C002", "predicted_ltv": pytest.approx(7230.75)},
            {"customer_id": "C003", "predicted_ltv": pytest.approx(26080.0)},
            {"customer_id": "C004", "predicted_ltv": pytest.approx(130.0)},
        ],
        vars={"start": "2024-01-31", "end": "2024-01-31"},
    ).run()


def test_the_sample_s_one_spending_spike(mixmesh_project) -> None:
    rows = ModelTest(
        model_name="analytics.transaction_anomalies",
        inputs={"raw.transactions": sample("data/transactions.csv")},
        expected_outputs=[],
    ).actual_rows()
    spikes = [row["transaction_id"] for row in rows if row["spend_pattern"] == "spike"]
    assert len(rows) == 14 and spikes == ["T007"]


def test_sessions_of_the_sample_events(mixmesh_project) -> None:
    assert ModelTest(
        model_name="analytics.real_time_personalization",
        inputs={"raw.events": sample("data/events.csv")},
        expected_outputs=[
            {"session_id": "S001", "total_events": 7, "session_type": "interested", "show_premium_offer": True},
            {"session_id": "S002", "total_events": 4, "session_type": "converter", "show_premium_offer": False},
            # crosses 11:00: one row, in the hour it starts
            {"session_id": "S003", "session_start": "2024-01-01 10:58:00", "session_end": "2024-01-01 11:10:00",
             "total_events": 5, "session_type": "browsing", "show_premium_offer": False},
            {"session_id": "S004", "total_events": 1, "session_type": "casual", "recommended_content": ["welcome_content"]},
            {"session_id": "S005", "total_events": 2, "session_type": "casual", "show_premium_offer": False},
        ],
        vars={"start": "2024-01-01", "end": "2024-01-03"},
    ).run()

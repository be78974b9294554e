"""Unit tests of the project's Python functions: @udf functions stay plain Python callables."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from python.models.ltv.features import engineer_ltv_features
from python.models.ltv.predictor import SEGMENT_MAX_LTV, predict_ltv
from python.shared.data_validation import DataValidationError, require_between, require_columns, require_not_null
from python.shared.feature_engineering import behavioral_features, python_anomaly_score, python_risk_score
from python.shared.model_loading import RuleBasedRiskModel, load_risk_model
from python.shared.personalization import python_content_recommendations, python_engagement_score


def transaction(amount: float, category: str, hour: int) -> dict:
    return {"amount": amount, "merchant_category": category, "transaction_time": datetime(2024, 1, 1, hour)}


def test_risk_score_of_night_time_volatile_spending() -> None:
    details = [transaction(1.0, "gaming", 1), transaction(1.0, "gaming", 2), transaction(900.0, "gaming", 3)]
    assert python_risk_score(details, 902.0, 3) == 0.8


def test_risk_score_of_ordinary_spending_is_zero() -> None:
    details = [transaction(40.0, "grocery", 10), transaction(45.0, "grocery", 17)]
    assert python_risk_score(details, 85.0, 2) == 0.0


def test_risk_score_without_transactions_is_neutral() -> None:
    assert python_risk_score([], 0.0, 0) == 0.5


def test_behavioral_features() -> None:
    details = [transaction(10.0, "dining", 23), transaction(30.0, "travel", 12)]
    night_share, volatility, category_spread = behavioral_features(details, mean_amount=20.0)
    assert night_share == 0.5
    assert volatility == pytest.approx(0.5)  # population standard deviation 10 over the mean 20
    assert category_spread == 1.0


def test_anomaly_score_called_with_one_row() -> None:
    assert python_anomaly_score(200.0, 100.0) == 0.5
    assert python_anomaly_score(500.0, 100.0) == 1.0  # capped beyond SPIKE_RATIO
    assert python_anomaly_score(50.0, 100.0) == 0.0
    assert python_anomaly_score(50.0, 0.0) == 0.0  # no typical amount to compare with


def test_anomaly_score_on_a_batch() -> None:
    scores = python_anomaly_score(pa.array([100.0, 150.0, 300.0]), pa.array([100.0, 100.0, 100.0]))
    assert scores.to_pylist() == [0.0, 0.25, 1.0]


def test_rule_based_risk_model_scores_every_row() -> None:
    probabilities = RuleBasedRiskModel().predict_proba([[0.9, 2.0, 1.0], [0.0, 0.1, 0.0]])
    assert [risk for _, risk in probabilities] == [pytest.approx(1.0), 0.0]


def test_the_loaded_risk_model_gives_probabilities() -> None:
    # The rules until a trained model is saved at artifacts/risk_model.joblib; either way, probabilities.
    [[low, high]] = load_risk_model().predict_proba([[0.5, 1.5, 0.5]])
    assert 0.0 <= high <= 1.0 and low == pytest.approx(1.0 - high)


def test_ltv_rewards_repeat_customers_and_caps_by_segment() -> None:
    customers = pd.DataFrame({
        "customer_id": ["C1", "C2", "C3", "C4"],
        "customer_segment": ["consumer", "consumer", "enterprise", "unknown"],
        "transaction_count": [2, 1, 1, 1],
        "total_spend": [100.0, 100.0, 1000.0, 10_000.0],
        "active_days": [2, 1, 1, 1],
    })
    predictions = predict_ltv(engineer_ltv_features(customers)).set_index("customer_id")["predicted_ltv"]
    assert predictions.to_dict() == {
        "C1": 300.0,  # consumer x2, came back x1.5
        "C2": 200.0,
        "C3": 4000.0,  # enterprise x4
        "C4": SEGMENT_MAX_LTV["consumer"],  # unknown segment: x1, and the lowest cap
    }


def test_validation_names_the_column_and_a_row() -> None:
    frame = pd.DataFrame({"customer_id": ["C1", None], "total_spend": [10.0, -5.0]})
    assert require_columns(frame, ["customer_id"], where="test") is frame
    with pytest.raises(DataValidationError, match=r"test: missing column\(s\) \['segment'\]"):
        require_columns(frame, ["customer_id", "segment"], where="test")
    with pytest.raises(DataValidationError, match="1 NULL"):
        require_not_null(frame, ["customer_id"], where="test")
    with pytest.raises(DataValidationError, match=r"total_spend outside \[0, 100\].*-5.0"):
        require_between(frame, "total_spend", 0, 100, where="test")


def test_engagement_score_rises_with_activity_and_counts_null_gaps_as_none() -> None:
    def scores(*columns: list) -> list[float]:
        return python_engagement_score(*(pa.array(column) for column in columns)).to_pylist()

    quiet, busy = scores([1.0, 9.0], [1.0, 7.0], [0.0, 5.0], [0.0, 2.0], [None, 10.0], ["U5", "U5"])
    assert 0.0 < quiet < busy < 1.0
    assert quiet == pytest.approx(1 / (1 + np.exp(2.0 - 0.15 - 0.15)), abs=1e-6)  # U5: the second weights


def test_content_recommendations_follow_session_type_and_engagement() -> None:
    assert python_content_recommendations("U1", "casual", 0.1, 0) == ["welcome_content"]
    assert python_content_recommendations("U1", "interested", 0.9, 3) == [
        "cart_reminder", "limited_discount", "premium_offer", "similar_products"
    ]

"""Unit tests of the example's Python functions: called directly, with Python values."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pytest

from mixmesh.cli.demo_data import generate
from python.shared.feature_engineering import python_risk_score, risk_score_row_by_row
from python.models.ltv.predictor import load_confidence_model, load_ltv_model
from python.shared.model_loading import SimpleRiskModel, load_risk_model


@pytest.fixture
def without_trained_models(tmp_path, monkeypatch):
    """As in a fresh checkout: no artifacts/ (the models' paths are relative to the working directory)."""
    monkeypatch.chdir(tmp_path)
    for loaded in (load_risk_model, load_ltv_model, load_confidence_model):
        loaded.reset()
    yield
    for loaded in (load_risk_model, load_ltv_model, load_confidence_model):
        loaded.reset()


def test_python_function_output_format() -> None:
    """The seed's test, with the transaction fields the SQL model passes."""
    transaction_details = [
        {"amount": 100.0, "merchant_category": "grocery", "transaction_time": dt.datetime(2024, 1, 1, 10), "payment_method": "card"},
        {"amount": 50.0, "merchant_category": "gas", "transaction_time": dt.datetime(2024, 1, 1, 15), "payment_method": "card"},
    ]
    risk_score = python_risk_score(transaction_details, 150.0, 2)
    assert isinstance(risk_score, float)
    assert 0.0 <= risk_score <= 1.0
    assert python_risk_score([], 0.0, 0) == 0.5


def test_the_seed_s_fallback_scores_every_row(without_trained_models) -> None:
    rules = SimpleRiskModel()
    scores = rules.predict_proba([[0.5, 3.0, 0.9, 1, 2, 10], [0.0, 0.1, 0.1, 1, 2, 10]])[:, 1]
    assert list(scores) == [1.0, 0.0]
    assert isinstance(load_risk_model(), SimpleRiskModel)  # no trained model in a fresh checkout


def test_vectorized_scores_equal_the_seed_s_row_by_row_scores(without_trained_models) -> None:
    """Over generated customers and days, the batch path and the seed's per-customer DataFrame
    path give the same scores."""
    connection = duckdb.connect()
    generate(connection, customers=200, transactions=8_000, events=10, days=5)
    rows = connection.sql(
        """
        SELECT customer_id, score_date, SUM(amount) AS total, COUNT(*) AS n,
               list({'amount': amount, 'merchant_category': merchant_category,
                     'transaction_time': transaction_time, 'payment_method': payment_method}
                    ORDER BY transaction_time) AS details
        FROM raw.raw_transactions GROUP BY ALL ORDER BY ALL
        """
    ).fetchall()
    details = pa.array([row[4] for row in rows])  # the call site's STRUCT, as Arrow reads it
    vectorized = python_risk_score.__wrapped__(details, pa.array([r[2] for r in rows]), pa.array([r[3] for r in rows]))
    literal = [risk_score_row_by_row(row[4], row[2], row[3]) for row in rows]
    assert len(literal) == len(rows) > 500
    assert vectorized.to_pylist() == pytest.approx(literal, abs=1e-12)
    assert len(set(literal)) > 2  # the comparison covers several distinct scores

    # The six features themselves, computed both ways, agree to rounding.
    import numpy as np
    import pandas as pd
    import pyarrow.compute as pc

    from python.shared.feature_engineering import behavioral_features, extract_behavioral_features

    batch = behavioral_features(details, pc.list_value_length(details).to_numpy())
    per_customer = np.array([extract_behavioral_features(pd.DataFrame(row[4])) for row in rows])
    np.testing.assert_allclose(batch, per_customer, rtol=1e-9, atol=1e-12)


def test_the_features_depend_on_the_order_of_a_customer_s_transactions_only_in_their_last_bits() -> None:
    """Only the sums of amounts depend on the list's order, in their last bits: the model's
    SQL hands the list over in one order (time, then amount), which mixmesh keeps on Spark
    too, so both engines add the same bits (tests/parity); any other order is as close as
    floating point allows."""
    import numpy as np
    import pyarrow.compute as pc

    from python.shared.feature_engineering import behavioral_features

    connection = duckdb.connect()
    generate(connection, customers=50, transactions=1_000, events=10, days=2)
    ordered, reversed_ = connection.sql(
        """
        SELECT list(d ORDER BY t), list(d ORDER BY t DESC) FROM (
            SELECT customer_id, score_date, transaction_time AS t,
                   {'amount': amount, 'merchant_category': merchant_category,
                    'transaction_time': transaction_time, 'payment_method': payment_method} AS d
            FROM raw.raw_transactions
        ) GROUP BY customer_id, score_date
        """
    ).to_arrow_table().columns
    lengths = pc.list_value_length(ordered).to_numpy()
    assert (lengths > 2).sum() > 20
    np.testing.assert_allclose(behavioral_features(reversed_.combine_chunks(), lengths),
                               behavioral_features(ordered.combine_chunks(), lengths), rtol=1e-12, atol=0)


def test_feature_engineering_consistency() -> None:
    """The seed's test, on its own sample data."""
    import pandas as pd

    from python.models.ltv.features import engineer_ltv_features

    sample = pd.DataFrame({
        "customer_id": ["C001", "C002", "C003"],
        "total_spend": [1000.0, 5000.0, 200.0],
        "transaction_count": [10, 50, 3],
        "account_tenure_days": [365, 730, 90],
    })
    features = engineer_ltv_features(sample, as_of="2024-01-31")
    assert "engagement_score" in features.columns and "transaction_frequency" in features.columns
    assert all(features["engagement_score"] >= 0) and all(features["engagement_score"] <= 1)


def test_engagement_does_not_divide_by_zero_when_all_customers_are_alike() -> None:
    import pandas as pd

    from python.models.ltv.features import calculate_engagement_score

    alike = pd.DataFrame({"transaction_frequency": [2.0] * 4, "category_diversity": [3] * 4, "account_tenure_days": [10] * 4})
    assert list(calculate_engagement_score(alike)) == [0.0] * 4


def test_error_handling_resilience_predictions_fall_back_to_rules(without_trained_models) -> None:
    """The seed's test: without trained models, rule-based predictions, within the caps.
    Without them, generate_ltv_predictions raises ModelUnavailable: the model's declared
    fallback then predicts with the rules (tests/integration/test_ltv_resilience.py)."""
    import pandas as pd

    from python.models.ltv.features import engineer_ltv_features
    from python.models.ltv.predictor import (
        SEGMENT_MAX_LTV,
        ModelUnavailable,
        generate_ltv_predictions,
        validate_and_adjust_predictions,
    )

    customers = pd.DataFrame({
        "customer_id": ["C1", "C2", "C3"],
        "customer_segment": ["consumer", "smb", "enterprise"],
        "total_spend": [90_000.0, 900_000.0, 9_000_000.0],
        "total_transactions": [500, 900, 2000],
        "avg_transaction": [180.0, 1000.0, 4500.0],
        "spend_volatility": [10.0, 100.0, 1000.0],
        "category_diversity": [5, 8, 12],
        "account_tenure_days": [400, 800, 1200],
        "last_transaction_date": ["2024-01-30"] * 3,
        "first_transaction_date": ["2024-01-01"] * 3,
    })
    features = engineer_ltv_features(customers, as_of="2024-01-31")
    with pytest.raises(ModelUnavailable, match="ltv_model.joblib is not available"):
        generate_ltv_predictions(features)
    predictions = validate_and_adjust_predictions(generate_ltv_predictions(features, rules=True))
    assert len(predictions) == 3 and set(predictions["prediction_confidence"]) == {0.6}
    for _, row in predictions.iterrows():
        assert 0 <= row["predicted_ltv"] <= SEGMENT_MAX_LTV[row["customer_segment"]]


def test_engagement_scores_are_probabilities_and_grow_with_activity() -> None:
    from python.shared.personalization import python_engagement_score

    idle = python_engagement_score(2, 1, 0, 0, 300.0, "U1")
    busy = python_engagement_score(20, 8, 6, 2, 30.0, "U1")
    assert 0.0 <= idle < busy <= 1.0
    assert python_engagement_score(20, 8, 6, 2, 30.0, "U1") == busy  # deterministic per user


def test_a_one_event_session_has_no_gap_and_no_gap_penalty() -> None:
    from python.shared.personalization import python_engagement_score

    # SQL's AVG over a one-event session's gaps is NULL: the gap then adds nothing to the score.
    bounce = python_engagement_score(1, 1, 0, 0, None, "U5")
    assert bounce == python_engagement_score(1, 1, 0, 0, 0.0, "U5")
    assert 0.0 < bounce < python_engagement_score(2, 1, 0, 0, 10.0, "U5")


def test_content_recommendations_follow_the_session() -> None:
    from python.shared.personalization import python_content_recommendations

    assert python_content_recommendations("U1", "interested", 0.9, 1) == ["cart_reminder", "limited_discount", "premium_offer"]
    assert python_content_recommendations("U2", "casual", 0.1, 0) == ["welcome_content"]


def test_an_interval_without_customers_loads_no_model_and_logs_nothing(without_trained_models, caplog) -> None:
    """The seed caught scikit-learn's refusal of 0 samples and logged "ML model loading
    failed" though nothing had failed to load; an empty interval needs no model."""
    import pandas as pd

    from mixmesh.resources import artifact_events, reset_artifact_events
    from python.models.ltv.features import engineer_ltv_features
    from python.models.ltv.predictor import format_prediction_output, generate_ltv_predictions, validate_and_adjust_predictions

    empty = pd.DataFrame({name: pd.Series(dtype="object") for name in ["customer_id", "customer_segment"]})
    empty = empty.assign(total_transactions=pd.Series(dtype="int64"), total_spend=pd.Series(dtype="float64"))
    reset_artifact_events()
    with caplog.at_level("DEBUG"):
        predictions = validate_and_adjust_predictions(generate_ltv_predictions(engineer_ltv_features(empty, as_of="2024-01-31")))
        output = format_prediction_output(predictions, "2024-01-31", "2024-02-01")
    assert len(output) == 0 and "predicted_ltv" in output.columns
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
    assert sum(artifact_events().values()) == 0  # no model was even looked for

"""LTV predictions: the trained models, or rules when they are not there (the seed's functions).

Corrections to the seed:
- ``generate_rule_based_ltv`` was called but not defined; it is defined here.
- The prediction time is the run's execution time, not the wall clock: reruns agree.
- The trained models receive the features by name, the names they were trained with
  (python/training.py); the seed's models were trained elsewhere, on features it never named.
- A predicted LTV is never negative (a regressor's output can be).
- A customer of no known segment (NULL in dirty data) had no cap at all; the smallest applies.
- The seed caught every error of the prediction, even one of an interval without customers
  (scikit-learn refuses 0 samples), logged "ML model loading failed" and used the rules. Only
  a model that cannot be loaded gives the rules here (ModelUnavailable, the model's declared
  fallback); an empty interval loads nothing; other errors fail the model, as errors should.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from mixmesh import resource
from python.shared.data_validation import validate_predictions
from python.shared.model_loading import ARTIFACT_PINS, trained

logger = logging.getLogger(__name__)

ML_FEATURES = ["total_spend", "transaction_frequency", "engagement_score", "spend_consistency", "churn_risk", "seasonal_factor"]
SEGMENT_MAX_LTV = {"enterprise": 500000, "smb": 50000, "consumer": 5000}
MODEL_VERSION = "2.1.0"
LTV_MODEL = "artifacts/ltv_model.joblib"
CONFIDENCE_MODEL = "artifacts/confidence_model.joblib"
RULES_CONFIDENCE = 0.6  # the seed's confidence in its rule-based predictions


class ModelUnavailable(RuntimeError):
    """A trained model is missing or refused."""

    pass  # SQLMesh stores classes without their docstring: the body must not be empty


@resource(watch=(LTV_MODEL, ARTIFACT_PINS))
def load_ltv_model():
    """The trained LTV regressor, loaded once per process."""
    return _trained(LTV_MODEL)


@resource(watch=(CONFIDENCE_MODEL, ARTIFACT_PINS))
def load_confidence_model():
    """The trained confidence classifier, loaded once per process."""
    return _trained(CONFIDENCE_MODEL)


def _trained(path: str):
    model = trained(path)
    if model is None:
        raise ModelUnavailable(f"{path} is not available")
    return model


def generate_ltv_predictions(features_df: pd.DataFrame, *, rules: bool = False) -> pd.DataFrame:
    """LTV and confidence for each customer: the trained models', or the rules' with ``rules``.

    A trained model that cannot be loaded raises ModelUnavailable, which the model declares
    a fallback for (the rules, for the whole interval), as the seed's executor did. An
    interval without customers needs no model.
    """
    if rules or features_df.empty:
        ltv_predictions = generate_rule_based_ltv(features_df)
        confidence_scores = np.full(len(features_df), RULES_CONFIDENCE)
    else:
        X = features_df[ML_FEATURES].fillna(0)
        ltv_predictions = load_ltv_model().predict(X)
        confidence_scores = load_confidence_model().predict_proba(X)[:, 1]
    result_df = features_df.copy()
    result_df["predicted_ltv"] = ltv_predictions
    result_df["prediction_confidence"] = confidence_scores
    return result_df


def generate_rule_based_ltv(features_df: pd.DataFrame) -> np.ndarray:
    """Spend over the period, annualized by frequency, tempered by churn risk and season."""
    spend = features_df["total_spend"].fillna(0).astype(float)
    frequency = features_df["transaction_frequency"].fillna(0).astype(float)
    multiplier = 1 + np.log1p(frequency) / 4
    return (spend * multiplier * (1 - features_df["churn_risk"].fillna(0.5)) * features_df["seasonal_factor"]).to_numpy()


def validate_and_adjust_predictions(predictions_df: pd.DataFrame) -> pd.DataFrame:
    """Apply business rules and validation to ML predictions."""
    df = predictions_df.copy()
    df["predicted_ltv"] = np.maximum(df["predicted_ltv"], 0.0)  # a regressor can go below zero; a value cannot
    _cap_by_segment(df)
    recent_churn_mask = df["days_since_last_transaction"] > 180
    df.loc[recent_churn_mask, "predicted_ltv"] *= 0.5
    df.loc[recent_churn_mask, "prediction_confidence"] *= 0.7
    high_risk_mask = df["churn_risk"] > 0.7
    df.loc[high_risk_mask, "predicted_ltv"] *= 0.8
    active_mask = df["days_since_last_transaction"] <= 30
    df.loc[active_mask, "predicted_ltv"] = np.maximum(
        df.loc[active_mask, "predicted_ltv"], df.loc[active_mask, "total_spend"] * 0.1
    )
    _cap_by_segment(df)  # the floor above must not lift past the cap
    return validate_predictions(df, SEGMENT_MAX_LTV)


def _cap_by_segment(df: pd.DataFrame) -> None:
    """Each prediction at most its segment's cap; a customer of no known segment (NULL, or a
    segment without a cap) at most the smallest cap."""
    known = df["customer_segment"].isin(list(SEGMENT_MAX_LTV))
    for segment, max_ltv in SEGMENT_MAX_LTV.items():
        mask = df["customer_segment"] == segment
        df.loc[mask, "predicted_ltv"] = np.minimum(df.loc[mask, "predicted_ltv"], max_ltv)
    df.loc[~known, "predicted_ltv"] = np.minimum(df.loc[~known, "predicted_ltv"], min(SEGMENT_MAX_LTV.values()))


def format_prediction_output(predictions_df: pd.DataFrame, prediction_date, prediction_timestamp) -> pd.DataFrame:
    """Format predictions for SQLMesh's output schema."""
    output_columns = [
        "customer_id", "predicted_ltv", "prediction_confidence", "engagement_score",
        "churn_risk", "customer_segment", "total_spend", "transaction_frequency",
    ]
    output_df = predictions_df[output_columns].copy()
    output_df["prediction_date"] = pd.to_datetime(prediction_date)
    output_df["model_version"] = MODEL_VERSION
    output_df["prediction_timestamp"] = pd.Timestamp(prediction_timestamp)
    output_df = output_df.dropna(subset=["customer_id", "predicted_ltv"])
    output_df["predicted_ltv"] = output_df["predicted_ltv"].round(2)
    output_df["prediction_confidence"] = output_df["prediction_confidence"].round(3)
    return output_df

"""Python-Primary Model with SQL Integration (the seed's).

Its resilience is the seed's PythonModelExecutor, declared: three attempts with the seed's
backoff (1 s, then 5 s; 15 s would follow a third failure) on ConnectionError and
TimeoutError, and the rule-based predictions when the trained models cannot be loaded.
"""

import logging

import pandas as pd

from mixmesh import ModelKind, Retry, python_model
from python.models.ltv.features import engineer_ltv_features, extract_customer_features
from python.models.ltv.predictor import (
    ModelUnavailable,
    format_prediction_output,
    generate_ltv_predictions,
    validate_and_adjust_predictions,
)

logger = logging.getLogger(__name__)


def rule_based_ltv_prediction(context, **kwargs) -> pd.DataFrame:
    """The fallback: the same interval, predicted with the rules (the seed's
    'ml_model_failure': 'use_rule_based_predictions')."""
    return predict_ltv(context, kwargs, rules=True)


@python_model(
    name="analytics.customer_ltv_prediction",
    kind=ModelKind.INCREMENTAL,
    owner="data-science@company.com",
    cron="@daily",
    grain=["customer_id", "prediction_date"],
    # What the seed's decision framework weighs (`mixmesh advise`).
    requirements={"machine_learning": True, "advanced_statistics": True, "complex_business_rules": True},
    description="""
    Python-driven customer lifetime value prediction combining multiple
    data sources with advanced ML techniques for accurate LTV forecasting.
    """,
    retry=Retry(attempts=3, backoff=[1, 5, 15], on=(ConnectionError, TimeoutError)),
    fallbacks={ModelUnavailable: rule_based_ltv_prediction},
    columns={
        "customer_id": "VARCHAR",
        "predicted_ltv": "DOUBLE",
        "prediction_confidence": "DOUBLE",
        "engagement_score": "DOUBLE",
        "churn_risk": "DOUBLE",
        "customer_segment": "VARCHAR",
        "total_spend": "DOUBLE",
        "transaction_frequency": "DOUBLE",
        "prediction_date": "DATE",
        "model_version": "VARCHAR",
        "prediction_timestamp": "TIMESTAMP",
    },
)
def customer_ltv_prediction(context, **kwargs) -> pd.DataFrame:
    """Customer lifetime value predictions: SQL extracts, Python engineers and predicts."""
    return predict_ltv(context, kwargs, rules=False)


def predict_ltv(context, kwargs, rules: bool) -> pd.DataFrame:
    start_date = kwargs.get("start_date", context.start_date)
    end_date = kwargs.get("end_date", context.end_date)
    logger.info(f"Processing LTV predictions for {start_date} to {end_date}")
    customer_features = extract_customer_features(context, start_date, end_date)
    enhanced_features = engineer_ltv_features(customer_features, as_of=end_date)
    predictions = generate_ltv_predictions(enhanced_features, rules=rules)
    validated_predictions = validate_and_adjust_predictions(predictions)
    output_df = format_prediction_output(validated_predictions, end_date, context.execution_time)
    logger.info(f"Generated {len(output_df)} LTV predictions")
    return output_df

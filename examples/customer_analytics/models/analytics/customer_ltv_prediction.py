"""Python-Primary Model with SQL Integration (the seed's)."""

import logging

import pandas as pd

from mixmesh import ModelKind, python_model
from python.models.ltv.features import engineer_ltv_features, extract_customer_features
from python.models.ltv.predictor import format_prediction_output, generate_ltv_predictions, validate_and_adjust_predictions

logger = logging.getLogger(__name__)


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
    start_date = kwargs.get("start_date", context.start_date)
    end_date = kwargs.get("end_date", context.end_date)
    logger.info(f"Processing LTV predictions for {start_date} to {end_date}")
    customer_features = extract_customer_features(context, start_date, end_date)
    enhanced_features = engineer_ltv_features(customer_features, as_of=end_date)
    predictions = generate_ltv_predictions(enhanced_features)
    validated_predictions = validate_and_adjust_predictions(predictions)
    output_df = format_prediction_output(validated_predictions, end_date, context.execution_time)
    logger.info(f"Generated {len(output_df)} LTV predictions")
    return output_df

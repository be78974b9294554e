"""Python-primary model: SQL extracts and aggregates, Python engineers features and predicts."""

import pandas as pd

from mixmesh import ModelKind, python_model
from python.models.ltv.features import engineer_ltv_features, extract_customer_features
from python.models.ltv.predictor import predict_ltv

COLUMNS = {
    "customer_id": "VARCHAR",
    "customer_segment": "VARCHAR",
    "transaction_count": "BIGINT",
    "total_spend": "DOUBLE",
    "predicted_ltv": "DOUBLE",
    "prediction_date": "DATE",
}


@python_model(
    name="analytics.customer_ltv_prediction",
    kind=ModelKind.INCREMENTAL,  # one prediction per customer per day: the time column is prediction_date
    cron="@daily",
    grain=["customer_id", "prediction_date"],
    columns=COLUMNS,
    description="Predicted lifetime value of every customer, as of each day.",
)
def customer_ltv_prediction(context, **kwargs) -> pd.DataFrame:
    """Predictions as of the last day of the interval SQLMesh asks for."""
    customers = extract_customer_features(context, as_of=context.end_date)
    predictions = predict_ltv(engineer_ltv_features(customers))
    predictions["prediction_date"] = context.end_date
    return predictions[list(COLUMNS)]

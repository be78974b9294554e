"""LTV feature engineering (the seed's functions).

Corrections to the seed:
- Recency is measured at the interval's end, not ``pd.Timestamp.now()``: a rerun of the
  same day gives the same features.
- ``calculate_engagement_score`` divided by zero when a feature had the same value for
  every customer; such a feature now scores 0.
- ``calculate_seasonal_factors`` and ``calculate_churn_risk`` were called but not defined;
  they are defined here (documented below).
- The query takes the interval as bound parameters instead of values pasted into it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from python.shared.data_validation import column, validate_features

TRANSACTION_QUERY = """
WITH transaction_metrics AS (
    SELECT
        customer_id,
        COUNT(*) as total_transactions,
        SUM(amount) as total_spend,
        AVG(amount) as avg_transaction,
        MAX(transaction_date) as last_transaction_date,
        MIN(transaction_date) as first_transaction_date,
        COUNT(DISTINCT merchant_category) as category_diversity,
        STDDEV(amount) as spend_volatility
    FROM raw.raw_transactions
    WHERE transaction_date BETWEEN $start_date AND $end_date
    GROUP BY customer_id
),
customer_demographics AS (
    SELECT
        customer_id,
        age_group,
        income_bracket,
        geographic_region,
        customer_segment,
        signup_date,
        account_tenure_days
    FROM raw.dim_customers
    WHERE is_active = true
)
SELECT
    c.*,
    COALESCE(t.total_transactions, 0) as total_transactions,
    COALESCE(t.total_spend, 0) as total_spend,
    COALESCE(t.avg_transaction, 0) as avg_transaction,
    t.last_transaction_date,
    t.first_transaction_date,
    COALESCE(t.category_diversity, 0) as category_diversity,
    COALESCE(t.spend_volatility, 0) as spend_volatility
FROM customer_demographics c
LEFT JOIN transaction_metrics t ON c.customer_id = t.customer_id
"""


# What TRANSACTION_QUERY gives Python. A NULL customer_id is let through: the output step
# drops it, as the seed does. No transaction in the interval: NULL dates, zero counts.
CUSTOMER_FEATURES = {
    "customer_id": column("string", nullable=True),
    "customer_segment": column("string", nullable=True),
    "account_tenure_days": column("integer", nullable=True, min=0),
    "total_transactions": column("integer", min=0),
    "total_spend": column("number"),
    "avg_transaction": column("number"),
    "last_transaction_date": column("date", nullable=True),
    "first_transaction_date": column("date", nullable=True),
    "category_diversity": column("integer", min=0),
    "spend_volatility": column("number", min=0),
}

# What the LTV models are given (ML_FEATURES in predictor.py) and what the rules read.
# Engagement and churn are NaN for a customer of unknown tenure; the predictions fill them.
LTV_FEATURES = {
    "customer_id": column("string", nullable=True),
    "total_spend": column("number"),
    "transaction_frequency": column("number", min=0),
    "engagement_score": column("number", nullable=True, min=0, max=1),
    "spend_consistency": column("number", min=0),
    "churn_risk": column("number", nullable=True, min=0, max=1),
    "seasonal_factor": column("number", min=0),
    "days_since_last_transaction": column("number", min=0),
}


def extract_customer_features(context, start_date, end_date) -> pd.DataFrame:
    """Extract customer features using optimized SQL queries."""
    rows = context.engine.execute(TRANSACTION_QUERY, start_date=start_date, end_date=end_date).to_pandas()
    return validate_features(rows, CUSTOMER_FEATURES, name="customer features from SQL", key="customer_id")


def engineer_ltv_features(customer_data: pd.DataFrame, as_of=None) -> pd.DataFrame:
    """Advanced feature engineering using Python analytics."""
    df = customer_data.copy()
    as_of = pd.Timestamp(as_of) if as_of is not None else pd.Timestamp.now().normalize()
    last = pd.to_datetime(df["last_transaction_date"]) if "last_transaction_date" in df else pd.Series(pd.NaT, index=df.index)
    first = pd.to_datetime(df["first_transaction_date"]) if "first_transaction_date" in df else pd.Series(pd.NaT, index=df.index)

    df["days_since_last_transaction"] = (as_of - last).dt.days.fillna(9999)
    df["customer_lifespan_days"] = (last - first).dt.days.fillna(0)
    total_transactions = df.get("total_transactions", df.get("transaction_count", 0))
    df["transaction_frequency"] = total_transactions / np.maximum(df["customer_lifespan_days"], 1) * 365
    avg = df["avg_transaction"] if "avg_transaction" in df else pd.Series(0.0, index=df.index)
    volatility = df["spend_volatility"] if "spend_volatility" in df else pd.Series(0.0, index=df.index)
    df["spend_consistency"] = np.where(avg > 0, volatility / avg.where(avg > 0, 1), 0)
    df["engagement_score"] = calculate_engagement_score(df)
    df["seasonal_factor"] = calculate_seasonal_factors(df, as_of)
    df["churn_risk"] = calculate_churn_risk(df)
    return validate_features(df, LTV_FEATURES, name="LTV features", key="customer_id")


def calculate_engagement_score(df: pd.DataFrame) -> pd.Series:
    """Calculate customer engagement score using multiple indicators (0..1)."""
    weights = {"transaction_frequency": 0.4, "category_diversity": 0.3, "account_tenure_days": 0.3}
    score = pd.Series(0.0, index=df.index)
    for feature, weight in weights.items():
        if feature not in df.columns:
            continue
        values = df[feature].astype(float)
        low, high = values.quantile(0.05), values.quantile(0.95)
        if high > low:  # the seed divided by zero when every customer had the same value
            score += np.clip((values - low) / (high - low), 0, 1) * weight
    return score


def calculate_seasonal_factors(df: pd.DataFrame, as_of: pd.Timestamp) -> pd.Series:
    """Seasonal multiplier of the prediction month: the year's end sells more (1.0 .. 1.2)."""
    month = as_of.month
    factor = 1.2 if month in (11, 12) else (0.9 if month in (1, 2) else 1.0)
    return pd.Series(factor, index=df.index)


def calculate_churn_risk(df: pd.DataFrame) -> pd.Series:
    """Churn risk (0..1): rises with days since the last transaction, falls with engagement."""
    recency = np.clip(df["days_since_last_transaction"].astype(float) / 180.0, 0, 1)
    engagement = df["engagement_score"] if "engagement_score" in df else 0.0
    return np.clip(0.7 * recency + 0.3 * (1 - engagement), 0, 1)

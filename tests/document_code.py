"""The document's own code, pasted into a project: its ``python_risk_score`` with the signature
``(transaction_details: List[Dict[str, Any]], total_amount: float, transaction_count: int)``
and its SQL model's ``ARRAY_AGG(STRUCT(...) ORDER BY transaction_time)``; its hybrid model's
``COUNTIF(...)`` (HUGEINT on DuckDB) feeding ``cart_additions: int``. Only ``@udf`` (and its
import) is added to the functions; the models keep the document's SQL (BigQuery), with the
table names and date filters as SQLMesh spells them.

Used by the DuckDB tests (tests/test_document_code.py) and the Spark ones
(tests/spark/test_document_code.py).
"""

from __future__ import annotations

import datetime as dt
import typing as t

# The document's functions, verbatim but for `@udf` and its import.
FUNCTIONS = '''
# Python functions for SQL integration
import pandas as pd
import numpy as np
from sklearn.ensemble import IsolationForest
from typing import List, Dict, Any
import joblib
import logging

from mixmesh import udf

logger = logging.getLogger(__name__)

@udf
def python_risk_score(
    transaction_details: List[Dict[str, Any]],
    total_amount: float,
    transaction_count: int
) -> float:
    """
    Calculate ML-based risk score for customer transactions.
    """

    try:
        # Validate inputs
        if not transaction_details or transaction_count == 0:
            return 0.5  # Neutral score for insufficient data

        # Convert SQL array to DataFrame for analysis
        df = pd.DataFrame(transaction_details)

        # Feature engineering
        features = extract_behavioral_features(df)

        # Load pre-trained anomaly detection model
        model = load_risk_model()

        # Calculate risk score
        risk_score = model.predict_proba([features])[0][1]  # Probability of anomaly

        # Validate against SQL aggregates
        calculated_total = df['amount'].sum()
        if abs(calculated_total - total_amount) > 0.01:
            logger.warning(f"Amount mismatch: SQL={total_amount}, Python={calculated_total}")

        return float(np.clip(risk_score, 0.0, 1.0))

    except Exception as e:
        logger.error(f"Risk scoring failed: {str(e)}")
        return 0.5  # Safe default score

def extract_behavioral_features(transactions_df: pd.DataFrame) -> List[float]:
    """Extract behavioral features from transaction data."""

    # Time-based features
    transactions_df['hour'] = pd.to_datetime(transactions_df['transaction_time']).dt.hour
    night_transactions = (transactions_df['hour'] < 6) | (transactions_df['hour'] > 22)

    # Amount-based features
    amount_std = transactions_df['amount'].std()
    amount_cv = amount_std / transactions_df['amount'].mean() if transactions_df['amount'].mean() > 0 else 0

    # Category diversity
    unique_categories = transactions_df['merchant_category'].nunique()

    # Payment method patterns
    payment_method_diversity = transactions_df['payment_method'].nunique()

    # Temporal patterns
    time_gaps = transactions_df['transaction_time'].diff().dt.total_seconds()
    avg_time_gap = time_gaps.mean() if len(time_gaps) > 1 else 86400  # Default 1 day

    return [
        float(night_transactions.mean()),        # Proportion of night transactions
        float(amount_cv),                        # Amount coefficient of variation
        float(unique_categories / len(transactions_df)),  # Category diversity ratio
        float(payment_method_diversity),         # Payment method count
        float(avg_time_gap / 3600),             # Average hours between transactions
        float(len(transactions_df)),            # Transaction frequency
    ]

def load_risk_model():
    """Load pre-trained risk scoring model."""
    try:
        # In production, this would load from model registry
        model = joblib.load('/models/customer_risk_model_v2.pkl')
        return model
    except Exception as e:
        logger.warning(f"Failed to load risk model: {e}")
        # Fallback to simple rule-based model
        return SimpleRiskModel()

class SimpleRiskModel:
    """Fallback rule-based risk model."""

    def predict_proba(self, features):
        """Simple risk scoring based on feature thresholds."""
        feature_vector = features[0]

        # Simple risk indicators
        night_tx_ratio = feature_vector[0]
        amount_volatility = feature_vector[1]
        category_diversity = feature_vector[2]

        risk_score = 0.0

        # Night transaction risk
        if night_tx_ratio > 0.3:
            risk_score += 0.3

        # Amount volatility risk
        if amount_volatility > 2.0:
            risk_score += 0.4

        # Unusual category patterns
        if category_diversity > 0.8:
            risk_score += 0.3

        return [[1.0 - risk_score, risk_score]]

# The hybrid model's function: the document calls it with these arguments without defining it.
@udf
def python_engagement_score(
    total_events: int,
    pages_visited: int,
    products_viewed: int,
    cart_additions: int,
    avg_time_between_events: float,
    user_id: str
) -> float:
    """Engagement between 0 and 1 of one session."""
    gap_penalty = min((avg_time_between_events or 0.0) / 600.0, 1.0)
    raw = 0.1 * total_events + 0.1 * pages_visited + 0.15 * products_viewed + 0.3 * cart_additions
    personal = 0.05 if user_id.endswith("1") else 0.0
    return round(min(raw / 3.0 + personal - 0.2 * gap_penalty, 1.0), 6)
'''

RISK_MODEL = """
MODEL (
    name analytics.customer_risk_scoring,
    kind INCREMENTAL_BY_TIME_RANGE (time_column score_date),
    owner 'data-science@company.com',
    cron '@daily',
    grain [customer_id, score_date],
    dialect bigquery
);

WITH customer_transactions AS (
    SELECT
        customer_id,
        score_date,
        COUNT(*) as transaction_count,
        SUM(amount) as total_amount,
        AVG(amount) as avg_amount,
        ARRAY_AGG(
            STRUCT(
                amount,
                merchant_category,
                transaction_time,
                payment_method
            ) ORDER BY transaction_time
        ) as transaction_details
    FROM raw.raw_transactions
    WHERE transaction_date BETWEEN @start_date AND @end_date
    GROUP BY customer_id, score_date
),

risk_indicators AS (
    SELECT
        *,
        CASE
            WHEN transaction_count > 50 THEN 'high_activity'
            WHEN transaction_count < 5 THEN 'low_activity'
            ELSE 'normal_activity'
        END as activity_level,
        total_amount / NULLIF(transaction_count, 0) as spend_per_transaction,
        @python_risk_score(
            transaction_details,
            total_amount,
            transaction_count
        ) as ml_risk_score
    FROM customer_transactions
)

SELECT
    customer_id,
    score_date,
    transaction_count,
    total_amount,
    activity_level,
    ml_risk_score,
    CASE
        WHEN ml_risk_score > 0.8 AND activity_level = 'high_activity' THEN 'HIGH'
        WHEN ml_risk_score > 0.6 OR activity_level = 'low_activity' THEN 'MEDIUM'
        ELSE 'LOW'
    END as final_risk_tier
FROM risk_indicators
WHERE ml_risk_score IS NOT NULL;
"""

HYBRID_MODEL = """
MODEL (
    name analytics.real_time_personalization,
    kind FULL,
    grain [user_id, session_id],
    dialect bigquery
);

WITH session_events AS (
    SELECT
        user_id,
        session_id,
        event_timestamp,
        event_type,
        page_url,
        product_id,
        LAG(event_timestamp) OVER (
            PARTITION BY user_id, session_id
            ORDER BY event_timestamp
        ) as prev_event_time,
        COUNT(*) OVER (
            PARTITION BY user_id, session_id
        ) as session_event_count
    FROM raw.raw_events
),

session_features AS (
    SELECT
        user_id,
        session_id,
        MIN(event_timestamp) as session_start,
        MAX(event_timestamp) as session_end,
        COUNT(*) as total_events,
        COUNT(DISTINCT page_url) as pages_visited,
        COUNT(DISTINCT product_id) as products_viewed,
        COUNTIF(event_type = 'add_to_cart') as cart_additions,
        COUNTIF(event_type = 'purchase') as purchases,
        AVG(
            TIMESTAMP_DIFF(
                event_timestamp,
                prev_event_time,
                SECOND
            )
        ) as avg_time_between_events
    FROM session_events
    WHERE prev_event_time IS NOT NULL
    GROUP BY user_id, session_id
),

scored_sessions AS (
    SELECT
        *,
        @python_engagement_score(
            total_events,
            pages_visited,
            products_viewed,
            cart_additions,
            avg_time_between_events,
            user_id  -- For personalized model selection
        ) as ml_engagement_score,
        CASE
            WHEN purchases > 0 THEN 'converter'
            WHEN cart_additions > 0 THEN 'interested'
            WHEN pages_visited >= 5 THEN 'browsing'
            ELSE 'casual'
        END as session_type
    FROM session_features
)

SELECT
    user_id,
    session_id,
    session_start,
    session_end,
    total_events,
    session_type,
    ml_engagement_score,
    cart_additions
FROM scored_sessions;
"""

def session_features() -> t.List[t.Tuple[t.Any, ...]]:
    """What the hybrid model hands the function for each session, computed in Python as the
    document's SQL does: events after a session's first (``WHERE prev_event_time IS NOT
    NULL``), distinct pages and products, carts, and the mean gap in seconds."""
    sessions: t.Dict[t.Tuple[str, str], t.List[t.Dict[str, t.Any]]] = {}
    for row in events():
        sessions.setdefault((row["user_id"], row["session_id"]), []).append(row)
    features = []
    for (user, session), rows in sessions.items():
        rows.sort(key=lambda row: row["event_timestamp"])
        gaps = [(b["event_timestamp"] - a["event_timestamp"]).total_seconds() for a, b in zip(rows, rows[1:])]
        later = rows[1:]
        features.append((
            user, session, len(later), len({r["page_url"] for r in later}), len({r["product_id"] for r in later}),
            sum(r["event_type"] == "add_to_cart" for r in later), sum(gaps) / len(gaps),
        ))
    return features


CATEGORIES = ["grocery", "electronics", "travel", "fashion"]
METHODS = ["card", "wallet", "transfer"]


def transactions() -> t.List[t.Dict[str, t.Any]]:
    """Three days of transactions of five customers, some at night, some volatile."""
    rows = []
    for day in range(1, 4):
        for customer in range(1, 6):
            for n in range(customer + day % 2):
                hour = (3 + 7 * n + customer * 5) % 24
                amount = round(10.0 + (n * 37 + customer * 13) % 90 + (400.0 if (n + customer) % 5 == 0 else 0.0), 2)
                rows.append({
                    "customer_id": f"c{customer}",
                    "score_date": dt.date(2024, 1, day),
                    "transaction_date": dt.date(2024, 1, day),
                    "amount": amount,
                    "merchant_category": CATEGORIES[(n * customer) % 4],
                    "transaction_time": dt.datetime(2024, 1, day, hour, (n * 13) % 60),
                    "payment_method": METHODS[(n + day) % 3],
                })
    return rows


def events() -> t.List[t.Dict[str, t.Any]]:
    """Sessions of four users: views, carts and purchases a few seconds or minutes apart."""
    rows = []
    kinds = ["page_view", "add_to_cart", "page_view", "purchase", "add_to_cart"]
    for user in range(1, 5):
        for session in range(1, 3):
            start = dt.datetime(2024, 1, 2, 8 + user, session * 10)
            for n in range(2 + user + session):
                rows.append({
                    "user_id": f"u{user}",
                    "session_id": f"s{user}{session}",
                    "event_timestamp": start + dt.timedelta(seconds=45 * n * user),
                    "event_type": kinds[(n + user) % 5],
                    "page_url": f"/p/{(n * user) % 4}",
                    "product_id": f"prod{n % 3}",
                })
    return rows


def values_model(name: str, rows: t.List[t.Dict[str, t.Any]], types: t.Dict[str, str]) -> str:
    """A model holding ``rows`` (BigQuery SQL), each column CAST to its type."""
    def literal(value: t.Any) -> str:
        if isinstance(value, dt.datetime):
            return f"'{value.isoformat(sep=' ')}'"
        if isinstance(value, (dt.date, str)):
            return f"'{value}'"
        return repr(value)

    columns = list(types)
    selects = [
        "SELECT " + ", ".join(f"CAST({literal(row[c])} AS {types[c]}) AS {c}" for c in columns)
        for row in rows
    ]
    return f"MODEL (name {name}, kind FULL, dialect bigquery);\n" + "\nUNION ALL\n".join(selects)


TRANSACTION_TYPES = {
    "customer_id": "STRING", "score_date": "DATE", "transaction_date": "DATE", "amount": "FLOAT64",
    "merchant_category": "STRING", "transaction_time": "DATETIME", "payment_method": "STRING",
}
EVENT_TYPES = {
    "user_id": "STRING", "session_id": "STRING", "event_timestamp": "DATETIME", "event_type": "STRING",
    "page_url": "STRING", "product_id": "STRING",
}


def write_project(project: t.Any) -> None:
    project.write("macros/document_functions.py", FUNCTIONS)
    project.write("models/raw_transactions.sql", values_model("raw.raw_transactions", transactions(), TRANSACTION_TYPES))
    project.write("models/raw_events.sql", values_model("raw.raw_events", events(), EVENT_TYPES))
    project.write("models/customer_risk_scoring.sql", RISK_MODEL)
    project.write("models/real_time_personalization.sql", HYBRID_MODEL)


def functions() -> t.Dict[str, t.Any]:
    """The document's functions, loaded as plain Python (what a unit test calls)."""
    namespace: t.Dict[str, t.Any] = {"__name__": "document_functions"}
    exec(compile(FUNCTIONS, "document_functions.py", "exec"), namespace)
    return namespace


def expected_risk_scores(days: t.Iterable[int]) -> t.Dict[t.Tuple[str, dt.date], float]:
    """``python_risk_score`` called in Python on each customer-day's transactions, as the
    model's ARRAY_AGG(STRUCT(...) ORDER BY transaction_time) hands them over."""
    score = functions()["python_risk_score"]
    groups: t.Dict[t.Tuple[str, dt.date], t.List[t.Dict[str, t.Any]]] = {}
    for row in transactions():
        if row["score_date"].day in set(days):
            groups.setdefault((row["customer_id"], row["score_date"]), []).append(row)
    expected = {}
    for key, rows in groups.items():
        rows.sort(key=lambda row: row["transaction_time"])
        details = [{k: row[k] for k in ("amount", "merchant_category", "transaction_time", "payment_method")} for row in rows]
        expected[key] = score(details, sum(row["amount"] for row in rows), len(rows))
    return expected


def expected_engagement(features: t.Iterable[t.Sequence[t.Any]]) -> t.Dict[t.Tuple[str, str], float]:
    """``python_engagement_score`` called in Python on each session's features."""
    score = functions()["python_engagement_score"]
    return {
        (user, session): score(int(total), int(pages), int(products), int(carts), gap, user)
        for user, session, total, pages, products, carts, gap in features
    }

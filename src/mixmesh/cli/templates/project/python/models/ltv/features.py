"""LTV features: SQL aggregates the transactions, Python derives what SQL says awkwardly."""

from __future__ import annotations

import pandas as pd

from python.shared.data_validation import require_between, require_columns, require_not_null


def extract_customer_features(context, as_of) -> pd.DataFrame:
    """Every customer, with their spending up to ``as_of`` (a date)."""
    # :as_of is a bound parameter: the engine receives the date as a value, never as SQL text.
    # The tables named here become the model's parents in SQLMesh's DAG (mixmesh reads the
    # queries written in the model's functions and the module-level strings they name) and
    # resolve to the tables of the environment being built.
    query = """
        SELECT
            c.customer_id,
            c.customer_segment,
            COUNT(t.transaction_id) AS transaction_count,
            COALESCE(SUM(t.amount), 0) AS total_spend,
            COUNT(DISTINCT CAST(t.transaction_time AS DATE)) AS active_days
        FROM raw.customers AS c
        LEFT JOIN raw.transactions AS t
            ON t.customer_id = c.customer_id
            AND CAST(t.transaction_time AS DATE) <= :as_of
        GROUP BY c.customer_id, c.customer_segment
    """
    frame = context.sql(query, as_of=as_of).to_pandas()
    where = "customer features from SQL"
    require_columns(frame, ["customer_id", "customer_segment", "transaction_count", "total_spend", "active_days"], where=where)
    require_not_null(frame, ["customer_id", "customer_segment"], where=where)
    return require_between(frame, "total_spend", 0, float("inf"), where=where)


def engineer_ltv_features(customers: pd.DataFrame) -> pd.DataFrame:
    """Add ``repeat_customer``: active on more than one day (customers who come back are worth more)."""
    frame = customers.copy()
    frame["repeat_customer"] = frame["active_days"] > 1
    return frame

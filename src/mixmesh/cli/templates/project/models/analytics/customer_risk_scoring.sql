-- SQL-primary model: SQL aggregates each customer's day, a Python function scores it.
MODEL (
    name analytics.customer_risk_scoring,
    kind INCREMENTAL_BY_TIME_RANGE (time_column score_date),
    cron '@daily',
    -- `grains [a, b]`, not `grain [a, b]`: SQLMesh reads the latter as ONE grain, the array
    -- expression, so `sqlmesh table_diff` cannot join on it.
    grains [customer_id, score_date],
    -- SQL checks of the built rows (audits/sql_logic.sql and one of SQLMesh's own): an audit
    -- returning rows stops the plan.
    audits (risk_tiers_rise_with_scores, unique_combination_of_columns(columns := (customer_id, score_date))),
    description 'Daily risk score of each customer with transactions that day.'
);

WITH customer_days AS (
    SELECT
        customer_id,
        CAST(transaction_time AS DATE) AS score_date,
        COUNT(*) AS transaction_count,
        SUM(amount) AS total_amount,
        -- The day's transactions as one list of structs: the Python function gets list[dict].
        ARRAY_AGG(STRUCT_PACK(amount, merchant_category, transaction_time) ORDER BY transaction_time) AS transaction_details
    FROM raw.transactions
    WHERE CAST(transaction_time AS DATE) BETWEEN @start_date AND @end_date
    GROUP BY customer_id, CAST(transaction_time AS DATE)
),

scored AS (
    SELECT
        *,
        -- python/shared/feature_engineering.py, bound in DuckDB by mixmesh
        @python_risk_score(transaction_details, total_amount, transaction_count) AS ml_risk_score
    FROM customer_days
)

SELECT
    customer_id,
    score_date,
    transaction_count,
    total_amount,
    ml_risk_score,
    -- a SQL function of the project: sql/udfs/risk_scoring_functions.sql
    risk_tier(ml_risk_score) AS risk_tier
FROM scored

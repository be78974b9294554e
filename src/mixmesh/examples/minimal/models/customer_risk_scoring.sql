-- SQL aggregates per customer; Python scores each customer's transactions.
MODEL (name analytics.customer_risk_scoring, kind FULL, grain customer_id);

WITH customer_transactions AS (
    SELECT
        customer_id,
        COUNT(*) AS transaction_count,
        SUM(amount) AS total_amount,
        ARRAY_AGG(
            STRUCT_PACK(amount, merchant_category, transaction_time) ORDER BY transaction_time
        ) AS transaction_details
    FROM raw.transactions
    GROUP BY customer_id
), scored AS (
    SELECT
        customer_id,
        transaction_count,
        total_amount,
        @python_risk_score(transaction_details, total_amount, transaction_count) AS ml_risk_score
    FROM customer_transactions
)
SELECT
    *,
    CASE WHEN ml_risk_score > 0.6 THEN 'HIGH' WHEN ml_risk_score > 0.3 THEN 'MEDIUM' ELSE 'LOW' END AS risk_tier
FROM scored

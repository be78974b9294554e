-- Hybrid model: SQL window functions build each transaction's history, a vectorized Python
-- function scores whole batches, SQL turns the score into a label.
MODEL (
    name analytics.transaction_anomalies,
    -- FULL: the windows look at each customer's whole history, not one day's interval.
    kind FULL,
    grain transaction_id,
    description 'Each transaction compared with the same customer''s earlier ones.'
);

WITH history AS (
    SELECT
        transaction_id,
        customer_id,
        transaction_time,
        amount,
        COUNT(*) OVER earlier AS earlier_transactions,
        ROUND(AVG(amount) OVER earlier, 2) AS typical_amount,
        DATE_DIFF('minute', LAG(transaction_time) OVER by_time, transaction_time) AS minutes_since_previous
    FROM raw.transactions
    WINDOW
        by_time AS (PARTITION BY customer_id ORDER BY transaction_time),
        earlier AS (PARTITION BY customer_id ORDER BY transaction_time ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),

scored AS (
    SELECT
        *,
        -- NULL for a customer's first transaction: no typical amount yet
        @python_anomaly_score(amount, typical_amount) AS anomaly_score
    FROM history
)

SELECT
    *,
    CASE
        WHEN anomaly_score IS NULL THEN 'no_history'
        WHEN anomaly_score >= 0.5 THEN 'spike'
        ELSE 'normal'
    END AS spend_pattern
FROM scored

-- Generated transactions: 200 customers, 20,000 transactions, deterministic.
MODEL (name raw.transactions, kind FULL);

SELECT
    (i % 200) + 1 AS customer_id,
    ROUND(CASE WHEN i % 97 = 0 THEN 2500 ELSE 5 + (hash(i) % 20000)::BIGINT / 100.0 END, 2)::DOUBLE AS amount,
    ['grocery', 'travel', 'fuel', 'electronics', 'dining', 'pharmacy'][1 + (hash(i * 7) % 6)::BIGINT] AS merchant_category,
    TIMESTAMP '2024-01-01' + INTERVAL ((hash(i * 13) % (30 * 24 * 60))::BIGINT) MINUTE AS transaction_time
FROM range(20000) AS r(i)

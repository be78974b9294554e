-- Each transaction in US dollars, at the day's rate from the exchange-rate service. A rate
-- the service could not give is NULL, and its row is in mixmesh_quarantine.rows; more than
-- 10 such rows in an interval fail the interval.
MODEL (
    name analytics.transactions_usd,
    kind INCREMENTAL_BY_TIME_RANGE (time_column transaction_day),
    cron '@daily',
    grain transaction_id,
    audits (quarantined_rows(max_rows := 10)),
    description 'Transactions converted to US dollars at the rate of their day.'
);

WITH rated AS (
    SELECT
        transaction_id,
        transaction_day,
        currency,
        amount,
        @exchange_rate(currency, transaction_day) AS usd_rate
    FROM raw.transactions
    WHERE transaction_day BETWEEN @start_ds AND @end_ds
)

SELECT *, ROUND(CAST(amount AS DOUBLE) * usd_rate, 2) AS amount_usd
FROM rated

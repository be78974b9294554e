-- SQL-primary: SQL aggregates each store into counts and one list of amounts, Python computes
-- the robust statistics over the lists, in batches.
MODEL (
    name analytics.store_sales_stats,
    kind FULL,
    grain store_id,
    description 'Classic and robust statistics of each store''s daily sales.'
);

WITH per_store AS (
    SELECT
        store_id,
        COUNT(amount) AS days_with_sales,
        AVG(amount) AS mean_amount,
        STDDEV_SAMP(amount) AS stddev_amount,
        MEDIAN(amount) AS median_amount,
        ARRAY_AGG(amount ORDER BY sale_date) AS amounts  -- NULLs kept: the functions skip them
    FROM raw.store_daily_sales
    GROUP BY store_id
)

SELECT
    store_id,
    days_with_sales,
    mean_amount,
    stddev_amount,
    median_amount,
    @median_abs_deviation(amounts) AS robust_stddev,
    @normality_p_value(amounts) AS normality_p_value,
    -- not normal at the 5% level; NULL when there were too few days to test
    @normality_p_value(amounts) < 0.05 AS not_normal
FROM per_store

-- Each day against its store's robust statistics: a robust z-score, in SQL, from Python's MAD.
MODEL (
    name analytics.sales_outliers,
    kind FULL,
    grain [store_id, sale_date],
    description 'Days whose sales are far from their store''s median (|robust z| > 3.5).'
);

SELECT
    s.store_id,
    s.sale_date,
    s.amount,
    (s.amount - t.median_amount) / NULLIF(t.robust_stddev, 0) AS robust_z
FROM raw.store_daily_sales AS s
JOIN analytics.store_sales_stats AS t ON s.store_id = t.store_id
WHERE ABS((s.amount - t.median_amount) / NULLIF(t.robust_stddev, 0)) > 3.5

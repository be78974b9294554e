-- Daily sales per store (a seed kept as CSV): S1 steady with two missing days (NULL),
-- S2 steady but for one day at three times its level, S3 skewed, S4 with two days only.
MODEL (
    name raw.store_daily_sales,
    kind SEED (path '../../seeds/store_daily_sales.csv'),
    grain [store_id, sale_date],
    columns (store_id VARCHAR, sale_date DATE, amount DOUBLE)
);

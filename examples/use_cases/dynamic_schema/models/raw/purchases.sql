-- Purchases with a category (a seed kept as CSV); one has no amount (NULL).
MODEL (
    name raw.purchases,
    kind SEED (path '../../seeds/purchases.csv'),
    grain purchase_id,
    columns (purchase_id INTEGER, region VARCHAR, category VARCHAR, amount DECIMAL(10, 2))
);

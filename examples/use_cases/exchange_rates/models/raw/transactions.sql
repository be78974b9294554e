-- Card transactions in their own currencies (a seed kept as CSV).
MODEL (
    name raw.transactions,
    kind SEED (path '../../seeds/transactions.csv'),
    grain transaction_id,
    columns (transaction_id VARCHAR, transaction_day DATE, currency VARCHAR, amount DECIMAL(14, 2))
);

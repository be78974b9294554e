-- Support messages as they arrive: free text, any script, NULLs (a seed kept as CSV).
MODEL (
    name raw.support_messages,
    kind SEED (path '../../seeds/support_messages.csv'),
    grain message_id,
    columns (message_id INTEGER, merchant_raw VARCHAR, body VARCHAR)
);

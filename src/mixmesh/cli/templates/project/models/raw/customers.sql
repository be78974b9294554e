-- A seed: a small, static table kept in the repository as CSV. SQLMesh loads and versions it
-- (editing the CSV changes the model), so the project builds with no outside data.
-- (SQLMesh 0.236 prints pandas warnings when a seed has DATE columns: this one has none.)
MODEL (
    name raw.customers,
    kind SEED (path '../../seeds/customers.csv'),
    grain customer_id,
    columns (customer_id VARCHAR, customer_segment VARCHAR)
);

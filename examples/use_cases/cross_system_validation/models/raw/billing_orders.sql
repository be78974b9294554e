-- System 1, billing: amounts in cents, its own statuses (a seed kept as CSV).
MODEL (
    name raw.billing_orders,
    kind SEED (path '../../seeds/billing_orders.csv'),
    grain order_id,
    columns (order_id INTEGER, amount_cents BIGINT, status VARCHAR, invoiced_on DATE)
);

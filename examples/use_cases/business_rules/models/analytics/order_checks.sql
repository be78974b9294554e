-- SQL-primary: SQL passes each order's columns, Python applies the business rules to the row.
MODEL (
    name analytics.order_checks,
    kind FULL,
    grain order_id,
    audits (invalid_order_share(threshold := 0.6)),
    description 'Each order with the codes of the business rules it breaks.'
);

WITH checked AS (
    SELECT
        order_id,
        customer_tier,
        total,
        @order_violations(quantity, unit_price, discount, total, customer_tier, order_date, ship_date, email) AS violations
    FROM raw.orders
)

SELECT
    *,
    LEN(violations) AS violation_count,
    LEN(violations) = 0 AS is_valid
FROM checked

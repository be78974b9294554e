-- Hybrid: SQL brings each order's two sides together (units and keys made comparable),
-- Python's tolerance rules judge them.
MODEL (
    name analytics.order_reconciliation,
    kind FULL,
    grain order_id,
    audits (mismatch_share(threshold := 0.6)),
    description 'Each order as billing and the warehouse see it, and how they disagree.'
);

WITH warehouse AS (
    SELECT CAST(REGEXP_EXTRACT(order_ref, '\d+') AS INTEGER) AS order_id, amount, status_code, shipped_on
    FROM raw.warehouse_shipments
),

both_sides AS (
    SELECT
        COALESCE(b.order_id, w.order_id) AS order_id,
        b.amount_cents / 100.0 AS billed_amount,
        b.status AS billing_status,
        b.invoiced_on,
        CAST(w.amount AS DOUBLE) AS shipped_amount,
        w.status_code,
        w.shipped_on
    FROM raw.billing_orders AS b
    FULL OUTER JOIN warehouse AS w ON b.order_id = w.order_id
),

judged AS (
    SELECT
        *,
        @order_mismatches(billed_amount, billing_status, invoiced_on, shipped_amount, status_code, shipped_on) AS mismatches
    FROM both_sides
)

SELECT *, LEN(mismatches) = 0 AS is_consistent
FROM judged

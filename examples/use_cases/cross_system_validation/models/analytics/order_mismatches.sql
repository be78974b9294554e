-- The mismatches as rows: one per order and disagreement, for the teams to resolve.
MODEL (
    name analytics.order_mismatches,
    kind FULL,
    grain [order_id, mismatch],
    description 'One row per order and way billing and the warehouse disagree about it.'
);

SELECT order_id, UNNEST(mismatches) AS mismatch, billed_amount, shipped_amount, billing_status, status_code
FROM analytics.order_reconciliation

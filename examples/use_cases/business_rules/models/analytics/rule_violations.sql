-- The violations as rows: one per order and broken rule, for reports and alerts.
MODEL (
    name analytics.rule_violations,
    kind FULL,
    grain [order_id, rule],
    description 'One row per order and business rule it breaks.'
);

SELECT order_id, UNNEST(violations) AS rule
FROM analytics.order_checks

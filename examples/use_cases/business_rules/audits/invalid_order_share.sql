-- Fails when more than @threshold of the model's orders break a rule: a few bad orders are
-- reported as rows (analytics.rule_violations), a flood of them stops the pipeline.
AUDIT (name invalid_order_share);

SELECT invalid_orders, orders, invalid_orders / orders AS invalid_share
FROM (SELECT COUNT(*) FILTER (WHERE NOT is_valid) AS invalid_orders, COUNT(*) AS orders FROM @this_model)
WHERE invalid_orders / orders > @threshold

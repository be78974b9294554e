-- Fails when more than @threshold of the orders disagree between the two systems: a few
-- mismatches are reported as rows (analytics.order_mismatches), more stop the pipeline.
AUDIT (name mismatch_share);

SELECT mismatched, orders, mismatched / orders AS mismatch_share
FROM (SELECT COUNT(*) FILTER (WHERE NOT is_consistent) AS mismatched, COUNT(*) AS orders FROM @this_model)
WHERE mismatched / orders > @threshold

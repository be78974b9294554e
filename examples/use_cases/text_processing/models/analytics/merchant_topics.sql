-- SQL aggregates over the names Python normalised: a dozen spellings, a handful of merchants.
MODEL (
    name analytics.merchant_topics,
    kind FULL,
    grain merchant,
    description 'Messages per merchant and topic, over the normalised merchant names.'
);

SELECT
    merchant,
    COUNT(*) AS messages,
    COUNT(DISTINCT merchant_raw) AS spellings,
    COUNT(*) FILTER (WHERE topic = 'refund') AS refund_requests,
    LIST(DISTINCT topic ORDER BY topic) AS topics
FROM analytics.support_messages_classified
WHERE merchant IS NOT NULL
GROUP BY merchant

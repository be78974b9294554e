-- SQL-primary: SQL reads and shapes the rows, two Python functions clean the free text.
MODEL (
    name analytics.support_messages_classified,
    kind FULL,
    grain message_id,
    description 'Each support message with its merchant normalised and its topic.'
);

SELECT
    message_id,
    merchant_raw,
    -- NULL for a NULL or blank descriptor: the function is strict (NULL in, NULL out)
    @normalise_merchant(merchant_raw) AS merchant,
    body,
    @classify_message(body) AS topic
FROM raw.support_messages

-- Hybrid: a model trained in batch, applied inside SQL to each new interval of events.
MODEL (
    name analytics.scored_events,
    kind INCREMENTAL_BY_TIME_RANGE (time_column event_time),
    cron '@daily',
    grain event_id,
    description 'Each card event with its fraud probability and the decision it leads to.'
);

WITH scored AS (
    SELECT
        event_id,
        event_time,
        amount,
        merchant_risk,
        @fraud_probability(amount, HOUR(event_time), merchant_risk) AS fraud_probability
    FROM raw.card_events
    WHERE event_time BETWEEN @start_ts AND @end_ts
)

SELECT
    *,
    CASE WHEN fraud_probability >= 0.5 THEN 'review' ELSE 'approve' END AS decision
FROM scored

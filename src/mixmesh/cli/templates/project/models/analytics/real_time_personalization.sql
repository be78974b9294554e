-- Hybrid model (the document's): SQL builds sessions from web events with window functions,
-- Python scores them and picks content, SQL sets the targeting flags. Written in the
-- document's BigQuery SQL (`dialect bigquery`): SQLMesh translates it for DuckDB.
-- Where it differs from the document's code, and why:
-- * Every event of a session counts (the document's `WHERE prev_event_time IS NOT NULL`
--   dropped each session's first event, and with it one-event sessions).
-- * A session belongs, whole, to the hour in which it starts: events are read from an hour
--   before the interval to an hour after it, and `lookback 1` recomputes the previous hour
--   on each run, once the rest of its sessions has arrived. (This assumes no session pauses
--   for an hour between two events.)
-- * The grain is what the model outputs: user_id and session_id (one row per session).
-- * @start_dtntz/@end_dtntz are SQLMesh's interval bounds as plain UTC TIMESTAMPs, the type of
--   event_timestamp; processed_at is the run's execution time, not the wall clock, so a
--   rerun gives the same rows.
MODEL (
    name analytics.real_time_personalization,
    kind INCREMENTAL_BY_TIME_RANGE (time_column session_start, lookback 1),
    cron '@hourly',
    -- `grains [a, b]`: two key columns (`grain [a, b]` would be one array-valued grain).
    grains [user_id, session_id],
    -- SQL checks of the built rows (audits/sql_logic.sql and one of SQLMesh's own)
    audits (sessions_add_up, unique_combination_of_columns(columns := (user_id, session_id))),
    dialect bigquery,
    description 'Per session: engagement score, session type, recommended content, premium-offer flag.'
);

WITH session_events AS (
    SELECT
        user_id,
        session_id,
        event_timestamp,
        event_type,
        page_url,
        product_id,
        LAG(event_timestamp) OVER (PARTITION BY user_id, session_id ORDER BY event_timestamp) AS prev_event_time
    FROM raw.events
    -- An hour either side: whole sessions for those that start in the interval (see above).
    WHERE event_timestamp BETWEEN TIMESTAMP_SUB(@start_dtntz, INTERVAL 1 HOUR)
                              AND TIMESTAMP_ADD(@end_dtntz, INTERVAL 1 HOUR)
),

session_features AS (
    SELECT
        user_id,
        session_id,
        MIN(event_timestamp) AS session_start,
        MAX(event_timestamp) AS session_end,
        COUNT(*) AS total_events,
        COUNT(DISTINCT page_url) AS pages_visited,
        COUNT(DISTINCT product_id) AS products_viewed,
        COUNTIF(event_type = 'add_to_cart') AS cart_additions,
        COUNTIF(event_type = 'purchase') AS purchases,
        -- a SQL function of the project: sql/udfs/feature_extraction.sql. NULL for the
        -- first event, which AVG skips: NULL for a one-event session.
        AVG(seconds_between(prev_event_time, event_timestamp)) AS avg_time_between_events
    FROM session_events
    GROUP BY user_id, session_id
    -- The sessions that start in this interval; the others belong to the intervals around it.
    HAVING MIN(event_timestamp) BETWEEN @start_dtntz AND @end_dtntz
),

scored_sessions AS (
    SELECT
        *,
        -- python/shared/personalization.py, vectorized: whole batches of sessions at once
        @python_engagement_score(
            total_events,
            pages_visited,
            products_viewed,
            cart_additions,
            avg_time_between_events,
            user_id  -- for personalized model selection
        ) AS ml_engagement_score,
        CASE
            WHEN purchases > 0 THEN 'converter'
            WHEN cart_additions > 0 THEN 'interested'
            WHEN pages_visited >= 5 THEN 'browsing'
            ELSE 'casual'
        END AS session_type
    FROM session_features
)

SELECT
    user_id,
    session_id,
    session_start,
    session_end,
    total_events,
    session_type,
    ml_engagement_score,
    -- python/shared/personalization.py, row by row: a list of content names per session
    @python_content_recommendations(user_id, session_type, ml_engagement_score, products_viewed) AS recommended_content,
    CASE
        WHEN ml_engagement_score > 0.8 AND session_type = 'interested' THEN true
        ELSE false
    END AS show_premium_offer,
    CAST(@execution_tstz AS TIMESTAMP) AS processed_at
FROM scored_sessions

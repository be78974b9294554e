-- Hybrid Model: Dynamic Feature Engineering with Real-time Scoring (the seed's, in BigQuery SQL).
-- Corrections to the seed:
-- * Its grain named event_timestamp, which the model does not output; the time column is
--   session_start.
-- * Its `WHERE prev_event_time IS NOT NULL` before the aggregation dropped each session's first
--   event (total_events was n - 1, session_start the second event, pages and products missed
--   the landing page, one-event sessions vanished). All events are aggregated now; AVG skips
--   the first event's NULL gap, so avg_time_between_events is the mean gap, NULL for a
--   one-event session, which is kept: a bounce is a real "casual" session (the engagement
--   score counts a NULL gap as no gap penalty).
-- * It cut sessions at the interval's edges: a session crossing the hour gave two rows with
--   the same grain, each with part of its events. A session now belongs, whole, to the interval
--   in which its first event falls (so session_start is inside the interval, as SQLMesh
--   requires of the time column): events are read from an hour before the interval, to see
--   that a session began earlier, to an hour after it, to see how a session goes on. This
--   assumes no session pauses for an hour between two events (sessions usually end after 30
--   idle minutes; the demo's longest lasts 28 minutes); events more than an hour past the end
--   of a session's first hour are not counted. `lookback 1` recomputes the previous hour on
--   each hourly run, once the rest of its sessions has arrived (each run does two hours' work).
-- * The seed's @start_time/@end_time are SQLMesh's @start_dt/@end_dt, TIMESTAMPTZ values:
--   compared with the TIMESTAMP event_timestamp, DuckDB reads the column in the session time
--   zone (the machine's by default), so outside UTC the window moved by the zone's offset.
--   @start_dtntz/@end_dtntz are the same UTC times as plain TIMESTAMPs (sqlmesh/utils/date.py,
--   date_dict). Their end is inclusive, like SQLMesh's own BETWEEN on session_start.
-- * Its processed_at was CURRENT_TIMESTAMP(), the wall clock: it is the run's execution time
--   (@execution_tstz, the same TIMESTAMPTZ type), so a rerun gives the same rows.
-- * Its gaps between events were TIMESTAMP_DIFF(..., SECOND), whole seconds, which engines count
--   differently: BigQuery and Spark count whole seconds elapsed, DuckDB (as sqlglot translates
--   it) the second boundaries crossed, so 10:00:00.9 to 10:00:01.1 was 0 s on one, 1 s on the
--   other. Gaps are counted in microseconds, the timestamps' precision, and given in seconds
--   with their fractions: the same on every engine.
MODEL (
    name analytics.real_time_personalization,
    kind INCREMENTAL_BY_TIME_RANGE (time_column session_start, lookback 1),
    owner 'product-analytics@company.com',
    cron '@hourly',
    grain (user_id, session_id),
    dialect bigquery,
    -- No session may lose its recommendations silently: an hour with a quarantined row fails.
    audits (quarantined_rows(max_rows := 0)),
    -- What the seed's decision framework weighs (`mixmesh advise`): ML scoring, business rules.
    session_properties (mixmesh_requirements = (machine_learning = true, complex_business_rules = true)),
    description 'Real-time personalization features combining SQL-based event processing with Python ML models for dynamic content recommendations.'
);

-- SQL handles high-volume event processing
WITH session_events AS (
    SELECT
        user_id,
        session_id,
        event_timestamp,
        event_type,
        page_url,
        product_id,

        -- Window functions for session analysis
        LAG(event_timestamp) OVER (
            PARTITION BY user_id, session_id
            ORDER BY event_timestamp
        ) as prev_event_time,

        COUNT(*) OVER (
            PARTITION BY user_id, session_id
        ) as session_event_count

    FROM raw.raw_events
    -- An hour either side: whole sessions for those that start in the interval (see above).
    WHERE event_timestamp BETWEEN TIMESTAMP_SUB(@start_dtntz, INTERVAL 1 HOUR)
                              AND TIMESTAMP_ADD(@end_dtntz, INTERVAL 1 HOUR)
),

session_features AS (
    SELECT
        user_id,
        session_id,
        MIN(event_timestamp) as session_start,
        MAX(event_timestamp) as session_end,
        COUNT(*) as total_events,
        COUNT(DISTINCT page_url) as pages_visited,
        COUNT(DISTINCT product_id) as products_viewed,

        -- Behavioral patterns
        COUNTIF(event_type = 'add_to_cart') as cart_additions,
        COUNTIF(event_type = 'purchase') as purchases,

        -- Engagement metrics
        AVG(
            CAST(TIMESTAMP_DIFF(
                event_timestamp,
                prev_event_time,
                MICROSECOND
            ) AS FLOAT64) / 1000000
        ) as avg_time_between_events

    FROM session_events
    GROUP BY user_id, session_id
    -- The sessions that start in this interval; the others belong to the intervals around it.
    HAVING MIN(event_timestamp) BETWEEN @start_dtntz AND @end_dtntz
),

-- Hybrid processing: Python for complex scoring, SQL for aggregation
scored_sessions AS (
    SELECT
        *,

        -- Python function for ML-based scoring
        @python_engagement_score(
            total_events,
            pages_visited,
            products_viewed,
            cart_additions,
            avg_time_between_events,
            user_id  -- For personalized model selection
        ) as ml_engagement_score,

        -- SQL-based business rules
        CASE
            WHEN purchases > 0 THEN 'converter'
            WHEN cart_additions > 0 THEN 'interested'
            WHEN pages_visited >= 5 THEN 'browsing'
            ELSE 'casual'
        END as session_type

    FROM session_features
)

-- Final hybrid output
SELECT
    user_id,
    session_id,
    session_start,
    session_end,
    total_events,
    session_type,
    ml_engagement_score,

    -- Hybrid recommendation logic
    @python_content_recommendations(
        user_id,
        session_type,
        ml_engagement_score,
        products_viewed
    ) as recommended_content,

    -- SQL-based targeting flags
    CASE
        WHEN ml_engagement_score > 0.8 AND session_type = 'interested' THEN true
        ELSE false
    END as show_premium_offer,

    -- When the run was scheduled (SQLMesh's execution time), not the wall clock: a rerun of an
    -- interval gives the same rows, as does the same plan on another engine.
    CAST(@execution_tstz AS TIMESTAMP) as processed_at

FROM scored_sessions;

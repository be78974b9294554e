-- Hybrid Model: Dynamic Feature Engineering with Real-time Scoring (the seed's, in BigQuery SQL).
-- Corrections: the seed's grain named event_timestamp, which the model does not output; the
-- time column is session_start. The seed's @start_time/@end_time are SQLMesh's @start_dt/@end_dt.
MODEL (
    name analytics.real_time_personalization,
    kind INCREMENTAL_BY_TIME_RANGE (time_column session_start),
    owner 'product-analytics@company.com',
    cron '@hourly',
    grain [user_id, session_id],
    dialect bigquery,
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
    WHERE event_timestamp >= @start_dt
      AND event_timestamp < @end_dt
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
            TIMESTAMP_DIFF(
                event_timestamp,
                prev_event_time,
                SECOND
            )
        ) as avg_time_between_events

    FROM session_events
    WHERE prev_event_time IS NOT NULL
    GROUP BY user_id, session_id
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

    CURRENT_TIMESTAMP() as processed_at

FROM scored_sessions;

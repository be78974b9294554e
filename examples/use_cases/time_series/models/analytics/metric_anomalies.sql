-- Python-primary analysis with SQL integration: SQL gathers each point's 28-day history as an
-- ordered list of structs, Python finds the weekly pattern and scores the point; daily and
-- incremental, so each run scores only the new days.
MODEL (
    name analytics.metric_anomalies,
    kind INCREMENTAL_BY_TIME_RANGE (time_column day),
    cron '@daily',
    grain [series_id, day],
    description 'Each day of each series against its weekly pattern of the previous 28 days.'
);

WITH points AS (
    SELECT
        p.series_id,
        p.day,
        p.value,
        -- NULL (no history) for a series' first day: the strict functions then give NULL
        ARRAY_AGG(STRUCT_PACK(ts := h.day, value := h.value) ORDER BY h.day) FILTER (WHERE h.day IS NOT NULL) AS history
    FROM raw.metric_points AS p
    LEFT JOIN raw.metric_points AS h
        ON h.series_id = p.series_id AND h.day BETWEEN p.day - INTERVAL 28 DAY AND p.day - INTERVAL 1 DAY
    WHERE p.day BETWEEN @start_date AND @end_date
    GROUP BY p.series_id, p.day, p.value
),

scored AS (
    SELECT
        series_id,
        day,
        value,
        @seasonal_baseline(day, history) AS expected_value,
        @seasonal_zscore(day, value, history) AS zscore
    FROM points
)

SELECT
    *,
    COALESCE(ABS(zscore) > 3.5, FALSE) AS is_anomaly
FROM scored

-- SQL helper functions of the risk models (DuckDB macros). Models call them like built-in
-- functions; mixmesh creates them where each model runs and rebuilds the models calling a
-- function when its definition changes. Parameters are typed (DuckDB 1.3+): on a Spark gateway the
-- same definitions become Spark SQL functions, which declare their parameters' types.

-- The seed's activity bands for a day's transaction count: above 50 is high, below 5 low.
CREATE MACRO activity_level(transaction_count BIGINT) AS
    CASE
        WHEN transaction_count > 50 THEN 'high_activity'
        WHEN transaction_count < 5 THEN 'low_activity'
        ELSE 'normal_activity'
    END;

-- numerator / denominator, NULL (not an error) when the denominator is 0 or NULL.
CREATE MACRO safe_ratio(numerator DOUBLE, denominator DOUBLE) AS numerator / NULLIF(denominator, 0);

-- The seed's composite tier: the ML score combined with the SQL activity level.
CREATE MACRO risk_tier(ml_risk_score DOUBLE, activity_level VARCHAR) AS
    CASE
        WHEN ml_risk_score > 0.8 AND activity_level = 'high_activity' THEN 'HIGH'
        WHEN ml_risk_score > 0.6 OR activity_level = 'low_activity' THEN 'MEDIUM'
        ELSE 'LOW'
    END;

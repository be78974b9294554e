-- SQL functions of the risk model, written in the project's dialect (DuckDB macros). Models
-- call them like built-in functions; mixmesh creates them where each model runs, and editing
-- a body rebuilds exactly the models that call it. Typed parameters (DuckDB 1.3+) let the
-- same definitions run on a Spark gateway.

-- The tier of a risk score from python_risk_score: above 0.6 HIGH, from 0.4 MEDIUM.
CREATE MACRO risk_tier(ml_risk_score DOUBLE) AS
    CASE
        WHEN ml_risk_score > 0.6 THEN 'HIGH'
        WHEN ml_risk_score >= 0.4 THEN 'MEDIUM'
        ELSE 'LOW'
    END;

-- The SQL logic tests (the document's tests/unit/test_sql_logic.sql). SQLMesh runs SQL checks
-- as audits: a query returning the rows that break a rule, run on the rows a model has just
-- built, by `sqlmesh plan` and `sqlmesh run` (and on demand by `sqlmesh audit`). A model
-- lists its audits in its MODEL block; an audit that returns rows stops the plan before the
-- new version goes live, and the error names the audit and the model. Fixture-row tests of
-- the same models are the YAML tests in tests/.

-- analytics.customer_risk_scoring: scores are probabilities, tiers are the three known ones,
-- and a higher score never gets a lower tier (risk_tier in sql/udfs/risk_scoring_functions.sql).
AUDIT (name risk_tiers_rise_with_scores);
WITH ranked AS (
    SELECT
        *,
        CASE risk_tier WHEN 'LOW' THEN 1 WHEN 'MEDIUM' THEN 2 WHEN 'HIGH' THEN 3 END AS tier_rank
    FROM @this_model
),

ordered AS (
    SELECT
        *,
        MAX(tier_rank) OVER (ORDER BY ml_risk_score, tier_rank ROWS UNBOUNDED PRECEDING) AS highest_rank_so_far,
        COUNT(DISTINCT tier_rank) OVER (PARTITION BY ml_risk_score) AS tiers_of_this_score
    FROM ranked
)

SELECT *
FROM ordered
WHERE tier_rank IS NULL
   OR ml_risk_score IS NULL
   OR ml_risk_score NOT BETWEEN 0 AND 1
   -- a lower tier than a lower score's, or one score given two tiers
   OR tier_rank < highest_rank_so_far
   OR tiers_of_this_score > 1;

-- analytics.real_time_personalization: each session adds up, and the premium offer goes to
-- engaged, interested sessions only.
AUDIT (name sessions_add_up);
SELECT *
FROM @this_model
WHERE total_events < 1
   OR session_end < session_start
   OR ml_engagement_score NOT BETWEEN 0 AND 1
   OR COALESCE(len(recommended_content), 0) = 0
   OR show_premium_offer <> (ml_engagement_score > 0.8 AND session_type = 'interested');

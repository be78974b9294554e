-- Hybrid: a Python macro writes the SQL's columns from the project's configuration.
MODEL (
    name analytics.spend_by_category,
    kind FULL,
    grain region,
    description 'Spend per region, one column per configured category (variable pivot_categories).'
);

SELECT
    region,
    @category_amounts(category, COALESCE(amount, 0)),
    SUM(COALESCE(amount, 0)) AS total_amount,
    COUNT(*) FILTER (WHERE amount IS NULL) AS purchases_without_amount
FROM raw.purchases
GROUP BY region

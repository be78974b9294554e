-- Daily points of three series (a seed kept as CSV), each with its own weekly pattern:
-- web visits drop at weekends, orders peak on Fridays, signups are flat. Two injected
-- anomalies (web visits doubled on 2024-02-05, orders at a tenth on 2024-02-08), one NULL.
MODEL (
    name raw.metric_points,
    kind SEED (path '../../seeds/metric_points.csv'),
    grain [series_id, day],
    columns (series_id VARCHAR, day DATE, value DOUBLE)
);

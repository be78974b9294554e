-- SQL feature functions: the seed's behavioral features that SQL computes as well as Python.
-- Parameters are typed (DuckDB 1.3+), so the same definitions become Spark SQL functions.

-- Night hours as python/shared/feature_engineering.py counts them: before 06:00, or from 23:00.
CREATE MACRO is_night_hour(ts TIMESTAMP) AS hour(ts) < 6 OR hour(ts) > 22;

-- Hours from one timestamp to another, with fractions (the seed's "hours between transactions").
CREATE MACRO hours_between(start_ts TIMESTAMP, end_ts TIMESTAMP) AS date_diff('second', start_ts, end_ts) / 3600.0;

-- SQL feature functions: the seed's behavioral features that SQL computes as well as Python.

-- Night hours as python/shared/feature_engineering.py counts them: before 06:00, or from 23:00.
CREATE MACRO is_night_hour(ts) AS hour(ts) < 6 OR hour(ts) > 22;

-- Hours from one timestamp to another, with fractions (the seed's "hours between transactions").
CREATE MACRO hours_between(start_ts, end_ts) AS date_diff('second', start_ts, end_ts) / 3600.0;

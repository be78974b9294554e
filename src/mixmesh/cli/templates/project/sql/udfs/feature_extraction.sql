-- SQL feature functions: what SQL computes as well as Python, kept in one place.

-- Seconds from one timestamp to the next, with fractions. Counted in microseconds (the
-- timestamps' precision): whole seconds are counted differently by different engines.
CREATE MACRO seconds_between(start_ts TIMESTAMP, end_ts TIMESTAMP) AS
    date_diff('microsecond', start_ts, end_ts) / 1000000.0;

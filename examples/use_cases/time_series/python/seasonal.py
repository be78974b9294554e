"""Seasonal anomaly scores of a daily series, from the points before each day.

The SQL model hands each point its series' previous 28 days as one list of
``{ts, value}`` structs (``ARRAY_AGG(STRUCT_PACK(...) ORDER BY ts)``). The weekly pattern is
the median of each weekday in that history; the point's deviation from its weekday's median
is divided by the spread of the history's own deviations from their weekdays (a scaled median
absolute deviation), so weekends that are always quiet are not anomalies, and one earlier
spike does not hide the next.
"""

from __future__ import annotations

import statistics
from datetime import date
from typing import TypedDict

from mixmesh import udf

# Fewer non-NULL points than this (two weeks) give no score: the pattern is not known yet.
MIN_HISTORY = 14
# A normal distribution's standard deviation is 1.4826 x its median absolute deviation.
MAD_TO_SIGMA = 1.4826


class Point(TypedDict):
    """One element of the model's history list: a STRUCT(ts DATE, value DOUBLE) in SQL."""

    ts: date
    value: float | None


def weekday_medians(history: list[Point]) -> dict[int, float]:
    """The median value of each weekday (0 = Monday) in the history, NULL values skipped."""
    by_weekday: dict[int, list[float]] = {}
    for point in history:
        if point["value"] is not None:
            by_weekday.setdefault(point["ts"].weekday(), []).append(point["value"])
    return {weekday: statistics.median(values) for weekday, values in by_weekday.items()}


@udf
def seasonal_baseline(day: date, history: list[Point]) -> float | None:
    """What the day's value would be on a normal week: its weekday's median in the history."""
    known = [point for point in history if point["value"] is not None]
    if len(known) < MIN_HISTORY:
        return None
    return weekday_medians(known).get(day.weekday())


def leave_one_out_deviations(history: list[Point]) -> list[float]:
    """Each point's deviation from the median of the other points of its weekday.

    Leaving the point out matters with four weeks of history: a weekday's median of two to
    four values, the point included, sits close to it and would make every spread look tiny.
    """
    by_weekday: dict[int, list[Point]] = {}
    for point in history:
        by_weekday.setdefault(point["ts"].weekday(), []).append(point)
    deviations = []
    for point in history:
        others = [other["value"] for other in by_weekday[point["ts"].weekday()] if other is not point]
        if others:
            deviations.append(point["value"] - statistics.median(others))
    return deviations


@udf
def seasonal_zscore(day: date, value: float, history: list[Point]) -> float | None:
    """How many (robust) standard deviations the value is from its weekday's median;
    NULL with too little history or a history without spread."""
    known = [point for point in history if point["value"] is not None]
    if len(known) < MIN_HISTORY:
        return None
    medians = weekday_medians(known)
    deviations = leave_one_out_deviations(known)
    if day.weekday() not in medians or not deviations:
        return None
    # Spread around 0: a deviation from the others' median is 0 on a normal day.
    spread = MAD_TO_SIGMA * statistics.median(abs(deviation) for deviation in deviations)
    return None if spread == 0 else (value - medians[day.weekday()]) / spread

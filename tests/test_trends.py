"""Trends that mean something: per unit of work, and only past a minimum absolute and relative change."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mixmesh.core import settings
from mixmesh.errors import SettingError
from mixmesh.monitor.stats import summarize
from mixmesh.monitor.store import MetricsStore
from mixmesh.monitor.trends import DEGRADING, IMPROVING, STABLE, TrendThresholds, time_trend
from tests.metrics_data import START, model_run

# A model of about 100 ms on a busy machine: runs took 98 to 118 ms, drifting up by chance.
# Mann-Kendall finds the drift significant (p = 0.029) and it is 15 % of the median, yet it
# is 16 ms a run: jitter, not a degradation.
BUSY_MACHINE_MS = [99, 98, 104, 99, 113, 99, 108, 110, 108, 99, 113, 118]


@pytest.fixture(autouse=True)
def no_project_settings() -> None:
    settings.use_project(None)


def test_the_noisy_series_is_significant_but_too_small_to_be_degrading() -> None:
    seconds = [ms / 1000 for ms in BUSY_MACHINE_MS]
    found = time_trend(seconds, rows=[1000] * len(seconds))
    assert found.p_value == pytest.approx(0.029, abs=0.001)  # the statistical test alone would say degrading
    assert found.change > 0.10  # and so would the relative threshold
    assert found.absolute * 1000 == pytest.approx(15.6, abs=0.1)  # ms per median-sized run: under 50
    assert found.direction == STABLE
    assert time_trend(seconds, thresholds=TrendThresholds(min_change_s=0.010)).direction == DEGRADING


def test_a_real_slowdown_is_degrading_and_a_speedup_improving() -> None:
    twice_as_slow = [0.100 + 0.100 * i / 9 for i in range(10)]  # 100 ms to 200 ms
    found = time_trend(twice_as_slow)
    assert found.direction == DEGRADING and found.absolute == pytest.approx(0.100)
    assert time_trend(twice_as_slow[::-1]).direction == IMPROVING
    # A relative threshold above the change keeps it stable, as a larger absolute one does.
    assert time_trend(twice_as_slow, thresholds=TrendThresholds(min_change=1.5)).direction == STABLE
    assert time_trend(twice_as_slow, thresholds=TrendThresholds(min_change_s=0.2)).direction == STABLE


def test_runs_of_7_days_and_1_day_are_compared_per_row_or_per_day() -> None:
    # Backfills of 7 days, then daily runs: each day costs the same 100 ms and 1,000 rows.
    days = [7.0] * 5 + [1.0] * 5
    seconds = [0.1 * d for d in days]
    assert time_trend(seconds).direction == IMPROVING  # per run, the daily runs look 7x faster
    per_row = time_trend(seconds, rows=[1000 * d for d in days])
    per_day = time_trend(seconds, rows=[None] * 10, interval_days=days)
    assert (per_row.direction, per_row.basis) == (STABLE, "row")
    assert (per_day.direction, per_day.basis) == (STABLE, "interval day")
    # Daily runs that really slow down, per row, are still found among backfills.
    slower = [0.1 * d * (1 + i / 9) for i, d in enumerate(days)]
    assert time_trend(slower, rows=[1000 * d for d in days]).direction == DEGRADING


def test_stats_normalise_by_the_recorded_rows(tmp_path: Path) -> None:
    store = MetricsStore(tmp_path / "metrics.duckdb", background_merge=False)
    for index, days in enumerate([1, 1, 1, 7, 7, 7, 7]):  # a catch-up of a week after daily runs
        store.append([model_run("a.m", at=START + dt.timedelta(days=index), total_s=0.5 * days, rows_out=5000 * days)])
    (model,) = summarize(store).models
    assert (model.time_trend.direction, model.time_trend.basis) == (STABLE, "row")


def test_thresholds_come_from_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.mixmesh]\ntrend_min_change = "25%"\ntrend_min_change_ms = 5\n')
    settings.use_project(tmp_path)
    assert TrendThresholds.from_settings() == TrendThresholds(min_change=0.25, min_change_s=0.005)
    monkeypatch.setenv("MIXMESH_TREND_MIN_CHANGE", "0.5")
    assert TrendThresholds.from_settings().min_change == 0.5
    monkeypatch.setenv("MIXMESH_TREND_MIN_CHANGE_MS", "-3")
    with pytest.raises(SettingError, match="MIXMESH_TREND_MIN_CHANGE_MS='-3' is not a number of at least 0"):
        TrendThresholds.from_settings()

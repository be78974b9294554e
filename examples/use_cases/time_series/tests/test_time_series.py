"""The project built day by day with SQLMesh on DuckDB: scores checked against a pandas
computation of the same definition, the injected anomalies found, and incremental runs."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd
import pytest

from mixmesh.testing import copy_project

PROJECT = Path(__file__).resolve().parents[1]
INJECTED = {("web_visits", "2024-02-05"), ("orders", "2024-02-08")}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """A copy planned as on 2024-02-10 (days up to 2024-02-09), then run as on 2024-02-12."""
    from sqlmesh import Context

    copy = tmp_path_factory.mktemp("project") / PROJECT.name
    copy_project(PROJECT, copy)
    previous = Path.cwd()
    os.chdir(copy)
    context = Context(paths=str(copy))
    try:
        context.plan(auto_apply=True, no_prompts=True, execution_time="2024-02-10")
        before = context.fetchdf("SELECT * FROM analytics.metric_anomalies")
        context.run(execution_time="2024-02-12")
        yield context, before
    finally:
        context.close()
        os.chdir(previous)


def expected_scores() -> pd.DataFrame:
    """The definition of python/seasonal.py, written again with pandas over the CSV."""
    points = pd.read_csv(PROJECT / "seeds/metric_points.csv", parse_dates=["day"])
    rows = []
    for (series, day), value in points.set_index(["series_id", "day"])["value"].items():
        history = points[(points.series_id == series) & (points.day >= day - pd.Timedelta(days=28)) & (points.day < day)].dropna()
        history = history.assign(weekday=history.day.dt.weekday)
        zscore = None
        if len(history) >= 14 and not pd.isna(value):
            weekday_median = history.groupby("weekday")["value"].median()
            others_median = history.apply(lambda p: history[(history.weekday == p.weekday) & (history.day != p.day)]["value"].median(), axis=1)
            spread = 1.4826 * (history["value"] - others_median).dropna().abs().median()
            zscore = (value - weekday_median[day.weekday()]) / spread
        rows.append({"series_id": series, "day": day.strftime("%Y-%m-%d"), "zscore": zscore})
    return pd.DataFrame(rows)


def test_the_yaml_test_passes(built) -> None:
    context, _ = built
    result = context.test(stream=io.StringIO())
    assert result.testsRun == 1 and result.wasSuccessful(), [text for _, text in result.failures + result.errors]


def test_scores_match_a_pandas_computation(built) -> None:
    context, _ = built
    actual = context.fetchdf("SELECT series_id, CAST(day AS VARCHAR) AS day, zscore FROM analytics.metric_anomalies")
    merged = expected_scores().merge(actual, on=["series_id", "day"], suffixes=("_expected", "_actual"), how="outer")
    assert len(merged) == 3 * 42
    assert merged["zscore_expected"].isna().equals(merged["zscore_actual"].isna())
    assert merged["zscore_actual"].dropna().tolist() == pytest.approx(merged["zscore_expected"].dropna().astype(float).tolist())


def test_the_injected_anomalies_and_nothing_else_are_flagged(built) -> None:
    context, _ = built
    flagged = context.fetchdf("SELECT series_id, CAST(day AS VARCHAR) AS day FROM analytics.metric_anomalies WHERE is_anomaly")
    assert set(flagged.itertuples(index=False, name=None)) == INJECTED


def test_the_null_point_and_the_first_two_weeks_have_no_score(built) -> None:
    context, _ = built
    unscored = context.fetchdf("SELECT series_id, count(*) AS n, max(day) AS last FROM analytics.metric_anomalies "
                               "WHERE zscore IS NULL GROUP BY 1 ORDER BY 1").to_dict("records")
    assert [(row["series_id"], row["n"]) for row in unscored] == [("orders", 15), ("signups", 14), ("web_visits", 14)]
    assert str(unscored[0]["last"])[:10] == "2024-01-20"  # orders' NULL value


def test_a_run_scores_only_the_new_days(built) -> None:
    context, before = built
    after = context.fetchdf("SELECT * FROM analytics.metric_anomalies")
    assert str(before["day"].max())[:10] == "2024-02-09" and len(before) == 3 * 40
    assert len(after) == 3 * 42 and not after.duplicated(["series_id", "day"]).any()
    kept = after.merge(before, on=["series_id", "day"], suffixes=("", "_before"))
    assert len(kept) == len(before) and kept["zscore"].equals(kept["zscore_before"])

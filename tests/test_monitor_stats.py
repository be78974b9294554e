"""Per-model and per-function figures, the trend rule at its boundaries, recommendations, `mixmesh stats`."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import typing as t
from pathlib import Path

import numpy as np
import pytest

from mixmesh.monitor import stats
from mixmesh.monitor.stats import (
    DEGRADING,
    IMPROVING,
    STABLE,
    UNKNOWN,
    analyze_performance_trends,
    mann_kendall,
    summarize,
    theil_sen_slope,
    trend,
)
from mixmesh.monitor.store import MetricsStore
from tests import fresh_process
from tests.metrics_data import START, days_ago, function_run, model_run


# ------------------------------------------------------------------ the trend rule


def test_mann_kendall_by_hand() -> None:
    # One discordant pair out of 15: S = 14 - 1 = 13; Var(S) = 6*5*17/18; Z = (S - 1)/sqrt(Var).
    s, variance, z, p = mann_kendall([1, 2, 3, 4, 6, 5])
    assert (s, variance) == (13, pytest.approx(6 * 5 * 17 / 18))
    assert z == pytest.approx(12 / math.sqrt(6 * 5 * 17 / 18))
    assert p == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert p == pytest.approx(0.02417, abs=1e-4)
    # Ties shrink the variance: a group of 3 equal values removes 3*2*11.
    s, variance, _, _ = mann_kendall([1, 2, 2, 2, 3, 4])
    assert s == 12 and variance == pytest.approx((6 * 5 * 17 - 3 * 2 * 11) / 18)
    assert mann_kendall([5, 5, 5, 5, 5, 5])[2:] == (0.0, 1.0)


def test_theil_sen_is_the_median_pairwise_slope() -> None:
    assert theil_sen_slope([1, 3, 5, 7, 9, 11]) == 2.0
    # An outlier barely moves it.
    assert theil_sen_slope([1, 3, 5, 1000, 9, 11]) == 2.0
    assert theil_sen_slope([3]) == 0.0


def test_fewer_than_min_runs_is_unknown() -> None:
    rising = [10, 20, 30, 40, 50, 60]
    assert trend(rising[: stats.MIN_RUNS - 1]).direction == UNKNOWN
    assert trend(rising[: stats.MIN_RUNS]).direction == DEGRADING
    assert trend([float("nan"), *rising[:5]]).direction == UNKNOWN  # missing values do not count


def test_the_significance_boundary() -> None:
    # n = 6: S = 13 gives p = 0.024 < 0.05; S = 11 gives p = 0.060, not significant.
    one_swap, two_swaps = [1, 2, 3, 4, 6, 5], [2, 1, 3, 4, 6, 5]
    assert mann_kendall(two_swaps)[0] == 11 and mann_kendall(two_swaps)[3] == pytest.approx(0.0603, abs=1e-4)
    assert trend(one_swap).direction == DEGRADING
    assert trend(two_swaps).direction == STABLE
    assert trend(two_swaps, alpha=0.07).direction == DEGRADING


def test_the_minimum_change_boundary() -> None:
    # Steady rises, all significant (p = 0.0085); the change across the window decides.
    exactly_ten_percent = [95, 97, 99, 101, 103, 105]  # slope 2 x 5 steps / median 100 = 0.10
    found = trend(exactly_ten_percent)
    assert (found.slope, found.change, found.direction) == (2.0, 0.10, DEGRADING)
    just_under = [95.5, 97.3, 99.1, 100.9, 102.7, 104.5]  # slope 1.8 x 5 / 100 = 0.09
    found = trend(just_under)
    assert found.p_value < stats.ALPHA and found.change == pytest.approx(0.09) and found.direction == STABLE


def test_direction_depends_on_which_way_is_worse() -> None:
    falling = [60, 50, 40, 30, 20, 10]
    assert trend(falling).direction == IMPROVING
    assert trend(falling, higher_is_worse=False).direction == DEGRADING
    assert trend(falling[::-1], higher_is_worse=False).direction == IMPROVING
    assert trend([5, 5, 5, 5, 5, 5]).direction == STABLE
    noisy = [10, 12, 9, 11, 10, 12, 9, 11]
    assert trend(noisy).direction == STABLE


def test_a_rise_from_zero_is_a_rise() -> None:
    assert trend([0, 0, 0, 0, 1, 2, 3]).direction == DEGRADING


# ------------------------------------------------------------------ figures


def _store(tmp_path: Path) -> MetricsStore:
    return MetricsStore(tmp_path / ".mixmesh" / "metrics.duckdb", background_merge=False)


def test_model_figures(tmp_path: Path) -> None:
    store = _store(tmp_path)
    times = [1.0, 2.0, 3.0, 4.0, 10.0]
    for index, total in enumerate(times):
        run = model_run("a.m", at=START + dt.timedelta(days=index), total_s=total, python_s=total / 4,
                        rows_out=1000, peak_rss_mb=100 + index, retries=1, fallbacks=2)
        store.append([run])
    store.append([model_run("a.m", at=START + dt.timedelta(days=9), total_s=99.0, status="failed",
                            rows_out=None, peak_rss_mb=500, errors=3)])
    summary = summarize(store)
    (model,) = summary.models
    assert (model.model, model.runs, model.failed) == ("a.m", 6, 1)
    assert model.mean_s == pytest.approx(np.mean(times))  # failed runs are counted, not timed
    assert model.p95_s == pytest.approx(np.percentile(times, 95))
    assert model.p50_s == pytest.approx(3.0)
    assert (model.python_share, model.sql_share) == (pytest.approx(0.25), pytest.approx(0.75))
    assert model.rows_per_s == pytest.approx(5000 / sum(times))
    assert model.peak_memory_mb == 104.0
    assert (model.retries, model.fallbacks, model.errors) == (5, 10, 3)
    assert model.last_run_at == dt.datetime(2026, 1, 10)
    assert model.time_trend.direction == UNKNOWN and model.time_trend.n == 5
    assert summary.store == store.location


def test_a_retry_backoff_has_its_own_share(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.append([model_run("a.m", at=START, total_s=2.0, python_s=0.5, sql_s=0.5, wait_s=1.0)])
    store.append([model_run("a.m", at=START + dt.timedelta(days=1), total_s=2.0, python_s=0.5)])  # kept without wait_s
    (model,) = summarize(store).models
    assert (model.python_share, model.sql_share, model.wait_share) == (0.25, 0.5, 0.25)


def test_function_figures(tmp_path: Path) -> None:
    store = _store(tmp_path)
    for calls, p50, p95, length in ((100, 0.001, 0.010, 10.0), (300, 0.003, 0.020, 30.0)):
        run = model_run("a.m")
        store.append([run], [function_run(run, "score", calls=calls, rows=calls, total_s=calls * 0.002,
                                          p50_batch_s=p50, p95_batch_s=p95, errors=1, mean_list_length=length),
                             function_run(run, "zscore", mode="vectorized", calls=2, rows=calls, total_s=0.01)])
    summary = summarize(store)
    score, zscore = summary.functions
    assert (score.function, score.mode, score.runs, score.calls, score.rows) == ("score", "row", 2, 400, 400)
    assert score.total_s == pytest.approx(0.8)
    # Calls-weighted: 300 of the 400 calls ran with a p50 of 3 ms.
    assert (score.p50_batch_s, score.p95_batch_s) == (0.003, 0.020)
    assert score.errors == 2
    assert score.mean_list_length == pytest.approx((10 * 100 + 30 * 300) / 400)
    assert (zscore.function, zscore.mode, zscore.calls, zscore.rows) == ("zscore", "vectorized", 4, 400)
    assert zscore.mean_list_length is None


# ------------------------------------------------------------------ recommendations


def _recommendations(tmp_path: Path, runs: t.Sequence[t.Tuple[t.Any, t.Sequence[t.Any]]]) -> t.List[t.Any]:
    store = _store(tmp_path)
    for run, functions in runs:
        store.append([run], functions)
    return summarize(store).recommendations


@pytest.mark.parametrize("mean_s, fires", [(300.0, False), (300.5, True)])
def test_over_five_minutes_suggests_incremental_processing(tmp_path: Path, mean_s: float, fires: bool) -> None:
    runs = [(model_run("a.slow", total_s=mean_s - 10, rows_out=10**9), []),
            (model_run("a.slow", total_s=mean_s + 10, rows_out=10**9), [])]
    advice = _recommendations(tmp_path, runs)
    assert [a.rule for a in advice] == (["incremental"] if fires else [])
    if fires:
        (found,) = advice
        assert (found.model, found.figure, found.value, found.threshold) == ("a.slow", "mean_s", mean_s, 300.0)
        assert "a.slow" in found.message and "incremental processing" in found.message and "300.5" not in found.message


def test_memory_trending_up_suggests_looking_for_leaks(tmp_path: Path) -> None:
    runs = [(model_run("a.leaky", at=START + dt.timedelta(hours=i), peak_rss_mb=200 + 25 * i), []) for i in range(8)]
    (found,) = _recommendations(tmp_path, runs)
    assert (found.rule, found.model, found.figure, found.threshold) == ("memory_leak", "a.leaky", "peak_memory_trend_p_value", 0.05)
    assert found.value < 0.05
    assert "+25.0 MiB per run" in found.message and "memory leaks" in found.message


def test_flat_memory_suggests_nothing(tmp_path: Path) -> None:
    runs = [(model_run("a.fine", at=START + dt.timedelta(hours=i), peak_rss_mb=200 + (i % 2)), []) for i in range(8)]
    assert _recommendations(tmp_path, runs) == []


@pytest.mark.parametrize(
    "python_share, rows_per_s, fires",
    [(0.5, 49_999.0, True), (0.49, 49_999.0, False), (0.5, 50_000.0, False), (0.9, 10.0, True)],
)
def test_high_python_share_at_low_rows_per_second_suggests_vectorizing(
    tmp_path: Path, python_share: float, rows_per_s: float, fires: bool
) -> None:
    run = model_run("a.py", total_s=10.0, python_s=10.0 * python_share, rows_out=int(rows_per_s * 10))
    functions = [function_run(run, "small", total_s=0.5), function_run(run, "big", total_s=4.0),
                 function_run(run, "fast", mode="vectorized", total_s=3.5)]
    advice = _recommendations(tmp_path, [(run, functions)])
    assert [a.rule for a in advice] == (["vectorize"] if fires else [])
    if fires:
        (found,) = advice
        # The function with the most Python time is named: a row-mode one.
        assert (found.model, found.function, found.figure) == ("a.py", "big", "python_share")
        assert found.value == pytest.approx(python_share) and found.threshold == 0.5
        assert "@udf(vectorized=True)" in found.message and f"{rows_per_s:,.0f} rows/s" in found.message


def _python_bound(tmp_path: Path, *functions: t.Tuple[str, t.Dict[str, t.Any]]) -> t.List[t.Any]:
    """A model whose Python time (90% at 900 rows/s) went to ``functions`` (name, function_run changes)."""
    run = model_run("a.py", total_s=10.0, python_s=9.0, rows_out=9000)
    return _recommendations(tmp_path, [(run, [function_run(run, name, **changes) for name, changes in functions])])


def test_a_vectorized_function_is_not_told_to_vectorize(tmp_path: Path) -> None:
    """Regression: with only vectorized functions, the advice read "vectorize: process whole
    batches ... instead of row by row"."""
    (found,) = _python_bound(tmp_path, ("zscore", dict(mode="vectorized", calls=4, rows=8000, total_s=8.0)),
                             ("label", dict(mode="row", total_s=0.5)))
    assert (found.rule, found.function) == ("vectorized_cost", "zscore")
    assert "zscore is vectorized already (8.0 s, 4 batch(es) of 2,000 rows on average)" in found.message
    assert "row by row" not in found.message and "@udf(vectorized=True)" not in found.message


def test_functions_are_advised_in_the_mode_of_their_latest_run(tmp_path: Path) -> None:
    """A function recorded in row mode, then declared vectorized: advised as vectorized; its old
    row-mode runs, with their large lists, no longer call for aggregating in SQL."""
    store = _store(tmp_path)
    before = model_run("a.py", at=START, total_s=10.0, python_s=9.0, rows_out=9000)
    store.append([before], [function_run(before, "score", mode="row", calls=None, rows=None, total_s=30.0,
                                         mean_list_length=500.0)])
    after = model_run("a.py", at=START + dt.timedelta(days=1), total_s=10.0, python_s=9.0, rows_out=9000)
    store.append([after], [function_run(after, "score", mode="vectorized", calls=2, rows=9000, total_s=8.0)])
    summary = summarize(store)
    assert [(f.mode, f.current) for f in summary.functions] == [("row", False), ("vectorized", True)]
    assert [(r.rule, r.function) for r in summary.recommendations] == [("vectorized_cost", "score")]


@pytest.mark.parametrize("changes, says", [
    (dict(mode="row", calls=None, rows=None), "declare label (row mode, called once per row, 8.0 s) with @udf(vectorized=True)"),
    (dict(mode="row", calls=3, rows=9000), "declare label (row mode, the fast path hands it batches of 3,000 rows but "
                                           "calls it once per row, 8.0 s) with @udf(vectorized=True)"),
    (dict(mode="model", calls=None, rows=None), "the model's own Python code takes 8.0 s: work on whole columns"),
])
def test_the_vectorize_advice_fits_how_the_function_ran(tmp_path: Path, changes: t.Dict[str, t.Any], says: str) -> None:
    (found,) = _python_bound(tmp_path, ("label", dict(total_s=8.0, **changes)))
    assert found.rule == "vectorize" and says in found.message


def test_a_slow_vectorized_function_in_a_real_project_gets_advice_that_fits_it(tmp_path: Path) -> None:
    from tests.projects import Project, forget_project_modules

    project = Project(tmp_path / "project")
    project.write("macros/functions.py", """
        import time

        import pyarrow.compute as pc

        from mixmesh import udf


        @udf(vectorized=True)
        def slow_twice(x: float) -> float:
            time.sleep(1.5)  # a costly batch: Python is most of the time, even on a busy machine
            return pc.multiply(x, 2.0)
    """)
    project.write("models/twice.sql", """
        MODEL (name analytics.twice, kind FULL);
        SELECT x, @slow_twice(x) AS twice FROM (SELECT range::DOUBLE AS x FROM range(5000))
    """)
    try:
        project.plan()
    finally:
        project.close()
        forget_project_modules()
    summary = summarize(MetricsStore.for_project(project.root, setting=""))
    assert [(f.function, f.mode) for f in summary.functions] == [("slow_twice", "vectorized")]
    (found,) = summary.recommendations
    assert (found.rule, found.model, found.function) == ("vectorized_cost", "analytics.twice", "slow_twice")
    assert "row by row" not in found.message and "@udf(vectorized=True)" not in found.message


@pytest.mark.parametrize("length, mode, fires", [(100.0, "row", True), (99.9, "row", False), (5000.0, "vectorized", False)])
def test_a_row_function_fed_large_lists_suggests_aggregating_in_sql(
    tmp_path: Path, length: float, mode: str, fires: bool
) -> None:
    run = model_run("a.risk", python_s=0.1)
    advice = _recommendations(tmp_path, [(run, [function_run(run, "python_risk_score", mode=mode, mean_list_length=length)])])
    assert [a.rule for a in advice] == (["aggregate_in_sql"] if fires else [])
    if fires:
        (found,) = advice
        assert (found.model, found.function, found.figure, found.value) == ("a.risk", "python_risk_score", "mean_list_length", 100.0)
        assert "python_risk_score" in found.message and "aggregate in SQL first" in found.message


def test_the_seeds_analyze_performance_trends(tmp_path: Path) -> None:
    store = _store(tmp_path)
    for i in range(8):
        store.append([model_run("a.m", at=days_ago(6 - i * 0.5), total_s=400.0, peak_rss_mb=100 + 50 * i)])
    store.append([model_run("a.m", at=days_ago(30), total_s=1.0)])  # outside the 7 days
    analysis = analyze_performance_trends(store, "a.m", days=7)
    assert analysis["avg_execution_time"] == 400.0 and analysis["p95_execution_time"] == 400.0
    assert analysis["memory_trend"] == "increasing"
    assert analysis["throughput_trend"] == "stable"
    assert [message.split(":")[0] for message in analysis["optimization_recommendations"]] == ["a.m", "a.m"]
    assert analyze_performance_trends(store, "a.other")["memory_trend"] == "unknown"


# ------------------------------------------------------------------ the command


def _mixmesh(*args: str, cwd: Path, env: t.Optional[t.Dict[str, str]] = None, check: bool = True) -> fresh_process.Finished:
    environment = {**os.environ, "COLUMNS": "220", **(env or {})}
    environment.pop("MIXMESH_METRICS", None)
    environment.update(env or {})
    result = fresh_process.run_mixmesh(args, cwd=cwd, env=environment)
    assert result.returncode == 0 or not check, f"mixmesh {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "config.yaml").write_text("model_defaults:\n  dialect: duckdb\n")  # stats need a project
    store = MetricsStore.for_project(tmp_path, setting="")
    for i in range(8):
        run = model_run("analytics.customer_risk_scoring", at=days_ago(8 - i), total_s=2.0 + i, python_s=1.5 + i,
                        rows_out=1000, peak_rss_mb=300 + 40 * i)
        store.append([run], [function_run(run, "python_risk_score", mean_list_length=250.0, total_s=1.0 + i)])
    other = model_run("analytics.customer_ltv_prediction", at=days_ago(20), total_s=400.0, python_s=10.0, rows_out=10**8)
    store.append([other])
    store.flush()
    return tmp_path


def test_stats_tables(project: Path) -> None:
    out = _mixmesh("stats", cwd=project).stdout
    assert "Models" in out and "Functions" in out and "Recommendations" in out
    for text in ("analytics.customer_risk_scoring", "analytics.customer_ltv_prediction", "python_risk_score",
                 "degrading", "unknown (1 run)", "aggregate in SQL first", "memory leaks", "incremental processing",
                 "vectorize"):
        assert text in out, text


def test_stats_json_model_and_days(project: Path) -> None:
    document = json.loads(_mixmesh("stats", "--json", "--project", str(project), cwd=project.parent).stdout)
    assert document["schema_version"] == 1 and document["store"].endswith("metrics.duckdb")
    assert [m["model"] for m in document["models"]] == ["analytics.customer_ltv_prediction", "analytics.customer_risk_scoring"]
    risk = document["models"][1]
    assert risk["runs"] == 8 and risk["mean_s"] == pytest.approx(5.5)
    assert risk["time_trend"]["direction"] == "degrading" and risk["time_trend"]["n"] == 8
    assert {r["rule"] for r in document["recommendations"]} == {"incremental", "memory_leak", "vectorize", "aggregate_in_sql"}
    assert document["thresholds"]["long_run_s"] == 300.0

    recent = json.loads(_mixmesh("stats", "--json", "--days", "10", cwd=project).stdout)
    assert [m["model"] for m in recent["models"]] == ["analytics.customer_risk_scoring"]
    one = json.loads(_mixmesh("stats", "--json", "--model", "analytics.customer_ltv_prediction", cwd=project).stdout)
    assert [m["model"] for m in one["models"]] == ["analytics.customer_ltv_prediction"] and one["functions"] == []


def test_stats_with_nothing_recorded_or_metrics_off(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("model_defaults:\n  dialect: duckdb\n")
    assert "No model evaluations recorded in" in _mixmesh("stats", cwd=tmp_path).stdout
    assert "Metrics are off" in _mixmesh("stats", cwd=tmp_path, env={"MIXMESH_METRICS": "off"}).stdout
    assert json.loads(_mixmesh("stats", "--json", cwd=tmp_path).stdout)["models"] == []


def test_stats_refuses_two_formats_and_reports_a_bad_store(project: Path) -> None:
    both = _mixmesh("stats", "--json", "--prometheus", cwd=project, check=False)
    assert both.returncode == 2 and "choose one" in both.stderr
    import duckdb

    with duckdb.connect(str(project / ".mixmesh" / "metrics.duckdb")) as connection:
        connection.execute("UPDATE schema_version SET version = 7")
    bad = _mixmesh("stats", cwd=project, check=False)
    assert bad.returncode == 1 and "schema version 7" in bad.stderr and "Traceback" not in bad.stderr

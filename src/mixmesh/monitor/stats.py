"""Figures per model and per function from the metrics store, trends, and recommendations.

``summarize(store, model=None, days=None)`` gives, per model: runs, mean and p95 total time,
SQL vs Python share, rows/s, peak memory, and trends of time and memory; per model version
(SQLMesh's snapshot fingerprint): its runs and figures, and whether the version changed
there; per function: calls, rows, total time, p50/p95 batch time, errors; and the
recommendations they trigger.

Trends compare like with like: they are taken over the runs of the model's current version
(the latest run's), as runs of other code are not the same series.

Longer than 450 lines because the figures and the recommendations read the same frames and
thresholds, and each rule is a few lines next to the figures it reads (the version grouping
and the trend rule are already modules of their own).

**Trend rule**: ``mixmesh.monitor.trends`` (re-exported here).

**Recommendations** (the seed's ``analyze_performance_trends`` and issue 6), each naming
the model or function and the figure that triggered it:

- ``incremental``: mean run time over ``LONG_RUN_S`` (300 s, 5 minutes) → incremental
  processing or partitioning;
- ``memory_leak``: peak memory trending up by the trend rule → look for leaks;
- ``vectorize``: Python's share of the run time at least ``HIGH_PYTHON_SHARE`` (50 %) while
  the model writes under ``LOW_ROWS_PER_S`` (50,000) rows/s, and the Python time is mostly a
  row-mode function's (→ declare it vectorized) or a Python model's own code (→ whole
  columns rather than row loops);
- ``vectorized_cost``: the same figures, but the function with the most time is vectorized
  already → make its per-batch work cheaper, or move it into SQL;
- ``aggregate_in_sql``: a row-mode function whose list arguments hold at least
  ``LARGE_LIST`` (100) elements on average → aggregate in SQL first.

Functions are advised in the mode monitoring recorded at their latest run in the window
(``FunctionStats.current``): a function declared vectorized since is not told to vectorize.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import typing as t

from mixmesh.monitor.trends import (  # noqa: F401 - the trend rule, re-exported
    ALPHA,
    DEGRADING,
    IMPROVING,
    MIN_CHANGE,
    MIN_RUNS,
    STABLE,
    TREND_WINDOW,
    UNKNOWN,
    Trend,
    TrendThresholds,
    mann_kendall,
    theil_sen_slope,
    time_trend as run_time_trend,
    trend,
)
from mixmesh.monitor.versions import VersionStats, largest_number, version_keys, version_stats

if t.TYPE_CHECKING:
    import pandas as pd

    from mixmesh.monitor.store import MetricsStore

LONG_RUN_S = 300.0
HIGH_PYTHON_SHARE = 0.5
LOW_ROWS_PER_S = 50_000.0
LARGE_LIST = 100.0

# ------------------------------------------------------------------ figures


@dataclasses.dataclass(frozen=True)
class ModelStats:
    """One model's figures over its runs in the window."""

    model: str
    runs: int
    failed: int
    mean_s: t.Optional[float]  # over successful runs
    p50_s: t.Optional[float]
    p95_s: t.Optional[float]
    sql_share: t.Optional[float]  # of the total time
    python_share: t.Optional[float]
    wait_share: t.Optional[float]  # a retry's backoff between attempts
    rows_per_s: t.Optional[float]  # rows written / seconds, over runs that report rows
    peak_memory_mb: t.Optional[float]  # the highest peak
    retries: int
    fallbacks: int
    errors: int
    breaker_transitions: int
    last_run_at: t.Optional[dt.datetime]
    time_trend: Trend
    memory_trend: Trend
    throughput_trend: Trend
    version: t.Optional[str] = None  # the latest run's model version (fingerprint); None: not recorded
    versions: int = 1  # model versions among the runs (runs recorded without one count as one)
    added_memory_mb: t.Optional[float] = None  # the most one evaluation added to the process's memory

    def to_dict(self) -> t.Dict[str, t.Any]:
        return _jsonable(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class FunctionStats:
    """One function's figures within one model, over the window."""

    model: str
    function: str
    mode: str  # row or vectorized
    runs: int  # evaluations that called it
    calls: int
    rows: int
    total_s: float
    p50_batch_s: t.Optional[float]  # calls-weighted median of the runs' p50
    p95_batch_s: t.Optional[float]  # calls-weighted 95th percentile of the runs' p95
    errors: int
    mean_list_length: t.Optional[float]  # rows-weighted, over runs that report it
    current: bool = True  # the mode of its latest run in the window (False: a mode it ran in before)
    findings: t.Dict[str, int] = dataclasses.field(default_factory=dict)  # mixmesh.count totals
    path: t.Optional[str] = None  # how its latest run that says ran it: fast path, or plain binding and why
    max_in_flight: t.Optional[int] = None  # concurrency: the most calls in flight at once, over its runs
    calls_per_s: t.Optional[float] = None  # rate_limit: the attempts per second its latest run let through
    cache_hits: t.Optional[int] = None  # a cached function's rows read from the result cache (None: not cached)
    cache_misses: t.Optional[int] = None  # and the calls it made for the others

    def to_dict(self) -> t.Dict[str, t.Any]:
        return _jsonable(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """Advice, the model (and function) it is about, and the figure that triggered it."""

    rule: str  # incremental, memory_leak, vectorize, vectorized_cost, aggregate_in_sql
    model: str
    function: t.Optional[str]
    figure: str
    value: float
    threshold: float
    message: str

    def to_dict(self) -> t.Dict[str, t.Any]:
        return _jsonable(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class Summary:
    """What ``mixmesh stats`` shows: models, functions, recommendations."""

    models: t.List[ModelStats]
    functions: t.List[FunctionStats]
    recommendations: t.List[Recommendation]
    days: t.Optional[float] = None
    store: t.Optional[str] = None
    trend_thresholds: TrendThresholds = TrendThresholds()
    versions: t.List[VersionStats] = dataclasses.field(default_factory=list)  # by model, oldest version first

    def to_dict(self) -> t.Dict[str, t.Any]:
        from mixmesh.monitor.records import SCHEMA_VERSION

        return {
            "schema_version": SCHEMA_VERSION,
            "store": self.store,
            "days": self.days,
            "models": [model.to_dict() for model in self.models],
            "versions": [_jsonable(dataclasses.asdict(version)) for version in self.versions],
            "functions": [function.to_dict() for function in self.functions],
            "recommendations": [recommendation.to_dict() for recommendation in self.recommendations],
            "thresholds": {
                "alpha": self.trend_thresholds.alpha, "min_runs": MIN_RUNS, "min_change": self.trend_thresholds.min_change,
                "min_change_ms": self.trend_thresholds.min_change_s * 1000, "trend_window": TREND_WINDOW,
                "long_run_s": LONG_RUN_S,
                "high_python_share": HIGH_PYTHON_SHARE, "low_rows_per_s": LOW_ROWS_PER_S, "large_list": LARGE_LIST,
            },
        }


def summarize(
    store: "MetricsStore", *, model: t.Optional[str] = None, days: t.Optional[float] = None,
    thresholds: t.Optional[TrendThresholds] = None,
) -> Summary:
    """The figures of ``store``'s runs (only ``model``'s, only the last ``days`` days, if given);
    ``thresholds`` of the trend rule default to the settings."""
    summary = summarize_frames(store.model_runs(model=model, days=days), store.function_runs(model=model, days=days),
                               thresholds or TrendThresholds.from_settings())
    return dataclasses.replace(summary, days=days, store=store.location)


def summarize_frames(
    model_runs: "pd.DataFrame", function_runs: "pd.DataFrame", thresholds: TrendThresholds = TrendThresholds()
) -> Summary:
    """The same from the store's frames (``MetricsStore.model_runs`` / ``function_runs``)."""
    models = [_model_stats(name, runs, thresholds) for name, runs in model_runs.groupby("model", sort=True)]
    # The frame is oldest first: a function's last row holds the mode it runs in now.
    latest = function_runs.groupby(["model", "function"])["mode"].last().to_dict()
    functions = [
        _function_stats(key, runs, current=latest[key[:2]] == key[2])
        for key, runs in function_runs.groupby(["model", "function", "mode"], sort=True)
    ]
    versions = [v for name, runs in model_runs.groupby("model", sort=True) for v in version_stats(str(name), runs)]
    return Summary(models, functions, recommend(models, functions), trend_thresholds=thresholds, versions=versions)


def _model_stats(model: str, runs: "pd.DataFrame", thresholds: TrendThresholds = TrendThresholds()) -> ModelStats:
    import numpy as np
    import pandas as pd

    runs = runs.sort_values("started_at", kind="stable")
    ok = runs[runs["status"] == "ok"]
    current = ok[version_keys(ok) == version_keys(runs).iloc[-1]] if len(runs) else ok  # like with like
    total = float(ok["total_s"].sum())
    with_rows = ok[ok["rows_out"].notna()]
    times = ok["total_s"].astype(float).tolist()
    memory = ok["peak_rss_mb"].astype(float).tolist()
    rates = (with_rows["rows_out"].astype(float) / with_rows["total_s"].astype(float)).where(with_rows["total_s"] > 0)
    return ModelStats(
        model=model,
        runs=len(runs),
        failed=int((runs["status"] != "ok").sum()),
        mean_s=float(np.mean(times)) if times else None,
        p50_s=float(np.percentile(times, 50)) if times else None,
        p95_s=float(np.percentile(times, 95)) if times else None,
        sql_share=float(ok["sql_s"].sum()) / total if total > 0 else None,
        python_share=float(ok["python_s"].sum()) / total if total > 0 else None,
        # Frames of runs kept before wait_s was recorded may lack it, or hold only None.
        wait_share=float(ok.get("wait_s", pd.Series(dtype=float)).astype(float).fillna(0).sum()) / total
        if total > 0 else None,
        rows_per_s=(
            float(with_rows["rows_out"].sum()) / float(with_rows["total_s"].sum())
            if len(with_rows) and with_rows["total_s"].sum() > 0 else None
        ),
        peak_memory_mb=float(np.nanmax(memory)) if memory and not all(math.isnan(m) for m in memory) else None,
        retries=_int_sum(runs["retries"]),
        fallbacks=_int_sum(runs["fallbacks"]),
        errors=_int_sum(runs["errors"]),
        breaker_transitions=_int_sum(runs["breaker_transitions"]),
        last_run_at=runs["started_at"].max().to_pydatetime() if len(runs) else None,
        # Trends compare like with like: the runs of the current version only.
        time_trend=run_time_trend(
            current["total_s"].astype(float).tolist()[-TREND_WINDOW:],
            rows=current["rows_out"].astype(float).tolist()[-TREND_WINDOW:],
            interval_days=_interval_days(current)[-TREND_WINDOW:], thresholds=thresholds,
        ),
        memory_trend=trend(current["peak_rss_mb"].astype(float).tolist()[-TREND_WINDOW:], higher_is_worse=True),
        throughput_trend=trend(rates[rates.index.isin(current.index)].dropna().tolist()[-TREND_WINDOW:], higher_is_worse=False),
        version=_text_or_none(runs["fingerprint"].iloc[-1]) if "fingerprint" in runs and len(runs) else None,
        versions=int(version_keys(runs).nunique()),
        added_memory_mb=largest_number(runs.get("added_rss_mb", ())),
    )


def _interval_days(runs: "pd.DataFrame") -> t.List[t.Optional[float]]:
    """Each run's interval length in days (None where it has no interval)."""
    span = (runs["interval_end"] - runs["interval_start"]).dt.total_seconds() / 86400
    return [None if value != value else float(value) for value in span]  # NaN: no interval


def _text_or_none(value: t.Any) -> t.Optional[str]:
    return value if isinstance(value, str) else None


def _function_stats(key: t.Tuple[str, str, str], runs: "pd.DataFrame", current: bool = True) -> FunctionStats:
    model, function, mode = key
    calls = runs["calls"].fillna(0).astype(float)
    rows = runs["rows"].fillna(0).astype(float)
    lists = runs[runs["mean_list_length"].notna()]
    list_weights = lists["rows"].fillna(0).astype(float)
    return FunctionStats(
        model=model,
        function=function,
        mode=mode,
        runs=len(runs),
        calls=int(calls.sum()),
        rows=int(rows.sum()),
        total_s=float(runs["total_s"].fillna(0).sum()),
        p50_batch_s=_weighted_quantile(runs["p50_batch_s"], calls, 0.5),
        p95_batch_s=_weighted_quantile(runs["p95_batch_s"], calls, 0.95),
        errors=_int_sum(runs["errors"]),
        mean_list_length=(
            float((lists["mean_list_length"] * list_weights).sum() / list_weights.sum()) if list_weights.sum() > 0
            else (float(lists["mean_list_length"].mean()) if len(lists) else None)
        ),
        current=current,
        findings=_findings_total(runs["findings"] if "findings" in runs else ()),
        path=_latest_path(runs["path"] if "path" in runs else ()),
        max_in_flight=_largest(runs["max_in_flight"] if "max_in_flight" in runs else ()),
        calls_per_s=_latest_number(runs["calls_per_s"] if "calls_per_s" in runs else ()),
        cache_hits=_cache_sum(runs, "cache_hits"),
        cache_misses=_cache_sum(runs, "cache_misses"),
    )


def _largest(values: t.Iterable[t.Any]) -> t.Optional[int]:
    import pandas as pd

    known = [int(value) for value in values if not pd.isna(value)]  # None, NaN or NA: not recorded
    return max(known) if known else None


def _latest_number(values: t.Iterable[t.Any]) -> t.Optional[float]:
    """The latest run's value, where one was recorded (the frame is oldest first)."""
    import pandas as pd

    return next((float(value) for value in reversed(list(values)) if not pd.isna(value)), None)


def _cache_sum(runs: "pd.DataFrame", column: str) -> t.Optional[int]:
    """A cache figure's total over the runs that recorded it; None where none did."""
    if column not in runs or not runs[column].notna().any():
        return None
    return int(runs[column].fillna(0).sum())


def _latest_path(paths: t.Iterable[t.Any]) -> t.Optional[str]:
    """The path of the latest run that recorded one (the frame is oldest first)."""
    return next((path for path in reversed(list(paths)) if isinstance(path, str)), None)


def _findings_total(findings: t.Iterable[t.Any]) -> t.Dict[str, int]:
    """The runs' mixmesh.count findings ({"finding": n} as JSON text each) added up."""
    total: t.Dict[str, int] = {}
    for text in findings:
        if isinstance(text, str):
            for finding, n in json.loads(text).items():
                total[finding] = total.get(finding, 0) + int(n)
    return dict(sorted(total.items()))


# ------------------------------------------------------------------ recommendations


def recommend(models: t.Sequence[ModelStats], functions: t.Sequence[FunctionStats]) -> t.List[Recommendation]:
    """The recommendations the figures trigger, by model, in the module's rule order."""
    advice: t.List[Recommendation] = []
    for stats in models:
        own = [function for function in functions if function.model == stats.model and function.current]
        advice += [r for rule in (_incremental, _memory_leak, _vectorize) if (r := rule(stats, own)) is not None]
        advice += [r for function in own if (r := _aggregate_in_sql(function)) is not None]
    # Functions of models with no run in the window still get their advice.
    named = {stats.model for stats in models}
    advice += [r for f in functions if f.model not in named and f.current and (r := _aggregate_in_sql(f)) is not None]
    return advice


def _incremental(stats: ModelStats, functions: t.Sequence[FunctionStats]) -> t.Optional[Recommendation]:
    if stats.mean_s is None or stats.mean_s <= LONG_RUN_S:
        return None
    return Recommendation(
        "incremental", stats.model, None, "mean_s", stats.mean_s, LONG_RUN_S,
        f"{stats.model}: mean run time {stats.mean_s:,.0f} s over {stats.runs - stats.failed} run(s) is over "
        f"5 minutes ({LONG_RUN_S:.0f} s): consider incremental processing (kind INCREMENTAL_BY_TIME_RANGE, "
        "ModelKind.INCREMENTAL) or data partitioning",
    )


def _memory_leak(stats: ModelStats, functions: t.Sequence[FunctionStats]) -> t.Optional[Recommendation]:
    memory = stats.memory_trend
    if not memory.rising:
        return None
    return Recommendation(
        "memory_leak", stats.model, None, "peak_memory_trend_p_value", t.cast(float, memory.p_value), ALPHA,
        f"{stats.model}: peak memory trending upward ({memory.slope:+,.1f} MiB per run, "
        f"{memory.change:+.0%} over {memory.n} runs, Mann-Kendall p = {memory.p_value:.3g}): "
        "investigate potential memory leaks (caches, module-level lists, resources that grow)",
    )


def _vectorize(stats: ModelStats, functions: t.Sequence[FunctionStats]) -> t.Optional[Recommendation]:
    share, rate = stats.python_share, stats.rows_per_s
    if share is None or rate is None or share < HIGH_PYTHON_SHARE or rate >= LOW_ROWS_PER_S:
        return None
    target = max(functions, key=lambda f: f.total_s, default=None)  # where the Python time went
    rule, how = _python_advice(target)
    return Recommendation(
        rule, stats.model, target.function if target else None, "python_share", share, HIGH_PYTHON_SHARE,
        f"{stats.model}: Python takes {share:.0%} of the run time at {rate:,.0f} rows/s "
        f"(thresholds: a Python share of {HIGH_PYTHON_SHARE:.0%} or more under {LOW_ROWS_PER_S:,.0f} rows/s): {how}",
    )


def _python_advice(target: t.Optional[FunctionStats]) -> t.Tuple[str, str]:
    """The rule and the advice that fit the mode the costliest function runs in."""
    if target is None:
        return "vectorize", "vectorize: process whole batches (Arrow, pandas or polars) instead of row by row"
    name, seconds = target.function, f"{target.total_s:,.1f} s"
    batch = f"{target.rows / target.calls:,.0f} rows" if target.calls else None
    if target.mode == "vectorized":
        return "vectorized_cost", (
            f"{name} is vectorized already ({seconds}, {target.calls:,} batch(es) of {batch} on average): the time "
            "is its own work on each batch: use Arrow compute or NumPy over whole arrays rather than Python loops "
            "over the values, load what it needs once in a @resource, or move the computation into SQL"
        )
    if target.mode == "model":
        return "vectorize", (
            f"the model's own Python code takes {seconds}: work on whole columns (pandas, Arrow or polars "
            "operations) rather than loops over rows, and let context.sql filter and aggregate first"
        )
    called = f"the fast path hands it batches of {batch} but calls it once per row" if batch else "called once per row"
    return "vectorize", (
        f"vectorize: declare {name} (row mode, {called}, {seconds}) with @udf(vectorized=True) to compute over "
        "whole Arrow arrays"
    )


def _aggregate_in_sql(function: FunctionStats) -> t.Optional[Recommendation]:
    length = function.mean_list_length
    if function.mode != "row" or length is None or length < LARGE_LIST:
        return None
    return Recommendation(
        "aggregate_in_sql", function.model, function.function, "mean_list_length", length, LARGE_LIST,
        f"{function.model}: row-mode function {function.function} receives lists of {length:,.0f} elements on "
        f"average (threshold {LARGE_LIST:,.0f}): aggregate in SQL first and pass the aggregates it needs "
        "(counts, sums, maxima) instead of the lists",
    )


# ------------------------------------------------------------------ the seed's API


def analyze_performance_trends(store: "MetricsStore", model_name: str, days: int = 7) -> t.Dict[str, t.Any]:
    """The seed's ``HybridModelMonitor.analyze_performance_trends``, on measured runs."""
    summary = summarize(store, model=model_name, days=days)
    stats = next((m for m in summary.models if m.model == model_name), None)
    words = {DEGRADING: "increasing", IMPROVING: "decreasing", STABLE: "stable", UNKNOWN: "unknown"}
    return {
        "avg_execution_time": stats.mean_s if stats else None,
        "p95_execution_time": stats.p95_s if stats else None,
        "memory_trend": words[stats.memory_trend.direction] if stats else "unknown",
        # Throughput is better when higher: "increasing" here means more rows per second.
        "throughput_trend": (
            {DEGRADING: "decreasing", IMPROVING: "increasing"}.get(stats.throughput_trend.direction,
                                                                   stats.throughput_trend.direction)
            if stats else "unknown"
        ),
        "optimization_recommendations": [r.message for r in summary.recommendations],
    }


# ------------------------------------------------------------------ helpers


def _weighted_quantile(values: "pd.Series", weights: "pd.Series", q: float) -> t.Optional[float]:
    """The smallest value whose cumulative weight reaches ``q`` of the total (unweighted if no weight)."""
    pairs = sorted((float(v), float(w)) for v, w in zip(values, weights) if v is not None and not math.isnan(v))
    if not pairs:
        return None
    total = sum(w for _, w in pairs)
    if total <= 0:
        pairs, total = [(v, 1.0) for v, _ in pairs], float(len(pairs))
    cumulative = 0.0
    for value, weight in pairs:
        cumulative += weight
        if cumulative >= q * total - 1e-12:
            return value
    return pairs[-1][0]


def _int_sum(column: "pd.Series") -> int:
    return int(column.fillna(0).sum())


def _jsonable(value: t.Any) -> t.Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dt.datetime):  # RFC 3339: the store keeps UTC without a zone
        return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).isoformat()
    return value

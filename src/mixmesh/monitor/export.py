"""The store's figures for monitoring stacks: Prometheus text and OpenTelemetry metrics.

- ``prometheus_text(summary)``: the Prometheus text exposition format (0.0.4), one family
  per figure, each with HELP and TYPE lines; what ``mixmesh stats --prometheus`` prints, for
  node_exporter's textfile collector or a Pushgateway. The figures describe the runs in the
  window asked for, so they are gauges (and summaries for durations), not counters.
- ``export_otel(store, meter_provider=None)``: records every stored run (or those after
  ``since``) into OpenTelemetry instruments — histograms of durations, counters of runs,
  rows, calls and errors — and the window's figures as gauges. Needs the ``otel`` extra:
  ``pip install "mixmesh[otel]"``. ``OtelRecorder`` records one evaluation at a time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import typing as t
import weakref

from mixmesh.core.errors import MixmeshError
from mixmesh.monitor.stats import DEGRADING, IMPROVING, STABLE, Summary, summarize

if t.TYPE_CHECKING:
    from mixmesh.monitor.records import FunctionRun, ModelRun
    from mixmesh.monitor.store import MetricsStore

_TREND_VALUES = {IMPROVING: -1, STABLE: 0, DEGRADING: 1}


# ------------------------------------------------------------------ Prometheus


class _Family:
    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.name, self.kind, self.help_text = name, kind, help_text
        self.samples: t.List[t.Tuple[str, t.Dict[str, str], float]] = []

    def add(self, value: t.Optional[float], suffix: str = "", **labels: str) -> None:
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            self.samples.append((self.name + suffix, labels, float(value)))

    def lines(self) -> t.List[str]:
        if not self.samples:
            return []
        lines = [f"# HELP {self.name} {_escape_help(self.help_text)}", f"# TYPE {self.name} {self.kind}"]
        for name, labels, value in self.samples:
            rendered = ",".join(f'{key}="{_escape_label(text)}"' for key, text in labels.items())
            lines.append(f"{name}{{{rendered}}} {_number(value)}")
        return lines


def prometheus_text(summary: Summary) -> str:
    """The summary in the Prometheus text exposition format."""
    families = {
        name: _Family(f"mixmesh_{name}", kind, help_text)
        for name, kind, help_text in (
            ("model_runs", "gauge", "Model evaluations recorded in the window."),
            ("model_failed_runs", "gauge", "Model evaluations that failed, in the window."),
            ("model_duration_seconds", "summary", "Run time of a model evaluation (successful runs)."),
            ("model_python_ratio", "gauge", "Share of the run time spent in Python (functions and Python model code)."),
            ("model_sql_ratio", "gauge", "Share of the run time spent in the engine (SQL)."),
            ("model_wait_ratio", "gauge", "Share of the run time spent waiting between retries (backoff)."),
            ("model_rows_per_second", "gauge", "Rows written per second of run time."),
            ("model_peak_memory_bytes", "gauge", "Highest peak resident memory of the process during a run."),
            ("model_retries", "gauge", "Retries of Python functions in the window."),
            ("model_fallbacks", "gauge", "Fallback values or functions used in the window."),
            ("model_errors", "gauge", "Errors handled by the functions' error policies in the window."),
            ("model_breaker_transitions", "gauge", "Circuit breaker state changes in the window."),
            ("model_last_run_timestamp_seconds", "gauge", "Start of the latest evaluation, Unix time."),
            ("model_trend", "gauge",
             "Trend by the Mann-Kendall and Theil-Sen rule: 1 degrading, 0 stable, -1 improving (absent: too few runs)."),
            ("function_calls", "gauge", "Python calls of a function (rows in row mode, batches in vectorized mode)."),
            ("function_rows", "gauge", "Rows a function processed."),
            ("function_batch_duration_seconds", "summary", "Time of one call of a function (a row or a batch)."),
            ("function_errors", "gauge", "Errors raised by a function."),
            ("function_mean_list_length", "gauge", "Mean length of a function's list arguments."),
            ("recommendation", "gauge", "1 for each recommendation the figures trigger."),
        )
    }
    for model in summary.models:
        m = model.model
        families["model_runs"].add(model.runs, model=m)
        families["model_failed_runs"].add(model.failed, model=m)
        duration = families["model_duration_seconds"]
        duration.add(model.p50_s, model=m, quantile="0.5")
        duration.add(model.p95_s, model=m, quantile="0.95")
        if model.mean_s is not None:
            ok = model.runs - model.failed
            duration.add(model.mean_s * ok, "_sum", model=m)
            duration.add(ok, "_count", model=m)
        families["model_python_ratio"].add(model.python_share, model=m)
        families["model_sql_ratio"].add(model.sql_share, model=m)
        families["model_wait_ratio"].add(model.wait_share, model=m)
        families["model_rows_per_second"].add(model.rows_per_s, model=m)
        memory = None if model.peak_memory_mb is None else model.peak_memory_mb * 1024 * 1024
        families["model_peak_memory_bytes"].add(memory, model=m)
        for name in ("retries", "fallbacks", "errors", "breaker_transitions"):
            families[f"model_{name}"].add(getattr(model, name), model=m)
        last = model.last_run_at
        families["model_last_run_timestamp_seconds"].add(
            None if last is None else last.replace(tzinfo=dt.timezone.utc).timestamp(), model=m
        )
        for series, found in (("duration", model.time_trend), ("memory", model.memory_trend),
                              ("throughput", model.throughput_trend)):
            families["model_trend"].add(_TREND_VALUES.get(found.direction), model=m, series=series)
    for function in summary.functions:
        labels = {"model": function.model, "function": function.function, "mode": function.mode}
        families["function_calls"].add(function.calls, **labels)
        families["function_rows"].add(function.rows, **labels)
        batch = families["function_batch_duration_seconds"]
        batch.add(function.p50_batch_s, **labels, quantile="0.5")
        batch.add(function.p95_batch_s, **labels, quantile="0.95")
        batch.add(function.total_s, "_sum", **labels)
        batch.add(function.calls, "_count", **labels)
        families["function_errors"].add(function.errors, **labels)
        families["function_mean_list_length"].add(function.mean_list_length, **labels)
    for advice in summary.recommendations:
        families["recommendation"].add(1, model=advice.model, function=advice.function or "", rule=advice.rule)
    lines = [line for family in families.values() for line in family.lines()]
    return "\n".join(lines) + "\n" if lines else ""


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


# ------------------------------------------------------------------ OpenTelemetry

# Seconds, from a fast function call to an hour-long backfill (the SDK's default
# boundaries are for milliseconds).
DURATION_BUCKETS_S = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class OtelRecorder:
    """OpenTelemetry instruments for mixmesh's figures, on one meter provider."""

    def __init__(self, meter_provider: t.Any = None) -> None:
        metrics = _otel()
        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        from mixmesh.core.version import __version__

        meter = provider.get_meter("mixmesh", __version__)
        self.recorded: t.Set[str] = set()  # run ids: a run is an event, counted once

        def histogram(name: str, unit: str, description: str) -> t.Any:
            return meter.create_histogram(
                name, unit=unit, description=description, explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS_S)
            )

        self.model_duration = histogram("mixmesh.model.duration", "s", "Run time of a model evaluation.")
        self.model_python_duration = histogram("mixmesh.model.python.duration", "s", "Time in Python during an evaluation.")
        self.model_sql_duration = histogram("mixmesh.model.sql.duration", "s", "Time in the engine (SQL) during an evaluation.")
        self.model_wait_duration = histogram(
            "mixmesh.model.wait.duration", "s", "Time waiting between retries (backoff) during an evaluation."
        )
        self.model_runs = meter.create_counter("mixmesh.model.runs", unit="{run}", description="Model evaluations.")
        self.model_rows = meter.create_counter("mixmesh.model.rows", unit="{row}", description="Rows written by models.")
        self.model_memory = meter.create_gauge(
            "mixmesh.model.memory.peak", unit="By", description="Peak resident memory of the process during the latest evaluation."
        )
        self.model_retries = meter.create_counter("mixmesh.model.retries", unit="{retry}", description="Retries of Python functions.")
        self.model_fallbacks = meter.create_counter("mixmesh.model.fallbacks", unit="{fallback}", description="Fallbacks used.")
        self.function_calls = meter.create_counter("mixmesh.function.calls", unit="{call}", description="Python calls of a function.")
        self.function_rows = meter.create_counter("mixmesh.function.rows", unit="{row}", description="Rows a function processed.")
        self.function_errors = meter.create_counter("mixmesh.function.errors", unit="{error}", description="Errors raised by a function.")
        self.function_duration = histogram("mixmesh.function.duration", "s", "Time in a function during one evaluation.")
        self.model_p95 = meter.create_gauge("mixmesh.model.duration.p95", unit="s", description="95th percentile of run time in the window.")
        self.model_mean = meter.create_gauge("mixmesh.model.duration.mean", unit="s", description="Mean run time in the window.")
        self.model_python_ratio = meter.create_gauge(
            "mixmesh.model.python.ratio", unit="1", description="Share of the run time spent in Python, in the window."
        )
        self.model_throughput = meter.create_gauge(
            "mixmesh.model.throughput", unit="{row}/s", description="Rows written per second of run time, in the window."
        )
        self.model_trend = meter.create_gauge(
            "mixmesh.model.trend", unit="1", description="1 degrading, 0 stable, -1 improving (Mann-Kendall and Theil-Sen rule)."
        )
        self.function_p95 = meter.create_gauge(
            "mixmesh.function.batch.duration.p95", unit="s", description="95th percentile of one call's time, in the window."
        )
        self.recommendations = meter.create_gauge(
            "mixmesh.recommendation", unit="1", description="1 for each recommendation the figures trigger."
        )

    def record(self, run: "ModelRun", functions: t.Sequence["FunctionRun"] = ()) -> None:
        """Record one model evaluation and its functions' figures (once: a run recorded before is skipped)."""
        if run.run_id in self.recorded:
            return
        self.recorded.add(run.run_id)
        attributes = {"model": run.model, "status": run.status, "engine": run.engine or "", "command": run.command or ""}
        # Histograms take no negative amounts; a clock step could make a difference one.
        self.model_duration.record(max(0.0, run.total_s), attributes)
        self.model_python_duration.record(max(0.0, run.python_s), attributes)
        self.model_sql_duration.record(max(0.0, run.sql_s), attributes)
        if run.wait_s is not None and not math.isnan(run.wait_s):  # None in runs kept before it was
            self.model_wait_duration.record(max(0.0, run.wait_s), attributes)
        self.model_runs.add(1, attributes)
        if run.rows_out:
            self.model_rows.add(run.rows_out, attributes)
        if run.peak_rss_mb is not None and not math.isnan(run.peak_rss_mb):
            self.model_memory.set(run.peak_rss_mb * 1024 * 1024, {"model": run.model})
        if run.retries:
            self.model_retries.add(run.retries, attributes)
        if run.fallbacks:
            self.model_fallbacks.add(run.fallbacks, attributes)
        for function in functions:
            labels = {"model": function.model, "function": function.function, "mode": function.mode}
            self.function_calls.add(function.calls or 0, labels)
            self.function_rows.add(function.rows or 0, labels)
            if function.errors:
                self.function_errors.add(function.errors, labels)
            if function.total_s is not None:
                self.function_duration.record(max(0.0, function.total_s), labels)

    def record_summary(self, summary: Summary) -> None:
        """Set the window's figures (p95, mean, Python share, throughput, trends, advice) as gauges."""
        for model in summary.models:
            attributes = {"model": model.model}
            for gauge, value in ((self.model_p95, model.p95_s), (self.model_mean, model.mean_s),
                                 (self.model_python_ratio, model.python_share), (self.model_throughput, model.rows_per_s)):
                if value is not None:
                    gauge.set(value, attributes)
            for series, found in (("duration", model.time_trend), ("memory", model.memory_trend),
                                  ("throughput", model.throughput_trend)):
                if found.direction in _TREND_VALUES:
                    self.model_trend.set(_TREND_VALUES[found.direction], {**attributes, "series": series})
        for function in summary.functions:
            if function.p95_batch_s is not None:
                self.function_p95.set(
                    function.p95_batch_s, {"model": function.model, "function": function.function, "mode": function.mode}
                )
        for advice in summary.recommendations:
            self.recommendations.set(1, {"model": advice.model, "function": advice.function or "", "rule": advice.rule})


@dataclasses.dataclass(frozen=True)
class OtelExport:
    """What ``export_otel`` recorded; pass ``last_ended_at`` as ``since`` next time."""

    runs: int
    function_runs: int
    last_ended_at: t.Optional[dt.datetime]


_RECORDERS: "weakref.WeakKeyDictionary[t.Any, OtelRecorder]" = weakref.WeakKeyDictionary()


def export_otel(
    store: "MetricsStore",
    meter_provider: t.Any = None,
    *,
    model: t.Optional[str] = None,
    days: t.Optional[float] = None,
    since: t.Optional[dt.datetime] = None,
) -> OtelExport:
    """Record the store's runs (ended after ``since``, if given) and the window's figures.

    ``meter_provider`` defaults to the global one (``opentelemetry.metrics``); its readers
    and exporters send the figures wherever they are set up to. Runs are events, recorded
    once per provider in a process; from one process to the next, pass the last export's
    ``last_ended_at`` as ``since`` (runs reach the store when they end, so a long run that
    started before a short one is still new when it arrives).
    """
    metrics = _otel()
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    try:
        recorder = _RECORDERS[provider]
    except (KeyError, TypeError):
        recorder = OtelRecorder(provider)
        try:
            _RECORDERS[provider] = recorder
        except TypeError:  # a provider that cannot be weakly referenced
            pass
    from mixmesh.monitor.records import FunctionRun, ModelRun

    runs = store.model_runs(model=model, days=days)
    functions = store.function_runs(model=model, days=days)
    if since is not None:
        runs = runs[runs["ended_at"] > _naive_utc(since)]
    runs = runs[~runs["run_id"].isin(recorder.recorded)]
    by_run: t.Dict[str, t.List[FunctionRun]] = {}
    for row in functions.to_dict("records"):
        by_run.setdefault(row["run_id"], []).append(FunctionRun(**_plain(row)))
    recorded_functions = 0
    for row in runs.to_dict("records"):
        run = ModelRun(**_plain(row))
        own = by_run.get(run.run_id, [])
        recorder.record(run, own)
        recorded_functions += len(own)
    recorder.record_summary(summarize(store, model=model, days=days))
    if hasattr(provider, "force_flush"):
        provider.force_flush()
    last = runs["ended_at"].max() if len(runs) else None
    return OtelExport(len(runs), recorded_functions, None if last is None else last.to_pydatetime())


def _otel() -> t.Any:
    try:
        from opentelemetry import metrics
    except ImportError:
        raise MixmeshError(
            'OpenTelemetry export needs the otel extra: pip install "mixmesh[otel]"'
        ) from None
    return metrics


def _naive_utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is None else value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _plain(row: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    """pandas values back to Python ones (NaN and NaT to None, Timestamps to datetimes)."""
    import pandas as pd

    plain = {}
    for key, value in row.items():
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            value = None
        elif isinstance(value, pd.Timestamp):
            value = value.to_pydatetime()
        elif hasattr(value, "item"):
            value = value.item()
        plain[key] = value
    return plain

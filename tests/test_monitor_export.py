"""Prometheus text (checked with prometheus_client's parser) and OpenTelemetry metrics (the SDK's in-memory reader)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client.parser import text_string_to_metric_families

from mixmesh.core.errors import MixmeshError
from mixmesh.monitor.export import export_otel, prometheus_text
from mixmesh.monitor.stats import summarize
from mixmesh.monitor.store import MetricsStore
from tests.metrics_data import START, function_run, model_run

MIXMESH = str(Path(sys.executable).with_name("mixmesh"))
ODD_NAME = 'odd "model"\\with\nnewline'


def _fill(store: MetricsStore) -> None:
    for i in range(8):
        run = model_run("a.risk", at=START + dt.timedelta(hours=i), total_s=2.0 + i, python_s=1.0 + i,
                        rows_out=1000, peak_rss_mb=100 + 30 * i, retries=1)
        store.append([run], [function_run(run, "score", calls=1000, total_s=0.5, p50_batch_s=0.0002,
                                          p95_batch_s=0.0009, errors=i % 2, mean_list_length=150.0)])
    store.append([model_run(ODD_NAME, at=START, total_s=1.5, rows_out=None)])
    store.append([model_run("a.risk", at=START + dt.timedelta(days=1), status="failed", total_s=0.1, python_s=0.05,
                            rows_out=None, retries=3)])
    store.flush()


@pytest.fixture
def store(tmp_path: Path) -> MetricsStore:
    created = MetricsStore.for_project(tmp_path, setting="")
    _fill(created)
    return created


def _samples(text: str) -> t.Dict[t.Tuple[str, t.Tuple[t.Tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_prometheus_text_parses_and_carries_the_stores_figures(store: MetricsStore) -> None:
    summary = summarize(store)
    text = prometheus_text(summary)
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name, kind in (("mixmesh_model_duration_seconds", "summary"), ("mixmesh_model_runs", "gauge"),
                       ("mixmesh_model_peak_memory_bytes", "gauge"), ("mixmesh_function_batch_duration_seconds", "summary"),
                       ("mixmesh_recommendation", "gauge"), ("mixmesh_model_trend", "gauge")):
        assert families[name].type == kind, name
        assert families[name].documentation
    for line in text.splitlines():  # every family has its HELP and TYPE lines before its samples
        if not line.startswith("#"):
            family = line.split("{")[0].removesuffix("_sum").removesuffix("_count")
            assert f"# TYPE {family} " in text, family

    samples = _samples(text)
    risk = next(m for m in summary.models if m.model == "a.risk")
    assert samples[("mixmesh_model_runs", (("model", "a.risk"),))] == 9
    assert samples[("mixmesh_model_failed_runs", (("model", "a.risk"),))] == 1
    quantile = ("mixmesh_model_duration_seconds", (("model", "a.risk"), ("quantile", "0.95")))
    assert samples[quantile] == pytest.approx(risk.p95_s)
    assert samples[("mixmesh_model_duration_seconds_sum", (("model", "a.risk"),))] == pytest.approx(sum(2.0 + i for i in range(8)))
    assert samples[("mixmesh_model_duration_seconds_count", (("model", "a.risk"),))] == 8
    assert samples[("mixmesh_model_python_ratio", (("model", "a.risk"),))] == pytest.approx(risk.python_share)
    assert samples[("mixmesh_model_peak_memory_bytes", (("model", "a.risk"),))] == 310 * 1024 * 1024
    assert samples[("mixmesh_model_retries", (("model", "a.risk"),))] == 11
    assert samples[("mixmesh_model_trend", (("model", "a.risk"), ("series", "duration")))] == 1
    assert samples[("mixmesh_model_trend", (("model", "a.risk"), ("series", "memory")))] == 1
    function = (("function", "score"), ("mode", "row"), ("model", "a.risk"))
    assert samples[("mixmesh_function_calls", function)] == 8000
    assert samples[("mixmesh_function_errors", function)] == 4
    assert samples[("mixmesh_function_batch_duration_seconds", (*function[:2], ("model", "a.risk"), ("quantile", "0.95")))] == 0.0009
    assert samples[("mixmesh_function_batch_duration_seconds_sum", function)] == 4.0
    assert samples[("mixmesh_function_mean_list_length", function)] == 150.0
    rules = {dict(labels)["rule"] for (name, labels) in samples if name == "mixmesh_recommendation"}
    assert rules == {"memory_leak", "vectorize", "aggregate_in_sql"}
    # Label values are escaped: the odd name comes back whole.
    assert samples[("mixmesh_model_runs", (("model", ODD_NAME),))] == 1
    # A model with a single run has no trend sample rather than a made-up one.
    assert not any(name == "mixmesh_model_trend" and dict(labels)["model"] == ODD_NAME for name, labels in samples)


def test_prometheus_text_of_nothing_is_empty(tmp_path: Path) -> None:
    assert prometheus_text(summarize(MetricsStore(tmp_path / "none.duckdb"))) == ""


def test_stats_prometheus_through_the_command(store: MetricsStore, tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("model_defaults:\n  dialect: duckdb\n")  # the commands need a project
    environment = {key: value for key, value in os.environ.items() if key != "MIXMESH_METRICS"}
    result = subprocess.run([MIXMESH, "stats", "--prometheus", "--model", "a.risk", "--project", str(tmp_path)],
                            capture_output=True, text=True, check=True, env=environment)
    samples = _samples(result.stdout)
    assert samples[("mixmesh_model_runs", (("model", "a.risk"),))] == 9
    assert {dict(labels)["model"] for _, labels in samples} == {"a.risk"}


def _metrics(reader: InMemoryMetricReader) -> t.Dict[str, t.List[t.Any]]:
    found: t.Dict[str, t.List[t.Any]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "mixmesh"
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def _point(points: t.Sequence[t.Any], **attributes: str) -> t.Any:
    (point,) = [p for p in points if all(p.attributes.get(k) == v for k, v in attributes.items())]
    return point


def test_opentelemetry_export_records_runs_and_the_windows_figures(store: MetricsStore) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    exported = export_otel(store, provider)
    assert (exported.runs, exported.function_runs) == (10, 8)
    assert exported.last_ended_at == store.model_runs()["ended_at"].max().to_pydatetime()
    metrics = _metrics(reader)

    duration = _point(metrics["mixmesh.model.duration"], model="a.risk", status="ok")
    assert duration.count == 8 and duration.sum == pytest.approx(sum(2.0 + i for i in range(8)))
    assert 2.5 in duration.explicit_bounds and 3600 in duration.explicit_bounds  # seconds, not milliseconds
    assert _point(metrics["mixmesh.model.runs"], model="a.risk", status="failed").value == 1
    assert sum(p.value for p in metrics["mixmesh.model.rows"] if p.attributes["model"] == "a.risk") == 8000
    assert _point(metrics["mixmesh.function.calls"], function="score").value == 8000
    assert _point(metrics["mixmesh.function.errors"], function="score").value == 4
    summary = summarize(store)
    risk = next(m for m in summary.models if m.model == "a.risk")
    assert _point(metrics["mixmesh.model.duration.p95"], model="a.risk").value == pytest.approx(risk.p95_s)
    assert _point(metrics["mixmesh.model.python.ratio"], model="a.risk").value == pytest.approx(risk.python_share)
    assert _point(metrics["mixmesh.model.trend"], model="a.risk", series="memory").value == 1
    assert _point(metrics["mixmesh.function.batch.duration.p95"], function="score").value == 0.0009
    assert {p.attributes["rule"] for p in metrics["mixmesh.recommendation"]} == {"memory_leak", "vectorize", "aggregate_in_sql"}

    # Only what is new since the last export is recorded again.
    store.append([model_run("a.risk", at=START + dt.timedelta(days=2), total_s=3.0)])
    store.flush()
    again = export_otel(store, provider, since=exported.last_ended_at)
    assert again.runs == 1
    duration = _point(_metrics(reader)["mixmesh.model.duration"], model="a.risk", status="ok")
    assert duration.count == 9
    # Exporting the same runs again to the same provider counts nothing twice.
    assert export_otel(store, provider).runs == 0
    assert _point(_metrics(reader)["mixmesh.model.duration"], model="a.risk", status="ok").count == 9
    provider.shutdown()


def test_opentelemetry_needs_its_extra(store: MetricsStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(MixmeshError, match=r'pip install "mixmesh\[otel\]"'):
        export_otel(store)

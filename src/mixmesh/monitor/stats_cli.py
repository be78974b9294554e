"""``mixmesh stats``: the store's figures as tables, JSON or Prometheus text."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mixmesh.monitor.stats import UNKNOWN, Summary, Trend, summarize
from mixmesh.monitor.store import MetricsStore, MetricsStoreError, recovering


def stats_command(
    project: Path, *, model: t.Optional[str], days: t.Optional[float], as_json: bool, prometheus: bool,
    console: t.Optional[Console] = None,
) -> None:
    """Print the project's figures; a store that cannot be read is a one-line error."""
    if as_json and prometheus:
        raise click.UsageError("--json and --prometheus are two formats: choose one")
    store = MetricsStore.for_project(project)
    try:  # a file that cannot be read is moved aside and rebuilt from the spool, said on stderr
        summary = recovering(store, lambda: summarize(store, model=model, days=days), _tell)
    except MetricsStoreError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    elif prometheus:
        from mixmesh.monitor.export import prometheus_text

        click.echo(prometheus_text(summary), nl=False)
    else:
        print_summary(summary, store, model=model, days=days, console=console)


def _tell(message: str) -> None:
    click.echo(message, err=True)


def print_summary(
    summary: Summary, store: MetricsStore, *, model: t.Optional[str] = None, days: t.Optional[float] = None,
    console: t.Optional[Console] = None,
) -> None:
    """The tables: models, functions, recommendations."""
    console = console or Console()
    window = f" in the last {days:g} day(s)" if days is not None else ""
    if not store.enabled:
        console.print(f"Metrics are off ({store.location}): nothing is recorded.")
        return
    if not summary.models and not summary.functions:
        about = f" for {model}" if model else ""
        console.print(f"No model evaluations recorded{about}{window} in {store.location}.")
        return
    console.print(_table(
        f"Models{window} ({store.location})",
        ["model", "runs", "failed", "mean s", "p95 s", "SQL", "Python", "wait", "rows/s", "peak MiB", "time trend", "memory trend"],
        [
            (m.model, m.runs, m.failed, _seconds(m.mean_s), _seconds(m.p95_s), _share(m.sql_share),
             _share(m.python_share), _share(m.wait_share), _count(m.rows_per_s), _number(m.peak_memory_mb, 1), _trend(m.time_trend),
             _trend(m.memory_trend))
            for m in summary.models
        ],
    ))
    versions = _versions_table(summary)
    if versions is not None:
        console.print(versions)
    if summary.functions:
        console.print(_table(
            "Functions",
            ["model", "function", "mode", "calls", "rows", "total s", "p50 batch ms", "p95 batch ms", "errors",
             "mean list length", "findings", "path", "max in flight", "calls/s", "cache hits / misses"],
            [
                (f.model, f.function, f.mode, f.calls, f.rows, _seconds(f.total_s), _milliseconds(f.p50_batch_s),
                 _milliseconds(f.p95_batch_s), f.errors, _number(f.mean_list_length, 1),
                 ", ".join(f"{name} {n:,}" for name, n in f.findings.items()), f.path or "",
                 f.max_in_flight if f.max_in_flight is not None else "", _number(f.calls_per_s, 1),
                 "" if f.cache_hits is None else f"{f.cache_hits:,} / {f.cache_misses or 0:,}")
                for f in summary.functions
            ],
        ))
    if summary.recommendations:
        console.print("[bold]Recommendations[/]")
        for advice in summary.recommendations:
            console.print(f"- {advice.message}", markup=False, highlight=False)
    else:
        console.print("No recommendations: no figure crosses a threshold.")


def _versions_table(summary: Summary) -> t.Optional[Table]:
    """The versions of the models whose version changed in the window, oldest first (trends use the latest)."""
    changed = {m.model for m in summary.models if m.versions > 1}
    if not changed:
        return None
    return _table(
        "Model versions (SQLMesh fingerprints; * the version changed there)",
        ["model", "version", "since (UTC)", "runs", "failed", "mean s", "added MiB"],
        [
            (v.model, ("* " if v.version_changed else "") + (v.version or "not recorded"),
             f"{v.first_run_at:%Y-%m-%d %H:%M}", v.runs, v.failed, _seconds(v.mean_s), _number(v.added_memory_mb, 1))
            for v in summary.versions if v.model in changed
        ],
    )


def _table(title: str, header: t.Sequence[str], rows: t.Iterable[t.Sequence[t.Any]]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    for index, name in enumerate(header):
        table.add_column(name, justify="left" if index == 0 or name in ("function", "mode") else "right")
    for row in rows:
        # Text, not markup: a model name or an error may hold brackets ("list[float]").
        table.add_row(*(Text(f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)) for value in row))
    return table


def _seconds(value: t.Optional[float]) -> str:
    return "" if value is None else f"{value:,.3f}" if value < 10 else f"{value:,.1f}"


def _milliseconds(value: t.Optional[float]) -> str:
    return "" if value is None else f"{value * 1000:,.3f}"


def _share(value: t.Optional[float]) -> str:
    return "" if value is None else f"{value:.0%}"


def _count(value: t.Optional[float]) -> str:
    return "" if value is None else f"{value:,.0f}"


def _number(value: t.Optional[float], digits: int) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _trend(found: Trend) -> str:
    if found.direction == UNKNOWN:
        return f"unknown ({found.n} run{'s' if found.n != 1 else ''})"
    return f"{found.direction} (p={found.p_value:.2g})"

"""``mixmesh stats``: the store's figures as tables, JSON or Prometheus text.

Tables fit the terminal: one that is wider is stacked, a block per row (its name on a line
of its own, then its figures, wrapped), never cut; ``wide`` keeps one line per row however
long. The exit codes (``EXIT_*``) are the command's, documented in the README.
"""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import click
from rich.console import Console
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from mixmesh.monitor.stats import DEGRADING, UNKNOWN, Summary, Trend, TrendThresholds, summarize
from mixmesh.monitor.store import MetricsStore, MetricsStoreError, recovering

EXIT_OK = 0
EXIT_ERROR = 1  # the command failed: a store that cannot be read, a build that failed
EXIT_USAGE = 2  # a bad option, no project, no such model
EXIT_UNWRITABLE = 3  # the output cannot be written where asked
EXIT_DEGRADING = 4  # --fail-on degrading, and a trend is degrading

WIDE = 1_000_000  # a console this wide never wraps: --wide's one line per row


class NoSuchModel(click.ClickException):
    """A model with no recorded run at all (a typo, or a model that never ran)."""

    exit_code = EXIT_USAGE


class Degrading(click.ClickException):
    """``--fail-on degrading``: a model's time, memory or throughput trend is degrading."""

    exit_code = EXIT_DEGRADING


def stats_command(
    project: Path, *, model: t.Optional[str], days: t.Optional[float], as_json: bool, prometheus: bool,
    console: t.Optional[Console] = None, store: t.Optional[MetricsStore] = None, wide: bool = False,
    fail_on: t.Sequence[str] = (), thresholds: t.Optional[TrendThresholds] = None,
) -> None:
    """Print the project's figures; a store that cannot be read is a one-line error."""
    if as_json and prometheus:
        raise click.UsageError("--json and --prometheus are two formats: choose one")
    store = store or MetricsStore.for_project(project)
    try:  # a file that cannot be read is moved aside and rebuilt from the spool, said on stderr
        summary = recovering(store, lambda: summarize(store, model=model, days=days, thresholds=thresholds), _tell)
        if model is not None and not summary.models and not summary.functions:
            _check_recorded(store, model)
    except MetricsStoreError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    elif prometheus:
        from mixmesh.monitor.export import prometheus_text

        click.echo(prometheus_text(summary), nl=False)
    else:
        print_summary(summary, store, model=model, days=days, console=console or Console(width=WIDE if wide else None))
    if "degrading" in fail_on:
        _fail_if_degrading(summary)


def _check_recorded(store: MetricsStore, model: str) -> None:
    """No run of ``model`` in the window: an error unless it has runs outside it."""
    if not store.enabled or not store.model_runs(model=model).empty:
        return
    recorded = sorted(set(store.model_runs()["model"]))
    known = f"models with recorded runs: {', '.join(recorded)}" if recorded else "no model has recorded runs yet"
    raise NoSuchModel(f"no model {model} in the runs recorded in {store.location} ({known})")


def _fail_if_degrading(summary: Summary) -> None:
    found = [
        f"{stats.model} ({what} {_trend(trend)})"
        for stats in summary.models
        for what, trend in (("time", stats.time_trend), ("memory", stats.memory_trend),
                            ("throughput", stats.throughput_trend))
        if trend.direction == DEGRADING
    ]
    if found:
        raise Degrading(f"--fail-on degrading: {'; '.join(found)}")


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
    print_table(
        console, f"Models{window} ({store.location})",
        ["model", "runs", "failed", "mean s", "p95 s", "SQL", "Python", "wait", "rows/s", "peak MiB", "time trend",
         "memory trend"],
        [
            (m.model, m.runs, m.failed, _seconds(m.mean_s), _seconds(m.p95_s), _share(m.sql_share),
             _share(m.python_share), _share(m.wait_share), _count(m.rows_per_s), _number(m.peak_memory_mb, 1),
             _trend(m.time_trend), _trend(m.memory_trend))
            for m in summary.models
        ],
    )
    _print_versions(console, summary)
    if summary.functions:
        print_table(
            console, "Functions",
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
            keys=3,
        )
    if summary.recommendations:
        console.print("[bold]Recommendations[/]")
        for advice in summary.recommendations:
            console.print(f"- {advice.message}", markup=False, highlight=False)
    else:
        console.print("No recommendations: no figure crosses a threshold.")


def print_table(
    console: Console, title: str, header: t.Sequence[str], rows: t.Iterable[t.Sequence[t.Any]], *, keys: int = 1
) -> None:
    """A table where it fits the console's width, else a block per row (never a cut name).

    The first ``keys`` columns name the row (model; model, function, mode): a block starts
    with them on a line of their own, then the other figures, as "header value", wrapped."""
    cells = [[_text(value) for value in row] for row in rows]
    table = _table(title, header, cells)
    # Measured as if the console had no edge: within it, rich would shrink the columns to fit.
    if Measurement.get(console, console.options.update_width(WIDE), table).maximum <= console.width:
        console.print(table)
        return
    console.print(Text(title, style="bold"))
    for row in cells:
        console.print(Text(" · ".join(row[:keys]), style="bold"))
        pairs = [f"{name}: {value}" for name, value in zip(header[keys:], row[keys:]) if value]
        console.print(Padding(Text(_packed(pairs, console.width - 2)), (0, 0, 0, 2), expand=False))


def _packed(items: t.Sequence[str], width: int) -> str:
    """``items`` joined by two spaces, a line break where the next would pass ``width``."""
    lines: t.List[str] = []
    for item in items:
        if lines and len(lines[-1]) + 2 + len(item) <= width:
            lines[-1] += "  " + item
        else:
            lines.append(item)
    return "\n".join(lines)


def _text(value: t.Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _print_versions(console: Console, summary: Summary) -> None:
    """The versions of the models whose version changed in the window, oldest first (trends use the latest)."""
    changed = {m.model for m in summary.models if m.versions > 1}
    if not changed:
        return
    print_table(
        console, "Model versions (SQLMesh fingerprints; * the version changed there)",
        ["model", "version", "since (UTC)", "runs", "failed", "mean s", "added MiB"],
        [
            (v.model, ("* " if v.version_changed else "") + (v.version or "not recorded"),
             f"{v.first_run_at:%Y-%m-%d %H:%M}", v.runs, v.failed, _seconds(v.mean_s), _number(v.added_memory_mb, 1))
            for v in summary.versions if v.model in changed
        ],
        keys=2,
    )


def _table(title: str, header: t.Sequence[str], rows: t.Iterable[t.Sequence[t.Any]]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    for index, name in enumerate(header):
        table.add_column(name, justify="left" if index == 0 or name in ("function", "mode") else "right", no_wrap=True)
    for row in rows:
        # Text, not markup: a model name or an error may hold brackets ("list[float]").
        table.add_row(*(Text(_text(value)) for value in row))
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

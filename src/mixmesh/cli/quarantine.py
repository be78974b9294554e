"""``mixmesh quarantine``: the rows whose function call failed after its retries and got their
``on_error`` value, as kept in the project's warehouse (``mixmesh_quarantine.rows``)."""

from __future__ import annotations

import typing as t
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from mixmesh.monitor.stats_cli import WIDE

if t.TYPE_CHECKING:
    from mixmesh.cli.project import GlobalOptions


def quarantine_command(
    project: t.Optional[Path], *, model: t.Optional[str], function: t.Optional[str], limit: int,
    include_resolved: bool, summary: bool, console: t.Optional[Console] = None,
    options: t.Optional["GlobalOptions"] = None, wide: bool = False,
) -> None:
    """Print the entries (or their summary) of the project's warehouse."""
    from mixmesh.sqlmesh import quarantine

    console = console or Console(width=WIDE if wide else None)
    with _warehouse(project, options) as adapter:
        if not quarantine.table_exists(adapter):
            console.print(f"No quarantined rows: {quarantine.TABLE} does not exist yet (no model has run with mixmesh).")
            return
        if summary:
            frame = quarantine.summarised(adapter, model=model, function=function, include_resolved=include_resolved)
            title = "Quarantined rows by model, function and error"
        else:
            frame = quarantine.listed(adapter, model=model, function=function, limit=limit,
                                      include_resolved=include_resolved)
            frame = _readable(frame, include_resolved)
            title = f"Quarantined rows, newest first (at most {limit})"
    if frame.empty:
        scope = "" if include_resolved else "unresolved "
        about = [f"model {model}"] * bool(model) + [f"function {function}"] * bool(function)
        console.print(f"No {scope}quarantined rows" + (f" for {' and '.join(about)}" if about else "") + ".")
        return
    console.print(_table(title, frame))


def _warehouse(project: t.Optional[Path], options: t.Optional["GlobalOptions"] = None) -> t.ContextManager[t.Any]:
    """The engine adapter of the project's default gateway (its models are not loaded)."""
    import contextlib

    from mixmesh.testing import find_project

    try:
        root = find_project(project or Path.cwd())
    except FileNotFoundError as error:
        raise click.ClickException(
            f"{error}; run mixmesh quarantine inside a SQLMesh project, or give --project DIR"
        ) from None

    @contextlib.contextmanager
    def opened() -> t.Iterator[t.Any]:
        from sqlmesh import Context

        context = Context(paths=str(root), load=False, config=options and options.config,
                          gateway=options and options.gateway)
        try:
            yield context.engine_adapter
        finally:
            context.close()

    return opened()


def _readable(frame: t.Any, include_resolved: bool) -> t.Any:
    """The columns worth a terminal's width: the interval by its start, a run by its first
    characters (as git shows a commit), the resolution only when resolved rows are asked for."""
    frame = frame.rename(columns={"interval_start": "interval", "run_id": "run"})
    frame["run"] = frame["run"].str[:8]
    dropped = ["table_name", "interval_end", "row_count"]
    if include_resolved:
        frame["resolved_by_run"] = frame["resolved_by_run"].str[:8]
    else:
        dropped += ["resolved_at", "resolved_by_run"]
    return frame.drop(columns=dropped)[[c for c in _ORDER if c in frame.columns and c not in dropped]]


_ORDER = ("quarantined_at", "model", "interval", "function", "arguments", "error_type", "error_message", "attempts",
          "run", "resolved_at", "resolved_by_run")


def _table(title: str, frame: t.Any) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    for name in frame.columns:
        table.add_column(str(name), overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(*(_cell(value) for value in row))
    return table


def _cell(value: t.Any) -> str:
    import pandas as pd

    if value is None or (not isinstance(value, (list, dict, str)) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp):  # to the second, in UTC where the time is UTC
        return value.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if value.tzinfo is not None else "")
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)

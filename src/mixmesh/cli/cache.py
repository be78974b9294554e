"""``mixmesh cache``: the result cache of ``@udf(cache=...)`` functions in the project's warehouse.

Shows, per function, the entries kept (those still live, the code versions they were computed
by) and their size, with the hits and misses the recorded runs counted; ``--clear`` drops the
entries of one function or of all.
"""

from __future__ import annotations

import contextlib
import json
import typing as t
from pathlib import Path

import click

if t.TYPE_CHECKING:
    from mixmesh.cli.project import GlobalOptions


@contextlib.contextmanager
def warehouse_of(project: Path, options: t.Optional["GlobalOptions"] = None) -> t.Iterator[t.Any]:
    """The result cache in the project's warehouse (the connection of --gateway, or the default gateway's)."""
    from sqlmesh import Context

    from mixmesh.runtime.cache import Warehouse

    context = Context(paths=str(project), config=options and options.config, gateway=options and options.gateway)
    try:
        adapter = context.engine_adapter
        if adapter.dialect != "duckdb":
            raise click.ClickException(
                f"the project's warehouse runs on {adapter.dialect}; the result cache is kept on DuckDB "
                "warehouses only (on Spark a cached function is called for every row)"
            )
        yield Warehouse(adapter.connection)
    finally:
        context.close()


def cache_command(
    project: Path, function: t.Optional[str], clear: bool, as_json: bool, options: t.Optional["GlobalOptions"] = None
) -> None:
    with warehouse_of(project, options) as warehouse:
        if clear:
            dropped = warehouse.clear(function)
            what = f"of {function}" if function else "of every function"
            click.echo(f"Cleared the result cache {what}: {dropped:,} entries dropped.")
            return
        sizes = [size for size in warehouse.sizes() if function is None or size["function"] == function.lower()]
    counted = _hits_and_misses(project, options)
    for size in sizes:
        size["hits"], size["misses"] = counted.get(size["function"], (None, None))
    if as_json:
        click.echo(json.dumps({"schema": "mixmesh_cache", "functions": sizes}, indent=2))
        return
    if not sizes:
        click.echo("The result cache is empty" + (f" for {function}." if function else "."))
        return
    _print(sizes)


def _hits_and_misses(project: Path, options: t.Optional["GlobalOptions"] = None) -> t.Dict[str, t.Tuple[int, int]]:
    """Per function, the hits and misses the project's recorded runs counted (none if not recorded)."""
    from mixmesh.monitor.stats import summarize
    from mixmesh.monitor.store import MetricsStore, MetricsStoreError

    try:
        store = options.metrics_store(project) if options else MetricsStore.for_project(project)
        functions = summarize(store).functions
    except MetricsStoreError:
        return {}
    counted: t.Dict[str, t.Tuple[int, int]] = {}
    for figures in functions:
        if figures.cache_hits is not None:
            hits, misses = counted.get(figures.function, (0, 0))
            counted[figures.function] = (hits + figures.cache_hits, misses + (figures.cache_misses or 0))
    return counted


def _print(sizes: t.List[t.Dict[str, t.Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Result cache (schema mixmesh_cache)")
    for header in ("function", "entries", "live", "code versions", "bytes", "hits", "misses"):
        table.add_column(header, justify="left" if header == "function" else "right")
    for size in sizes:
        table.add_row(
            size["function"], f"{size['entries']:,}", f"{size['live']:,}", f"{size['versions']:,}", f"{size['bytes']:,}",
            "" if size["hits"] is None else f"{size['hits']:,}", "" if size["misses"] is None else f"{size['misses']:,}",
        )
    Console().print(table)

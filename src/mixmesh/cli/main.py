"""The ``mixmesh`` command.

Global options are ``sqlmesh``'s: ``-p/--paths``, ``--config``, ``--gateway`` (see
``mixmesh.cli.project``). Exit codes: 0 done; 1 the command failed; 2 a bad option, no
project or no such model; 3 the output cannot be written; 4 ``--fail-on degrading`` met.
"""

from __future__ import annotations

import math
import typing as t
from pathlib import Path

import click

from mixmesh.core.version import __version__
from mixmesh.cli.demo_data import SEED, SIZES
from mixmesh.cli.project import GlobalOptions

EXAMPLE = Path("examples/customer_analytics")  # `make demo` builds it in place, from the checkout


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mixmesh")
@click.option(
    "-p", "--paths", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Path to the SQLMesh project, as for sqlmesh (default: the one around the current directory).",
)
@click.option("--config", default=None, help="Name of the config object. Only applicable to configuration "
              "defined using Python script.")
@click.option("--gateway", default=None, help="The name of the gateway (where metrics=warehouse keeps the figures, "
              "where the cache and the quarantine are read).")
@click.pass_context
def main(context: click.Context, paths: t.Tuple[Path, ...], config: t.Optional[str], gateway: t.Optional[str]) -> None:
    """mixmesh: Python functions in SQL models and Python models over safe SQL, on SQLMesh."""
    context.obj = GlobalOptions(paths=paths, config=config, gateway=gateway)


def _deprecated_project(help: str, **extra: t.Any) -> t.Callable[[t.Callable[..., t.Any]], t.Callable[..., t.Any]]:
    """A subcommand's own ``--project``: the older spelling of ``mixmesh -p``."""
    return click.option(
        "--project", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
        help=f"{help} Deprecated: use mixmesh -p DIR.", **extra,
    )


_wide = click.option("--wide", is_flag=True, help="One line per row, however wide (default: fit the terminal, "
                     "stacking rows that do not fit).")


class _Fraction(click.ParamType):
    """A number from 0 to 1; click's own FloatRange lets NaN through (it compares false)."""

    name = "fraction"

    def convert(self, value: t.Any, param: t.Optional[click.Parameter], ctx: t.Optional[click.Context]) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number; give a fraction from 0 to 1, such as 0.05", param, ctx)
        if math.isnan(number) or not 0 <= number <= 1:
            self.fail(f"{value!r} is not a fraction from 0 to 1 (such as 0.05)", param, ctx)
        return number


@main.command()
@click.argument("directory", metavar="[DIR]", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Build the example project where it is (default, without DIR: examples/customer_analytics, in a checkout; "
    "mixmesh -p DIR demo says the same).",
)
@click.option("--customers", type=click.IntRange(min=1), default=SIZES.customers, show_default=True)
@click.option("--transactions", type=click.IntRange(min=0), default=SIZES.transactions, show_default=True)
@click.option("--events", type=click.IntRange(min=0), default=SIZES.events, show_default=True, help="Web events.")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=SIZES.days,
    show_default=True,
    help="Days from 2024-01-01. A rerun with more days builds only the new ones.",
)
@click.option("--seed", type=click.IntRange(min=0), default=SEED, show_default=True, help="Same seed, same data.")
@click.option(
    "--dirty",
    type=_Fraction(),
    default=0.0,
    show_default=True,
    help="Flaw about this share of the raw rows: NULLs, duplicates, late transactions, "
    "zero and negative amounts, Unicode merchant names.",
)
@click.option("--retrain", is_flag=True, help="Train the ML models again even if trained ones are pinned.")
@_wide
@click.pass_obj
def demo(
    options: GlobalOptions,
    directory: t.Optional[Path],
    project: t.Optional[Path],
    customers: int,
    transactions: int,
    events: int,
    days: int,
    seed: int,
    dirty: float,
    retrain: bool,
    wide: bool,
) -> None:
    """Build the seed's example project on embedded DuckDB from generated data, and summarise it.

    With DIR, the example project is copied into DIR (a new or empty directory; one that
    holds the example already is built again, nothing in it overwritten) and built there,
    into DIR/demo.duckdb. Without it, the project at --project is built in place.
    """
    from mixmesh.cli.demo import DemoError, DemoOptions, prepare_project, run_demo
    from mixmesh.cli.demo_data import DemoSizes

    if len(options.paths) > 1 or (project is not None and options.paths):
        raise click.UsageError("give the project to build once: mixmesh -p DIR demo")
    project = project or (options.paths[0] if options.paths else None)
    if directory is not None and project is not None:
        raise click.UsageError("give DIR (copy the example there) or --project (build it in place), not both")
    sizes = DemoSizes(customers=customers, transactions=transactions, events=events, days=days)
    try:
        if directory is not None:
            project = prepare_project(directory)
        run_demo(project or EXAMPLE, DemoOptions(sizes=sizes, seed=seed, retrain=retrain, dirty=dirty, wide=wide))
    except DemoError as error:
        raise click.ClickException(str(error)) from None


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
@click.option("--force", is_flag=True, help="Write into a non-empty directory (existing files are never overwritten).")
def init(directory: Path, force: bool) -> None:
    """Create a project in DIRECTORY: the seed's layout, one model of each pattern, sample data, tests."""
    from mixmesh.core.errors import MixmeshError
    from mixmesh.cli.scaffold import init_project

    try:
        written = init_project(directory, force=force)
    except MixmeshError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"Created a mixmesh project in {directory} ({len(written)} files).\n\nNext, from {directory}:\n"
        "  sqlmesh plan    build the models into db.duckdb (runs the unit tests first)\n"
        "  sqlmesh test    run the SQLMesh unit tests\n"
        "  pytest          run the Python tests (pip install 'mixmesh[testing]')"
    )


@main.command()
@click.option("--model", "model", metavar="M", help="Only this model (schema.name).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_deprecated_project("The SQLMesh project.")
@click.pass_obj
def advise(options: GlobalOptions, model: str | None, as_json: bool, project: Path | None) -> None:
    """Per model: the mixed-language pattern it follows and the one the seed's framework recommends."""
    root = options.project(project, command="advise")  # before importing SQLMesh: no project, no wait
    import json

    from sqlmesh.utils.errors import SQLMeshError

    from mixmesh.advice import advise as advise_project, format_text
    from mixmesh.core.errors import MixmeshError

    try:
        advice = advise_project(
            root, model=model, store=options.metrics_store(root), gateway=options.gateway, config=options.config
        )
    except (MixmeshError, SQLMeshError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps({"models": [item.to_dict() for item in advice]}, indent=2, default=str))
    else:
        click.echo(format_text(advice))


_recorded_runs_of_project = _deprecated_project(
    "The project whose recorded runs to read (MIXMESH_METRICS, or metrics in its config, says where they are kept)."
)


@main.command()
@click.option("--model", "model", default=None, help="Only this model (schema.name).")
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=None, help="Only runs of the last N days.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--prometheus", is_flag=True, help="Print the figures in the Prometheus text exposition format.")
@_wide
@click.option("--fail-on", "fail_on", type=click.Choice(["degrading"]), multiple=True,
              help="Exit with code 4 when a model's time, memory or throughput trend is degrading (for CI).")
@click.option("--min-change", type=click.FloatRange(min=0), default=None, metavar="PERCENT",
              help="A trend must change by at least this much, in percent (default: 10, or trend_min_change).")
@click.option("--min-change-ms", type=click.FloatRange(min=0), default=None, metavar="MS",
              help="A time trend must change a median-sized run by at least this many ms (default: 50, or "
              "trend_min_change_ms).")
@_recorded_runs_of_project
@click.pass_obj
def stats(
    options: GlobalOptions, model: str | None, days: float | None, as_json: bool, prometheus: bool, wide: bool,
    fail_on: t.Tuple[str, ...], min_change: float | None, min_change_ms: float | None, project: Path | None,
) -> None:
    """Per model and per function: mean and p95 times, SQL vs Python, rows/s, memory, trends, recommendations."""
    import dataclasses

    from mixmesh.monitor.stats_cli import stats_command
    from mixmesh.monitor.trends import TrendThresholds

    if as_json and prometheus:  # a usage error first, wherever the command runs
        raise click.UsageError("--json and --prometheus are two formats: choose one")
    root = options.project(project, command="stats")
    thresholds = TrendThresholds.from_settings()
    if min_change is not None:
        thresholds = dataclasses.replace(thresholds, min_change=min_change / 100)
    if min_change_ms is not None:
        thresholds = dataclasses.replace(thresholds, min_change_s=min_change_ms / 1000)
    stats_command(root, model=model, days=days, as_json=as_json, prometheus=prometheus, wide=wide, fail_on=fail_on,
                  thresholds=thresholds, store=options.metrics_store(root))


@main.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="The HTML file to write.",
)
@click.option("--model", "model", default=None, help="Only this model (schema.name).")
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=None, help="Only runs of the last N days.")
@_recorded_runs_of_project
@click.pass_obj
def report(options: GlobalOptions, out: Path, model: str | None, days: float | None, project: Path | None) -> None:
    """Write the performance report: one HTML page with charts, viewable offline."""
    from mixmesh.core.errors import MixmeshError
    from mixmesh.monitor.report import write_report
    from mixmesh.monitor.store import recovering

    root = options.project(project, command="report")
    _check_writable(out)
    store = options.metrics_store(root)
    try:  # a file that cannot be read is moved aside and rebuilt from the spool, said on stderr
        written = recovering(
            store, lambda: write_report(store, out, model=model, days=days), lambda told: click.echo(told, err=True)
        )
    except MixmeshError as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        raise Unwritable(f"cannot write the report to {out}: {error.strerror or error}") from None
    if store.path is None or (not store.path.exists() and not store.pending()):
        click.echo(f"No runs recorded yet in {store.location}: the report says so.", err=True)
    click.echo(f"Wrote {written}: open it in any browser (it loads nothing from the network).")


class Unwritable(click.ClickException):
    """The output file cannot be written where asked."""

    exit_code = 3  # EXIT_UNWRITABLE


def _check_writable(out: Path) -> None:
    """Refuse, before any work, an output whose folder is missing (never created) or read-only."""
    import os

    folder = out.absolute().parent
    if not folder.is_dir():
        raise Unwritable(f"cannot write the report to {out}: the folder {folder} does not exist (mixmesh does not "
                         "create it)")
    if not os.access(folder, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise Unwritable(f"cannot write the report to {out}: permission denied")


@main.command()
@click.argument("function", required=False)
@click.option("--clear", is_flag=True, help="Drop the kept results of FUNCTION (of every function without it).")
@click.option("--json", "as_json", is_flag=True, help="Print the sizes as JSON.")
@_deprecated_project("The SQLMesh project whose warehouse holds the cache.")
@click.pass_obj
def cache(options: GlobalOptions, function: str | None, clear: bool, as_json: bool, project: Path | None) -> None:
    """The result cache of @udf(cache=...) functions: entries and bytes per function, hits and misses; --clear."""
    from mixmesh.cli.cache import cache_command

    root = options.project(project, command="cache")
    cache_command(root, function, clear, as_json, options=options)


@main.command()
@click.option("--model", "model", default=None, help="Only this model (schema.name).")
@click.option("--function", "function", default=None, help="Only this function.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most this many rows.")
@click.option("--include-resolved", is_flag=True, help="Also the entries a later evaluation of their interval resolved.")
@click.option("--summary", is_flag=True, help="Failed rows by model, function and error type instead of the rows.")
@_wide
@_deprecated_project("The SQLMesh project.")
@click.pass_obj
def quarantine(
    options: GlobalOptions,
    model: str | None, function: str | None, limit: int, include_resolved: bool, summary: bool, wide: bool,
    project: Path | None,
) -> None:
    """The rows whose function call failed after its retries and got their on_error value."""
    from mixmesh.cli.quarantine import quarantine_command

    root = options.project(project, command="quarantine")
    quarantine_command(root, model=model, function=function, limit=limit, include_resolved=include_resolved,
                       summary=summary, options=options, wide=wide)

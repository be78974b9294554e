"""The ``mixmesh`` command."""

from __future__ import annotations

import math
import typing as t
from pathlib import Path

import click

from mixmesh.core.version import __version__
from mixmesh.cli.demo_data import SEED, SIZES

EXAMPLE = Path("examples/customer_analytics")  # `make demo` builds it in place, from the checkout


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mixmesh")
def main() -> None:
    """mixmesh: Python functions in SQL models and Python models over safe SQL, on SQLMesh."""


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
    help="Build the example project where it is (default, without DIR: examples/customer_analytics, in a checkout).",
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
def demo(
    directory: t.Optional[Path],
    project: t.Optional[Path],
    customers: int,
    transactions: int,
    events: int,
    days: int,
    seed: int,
    dirty: float,
    retrain: bool,
) -> None:
    """Build the seed's example project on embedded DuckDB from generated data, and summarise it.

    With DIR, the example project is copied into DIR (a new or empty directory; one that
    holds the example already is built again, nothing in it overwritten) and built there,
    into DIR/demo.duckdb. Without it, the project at --project is built in place.
    """
    from mixmesh.cli.demo import DemoError, DemoOptions, prepare_project, run_demo
    from mixmesh.cli.demo_data import DemoSizes

    if directory is not None and project is not None:
        raise click.UsageError("give DIR (copy the example there) or --project (build it in place), not both")
    sizes = DemoSizes(customers=customers, transactions=transactions, events=events, days=days)
    try:
        if directory is not None:
            project = prepare_project(directory)
        run_demo(project or EXAMPLE, DemoOptions(sizes=sizes, seed=seed, retrain=retrain, dirty=dirty))
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
@click.option(
    "--project",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="The SQLMesh project (default: the one around the current directory).",
)
def advise(model: str | None, as_json: bool, project: Path | None) -> None:
    """Per model: the mixed-language pattern it follows and the one the seed's framework recommends."""
    import json

    from sqlmesh.utils.errors import SQLMeshError

    from mixmesh.advice import advise as advise_project, format_text
    from mixmesh.core.errors import MixmeshError
    from mixmesh.testing import find_project

    try:
        advice = advise_project(find_project(project or Path.cwd()), model=model)
    except (MixmeshError, SQLMeshError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps({"models": [item.to_dict() for item in advice]}, indent=2, default=str))
    else:
        click.echo(format_text(advice))


def _project_around(context: click.Context, parameter: click.Parameter, given: t.Optional[Path]) -> Path:
    """The project given, or the one around the current directory (as SQLMesh finds it)."""
    from mixmesh.testing import find_project

    if given is not None:
        return given
    try:
        return find_project(Path.cwd())
    except FileNotFoundError:
        return Path(".")  # no project: the commands say no runs are recorded


_recorded_runs_of_project = click.option(
    "--project",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    callback=_project_around,
    help="The project whose recorded runs to read (default: the one around the current directory; "
    "MIXMESH_METRICS says where they are kept).",
)


@main.command()
@click.option("--model", "model", default=None, help="Only this model (schema.name).")
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=None, help="Only runs of the last N days.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--prometheus", is_flag=True, help="Print the figures in the Prometheus text exposition format.")
@_recorded_runs_of_project
def stats(model: str | None, days: float | None, as_json: bool, prometheus: bool, project: Path) -> None:
    """Per model and per function: mean and p95 times, SQL vs Python, rows/s, memory, trends, recommendations."""
    from mixmesh.monitor.stats_cli import stats_command

    stats_command(project, model=model, days=days, as_json=as_json, prometheus=prometheus)


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
def report(out: Path, model: str | None, days: float | None, project: Path) -> None:
    """Write the performance report: one HTML page with charts, viewable offline."""
    from mixmesh.core.errors import MixmeshError
    from mixmesh.monitor.report import write_report
    from mixmesh.monitor.store import MetricsStore, recovering

    store = MetricsStore.for_project(project)
    try:  # a file that cannot be read is moved aside and rebuilt from the spool, said on stderr
        written = recovering(
            store, lambda: write_report(store, out, model=model, days=days), lambda told: click.echo(told, err=True)
        )
    except MixmeshError as error:
        raise click.ClickException(str(error)) from None
    if store.path is None or (not store.path.exists() and not store.pending()):
        click.echo(f"No runs recorded yet in {store.location}: the report says so.", err=True)
    click.echo(f"Wrote {written}: open it in any browser (it loads nothing from the network).")


@main.command()
@click.argument("function", required=False)
@click.option("--clear", is_flag=True, help="Drop the kept results of FUNCTION (of every function without it).")
@click.option("--json", "as_json", is_flag=True, help="Print the sizes as JSON.")
@click.option(
    "--project",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    callback=_project_around,
    help="The SQLMesh project whose warehouse holds the cache (default: the one around the current directory).",
)
def cache(function: str | None, clear: bool, as_json: bool, project: Path) -> None:
    """The result cache of @udf(cache=...) functions: entries and bytes per function, hits and misses; --clear."""
    from mixmesh.cli.cache import cache_command

    cache_command(project, function, clear, as_json)


@main.command()
@click.option("--model", "model", default=None, help="Only this model (schema.name).")
@click.option("--function", "function", default=None, help="Only this function.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most this many rows.")
@click.option("--include-resolved", is_flag=True, help="Also the entries a later evaluation of their interval resolved.")
@click.option("--summary", is_flag=True, help="Failed rows by model, function and error type instead of the rows.")
@click.option(
    "--project",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="The SQLMesh project (default: the one around the current directory).",
)
def quarantine(
    model: str | None, function: str | None, limit: int, include_resolved: bool, summary: bool, project: Path | None
) -> None:
    """The rows whose function call failed after its retries and got their on_error value."""
    from mixmesh.cli.quarantine import quarantine_command

    quarantine_command(project, model=model, function=function, limit=limit, include_resolved=include_resolved,
                       summary=summary)

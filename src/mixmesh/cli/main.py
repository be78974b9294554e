"""The ``mixmesh`` command."""

from __future__ import annotations

import typing as t
from pathlib import Path

import click

from mixmesh.core.version import __version__
from mixmesh.cli.demo_data import SEED, SIZES


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mixmesh")
def main() -> None:
    """mixmesh: Python functions in SQL models and Python models over safe SQL, on SQLMesh."""


@main.command()
@click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("examples/customer_analytics"),
    show_default=True,
    help="The example project to build (its DuckDB file, demo.duckdb, lives there).",
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
@click.option("--retrain", is_flag=True, help="Train the ML models again even if trained ones are pinned.")
def demo(project: Path, customers: int, transactions: int, events: int, days: int, seed: int, retrain: bool) -> None:
    """Build the seed's example project on embedded DuckDB from generated data, and summarise it."""
    from mixmesh.cli.demo import DemoError, DemoOptions, run_demo
    from mixmesh.cli.demo_data import DemoSizes

    sizes = DemoSizes(customers=customers, transactions=transactions, events=events, days=days)
    try:
        run_demo(project, DemoOptions(sizes=sizes, seed=seed, retrain=retrain))
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
        "  pytest          run the Python tests"
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

"""The ``mixmesh`` command."""

from __future__ import annotations

from pathlib import Path

import click

from mixmesh import __version__
from mixmesh.demo_data import SEED, SIZES


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
    from mixmesh.demo import DemoError, DemoOptions, run_demo
    from mixmesh.demo_data import DemoSizes

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
    from mixmesh.errors import MixmeshError
    from mixmesh.scaffold import init_project

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
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="The HTML file to write.",
)
@click.option("--model", help="Only this model's runs (its SQLMesh name, schema.name).")
@click.option("--days", type=click.IntRange(min=1), help="Only the runs of the last N days.")
@click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The project whose recorded runs to read (.mixmesh/metrics.duckdb in it).",
)
def report(out: Path, model: str | None, days: int | None, project: Path) -> None:
    """Write the performance report: one HTML page with charts, viewable offline."""
    from mixmesh.errors import MixmeshError
    from mixmesh.monitor.report import write_report
    from mixmesh.monitor.store import MetricsStore

    # The store's default place in a project; MetricsStore.for_project(project) once it exists.
    store = MetricsStore(project / ".mixmesh" / "metrics.duckdb")
    try:
        written = write_report(store, out, model=model, days=days)
    except MixmeshError as error:
        raise click.ClickException(str(error)) from None
    if not store.path.exists():
        click.echo(f"No runs recorded yet in {store.path}: the report says so.", err=True)
    click.echo(f"Wrote {written}: open it in any browser (it loads nothing from the network).")

"""The ``mixmesh`` command."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import typing as t
from pathlib import Path

import click

from mixmesh import __version__

EXAMPLES = Path(__file__).parent / "examples"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mixmesh")
def main() -> None:
    """mixmesh: Python functions in SQL models and Python models over safe SQL, on SQLMesh."""


@main.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo"),
    show_default=True,
    help="Where to create the example project (its DuckDB file lives there too).",
)
def demo(directory: Path) -> None:
    """Build the bundled example project on embedded DuckDB and print a summary."""
    project = _copy_example("minimal", directory)
    click.echo(f"Example project: {project}")
    # SQLMesh resolves a relative DuckDB path from the working directory, as its CLI does.
    with _working_directory(project):
        started = time.perf_counter()
        _plan(project)
        seconds = time.perf_counter() - started
        _print_summary(project, seconds)


@contextlib.contextmanager
def _working_directory(path: Path) -> t.Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def _copy_example(name: str, directory: Path) -> Path:
    """Copy a bundled example, keeping any database already built there."""
    source = EXAMPLES / name
    for path in source.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            target = directory / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return directory.absolute()


def _plan(project: Path) -> None:
    from sqlmesh import Context
    from sqlmesh.core.console import configure_console
    from sqlmesh.utils.errors import SQLMeshError

    configure_console()  # SQLMesh's terminal console: progress bars and failure details
    try:
        context = Context(paths=str(project))
        try:
            context.plan(auto_apply=True, no_prompts=True)
        finally:
            context.close()
    except (SQLMeshError, ValueError) as error:
        raise click.ClickException(str(error)) from None


def _print_summary(project: Path, seconds: float) -> None:
    import duckdb

    with duckdb.connect(str(project / "demo.duckdb"), read_only=True) as connection:
        rows = connection.sql("SELECT count(*) FROM analytics.customer_risk_scoring").fetchone()
        tiers = connection.sql(
            "SELECT risk_tier, count(*), round(avg(ml_risk_score), 3) FROM analytics.customer_risk_scoring "
            "GROUP BY risk_tier ORDER BY risk_tier"
        ).fetchall()
        top = connection.sql(
            "SELECT customer_id, transaction_count, round(total_amount, 2), ml_risk_score "
            "FROM analytics.customer_risk_scoring ORDER BY ml_risk_score DESC, customer_id LIMIT 5"
        ).fetchall()
    click.echo(f"\nanalytics.customer_risk_scoring: {rows[0]:,} customers scored by python_risk_score")
    _table(["risk tier", "customers", "mean score"], tiers)
    click.echo("\nHighest risk:")
    _table(["customer", "transactions", "total amount", "score"], top)
    click.echo(f"\nBuilt in {seconds:.1f} s on embedded DuckDB.")


def _table(header: t.Sequence[str], rows: t.Sequence[t.Sequence[t.Any]]) -> None:
    cells = [list(map(str, header))] + [[str(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        click.echo("  " + "  ".join(value.rjust(width) for value, width in zip(row, widths)))

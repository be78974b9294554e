"""The demo job: the seed's example project built on embedded DuckDB from generated data.

``prepare_project`` copies the example project into a new or empty directory (``mixmesh
demo DIR``) and leaves one that holds it already as it is. Then four steps, each safe to
repeat:

1. generate the raw tables (``mixmesh.cli.demo_data``) for the days from ``START`` on;
2. train the project's ML models on them, unless trained models are already pinned;
3. ``plan`` the project with SQLMesh, its clock set to the day after the period, so the
   models are built up to the period's end and no further. A rerun finds nothing missing;
   more ``days`` leave the days already built alone and build only the new intervals (and
   the hour before them, which the hourly personalization model redoes: its lookback);
4. summarise what the models hold.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import sys
import time
import typing as t
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mixmesh.cli.demo_data import SEED, SIZES, DemoSizes, generate
from mixmesh.cli.demo_project import copy_example, example_source, is_example
from mixmesh.core.errors import MixmeshError
from mixmesh.monitor.stats_cli import WIDE, print_table
from mixmesh.monitor.stats_cli import _table as _table  # noqa: F401 - the same cells as mixmesh stats

START = datetime.date(2024, 1, 1)  # the example's model start (its config.yaml)
DATABASE = "demo.duckdb"  # as the example's config.yaml names it, relative to the project
MODELS = ("analytics.customer_risk_scoring", "analytics.customer_ltv_prediction", "analytics.real_time_personalization")


class DemoError(MixmeshError, RuntimeError):
    """The demo cannot run: no example project there, a dependency missing."""


def prepare_project(directory: Path, console: t.Optional[Console] = None) -> Path:
    """``directory`` holding the example project: copied there if new or empty, else as it was.

    A directory that holds the example already (an earlier ``mixmesh demo DIR``) is built
    again; one that holds anything else is refused, and nothing in it is ever overwritten.
    """
    directory = Path(directory)
    if is_example(directory):
        return directory
    if directory.exists() and not directory.is_dir():
        raise DemoError(f"{directory} exists and is not a directory")
    if directory.exists() and any(directory.iterdir()):
        raise DemoError(
            f"{directory} is not empty and does not hold the example project (no config.yaml and "
            "python/training.py there); nothing was written: give a new or empty directory"
        )
    source = example_source()
    if source is None:
        raise DemoError("this mixmesh has no copy of the example project: reinstall it (pip install 'mixmesh[demo]')")
    copied = copy_example(source, directory)
    (console or Console()).print(f"[bold]Example project[/]: copied into {directory} ({len(copied)} files)")
    return directory


@dataclasses.dataclass(frozen=True)
class DemoOptions:
    sizes: DemoSizes = SIZES
    seed: int = SEED
    retrain: bool = False
    dirty: float = 0.0  # the share of rows with flaws (mixmesh.cli.demo_flaws)
    wide: bool = False  # the summary's tables one line per row, however wide

    @property
    def end(self) -> datetime.date:
        return START + datetime.timedelta(days=self.sizes.days - 1)


@dataclasses.dataclass
class ModelTiming:
    intervals: int = 0
    seconds: float = 0.0
    python_seconds: float = 0.0


@dataclasses.dataclass
class DemoResult:
    rows: t.Dict[str, int]  # generated, per raw table
    trained: t.List[t.Any]  # the project's Trained records, empty when reused
    timings: t.Dict[str, ModelTiming]  # per model, what this run built
    seconds: float


def run_demo(project: Path, options: DemoOptions = DemoOptions(), console: t.Optional[Console] = None) -> DemoResult:
    """Generate, train, build and summarise the example project at ``project``."""
    console = console or Console()
    project = project.resolve()
    if not is_example(project):
        raise DemoError(
            f"{project} is not the example project (no config.yaml and python/training.py there); "
            "`mixmesh demo DIR` copies the example project into DIR and builds it there"
        )
    started = time.perf_counter()
    started_at = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    sizes = options.sizes
    console.print(
        f"[bold]Demo data[/]: {sizes.customers:,} customers, {sizes.transactions:,} transactions, "
        f"{sizes.events:,} web events over {sizes.days} day{'s' if sizes.days > 1 else ''} ({START} to {options.end}), "
        f"seed {options.seed}" + (f", dirty {options.dirty:g}" if options.dirty else "")
    )
    # SQLMesh reads the relative DuckDB path from the working directory, as its CLI does, and
    # the project's code reads its artifacts relative to it.
    with _working_directory(project), _project_on_path(project):
        rows = _generate(options, console)
        trained = _train(options, console)
        _build(project, options, console)
    timings = _timings_since(project, started_at)
    result = DemoResult(rows, trained, timings, time.perf_counter() - started)
    print_summary(project, result, console, wide=options.wide)
    return result


# ------------------------------------------------------------------------------ the steps


def _generate(options: DemoOptions, console: Console) -> t.Dict[str, int]:
    import duckdb

    sizes = options.sizes
    with _progress(console) as progress, duckdb.connect(DATABASE) as connection:
        tasks: t.Dict[str, t.Any] = {}

        def report(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = progress.add_task(f"raw.{table}", total=max(total, 1))
            progress.update(tasks[table], completed=done if total else 1)

        return generate(
            connection,
            customers=sizes.customers,
            transactions=sizes.transactions,
            events=sizes.events,
            days=sizes.days,
            end_date=options.end,
            seed=options.seed,
            progress=report,
            dirty=options.dirty,
        )


def _train(options: DemoOptions, console: Console) -> t.List[t.Any]:
    import duckdb

    try:
        from python import training
        from python.shared.model_loading import ARTIFACT_PINS
    except ModuleNotFoundError as error:
        raise DemoError(f"the demo trains scikit-learn models: pip install 'mixmesh[demo]' ({error})") from None
    pinned = Path(ARTIFACT_PINS)
    if pinned.is_file() and not options.retrain:
        console.print(f"[bold]ML models[/]: reusing the models pinned in {ARTIFACT_PINS} (--retrain to train again)")
        return []
    with _progress(console) as progress, duckdb.connect(DATABASE, read_only=True) as connection:
        task = progress.add_task("training", total=2)

        def step(name: str) -> None:
            progress.update(task, description=f"training the {name}", advance=0 if name.startswith("risk") else 1)

        try:
            trained = training.train_all(connection, START, options.end, step=step)
        except training.TrainingError as error:
            console.print(f"[yellow]Not trained[/]: {escape(str(error))}; the project's rule-based fallbacks take their place")
            trained = []
        progress.update(task, completed=2)
    for model in trained:
        console.print(f"  {model.name}: {model.path}, {model.rows:,} rows, {model.metric} {model.score:.3f}")
    return trained


def _build(project: Path, options: DemoOptions, console: Console) -> None:
    from sqlmesh import Context
    from sqlmesh.core.console import configure_console
    from sqlmesh.utils.errors import SQLMeshError

    configure_console()  # SQLMesh's terminal console: its progress bars and failure details
    # The day after the period, at midnight: SQLMesh builds every interval up to the period's end.
    clock = datetime.datetime.combine(options.end + datetime.timedelta(days=1), datetime.time())
    try:
        context = Context(paths=str(project))
        try:
            context.plan(auto_apply=True, no_prompts=True, execution_time=clock)
        finally:
            context.close()
    except (SQLMeshError, ValueError) as error:
        raise DemoError(str(error)) from None


def _timings_since(project: Path, started_at: datetime.datetime) -> t.Dict[str, ModelTiming]:
    """What this run built, per model, as mixmesh's monitoring recorded it."""
    from mixmesh.monitor.store import MetricsStore

    runs = MetricsStore.for_project(project).model_runs()
    timings: t.Dict[str, ModelTiming] = {}
    for run in runs[runs.started_at >= started_at].itertuples():
        timing = timings.setdefault(run.model, ModelTiming())
        timing.intervals += 1
        timing.seconds += run.total_s
        timing.python_seconds += run.python_s
    return timings


# ------------------------------------------------------------------------------ the summary


def print_summary(
    project: Path, result: DemoResult, console: t.Optional[Console] = None, *, wide: bool = False
) -> None:
    import duckdb
    from sqlglot import exp

    from mixmesh.runtime.resources import artifact_events

    console = console or Console()
    tables = Console(width=WIDE, file=console.file) if wide else console
    with duckdb.connect(str(project / DATABASE), read_only=True) as connection:

        def rows(query: str) -> t.List[t.Tuple[t.Any, ...]]:
            return connection.execute(query).fetchall()

        built = {model: rows(exp.select("count(*)").from_(exp.to_table(model)).sql("duckdb"))[0][0] for model in MODELS}
        console.print()
        print_table(
            tables,
            "Models",
            ["model", "rows", "built this run", "seconds", "Python", "SQL"],
            [
                (model, f"{count:,}", *_timing_cells(result.timings.get(model)))
                for model, count in built.items()
            ],
        )
        print_table(
            tables,
            "Risk tiers (analytics.customer_risk_scoring)",
            ["tier", "customer-days", "mean score", "min", "max"],
            rows(
                "SELECT final_risk_tier, count(*), round(avg(ml_risk_score), 3), round(min(ml_risk_score), 3), "
                "round(max(ml_risk_score), 3) FROM analytics.customer_risk_scoring GROUP BY 1 "
                "ORDER BY CASE final_risk_tier WHEN 'HIGH' THEN 0 WHEN 'MEDIUM' THEN 1 ELSE 2 END"
            ),
        )
        print_table(
            tables,
            "Top customers by predicted LTV (analytics.customer_ltv_prediction, latest prediction)",
            ["customer", "segment", "predicted LTV", "confidence", "churn risk", "spend in period"],
            rows(
                "SELECT customer_id, customer_segment, printf('%,.2f', predicted_ltv), prediction_confidence, "
                "round(churn_risk, 3), printf('%,.2f', total_spend) FROM analytics.customer_ltv_prediction "
                "QUALIFY prediction_date = max(prediction_date) OVER () "
                "ORDER BY predicted_ltv DESC, prediction_confidence DESC, customer_id LIMIT 5"
            ),
        )
        print_table(
            tables,
            "Session types (analytics.real_time_personalization)",
            ["session type", "sessions", "mean engagement", "premium offers"],
            rows(
                "SELECT session_type, count(*), round(avg(ml_engagement_score), 3), count(*) FILTER (show_premium_offer) "
                "FROM analytics.real_time_personalization GROUP BY 1 ORDER BY 2 DESC"
            ),
        )
    events = artifact_events()
    if result.trained:
        source = "trained in this run and pinned"
    elif events["loaded"]:
        source = "the pinned ones"
    else:
        source = "none loaded"
    if events["fallback"]:
        source += (
            f"; the rule-based fallbacks ran instead in {events['fallback']} load(s) "
            f"(file missing {events['missing']}, not pinned {events['unpinned']}, hash mismatch {events['refused_hash']})"
        )
    console.print(f"ML models: {source}.")
    console.print(f"Database: {project / DATABASE}. Done in {result.seconds:.1f} s.")


def _timing_cells(timing: t.Optional[ModelTiming]) -> t.Tuple[str, str, str, str]:
    if timing is None:
        return ("nothing new", "", "", "")
    python = timing.python_seconds / timing.seconds if timing.seconds else 0.0
    return (f"{timing.intervals} batch(es)", f"{timing.seconds:.2f}", f"{python:.0%}", f"{1 - python:.0%}")


# ------------------------------------------------------------------------------ helpers


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    )


@contextlib.contextmanager
def _working_directory(path: Path) -> t.Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def _project_on_path(project: Path) -> t.Iterator[None]:
    # The project's code imports itself as `python...`, from the project folder, as in SQLMesh.
    sys.path.insert(0, str(project))
    try:
        yield
    finally:
        sys.path.remove(str(project))

"""What do a Python model's reads and writes cost, in time and peak memory?

Each variant is a real SQLMesh project on a DuckDB file in a temporary folder, with a SQL
model ``raw.events`` (kind FULL, ``--rows`` rows of id BIGINT, customer_id BIGINT, amount
DOUBLE, day DATE made with DuckDB's ``range()``) and a Python model ``analytics.copy``
(kind FULL) that reads all of ``raw.events`` and returns it unchanged, so that only the
I/O differs:

  plain SQLMesh      ``@model`` returning ``context.fetchdf("SELECT * FROM " +
                     context.resolve_table("raw.events"))`` (a pandas DataFrame)
  mixmesh pandas     ``@python_model`` returning ``context.sql(...).to_pandas()``
  mixmesh streaming  ``@python_model`` yielding ``context.sql(...).batches(1_000_000)``
                     (Arrow record batches, from a generator)

What is measured, and how:

- ``raw.events`` is built once, by a setup process that is not measured; every variant
  gets its own copy of that project folder (database and SQLMesh state included).
- Each variant runs in a fresh child process: it loads the project (now with
  ``analytics.copy``) into a ``Context``, then runs ``Context.plan`` (auto-applied), which
  builds only ``analytics.copy``. "seconds" is SQLMesh's evaluation of that model's
  snapshot (``SnapshotEvaluator.evaluate``: running the Python function, landing what it
  returns and writing the model's table); "plan s" is the whole plan around it (diff,
  table creation, state writes, promotion: a fixed cost, the same in every variant).
- "peak RSS" is the child's own ``ru_maxrss``, so it includes the ~constant cost of
  Python, SQLMesh and a loaded Context; "RSS before" is the peak before the plan started,
  and "added" (peak minus it) is roughly what building the model added.
- The table each variant built must hold ``--rows`` rows and the same ``sum(amount)`` as
  ``raw.events`` (amounts are quarters, so the sum is exact); otherwise the run fails.
- Writes go to a disk file, so times vary from run to run: every variant runs ``--repeat``
  times, round-robin, each time in a new process on a new copy, and the medians are shown.

It prints a table with the ratios to plain SQLMesh and the targets (mixmesh streaming: peak
RSS at most 45% of plain SQLMesh's, time at most 1.0x), and writes the same to
``benchmarks/results/python_model_io.json``. Timings are reported, never asserted.

Run from the repository root::

    .venv/bin/python benchmarks/python_model_io.py            # 10,000,000 rows, 3 repeats
    .venv/bin/python benchmarks/python_model_io.py --rows 1000000 --repeat 1 --batch-rows 100000
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import typing as t
from pathlib import Path

import reporting

RSS_BAR = 0.45  # mixmesh streaming's peak RSS, as a share of plain SQLMesh's
TIME_BAR = 1.00  # mixmesh streaming's time, as a multiple of plain SQLMesh's
RESULT_MARK = "RESULT "  # the child's last line of output: RESULT {json}

COLUMNS = {"id": "BIGINT", "customer_id": "BIGINT", "amount": "DOUBLE", "day": "DATE"}

CONFIG = """\
gateways:
  local:
    connection:
      type: duckdb
      database: {database}
default_gateway: local
model_defaults:
  dialect: duckdb
  start: '2024-01-01'
disable_anonymized_analytics: true
"""

RAW_EVENTS = """\
MODEL (name raw.events, kind FULL);
SELECT
  range::BIGINT AS id,
  (range % 100000)::BIGINT AS customer_id,
  ((range % 10000) * 0.25)::DOUBLE AS amount,
  (DATE '2024-01-01' + (range % 366)::INTEGER)::DATE AS day
FROM range({rows})
"""


# --- the variants ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    source: str  # models/copy.py; {columns} and {batch_rows} are filled in


VARIANTS = (
    Variant(
        "plain SQLMesh",
        """
        from sqlmesh import model


        @model("analytics.copy", kind="FULL", columns={columns}, depends_on=["raw.events"])
        def execute(context, **kwargs):
            return context.fetchdf("SELECT * FROM " + context.resolve_table("raw.events"))
        """,
    ),
    Variant(
        "mixmesh pandas",
        """
        from mixmesh import python_model


        @python_model(name="analytics.copy", columns={columns})
        def copy(context):
            return context.sql("SELECT * FROM raw.events").to_pandas()
        """,
    ),
    Variant(
        "mixmesh streaming",
        """
        from mixmesh import python_model


        @python_model(name="analytics.copy", columns={columns})
        def copy(context):
            yield from context.sql("SELECT * FROM raw.events").batches({batch_rows})
        """,
    ),
)
PLAIN, STREAMING = "plain SQLMesh", "mixmesh streaming"


# --- the child processes -----------------------------------------------------------------


def write_project(root: Path, rows: int) -> None:
    """A project folder holding only ``raw.events``."""
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "models" / "events.sql").write_text(RAW_EVENTS.format(rows=rows))
    write_config(root)


def write_config(root: Path) -> None:
    (root / "config.yaml").write_text(CONFIG.format(database=root / "db.duckdb"))


def plan(root: Path) -> t.Any:
    """Load the project in ``root`` and plan it (auto-applied); returns the Context."""
    from sqlmesh import Context

    context = Context(paths=str(root))
    context.plan(auto_apply=True, no_prompts=True)
    return context


def setup_child(root: Path, rows: int) -> t.Dict[str, t.Any]:
    """Build ``raw.events`` (not measured) and report what the copies must hold."""
    write_project(root, rows)
    context = plan(root)
    count, total = table_summary(context, "raw.events")
    context.close()
    return {"rows": count, "sum_amount": total}


def measure_child(root: Path) -> t.Dict[str, t.Any]:
    """Plan ``analytics.copy``, timing SQLMesh's evaluation of it and the whole plan."""
    from sqlmesh import Context

    evaluations = reporting.timed_evaluations()
    context = Context(paths=str(root))
    rss_before = reporting.peak_rss_mb()
    start = time.perf_counter()
    context.plan(auto_apply=True, no_prompts=True)
    plan_seconds = time.perf_counter() - start
    peak = reporting.peak_rss_mb()
    if len(evaluations) != 1 or "copy" not in evaluations[0][0]:
        raise RuntimeError(f"expected one evaluation, of analytics.copy; got {evaluations}")
    count, total = table_summary(context, "analytics.copy")
    context.close()
    return {
        "seconds": evaluations[0][1],
        "plan_seconds": plan_seconds,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak,
        "rows": count,
        "sum_amount": total,
    }


def table_summary(context: t.Any, model: str) -> t.Tuple[int, float]:
    """Row count and sum(amount) of a model's table in prod."""
    frame = context.fetchdf(f"SELECT count(*) AS n, sum(amount) AS total FROM {model}")
    return int(frame["n"][0]), float(frame["total"][0])


def child_main(args: argparse.Namespace) -> None:
    if args.child == "setup":
        result = setup_child(args.project, args.rows)
    else:
        result = measure_child(args.project)
    print(RESULT_MARK + json.dumps(result), flush=True)


# --- the parent --------------------------------------------------------------------------


def run_child(*arguments: str) -> t.Dict[str, t.Any]:
    """Run this script as a child process and return the result it printed."""
    command = [sys.executable, str(Path(__file__).resolve()), *arguments]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    results = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode != 0 or not results:
        sys.exit(f"child process {' '.join(arguments[:2])} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(results[-1][len(RESULT_MARK):])


def prepare_variant(template: Path, root: Path, variant: Variant, batch_rows: int) -> None:
    """A copy of the built template project, plus the variant's ``analytics.copy``."""
    shutil.copytree(template, root)
    write_config(root)  # the database path names the folder
    source = textwrap.dedent(variant.source).lstrip()
    (root / "models" / "copy.py").write_text(source.format(columns=repr(COLUMNS), batch_rows=batch_rows))


Runs = t.Dict[str, t.List[t.Dict[str, t.Any]]]  # variant -> what each of its child processes reported


def measure(rows: int, batch_rows: int, repeat: int) -> t.Tuple[t.Dict[str, t.Any], Runs]:
    """Build the template once, then run every variant ``repeat`` times, round-robin."""
    with tempfile.TemporaryDirectory(prefix="python_model_io_") as folder:
        template = Path(folder) / "template"
        print(f"building raw.events ({rows:,} rows; not measured) ...", flush=True)
        expected = run_child("--child", "setup", "--project", str(template), "--rows", str(rows))
        runs: Runs = {v.name: [] for v in VARIANTS}
        for round_ in range(1, repeat + 1):
            for variant in VARIANTS:
                root = Path(folder) / "variant"
                prepare_variant(template, root, variant, batch_rows)
                found = run_child("--child", "measure", "--project", str(root))
                shutil.rmtree(root)
                runs[variant.name].append(found)
                print(
                    f"  round {round_}/{repeat}  {variant.name:<18} {found['seconds']:7.2f} s  "
                    f"peak RSS {found['peak_rss_mb']:7,.0f} MB",
                    flush=True,
                )
    return expected, runs


def check_results(expected: t.Mapping[str, t.Any], runs: Runs) -> None:
    """Every table any variant built holds raw.events' rows and sum(amount), or exit."""
    for name, found in ((name, found) for name, each in runs.items() for found in each):
        if (found["rows"], found["sum_amount"]) != (expected["rows"], expected["sum_amount"]):
            sys.exit(
                f"RESULTS DISAGREE: {name} wrote {found['rows']:,} rows, sum(amount) {found['sum_amount']!r}; "
                f"raw.events has {expected['rows']:,} rows, sum(amount) {expected['sum_amount']!r}"
            )


# --- reporting ---------------------------------------------------------------------------


def medians(runs: Runs) -> t.Dict[str, t.Dict[str, float]]:
    """Per variant, the median of each figure over its repeats."""
    keys = ("seconds", "plan_seconds", "rss_before_mb", "peak_rss_mb")
    return {name: {k: statistics.median(run[k] for run in each) for k in keys} for name, each in runs.items()}


def summarize(runs: Runs, rows: int) -> t.Dict[str, t.Any]:
    median = medians(runs)
    plain = median[PLAIN]
    variants = [
        {
            "variant": name,
            "seconds": found["seconds"],
            "plan_seconds": found["plan_seconds"],
            "rows_per_second": rows / found["seconds"],
            "rss_before_mb": round(found["rss_before_mb"], 1),
            "peak_rss_mb": round(found["peak_rss_mb"], 1),
            "added_rss_mb": round(found["peak_rss_mb"] - found["rss_before_mb"], 1),
            "time_vs_plain": found["seconds"] / plain["seconds"],
            "rss_vs_plain": found["peak_rss_mb"] / plain["peak_rss_mb"],
            "seconds_all": [run["seconds"] for run in runs[name]],
            "peak_rss_mb_all": [round(run["peak_rss_mb"], 1) for run in runs[name]],
        }
        for name, found in median.items()
    ]
    streaming = median[STREAMING]
    targets = [
        target("peak RSS", streaming["peak_rss_mb"] / plain["peak_rss_mb"], RSS_BAR),
        target("time", streaming["seconds"] / plain["seconds"], TIME_BAR),
    ]
    return {"variants": variants, "targets": targets}


def target(what: str, ratio: float, bar: float) -> t.Dict[str, t.Any]:
    return {"what": f"{STREAMING} {what} / {PLAIN}", "ratio": ratio, "bar": bar, "met": ratio <= bar}


def print_table(summary: t.Mapping[str, t.Any], rows: int, repeat: int) -> None:
    print(f"\nanalytics.copy = all of raw.events ({rows:,} rows), built by SQLMesh's plan; median of {repeat}")
    header = (
        f"{'variant':<18} {'seconds':>8} {'plan s':>7} {'rows/s':>12} {'RSS before MB':>14} "
        f"{'peak RSS MB':>12} {'added MB':>9} {'time vs plain':>14} {'RSS vs plain':>13}"
    )
    print(header)
    print("-" * len(header))
    for v in summary["variants"]:
        print(
            f"{v['variant']:<18} {v['seconds']:>8.2f} {v['plan_seconds']:>7.2f} {v['rows_per_second']:>12,.0f} "
            f"{v['rss_before_mb']:>14,.0f} {v['peak_rss_mb']:>12,.0f} {v['added_rss_mb']:>9,.0f} "
            f"{v['time_vs_plain']:>13.2f}x "
            f"{v['rss_vs_plain']:>12.2f}x"
        )
    print()
    for bar in summary["targets"]:
        verdict = "MET" if bar["met"] else "NOT MET"
        print(f"{bar['what']}: {bar['ratio']:.2f}x (target <= {bar['bar']:.2f}x) -> {verdict}")


def parse_args(argv: t.Optional[t.Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows in raw.events (default 10,000,000)")
    parser.add_argument(
        "--batch-rows", type=int, default=1_000_000, help="rows per batch of the streaming variant (default 1,000,000)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant; medians are shown (default 3)")
    parser.add_argument("--out", type=Path, help="where to write the JSON (default benchmarks/results/python_model_io.json)")
    parser.add_argument("--child", choices=("setup", "measure"), help=argparse.SUPPRESS)
    parser.add_argument("--project", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: t.Optional[t.Sequence[str]] = None) -> None:
    args = parse_args(argv)
    if args.child:
        return child_main(args)
    expected, runs = measure(args.rows, args.batch_rows, args.repeat)
    check_results(expected, runs)
    print(f"results agree: every variant wrote {expected['rows']:,} rows with sum(amount) {expected['sum_amount']:,.2f}")
    summary = summarize(runs, args.rows)
    print_table(summary, args.rows, args.repeat)
    reporting.write_json(
        {
            "question": "time and peak memory of a Python model's reads and writes: plain SQLMesh vs mixmesh",
            "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "rows": args.rows,
            "batch_rows": args.batch_rows,
            "repeat": args.repeat,
            "measured": "seconds: SQLMesh's evaluation of analytics.copy within Context.plan; "
            "peak RSS: ru_maxrss of the variant's own child process; medians over the repeats",
            "sum_amount": expected["sum_amount"],
            "machine": reporting.machine_info("duckdb", "pyarrow", "pandas", "sqlmesh", "mixmesh"),
            **summary,
        },
        "python_model_io",
        args.out,
    )


if __name__ == "__main__":
    main()

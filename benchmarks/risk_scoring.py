"""How much faster is mixmesh's risk score than the seed's own, called the same way from SQL?

The seed document's SQL model groups each customer's transactions of a day into a list of
STRUCTs (``ARRAY_AGG(STRUCT(...) ORDER BY transaction_time)``) and calls a Python function
on each list. Both functions below are called that way, by the engine, inside the same
query of a real SQLMesh project:

  mixmesh    ``@python_risk_score(...)``: the example project's ``@udf(vectorized=True)``
             (``python/shared/feature_engineering.py``), bound by mixmesh as a project
             uses it (the macro in ``macros/``), computing the features of a whole batch
             of customer-days over Arrow at once
  mixmesh-plain  the same with the fast path off (``MIXMESH_FAST_PATH=off``): DuckDB hands
             the function 2,048 customer-days at a time
  seed       ``seed_risk_score(...)``: the seed's implementation kept in the same file,
             ``risk_score_row_by_row`` (a pandas DataFrame per customer-day), bound as a
             DuckDB native (row) UDF with ``connection.create_function`` on SQLMesh's
             connection

What is measured, and how:

- Each variant is a SQLMesh project in a temporary folder (the example's ``python/``
  package copied in, no ``artifacts/``: both use the seed's rule-based SimpleRiskModel, so
  the scores are deterministic and comparable) with one model ``analytics.risk_scores``
  (kind FULL) whose query is the seed's aggregation, then the function.
- Each variant runs in a fresh child process, from its project folder: it loads the
  project into a ``Context`` on an in-memory DuckDB, writes the demo data there with
  ``mixmesh.cli.demo_data.generate(connection, customers=, transactions=, events=0, days=)``,
  then runs ``Context.plan`` (auto-applied), which builds the model. "seconds" is SQLMesh's
  evaluation of the model's snapshot (``SnapshotEvaluator.evaluate``: the query, the
  function calls and the table write); rows/s are customer-days (the model's rows) per
  second. Each variant runs once, whole (no sampling, no extrapolation).
- "peak RSS" is the child's own ``ru_maxrss`` (Python, SQLMesh, the data and the run);
  "RSS before" is the peak before the plan started.
- Equal results: every customer-day's score must be the same in both tables (within
  1e-12), and both tables must hold the same customer-days; otherwise the run fails.

It prints the table with the ratio (seed seconds / mixmesh seconds) and the target (at
least 50x), and writes the same to ``benchmarks/results/risk_scoring.json``. Timings are
reported, never asserted. The seed's variant takes minutes at full size.

Run from the repository root::

    .venv/bin/python benchmarks/risk_scoring.py            # 50,000 customers, 1,000,000 transactions, 30 days
    .venv/bin/python benchmarks/risk_scoring.py --customers 5000 --transactions 100000
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

import reporting

TARGET = 50.0  # the seed's seconds / mixmesh's seconds, at least
ABS_TOL = 1e-12
RESULT_MARK = "RESULT "  # the child's last line of output: RESULT {json}
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "customer_analytics"
MODEL = "analytics.risk_scores"

CONFIG = """\
gateways:
  local:
    connection:
      type: duckdb
      concurrent_tasks: 1
default_gateway: local
model_defaults:
  dialect: duckdb
  start: '2024-01-01'
disable_anonymized_analytics: true
"""

MACROS = """\
from python.shared.feature_engineering import python_risk_score  # noqa: F401
"""

# The seed's aggregation (customer_risk_scoring.sql), in DuckDB's dialect, over all days.
QUERY = """\
MODEL (name {model}, kind FULL, grain [customer_id, score_date]);

WITH customer_transactions AS (
    SELECT
        customer_id,
        score_date,
        COUNT(*) AS transaction_count,
        SUM(amount) AS total_amount,
        ARRAY_AGG(
            {{'amount': amount, 'merchant_category': merchant_category,
              'transaction_time': transaction_time, 'payment_method': payment_method}}
            ORDER BY transaction_time
        ) AS transaction_details
    FROM raw.raw_transactions
    GROUP BY customer_id, score_date
)
SELECT
    customer_id,
    score_date,
    transaction_count,
    total_amount,
    {call}(transaction_details, total_amount, transaction_count) AS ml_risk_score
FROM customer_transactions
"""

DETAILS_TYPE = "STRUCT(amount DOUBLE, merchant_category VARCHAR, transaction_time TIMESTAMP, payment_method VARCHAR)[]"


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    call: str  # what the model calls on each customer-day
    description: str
    environment: t.Tuple[t.Tuple[str, str], ...] = ()


VARIANTS = (
    Variant("mixmesh", "@python_risk_score", "@udf(vectorized=True) over Arrow, bound by mixmesh"),
    Variant("mixmesh-plain", "@python_risk_score", "the same, fast path off", (("MIXMESH_FAST_PATH", "off"),)),
    Variant("seed", "seed_risk_score", "risk_score_row_by_row: a pandas DataFrame per customer-day, DuckDB native UDF"),
)
MIXMESH, SEED = "mixmesh", "seed"


# --- the child processes -----------------------------------------------------------------


def write_project(root: Path, variant: Variant) -> None:
    """The example's ``python/`` package, the macro importing its function, one model."""
    shutil.copytree(EXAMPLE / "python", root / "python", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "macros").mkdir(parents=True)
    (root / "macros" / "functions.py").write_text(MACROS)
    (root / "models").mkdir()
    (root / "models" / "risk_scores.sql").write_text(QUERY.format(model=MODEL, call=variant.call))
    (root / "config.yaml").write_text(CONFIG)


def bind_seed_function(connection: t.Any) -> None:
    """The seed's function as a DuckDB native UDF: one Python call per customer-day."""
    from python.shared.feature_engineering import risk_score_row_by_row

    connection.create_function(
        "seed_risk_score", risk_score_row_by_row, [DETAILS_TYPE, "DOUBLE", "BIGINT"], "DOUBLE", type="native"
    )


def measure_child(args: argparse.Namespace) -> t.Dict[str, t.Any]:
    """Build the variant's model with SQLMesh, timing its evaluation; save its scores."""
    from sqlmesh import Context

    from mixmesh.cli import demo_data
    from mixmesh import fastpath

    root = args.project.resolve()
    os.chdir(root)  # as SQLMesh is run: artifacts/ (absent here) is looked up from the project
    sys.path.insert(0, str(root))  # the project's ``python`` package
    evaluations = reporting.timed_evaluations()
    context = Context(paths=str(root))
    connection = context.engine_adapter.connection
    demo_data.generate(connection, customers=args.customers, transactions=args.transactions, events=0, days=args.days)
    if args.child == SEED:
        bind_seed_function(connection)
    rss_before = reporting.peak_rss_mb()
    context.plan(auto_apply=True, no_prompts=True)
    peak = reporting.peak_rss_mb()
    if len(evaluations) != 1 or "risk_scores" not in evaluations[0][0]:
        raise RuntimeError(f"expected one evaluation, of {MODEL}; got {evaluations}")
    rows = context.fetchdf(f"SELECT count(*) AS n FROM {MODEL}")["n"][0]
    scores = root.parent / f"scores_{args.child}.parquet"
    connection.execute(
        f"COPY (SELECT customer_id, score_date, ml_risk_score FROM {MODEL}) TO '{scores}' (FORMAT parquet)"
    )
    context.close()
    return {
        **_how_it_ran(fastpath.decisions),
        "seconds": evaluations[0][1],
        "rows": int(rows),
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak,
        "scores": str(scores),
    }


def _how_it_ran(decisions: t.Iterable[t.Any]) -> t.Dict[str, t.Any]:
    """How the model's statement ran: staged or not, why, and what the engine ran faster than
    written (``fastpath.Decision``)."""
    decision = next((d for d in reversed(list(decisions)) if "python_risk_score" in d.functions), None)
    if decision is None:
        return {"fast_path": False, "took": "", "rewritten": ""}
    return {"fast_path": decision.staged, "took": decision.reason, "rewritten": decision.rewritten}


# --- the parent --------------------------------------------------------------------------


def run_child(folder: Path, variant: Variant, args: argparse.Namespace) -> t.Dict[str, t.Any]:
    """Write the variant's project under ``folder`` and build it in a child process."""
    root = folder / variant.name
    write_project(root, variant)
    sizes = ["--customers", str(args.customers), "--transactions", str(args.transactions), "--days", str(args.days)]
    command = [sys.executable, str(Path(__file__).resolve()), "--child", variant.name, "--project", str(root), *sizes]
    environment = {**os.environ, "NO_COLOR": "1", **dict(variant.environment)}
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    results = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode != 0 or not results:
        sys.exit(f"child process {variant.name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(results[-1][len(RESULT_MARK):])


def compare(runs: t.Mapping[str, t.Mapping[str, t.Any]]) -> t.Dict[str, t.Any]:
    """Every variant's table holds the seed's customer-days with the same scores (within
    ABS_TOL), or exit. Returns the comparison of mixmesh's with the seed's."""
    checked = {name: _compare(runs, name) for name in runs if name != SEED}
    return checked[MIXMESH]


def _compare(runs: t.Mapping[str, t.Mapping[str, t.Any]], name: str) -> t.Dict[str, t.Any]:
    import duckdb

    con = duckdb.connect()
    found = con.execute(
        f"""
        SELECT
            count(*) FILTER (WHERE m.customer_id IS NULL OR s.customer_id IS NULL) AS unmatched,
            count(*) FILTER (WHERE m.ml_risk_score IS DISTINCT FROM s.ml_risk_score
                             AND NOT abs(m.ml_risk_score - s.ml_risk_score) <= {ABS_TOL}) AS different,
            max(abs(m.ml_risk_score - s.ml_risk_score)) AS max_difference,
            count(*) AS customer_days,
            avg(m.ml_risk_score) AS mean_score
        FROM read_parquet(?) AS m
        FULL JOIN read_parquet(?) AS s USING (customer_id, score_date)
        """,
        [runs[name]["scores"], runs[SEED]["scores"]],
    ).fetchone()
    unmatched, different, max_difference, customer_days, mean_score = found
    if unmatched or different or customer_days != runs[name]["rows"]:
        sys.exit(
            f"RESULTS DISAGREE ({name} vs seed): {different:,} customer-days scored differently (max difference "
            f"{max_difference!r}), {unmatched:,} customer-days in one table only"
        )
    return {"customer_days": customer_days, "max_difference": max_difference or 0.0, "mean_score": mean_score}


def summarize(runs: t.Mapping[str, t.Mapping[str, t.Any]], customer_days: int) -> t.Dict[str, t.Any]:
    ours = runs[MIXMESH]["seconds"]
    variants = [
        {
            "variant": v.name,
            "function": v.description,
            "seconds": runs[v.name]["seconds"],
            "rows_per_second": customer_days / runs[v.name]["seconds"],
            "rss_before_mb": round(runs[v.name]["rss_before_mb"], 1),
            "peak_rss_mb": round(runs[v.name]["peak_rss_mb"], 1),
            "vs_mixmesh": runs[v.name]["seconds"] / ours,
            "fast_path": runs[v.name].get("fast_path", False),
            "took": runs[v.name].get("took", ""),
            "rewritten": runs[v.name].get("rewritten", ""),
        }
        for v in VARIANTS
    ]
    ratio = runs[SEED]["seconds"] / ours
    target = {"what": "seed seconds / mixmesh seconds", "ratio": ratio, "target": TARGET, "met": ratio >= TARGET}
    return {"variants": variants, "target": target}


def print_table(summary: t.Mapping[str, t.Any], args: argparse.Namespace, customer_days: int) -> None:
    print(
        f"\n{MODEL}: risk score of {customer_days:,} customer-days ({args.customers:,} customers, "
        f"{args.transactions:,} transactions, {args.days} days), built by SQLMesh's plan"
    )
    header = (f"{'variant':<14} {'seconds':>9} {'customer-days/s':>16} {'RSS before MB':>14} {'peak RSS MB':>12} "
              f"{'vs mixmesh':>11}  path")
    print(header)
    print("-" * len(header))
    for v in summary["variants"]:
        print(
            f"{v['variant']:<14} {v['seconds']:>9.2f} {v['rows_per_second']:>16,.0f} "
            f"{v['rss_before_mb']:>14,.0f} {v['peak_rss_mb']:>12,.0f} {v['vs_mixmesh']:>10.1f}x  {_path(v)}"
        )
    target = summary["target"]
    verdict = "MET" if target["met"] else "NOT MET"
    print(f"\n{target['what']}: {target['ratio']:.1f}x (target >= {target['target']:.0f}x) -> {verdict}")


def _path(variant: t.Mapping[str, t.Any]) -> str:
    if not variant.get("took"):
        return "-"
    path = "fast path" if variant["fast_path"] else "plain binding"
    return f"{path}, lists sorted" if variant.get("rewritten") else path


def parse_args(argv: t.Optional[t.Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000, help="customers (default 50,000)")
    parser.add_argument("--transactions", type=int, default=1_000_000, help="transactions (default 1,000,000)")
    parser.add_argument("--days", type=int, default=30, help="days the transactions span (default 30)")
    parser.add_argument("--out", type=Path, help="where to write the JSON (default benchmarks/results/risk_scoring.json)")
    parser.add_argument("--child", choices=[v.name for v in VARIANTS], help=argparse.SUPPRESS)
    parser.add_argument("--project", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: t.Optional[t.Sequence[str]] = None) -> None:
    args = parse_args(argv)
    if args.child:
        print(RESULT_MARK + json.dumps(measure_child(args)), flush=True)
        return
    runs: t.Dict[str, t.Dict[str, t.Any]] = {}
    with tempfile.TemporaryDirectory(prefix="risk_scoring_") as folder:
        for variant in VARIANTS:
            print(f"building {MODEL} with the {variant.name} function ...", flush=True)
            runs[variant.name] = run_child(Path(folder), variant, args)
            print(f"  {variant.name:<14} {runs[variant.name]['seconds']:8.2f} s", flush=True)
        checked = compare(runs)
    customer_days = checked["customer_days"]
    print(
        f"results agree: all {customer_days:,} customer-day scores equal (max difference "
        f"{checked['max_difference']:.1e}, tolerance {ABS_TOL:.0e})"
    )
    summary = summarize(runs, customer_days)
    print_table(summary, args, customer_days)
    reporting.write_json(
        {
            "question": "the seed's risk score in SQL: mixmesh's vectorized @udf vs the seed's pandas-per-customer function",
            "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "customers": args.customers,
            "transactions": args.transactions,
            "days": args.days,
            "customer_days": customer_days,
            "risk_model": "SimpleRiskModel (the seed's rules; no artifacts/)",
            "measured": "seconds: SQLMesh's evaluation of analytics.risk_scores (kind FULL) within Context.plan, "
            "one run per variant, whole; peak RSS: ru_maxrss of the variant's own child process",
            "equal_results": {**checked, "tolerance": ABS_TOL},
            "machine": reporting.machine_info("duckdb", "pyarrow", "pandas", "numpy", "sqlmesh", "mixmesh"),
            **summary,
        },
        "risk_scoring",
        args.out,
    )


if __name__ == "__main__":
    main()

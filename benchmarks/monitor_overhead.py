"""What does monitoring add to a model's run time?

A SQLMesh project on a DuckDB file with two FULL models over ``--rows`` rows, each calling
a Python function on every row: ``analytics.vectorized`` (a pyarrow function) and
``analytics.row`` (a scalar function with a branch). In one process, each model is evaluated
``--repeat`` times with monitoring on and ``--repeat`` times with it off, alternating, and in
the opposite order every other round (off, on, on, off, ...), so that the machine's drift
and any warm-up of the second evaluation of a round hit both alike; ``MIXMESH_MONITOR`` is
read at each evaluation.

Each evaluation is SQLMesh's own (``SnapshotEvaluator.evaluate``, what a plan or a run calls
per model, with mixmesh's hooks), inside the command mixmesh's ``Context`` hooks open for a
plan or a run, and timed outside mixmesh's hook, so the capture and the sampler count. After
it, as at the end of a command, the figures' spool file is written: that write is timed
apart (``spool write per command``), as a plan or a run pays it once, after its models.
Without a plan around each evaluation (a plan added some 90 ms to the 40 ms model it
evaluated), hundreds of rounds take minutes, and it takes hundreds to tell 1% from 3%: on
two shared cores one evaluation of a 40 ms model moves by some 17% from the next.

The ratio is the median of the rounds' ratios (on over off, run back to back), with a 95%
interval from the rounds resampled with replacement; the ratio of the medians and the
process's CPU time (every thread's) are printed beside it. Target: at most 1.02x. The table
goes to ``benchmarks/results/monitor_overhead.json``. Timings are reported, never asserted.

Run from the repository root::

    .venv/bin/python benchmarks/monitor_overhead.py              # 1,000,000 rows, 801 rounds
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
import typing as t
from pathlib import Path

from reporting import machine_info, timed_evaluations, write_json

TARGET = 1.02
RESAMPLES = 2000

CONFIG = """\
gateways:
  local:
    connection:
      type: duckdb
      database: db.duckdb
default_gateway: local
model_defaults:
  dialect: duckdb
disable_anonymized_analytics: true
"""

FUNCTIONS = """\
import pyarrow.compute as pc

from mixmesh import udf


@udf(vectorized=True)
def scaled(x: float) -> float:
    return pc.add(pc.multiply(x, 1.5), 2.0)


@udf
def banded(x: float) -> float:
    if x > 500_000:
        return x * 2.0
    return x + 1.0
"""

MODEL = """\
MODEL (name analytics.{name}, kind FULL);
SELECT sum(@{function}(range::DOUBLE)) AS total, count(*) AS n FROM range({rows})
"""


def write_project(root: Path, rows: int) -> None:
    (root / "models").mkdir(parents=True)
    (root / "macros").mkdir()
    (root / "config.yaml").write_text(CONFIG)
    (root / "macros" / "functions.py").write_text(FUNCTIONS)
    for name, function in (("vectorized", "scaled"), ("row", "banded")):
        (root / "models" / f"{name}.sql").write_text(MODEL.format(name=name, function=function, rows=rows))


MODELS = ("vectorized", "row")
STATES = ("off", "on")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=801, help="rounds: evaluations of each model, on and off")
    parser.add_argument("--warmup", type=int, default=3, help="uncounted rounds first (default 3)")
    parser.add_argument("--out", type=Path)
    options = parser.parse_args()

    import mixmesh.sqlmesh

    mixmesh.sqlmesh.install()  # first: the timer then counts mixmesh's hooks in
    timings = timed_evaluations(cpu=True)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "project"
        write_project(root, options.rows)
        os.chdir(root)
        measured = measure(root, options.warmup, options.repeat, timings)

    rows = [summarize(model, measured) for model in MODELS]
    print_table(rows, options.rows, options.repeat)
    write_json(
        {
            "benchmark": "monitor_overhead",
            "rows": options.rows,
            "repeat": options.repeat,
            "target_ratio": TARGET,
            "results": rows,
            "machine": machine_info("duckdb", "sqlmesh", "pyarrow"),
            "measured_at": time.strftime("%Y-%m-%d"),
        },
        "monitor_overhead",
        options.out,
    )


# (model, "on" or "off") -> one (seconds, CPU seconds, spool write seconds) per round
Measured = t.Dict[t.Tuple[str, str], t.List[t.Tuple[float, float, float]]]


def measure(root: Path, warmup: int, repeat: int, timings: t.List[t.Tuple[t.Any, ...]]) -> Measured:
    from sqlmesh import Context

    from mixmesh.monitor import capture, writer

    context = Context(paths=str(root))
    context.plan(auto_apply=True, no_prompts=True)  # builds once: the tables, the store's spool
    evaluate = evaluator(context)
    measured: Measured = {}
    for round_ in range(warmup + repeat):
        for state in STATES if round_ % 2 == 0 else STATES[::-1]:
            os.environ["MIXMESH_MONITOR"] = state
            for model in MODELS:
                timings.clear()
                with capture.running("run", root):  # what Context.plan and Context.run enter
                    evaluate(model)
                started = time.perf_counter()
                writer.wait_for_writes()  # the spool file, written at the end of each command
                written = time.perf_counter() - started
                if round_ >= warmup:
                    (_, seconds, cpu), = timings
                    measured.setdefault((model, state), []).append((seconds, cpu, written))
    context.close()
    return measured


def evaluator(context: t.Any) -> t.Callable[[str], None]:
    """Evaluate a model as a plan or a run does: SQLMesh's evaluator, on its stored snapshot."""
    stored = context.state_reader.get_snapshots([snapshot.snapshot_id for snapshot in context.snapshots.values()])
    by_name = {snapshot.name: snapshot for snapshot in stored.values()}

    def evaluate(model: str) -> None:
        snapshot = stored[context.get_snapshot(f"analytics.{model}").snapshot_id]
        context.snapshot_evaluator.evaluate(
            snapshot, start="2026-01-01", end="2026-01-02", execution_time="2026-01-02", snapshots=by_name
        )

    return evaluate


def summarize(model: str, measured: Measured) -> t.Dict[str, t.Any]:
    off, on = measured[model, "off"], measured[model, "on"]
    seconds_off, seconds_on = [m[0] for m in off], [m[0] for m in on]
    per_round = [a / b for a, b in zip(seconds_on, seconds_off)]
    low, high = ratio_interval(seconds_on, seconds_off)
    return {
        "model": f"analytics.{model}",
        "monitoring off s": statistics.median(seconds_off),
        "monitoring on s": statistics.median(seconds_on),
        "ratio": statistics.median(per_round),
        "ratio_95_interval": [low, high],
        "ratio_of_medians": statistics.median(seconds_on) / statistics.median(seconds_off),
        "ratio_per_round": [round(ratio, 4) for ratio in sorted(per_round)],
        "cpu_ratio": statistics.median(a[1] / b[1] for a, b in zip(on, off)),
        "spool write per command s": statistics.median(m[2] for m in on),
    }


def print_table(rows: t.Sequence[t.Mapping[str, t.Any]], count: int, repeat: int) -> None:
    print(f"\nMonitoring overhead: {count:,} rows, {repeat} rounds of an evaluation on and one off\n")
    print(f"{'model':<24}{'off s':>9}{'on s':>9}{'ratio':>9}{'95% interval':>16}{'of medians':>12}"
          f"{'CPU ratio':>11}{'spool write':>13}")
    for row in rows:
        low, high = row["ratio_95_interval"]
        print(f"{row['model']:<24}{row['monitoring off s']:>9.4f}{row['monitoring on s']:>9.4f}{row['ratio']:>8.3f}x"
              f"{low:>8.3f}-{high:.3f}{row['ratio_of_medians']:>11.3f}x{row['cpu_ratio']:>10.3f}x"
              f"{row['spool write per command s'] * 1000:>10.2f} ms")
    print("\nratio: the median of the rounds' on/off ratios; 95% interval: the rounds resampled.")
    print("CPU ratio: the process's CPU time (every thread), the median of the rounds' ratios.")
    print("spool write: once per plan or run, after its models (a thread of its own writes it).")
    print(f"\ntarget: at most {TARGET:.2f}x")


def ratio_interval(on: t.Sequence[float], off: t.Sequence[float]) -> t.Tuple[float, float]:
    """A 95% interval of the median of the rounds' ratios on / off: the rounds resampled with
    replacement (a round keeps its pair together, as the machine's drift hits both)."""
    ratios = [a / b for a, b in zip(on, off)]
    draw = random.Random(0)
    medians = sorted(statistics.median(draw.choices(ratios, k=len(ratios))) for _ in range(RESAMPLES))
    return medians[int(0.025 * RESAMPLES)], medians[int(0.975 * RESAMPLES) - 1]


if __name__ == "__main__":
    main()

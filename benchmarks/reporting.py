"""What every benchmark reports the same way: the machine it ran on, and its JSON table."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import resource
import time
import typing as t
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine_info(*packages: str) -> t.Dict[str, t.Any]:
    """The platform, the core count and the versions of the packages that matter."""
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        **{name: importlib.metadata.version(name) for name in packages},
    }


def peak_rss_mb() -> float:
    """The process's peak resident memory so far."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def check_agreement(runs: t.Mapping[str, t.Mapping[str, t.Any]], variants: t.Sequence[t.Any], rel_tol: float) -> None:
    """Variants of one family (``variant.family``) give the same sum (within ``rel_tol``) in
    every repeat (``runs[name]["sums"]``), or exit."""
    import math
    import sys

    for family in sorted({v.family for v in variants}):
        members = [v.name for v in variants if v.family == family]
        reference = runs[members[0]]["sums"][0]
        for name in members:
            for total in runs[name]["sums"]:
                # abs_tol only guards against a reference sum that happens to be ~0.
                if not math.isclose(total, reference, rel_tol=rel_tol, abs_tol=1e-6):
                    sys.exit(
                        f"RESULTS DISAGREE for {family}: {name} gave {total!r}, "
                        f"{members[0]} gave {reference!r}"
                    )


def timed_evaluations(cpu: bool = False) -> t.List[t.Tuple[t.Any, ...]]:
    """Time every model evaluation (``SnapshotEvaluator.evaluate``) from now on, by snapshot name:
    ``(name, seconds)``, or with ``cpu`` ``(name, seconds, cpu_seconds)``, where the CPU time is
    the whole process's (every thread's: DuckDB's and mixmesh's sampler included). CPU time
    moves far less than elapsed time when other processes load the machine.

    The timer wraps whatever wraps the evaluator at the time: install mixmesh's hooks first
    to count them in (``mixmesh.sqlmesh.install()``); a plain SQLMesh baseline does not.
    """
    import time

    from sqlmesh.core.snapshot.evaluator import SnapshotEvaluator

    timings: t.List[t.Tuple[t.Any, ...]] = []
    evaluate = SnapshotEvaluator.evaluate

    def timed(self: t.Any, snapshot: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        started, started_cpu = time.perf_counter(), time.process_time()
        try:
            return evaluate(self, snapshot, *args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            timings.append((snapshot.name, elapsed, time.process_time() - started_cpu) if cpu else (snapshot.name, elapsed))

    SnapshotEvaluator.evaluate = timed  # type: ignore[method-assign]
    return timings


def add_measuring_arguments(parser: t.Any, name: str, repeat: int) -> None:
    """``--repeat``, ``--warmup`` and ``--out``, as every benchmark that measures variants takes them."""
    parser.add_argument("--repeat", type=int, default=repeat, help=f"runs per variant; the median is reported (default {repeat})")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted rounds before measuring (default 1)")
    parser.add_argument("--out", type=Path, help=f"where to write the JSON (default benchmarks/results/{name}.json)")


def write_json(report: t.Mapping[str, t.Any], name: str, out: t.Optional[Path] = None) -> None:
    """Write the report to ``out``, or to ``benchmarks/results/<name>.json``."""
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out or f'benchmarks/results/{name}.json'}")


class MemoryWatch:
    """The most resident memory the process held while inside ``with``, above what it held
    on entry (read every 2 ms; Linux). Worker processes are not counted."""

    def __init__(self) -> None:
        import threading

        self.peak_above_start_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "MemoryWatch":
        self._start = self._peak = _rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: t.Any) -> None:
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, _rss_bytes())
        self.peak_above_start_mb = (self._peak - self._start) / 2**20

    def _watch(self) -> None:
        while not self._stop.wait(0.002):
            self._peak = max(self._peak, _rss_bytes())


def _rss_bytes() -> int:
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds() -> float:
    """CPU time of this process and of its children, ended or alive (the worker processes,
    which a process keeps from one statement to the next)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + _live_children_cpu()


def _live_children_cpu() -> float:
    import psutil

    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:  # ended meanwhile: counted with the ended ones once reaped
            continue
        total += times.user + times.system
    return total


def run_once(run: t.Callable[[], t.Any]) -> t.Tuple[float, float, float, t.Any]:
    """Seconds ``run()`` took, the cores it kept busy, the memory it added, and its result."""
    cpu, start = cpu_seconds(), time.perf_counter()
    with MemoryWatch() as memory:
        total = run()
    seconds = time.perf_counter() - start
    return seconds, (cpu_seconds() - cpu) / seconds, memory.peak_above_start_mb, total


def measure(
    run: t.Callable[[t.Any], t.Any], variants: t.Sequence[t.Any], repeat: int, warmup: int, width: int,
    round_at_least_s: float = 0.0,
) -> t.Dict[str, t.Dict[str, t.List[t.Any]]]:
    """``run(variant)`` for every variant ``repeat`` times, round-robin so that machine drift
    hits all alike: times, cores, memory and results by variant name. ``warmup`` rounds run
    first and are not counted (first calls pay one-off costs).

    With ``round_at_least_s``, a quick variant runs again within its round until its runs
    took that long (at most ``QUICK_RUNS_MAX`` runs, all kept), as timeit's autorange does:
    three runs of 0.1 s spread by ±30% on these machines, which a median of three cannot
    settle. Its runs then no longer pair with the other variants' round by round."""
    for _ in range(warmup):
        for variant in variants:
            run_once(lambda: run(variant))
    runs: t.Dict[str, t.Dict[str, t.List[t.Any]]] = {
        v.name: {"times": [], "cores": [], "memory": [], "sums": []} for v in variants
    }
    for round_ in range(1, repeat + 1):
        for variant in variants:
            spent = 0.0
            for _again in range(QUICK_RUNS_MAX):
                seconds, cores, memory, total = run_once(lambda: run(variant))
                spent += seconds
                for key, value in (("times", seconds), ("cores", cores), ("memory", memory), ("sums", total)):
                    runs[variant.name][key].append(value)
                print(f"  round {round_}/{repeat}  {variant.name:<{width}} {seconds:8.3f} s  {cores:4.2f} cores", flush=True)
                if spent >= round_at_least_s:
                    break
    return runs


QUICK_RUNS_MAX = 9  # a quick variant's runs in one round (``measure``'s round_at_least_s)

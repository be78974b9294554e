"""What every benchmark reports the same way: the machine it ran on, and its JSON table."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
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


def timed_evaluations() -> t.List[t.Tuple[str, float]]:
    """Time every model evaluation (``SnapshotEvaluator.evaluate``) from now on, by snapshot name.

    The timer wraps whatever wraps the evaluator at the time: install mixmesh's hooks first
    to count them in (``mixmesh.sqlmesh_bridge.install()``); a plain SQLMesh baseline does not.
    """
    import time

    from sqlmesh.core.snapshot.evaluator import SnapshotEvaluator

    timings: t.List[t.Tuple[str, float]] = []
    evaluate = SnapshotEvaluator.evaluate

    def timed(self: t.Any, snapshot: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        started = time.perf_counter()
        try:
            return evaluate(self, snapshot, *args, **kwargs)
        finally:
            timings.append((snapshot.name, time.perf_counter() - started))

    SnapshotEvaluator.evaluate = timed  # type: ignore[method-assign]
    return timings


def write_json(report: t.Mapping[str, t.Any], name: str, out: t.Optional[Path] = None) -> None:
    """Write the report to ``out``, or to ``benchmarks/results/<name>.json``."""
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out or f'benchmarks/results/{name}.json'}")

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


def write_json(report: t.Mapping[str, t.Any], name: str, out: t.Optional[Path] = None) -> None:
    """Write the report to ``out``, or to ``benchmarks/results/<name>.json``."""
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out or f'benchmarks/results/{name}.json'}")

"""The example project ``mixmesh demo DIR`` copies out: where it is, and what a copy leaves out.

An installed mixmesh carries it as package data, ``mixmesh/cli/examples/customer_analytics/``,
which the wheel's build copies from the checkout's ``examples/customer_analytics/``
(``setup.py``); a checkout, or an editable install, reads ``examples/customer_analytics/``
itself. The build loads this module by its path, before mixmesh is installed: it imports only
the standard library.
"""

from __future__ import annotations

import shutil
import typing as t
from pathlib import Path

NAME = "customer_analytics"
PACKAGED = Path(__file__).parent / "examples" / NAME
CHECKOUT = Path(__file__).resolve().parents[3] / "examples" / NAME
# What building, testing or running the project leaves in it: never shipped, never copied.
GENERATED = (
    "*.duckdb",
    "*.duckdb.wal",
    "*.duckdb.tmp",
    "artifacts",
    ".cache",
    "logs",
    ".mixmesh",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".hypothesis",
)


def is_example(directory: Path) -> bool:
    """``directory`` holds the example project (copied there, perhaps already built)."""
    return (directory / "config.yaml").is_file() and (directory / "python" / "training.py").is_file()


def example_source() -> t.Optional[Path]:
    """The example project to copy: the installed package's, else the checkout's; None if neither."""
    return next((place for place in (PACKAGED, CHECKOUT) if is_example(place)), None)


def copy_example(source: Path, target: Path) -> t.List[Path]:
    """Copy the project's own files from ``source`` into ``target`` (new or empty); return them, sorted."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*GENERATED), dirs_exist_ok=True)
    return sorted(path for path in target.rglob("*") if path.is_file())

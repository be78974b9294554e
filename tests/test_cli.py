"""The mixmesh command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mixmesh

MIXMESH = str(Path(sys.executable).with_name("mixmesh"))


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([MIXMESH, *args], capture_output=True, text=True, cwd=cwd, check=True)


def test_version_and_help() -> None:
    assert run("--version").stdout.strip() == f"mixmesh, version {mixmesh.__version__}"
    listed = run("--help").stdout
    for command in ("demo", "init", "stats", "report", "advise"):
        assert f"  {command} " in listed, command

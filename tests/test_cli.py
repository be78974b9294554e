"""The mixmesh command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click.testing
import pytest

import mixmesh

MIXMESH = str(Path(sys.executable).with_name("mixmesh"))


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([MIXMESH, *args], capture_output=True, text=True, cwd=cwd, check=True)


def test_version_and_help() -> None:
    assert run("--version").stdout.strip() == f"mixmesh, version {mixmesh.__version__}"
    listed = run("--help").stdout
    for command in ("demo", "init", "stats", "report", "advise"):
        assert f"  {command} " in listed, command


def invoke(*args: str) -> "click.testing.Result":
    from click.testing import CliRunner

    from mixmesh.cli import main

    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(
    "args, says",
    [
        (["stats", "--project", "{missing}"], "Error: Invalid value for '--project': Directory '{missing}' does not exist."),
        (["report", "--project", "{missing}"], "Error: Invalid value for '--project': Directory '{missing}' does not exist."),
        (["advise", "--project", "{missing}"], "Error: Invalid value for '--project': Directory '{missing}' does not exist."),
        (["stats", "--project", "{file}"], "Error: Invalid value for '--project': Directory '{file}' is a file."),
        (["stats", "--days", "0"], "Error: Invalid value for '--days': 0.0 is not in the range x>0."),
        (["stats", "--days", "-1"], "Error: Invalid value for '--days': -1.0 is not in the range x>0."),
        (["stats", "--days", "a week"], "Error: Invalid value for '--days': 'a week' is not a valid float range."),
        (["stats", "--json", "--prometheus"], "Error: --json and --prometheus are two formats: choose one"),
        (["report", "--out", "{folder}"], "Error: Invalid value for '--out': File '{folder}' is a directory."),
        (["statz"], "Error: No such command 'statz'. Did you mean 'stats'?"),
    ],
    ids=["stats of a missing project", "report of a missing project", "advise of a missing project",
         "a file for a project", "zero days", "negative days", "days not a number", "two formats",
         "a report into a folder", "an unknown command"],
)
def test_bad_arguments_are_refused_naming_the_option(tmp_path: Path, args: list, says: str) -> None:
    (tmp_path / "notes.txt").write_text("not a project")
    places = {"missing": str(tmp_path / "nowhere"), "file": str(tmp_path / "notes.txt"), "folder": str(tmp_path)}
    result = invoke(*(arg.format(**places) for arg in args))
    assert result.exit_code == 2, result.output
    assert result.output.rstrip().endswith(says.format(**places)), result.output
    assert not (tmp_path / "nowhere").exists()  # nothing was created for the missing project


def test_stats_of_a_model_never_recorded_say_so(tmp_path: Path) -> None:
    result = invoke("stats", "--model", "analytics.nope", "--project", str(tmp_path))
    assert result.exit_code == 0, result.output
    said = f"No model evaluations recorded for analytics.nope in {tmp_path}/.mixmesh/metrics.duckdb."
    assert "".join(result.output.split()) == "".join(said.split())  # the console wraps long lines anywhere


@pytest.mark.parametrize("table", ["mixmesh.cli.demo", "mixmesh.monitor.stats_cli"])
def test_table_cells_are_text_not_markup(table: str) -> None:
    import importlib
    import io

    from rich.console import Console

    output = io.StringIO()
    cells = ["list[float]", "[bold]x[/]", 1234]
    Console(file=output, width=120).print(importlib.import_module(table)._table("t", ["a", "b", "c"], [cells]))
    assert "list[float]" in output.getvalue() and "[bold]x[/]" in output.getvalue() and "1,234" in output.getvalue()

"""``mixmesh quarantine``: the rows a real SQLMesh plan quarantined, listed and summarised from
the project's warehouse, in a fresh process as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.projects import Project
from tests.test_quarantine import DAYS, ROWS_PER_DAY, write_project


def mixmesh(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).with_name("mixmesh")), *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", "COLUMNS": "250"})


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = Project(tmp_path_factory.mktemp("quarantine_cli") / "project")
    write_project(project)
    project.plan()
    project.plan(restate_models=["analytics.converted"], start="2024-01-02", end="2024-01-02")  # resolves 2 rows
    project.close()
    return project


@pytest.mark.slow
def test_lists_the_rows_newest_first_with_their_arguments(planned: Project) -> None:
    result = mixmesh("quarantine", "--limit", "100", cwd=planned.root)

    assert result.returncode == 0, result.stderr
    failed = DAYS * ROWS_PER_DAY // 100
    assert result.stdout.count("ServiceDown") == failed
    assert '{"id":37,"currency":"C1","day":"2024-01-01"}' in result.stdout and "analytics.converted" in result.stdout
    lines = [line for line in result.stdout.splitlines() if "ServiceDown" in line]
    assert "2024-01-02" in lines[0] and "2024-01-01" in lines[-1]  # the restated day was evaluated last


@pytest.mark.slow
def test_limit_model_and_function_filter_the_rows(planned: Project) -> None:
    assert mixmesh("quarantine", "--limit", "2", cwd=planned.root).stdout.count("ServiceDown") == 2
    other = mixmesh("quarantine", "--model", "analytics.other", cwd=planned.root)
    assert other.returncode == 0 and "No unresolved quarantined rows for model analytics.other" in other.stdout
    none = mixmesh("quarantine", "--function", "nothing", "--project", str(planned.root), cwd=planned.root.parent)
    assert none.returncode == 0 and "No unresolved quarantined rows for function nothing." in none.stdout
    both = mixmesh("quarantine", "--model", "analytics.converted", "--function", "rate", cwd=planned.root)
    assert both.stdout.count("ServiceDown") == DAYS * ROWS_PER_DAY // 100


@pytest.mark.slow
def test_the_summary_groups_by_model_function_and_error(planned: Project) -> None:
    result = mixmesh("quarantine", "--summary", cwd=planned.root)

    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if "ServiceDown" in line)
    cells = [cell.strip() for cell in line.split("│") if cell.strip()]
    assert cells[:4] == ["analytics.converted", "rate", "ServiceDown", str(DAYS * ROWS_PER_DAY // 100)]


def test_outside_a_project_it_fails_saying_so(tmp_path: Path) -> None:
    result = mixmesh("quarantine", cwd=tmp_path)

    assert result.returncode != 0
    assert "no SQLMesh project" in result.stderr and "mixmesh -p DIR" in result.stderr


@pytest.mark.slow
def test_resolved_rows_are_listed_only_when_asked_for(planned: Project) -> None:
    failed = DAYS * ROWS_PER_DAY // 100
    unresolved = mixmesh("quarantine", "--limit", "100", cwd=planned.root)
    everything = mixmesh("quarantine", "--limit", "100", "--include-resolved", cwd=planned.root)

    assert unresolved.stdout.count("ServiceDown") == failed  # the restated day's failures, once
    assert everything.stdout.count("ServiceDown") == failed + 2
    assert "resolved_by_run" in everything.stdout and "resolved_by_run" not in unresolved.stdout

"""A project planned before mixmesh's modules moved keeps working after the move (issue 17).

The fixture is the example project as it was, with its DuckDB database, built by ``mixmesh``
at commit 48a38bc (before the restructure) on small demo data (60 customers, 1,500
transactions, 600 events over 2024-01-01..05) and planned to 2024-01-05: its SQLMesh state
holds the functions' and models' Python as that mixmesh stored it, import paths included.
SQLMesh evaluates stored Python, not the project's files: so ``sqlmesh run`` exercises every
import path the old state names, and ``sqlmesh plan`` checks that the moved code renders
the models exactly as before (a changed fingerprint would rebuild every user's tables).
"""

from __future__ import annotations

import json
import os
import tarfile
import typing as t
from pathlib import Path

import duckdb
import pytest

from tests import fresh_process

FIXTURE = Path(__file__).parent / "fixtures" / "example_planned_before_restructure.tar.gz"
TABLES = ("analytics.customer_risk_scoring", "analytics.customer_ltv_prediction", "analytics.real_time_personalization")
END = "2024-01-09"  # four days after the planned period: each model has intervals due


def unpack(folder: Path) -> Path:
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(folder, filter="data")
    return folder


def sqlmesh(project: Path, *args: str, prompted: bool = False) -> str:
    """``prompted``: the command may stop at SQLMesh's question whether to apply (exit code 1)."""
    environment = {**os.environ, "NO_COLOR": "1", "COLUMNS": "250"}
    result = fresh_process.run_sqlmesh(args, cwd=project, env=environment)
    stopped = prompted and "Aborted!" in result.stderr
    assert result.returncode == 0 or stopped, f"sqlmesh {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


# The fixture's state predates artifact digests and package versions in the plan
# (mixmesh.sqlmesh.source.reproducibility_hook): the models calling Python gain those lines, once.
WITH_PYTHON = {"analytics.customer_risk_scoring", "analytics.customer_ltv_prediction", "analytics.real_time_personalization"}
ADDED = ("+__mixmesh_artifacts__ = {'artifacts/", "+__mixmesh_packages__ = {")


def changed_lines(plan: str) -> t.List[str]:
    return [line for line in plan.splitlines() if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))]


def directly_modified(plan: str) -> t.Set[str]:
    listed = plan.partition("**Directly Modified:**")[2].partition("**Models needing backfill")[0]
    return {line.split("`")[1] for line in listed.splitlines() if line.startswith("* `")}


CLOCK_COLUMNS = {"prediction_timestamp", "processed_at"}  # when a row was written, not what it says
EXPECTED = FIXTURE.with_name("example_planned_before_restructure.expected.json")


def rows(project: Path, table: str) -> t.List[str]:
    """The table's rows, each as text, without the columns that record when it was written."""
    with duckdb.connect(str(project / "demo.duckdb"), read_only=True) as connection:
        columns = [name for (name, *_) in connection.sql(f"DESCRIBE {table}").fetchall() if name not in CLOCK_COLUMNS]
        selected = ", ".join(f'"{name}"' for name in columns)
        return sorted(repr(row) for row in connection.sql(f"SELECT {selected} FROM {table}").fetchall())


def run_the_old_state(folder: Path) -> t.Dict[str, t.List[str]]:
    """Unpack the fixture, run it to END, check that plan finds nothing to change but the
    artifact digests and package versions it did not record, and return the tables."""
    old = unpack(folder)
    assert "Run finished for environment 'prod'" in sqlmesh(old, "run", "--end", END)
    plan = sqlmesh(old, "plan", "--no-prompts", prompted=True)
    assert directly_modified(plan) == WITH_PYTHON
    assert changed_lines(plan) and all(line.startswith(ADDED) for line in changed_lines(plan))
    return {table: rows(old, table) for table in TABLES}


@pytest.mark.slow
def test_the_old_state_runs_and_plans_unchanged_with_the_same_results(tmp_path: Path) -> None:
    before = {table: rows(unpack(tmp_path / "before"), table) for table in TABLES}
    after = run_the_old_state(tmp_path / "old")
    assert len(after["analytics.customer_ltv_prediction"]) > len(before["analytics.customer_ltv_prediction"])
    # The rows the mixmesh of the fixture's commit computed on the same run.
    assert after == json.loads(EXPECTED.read_text())


if __name__ == "__main__":  # records the expected rows: run with the mixmesh that built the fixture
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        EXPECTED.write_text(json.dumps(run_the_old_state(Path(scratch)), indent=1) + "\n")

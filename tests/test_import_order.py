"""A script may use mixmesh and sqlglot before it imports SQLMesh, and may live in the project's
folder: loading the project then works as in a fresh `sqlmesh` command. Each case runs in a
fresh Python, since what it checks is the order of first imports."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.projects import Project

pytestmark = pytest.mark.slow

FUNCTIONS = """
from mixmesh import udf

@udf
def doubled(x: float) -> float:
    return x * 2
"""

MODEL = """
MODEL (name analytics.doubled, kind FULL);
SELECT id, @doubled(id) AS twice FROM (SELECT range::DOUBLE AS id FROM range(3))
"""


MACRO_IN_MODEL_BLOCK = """
MODEL (name analytics.doubled, kind FULL, owner @VAR('owner', 'analytics'));
SELECT id, @doubled(id) AS twice FROM (SELECT range::DOUBLE AS id FROM range(3))
"""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project(tmp_path / "project")
    project.write("macros/functions.py", FUNCTIONS)
    project.write("models/doubled.sql", MODEL)
    return project


def run_script(project: Project, script: str, path: str) -> subprocess.CompletedProcess:
    """Run ``script`` saved at ``path`` (absolute, or relative to the project's folder), started as
    ``python <path>`` from the project's folder, with the checkout's mixmesh first on the path."""
    file = project.root / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(script)
    source = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, path], cwd=project.root, env=env, capture_output=True, text=True, timeout=300)


PLAN = """
context = Context(paths=".")
context.plan(auto_apply=True, no_prompts=True)
print(context.engine_adapter.fetchall("SELECT sum(twice) FROM analytics.doubled"))
"""


def test_sql_generated_before_sqlmesh_is_imported_does_not_break_loading_models(project: Project) -> None:
    # The dialect's generator is used (and its dispatch table built) before SQLMesh adds its
    # expressions to the dialects: the model's MODEL block must still render.
    # A MODEL block that holds a macro: SQLMesh renders the block, in the model's dialect.
    project.write("models/doubled.sql", MACRO_IN_MODEL_BLOCK)
    script = textwrap.dedent("""
        import sqlglot
        import mixmesh
        print(sqlglot.parse_one("SELECT 1 AS x").sql(dialect="duckdb"))
        from sqlmesh import Context
    """) + PLAN
    result = run_script(project, script, str(project.root.parent / "elsewhere" / "pipeline.py"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "[(6.0,)]"


@pytest.mark.parametrize("path", ["pipeline.py", "scripts/../pipeline.py", "../project/pipeline.py"])
def test_a_script_in_the_project_s_folder_keeps_running(project: Project, path: str) -> None:
    # The running script is never one of the project's modules to forget, however its path is
    # spelled; DuckDB, first imported by the load, needs it.
    script = "import mixmesh\nfrom sqlmesh import Context\n" + PLAN
    (project.root / "scripts").mkdir()
    result = run_script(project, script, path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "[(6.0,)]"

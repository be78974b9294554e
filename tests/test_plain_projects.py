"""A SQLMesh project that does not use mixmesh behaves exactly as before with mixmesh loaded."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.projects import Project

FINGERPRINTS = """
import json, sys
if sys.argv[1] == "with-mixmesh":
    import mixmesh.sqlmesh as sqlmesh_integration
    sqlmesh_integration.install()
from sqlmesh import Context
context = Context(paths=sys.argv[2])
print(json.dumps({
    name: [snapshot.fingerprint.to_identifier(),
           {k: v.payload for k, v in sorted(snapshot.model.python_env.items())}]
    for name, snapshot in sorted(context.snapshots.items())
}))
"""


@pytest.fixture
def plain(project: Project) -> Project:
    project.write(
        "macros/helpers.py",
        '''
        from sqlmesh import macro


        def _factor():
            return 3


        @macro()
        def times_factor(evaluator, column):
            return f"{column} * {_factor()}"
        ''',
    )
    project.write("models/base.sql", "MODEL (name raw.base, kind FULL); SELECT 2 AS x")
    project.write("models/scaled.sql", "MODEL (name analytics.scaled, kind FULL); SELECT @times_factor(x) AS y FROM raw.base")
    project.write(
        "models/python_model.py",
        '''
        import pandas as pd
        from sqlmesh import model


        @model("analytics.from_python", columns={"z": "int"})
        def execute(context, **kwargs) -> pd.DataFrame:
            return pd.DataFrame({"z": [7]})
        ''',
    )
    return project


def fingerprints(project: Project, mode: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", FINGERPRINTS, mode, str(project.root)], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_fingerprints_and_stored_code_are_unchanged_by_mixmesh(plain: Project) -> None:
    without = fingerprints(plain, "without-mixmesh")
    assert len(without) == 3
    assert fingerprints(plain, "with-mixmesh") == without


def test_plan_gives_the_same_tables(plain: Project) -> None:
    import mixmesh.sqlmesh as sqlmesh_integration


    sqlmesh_integration.install()
    plain.plan()
    assert plain.query("SELECT y FROM analytics.scaled") == [(6,)]
    assert plain.query("SELECT z FROM analytics.from_python") == [(7,)]

"""The project folder on pytest's path (tests import python.rules, as SQLMesh does), and
``built``: a copy of the project planned with SQLMesh on DuckDB, so tests never write here."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """The project's SQLMesh Context after `plan` (which runs its YAML tests first) in a copy."""
    from sqlmesh import Context

    copy = tmp_path_factory.mktemp("project") / PROJECT.name
    shutil.copytree(PROJECT, copy, ignore=shutil.ignore_patterns("*.duckdb*", ".cache", "logs", "__pycache__"))
    previous = Path.cwd()
    os.chdir(copy)  # the database path in config.yaml is relative to where SQLMesh runs
    context = Context(paths=str(copy))
    try:
        context.plan(auto_apply=True, no_prompts=True)
        yield context
    finally:
        context.close()
        os.chdir(previous)

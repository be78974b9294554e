"""The tests' command server runs `sqlmesh` and `mixmesh` as their console scripts run in a new
process: in the command's folder, with its environment, output and exit code, and with nothing
of mixmesh or of a project loaded before the command loads it."""

from __future__ import annotations

import os
from pathlib import Path

from tests import fresh_process

CONFIG = """
import os, sys
from sqlmesh.core.config import Config, GatewayConfig, DuckDBConnectionConfig, ModelDefaultsConfig

print("loaded before the config:", sorted(m for m in ("mixmesh", "python") if m in sys.modules), file=sys.stderr)
print("variable:", os.environ.get("FRESH_PROCESS_VARIABLE"), file=sys.stderr)
config = Config(
    gateways={"local": GatewayConfig(connection=DuckDBConnectionConfig(database="db.duckdb"))},
    model_defaults=ModelDefaultsConfig(dialect="duckdb"),
)
"""


def write_project(folder: Path) -> None:
    (folder / "config.py").write_text(CONFIG)
    (folder / "models").mkdir()
    (folder / "models" / "one.sql").write_text("MODEL (name analytics.one, kind FULL); SELECT 1 AS x")


def test_a_command_runs_in_its_folder_with_its_environment_and_loads_everything_itself(tmp_path: Path) -> None:
    write_project(tmp_path)
    environment = {**os.environ, "FRESH_PROCESS_VARIABLE": "first", "NO_COLOR": "1"}

    first = fresh_process.run_sqlmesh(["plan", "--auto-apply", "--no-prompts"], cwd=tmp_path, env=environment)
    assert first.returncode == 0, first.stderr
    assert "loaded before the config: []" in first.stderr and "variable: first" in first.stderr
    assert (tmp_path / "db.duckdb").exists()  # the config's relative path, from the command's folder

    # A second command is as fresh: nothing the first imported, its own environment.
    second = fresh_process.run_sqlmesh(["info"], cwd=tmp_path, env={**environment, "FRESH_PROCESS_VARIABLE": "second"})
    assert second.returncode == 0, second.stderr
    assert "loaded before the config: []" in second.stderr and "variable: second" in second.stderr


def test_exit_codes_and_error_output_are_the_commands(tmp_path: Path) -> None:
    nowhere = fresh_process.run_sqlmesh(["plan"], cwd=tmp_path, env=dict(os.environ))
    assert nowhere.returncode == 1
    assert "SQLMesh project config could not be found" in nowhere.stdout  # --paths: the command's folder

    write_project(tmp_path)
    misused = fresh_process.run_sqlmesh(["plan", "--no-such-option"], cwd=tmp_path, env=dict(os.environ))
    assert misused.returncode == 2
    assert "No such option '--no-such-option'" in misused.stderr and misused.stdout == ""


def test_a_changed_pythonpath_is_seen_by_the_command(tmp_path: Path) -> None:
    """Read only when an interpreter starts: such a command gets one of its own."""
    write_project(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize_marker.py").write_text("")
    (tmp_path / "config.py").write_text(CONFIG.replace(
        'print("variable:"', 'import importlib.util; print("marker:", importlib.util.find_spec("sitecustomize_marker") is not None, file=sys.stderr)\nprint("variable:"'))
    environment = {**os.environ, "PYTHONPATH": str(site)}
    found = fresh_process.run_sqlmesh(["info"], cwd=tmp_path, env=environment)
    assert found.returncode == 0, found.stderr
    assert "marker: True" in found.stderr


def test_the_mixmesh_command_runs_as_its_console_script(tmp_path: Path) -> None:
    helped = fresh_process.run_mixmesh(["--help"], cwd=tmp_path, env=dict(os.environ))
    assert helped.returncode == 0 and helped.stdout.startswith("Usage: mixmesh"), helped
    misused = fresh_process.run_mixmesh(["no-such-command"], cwd=tmp_path, env=dict(os.environ))
    assert misused.returncode == 2 and "No such command 'no-such-command'" in misused.stderr

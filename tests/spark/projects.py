"""A SQLMesh project on a `spark` gateway, driven in this process or through the `sqlmesh`
command in fresh processes (a command and the reads after it in one, where a test allows:
each fresh process starts a Spark, some 20 seconds on two busy cores).

In this process, SQLMesh uses the tests' SparkSession (its gateway asks Spark for a session and
gets the running one). Each command starts its own Spark (local[2]); tables outlive it in a Hive metastore (Derby)
and a warehouse inside the project's folder; SQLMesh's state lives in a DuckDB file next to
them. Commands run from a folder of their own, so no process can import the project's
modules from its working directory: the executors get them from the driver or not at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing as t
from pathlib import Path

from tests import fresh_process
from tests.projects import Project
from tests.spark import session


# Run in a fresh process: `sqlmesh ARGS` if any (argv[2], JSON), then each query's rows, as JSON.
COMMAND_THEN_READS = (
    "import json, sys\n"
    "from sqlmesh import Context\n"
    "root, args, sqls = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]\n"
    "if args:\n"
    "    from sqlmesh.cli.main import cli\n"
    "    code = cli.main(args=['--paths', root, *args], standalone_mode=False)\n"
    "    if code:\n"
    "        sys.exit(code)\n"
    "context = Context(paths=root)\n"
    "frames = [context.fetchdf(sql) for sql in sqls]\n"
    "rows = [frame.astype(object).where(frame.notna(), None).values.tolist() for frame in frames]\n"
    "print(json.dumps(rows, default=str))\n"
)


class SparkProject(Project):
    """A SQLMesh project in ``root`` whose gateway is Spark in local mode: written, loaded and
    planned in this process as ``Project`` does; commands and queries run in fresh processes."""

    def __init__(self, root: Path, *, dialect: str = "duckdb") -> None:  # its own config, not Project's
        self.root = root
        self.elsewhere = root.parent / f"{root.name}-cwd"
        self.elsewhere.mkdir(parents=True, exist_ok=True)
        for folder in ("models", "macros"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        config = {
            "gateways": {
                "spark": {
                    "connection": {"type": "spark", "config": session.settings(root / ".spark")},
                    "state_connection": {"type": "duckdb", "database": str(root / "state.duckdb")},
                }
            },
            "default_gateway": "spark",
            "model_defaults": {"dialect": dialect, "start": "2024-01-01"},
            "disable_anonymized_analytics": True,
        }
        (root / "config.yaml").write_text(json.dumps(config, indent=2))  # JSON is YAML
        self._context: t.Any = None

    def use_dialect(self, dialect: str) -> None:
        """Write the models (and ``sql/udfs``) in another SQL dialect."""
        config = json.loads((self.root / "config.yaml").read_text())
        config["model_defaults"]["dialect"] = dialect
        (self.root / "config.yaml").write_text(json.dumps(config, indent=2))

    def fetch(self, sql: str) -> t.List[t.List[t.Any]]:
        """Rows of a query in this process, through SQLMesh (models by their names)."""
        frame = (self._context or self.context()).fetchdf(sql)
        return frame.astype(object).where(frame.notna(), None).values.tolist()

    def cli(self, *args: str, check: bool = True) -> fresh_process.Finished:
        """Run `sqlmesh` on the project in a fresh process, as a user would."""
        session.require_java()
        result = fresh_process.run_sqlmesh(["--paths", str(self.root), *args], cwd=self.elsewhere, env=self._environment())
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr[-6000:]}")
        return result

    def query(self, sql: str) -> t.List[t.List[t.Any]]:
        """Rows of a query, read in a fresh process through SQLMesh (models by their names)."""
        return self.queries(sql)[0]

    def queries(self, *sqls: str) -> t.List[t.List[t.List[t.Any]]]:
        """Rows of each query, all read in one fresh process (one Spark started, not one a query)."""
        return self.cli_then_queries((), *sqls)

    def cli_then_queries(self, args: t.Sequence[str], *sqls: str) -> t.List[t.List[t.List[t.Any]]]:
        """`sqlmesh ARGS` when given (its console script's function, as the command runs it),
        then the rows of each query, in one fresh process: one Spark started for both."""
        command = [sys.executable, "-c", COMMAND_THEN_READS, str(self.root), json.dumps(list(args)), *sqls]
        what = "; ".join(sqls) if not args else f"sqlmesh {' '.join(args)}, then {'; '.join(sqls)}"
        result = self._run(command, what)
        return json.loads(result.stdout.strip().splitlines()[-1])

    def _environment(self) -> t.Dict[str, str]:
        return {**os.environ, "NO_COLOR": "1", "PYSPARK_PYTHON": sys.executable}

    def _run(self, command: t.List[str], what: str) -> subprocess.CompletedProcess:
        session.require_java()
        result = subprocess.run(command, cwd=self.elsewhere, capture_output=True, text=True, env=self._environment())
        if result.returncode != 0:
            raise AssertionError(f"{what} failed:\n{result.stdout}\n{result.stderr[-6000:]}")
        return result

"""A SQLMesh project on DuckDB in a folder, driven in-process or through the CLI."""

from __future__ import annotations

import os
import sys
import textwrap
import typing as t
from pathlib import Path

import duckdb

from tests import fresh_process

CONFIG = """\
gateways:
  local:
    connection:
      type: duckdb
      database: {database}
default_gateway: local
model_defaults:
  dialect: duckdb
  start: '2024-01-01'
disable_anonymized_analytics: true
"""


class Project:
    """A SQLMesh project in ``root``: write files, plan, query, run the CLI."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for folder in ("models", "macros", "tests"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        self.write("config.yaml", CONFIG.format(database=root / "db.duckdb"))
        self._context: t.Any = None

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
        for parent in path.relative_to(self.root).parents:
            if parent.parts and parent.parts[0] == "python":
                (self.root / parent / "__init__.py").touch()
        return path

    def context(self) -> t.Any:
        """A freshly loaded Context (as a new `sqlmesh` command would load it)."""
        from sqlmesh import Context

        self.close()
        self._context = Context(paths=str(self.root))
        return self._context

    def plan(self, **kwargs: t.Any) -> t.Any:
        context = self.context()
        kwargs.setdefault("auto_apply", True)
        kwargs.setdefault("no_prompts", True)
        return context.plan(**kwargs)

    def query(self, sql: str) -> t.List[t.Tuple[t.Any, ...]]:
        """Read the project's database (after closing the Context's own connection)."""
        self.close()
        with duckdb.connect(str(self.root / "db.duckdb"), read_only=True) as connection:
            return connection.sql(sql).fetchall()

    def cli(self, *args: str, check: bool = True) -> fresh_process.Finished:
        """Run the `sqlmesh` command in a fresh process, as a user would."""
        self.close()
        result = fresh_process.run_sqlmesh(args, cwd=self.root, env={**os.environ, "NO_COLOR": "1"})
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def close(self) -> None:
        if self._context is not None:
            self._context.close()
            self._context = None


def forget_project_modules() -> None:
    """Project modules (python.shared...) are cached by name; the next project has its own."""
    for name in [m for m in sys.modules if m == "python" or m.startswith(("python.", "macros"))]:
        del sys.modules[name]

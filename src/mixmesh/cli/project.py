"""The options every ``mixmesh`` command shares with ``sqlmesh``: ``-p/--paths``, ``--config``,
``--gateway``; the project they name, its settings, and where its figures are kept."""

from __future__ import annotations

import dataclasses
import re
import typing as t
from pathlib import Path

import click

from mixmesh.core import settings
from mixmesh.monitor.stats_cli import EXIT_USAGE

if t.TYPE_CHECKING:
    from mixmesh.monitor.store import MetricsStore

CONFIG_FILES = ("config.yaml", "config.yml", "config.py")
# A config that gives mixmesh settings names them; any other is not worth loading SQLMesh for.
_SETTINGS_IN_CONFIG = re.compile(r"""^\s*mixmesh\s*:|["']mixmesh["']""", re.MULTILINE)


class NoProject(click.ClickException):
    """No SQLMesh project where the command was pointed (or around the current directory)."""

    exit_code = EXIT_USAGE


@dataclasses.dataclass(frozen=True)
class GlobalOptions:
    """``mixmesh -p PATH --config NAME --gateway GW``, as ``sqlmesh`` reads them."""

    paths: t.Tuple[Path, ...] = ()
    config: t.Optional[str] = None
    gateway: t.Optional[str] = None

    def project(self, deprecated: t.Optional[Path] = None, *, command: str = "this command") -> Path:
        """The project's folder, its settings in force; ``deprecated``, a subcommand's ``--project``."""
        root = self._root(deprecated, command)
        settings.use_project(root, self._config_variables(root))
        return root

    def metrics_store(self, root: Path) -> "MetricsStore":
        """Where the project's figures are kept; ``--gateway`` picks the warehouse's gateway."""
        from mixmesh.monitor.store import MetricsStore

        setting = settings.get("MIXMESH_METRICS").strip()
        if self.gateway and setting.lower() == "warehouse":
            setting = f"warehouse:{self.gateway}"
        return MetricsStore.for_project(root, setting=setting)

    def _root(self, deprecated: t.Optional[Path], command: str) -> Path:
        if deprecated is not None and self.paths:
            raise click.UsageError("give the project once: mixmesh -p DIR (--project is its older spelling)")
        if len(self.paths) > 1:
            raise click.UsageError(f"mixmesh {command} reads one project; -p was given {len(self.paths)} times")
        given = deprecated or (self.paths[0] if self.paths else None)
        if given is not None:
            if not _is_project(given):
                raise NoProject(f"no SQLMesh project (config.yaml or config.py) in {given}")
            return given
        return _around(Path.cwd(), command)

    def _config_variables(self, root: Path) -> t.Dict[str, t.Any]:
        """The SQLMesh config's ``variables``, where they may hold mixmesh settings."""
        if not any(_SETTINGS_IN_CONFIG.search(_read(root / name)) for name in CONFIG_FILES):
            return {}
        from sqlmesh.core.config import Config
        from sqlmesh.core.config.loader import load_configs

        try:
            config = load_configs(self.config, Config, [root])[root.absolute()]
        except Exception as error:  # SQLMesh's ConfigError and whatever a config.py raises
            raise click.ClickException(f"cannot read the SQLMesh config of {root}: {error}") from None
        return dict(config.variables)


def _is_project(folder: Path) -> bool:
    return any((folder / name).is_file() for name in CONFIG_FILES)


def _around(start: Path, command: str) -> Path:
    """The nearest folder from ``start`` up that holds a SQLMesh config, as ``sqlmesh`` finds it."""
    for folder in (start, *start.parents):
        if _is_project(folder):
            return folder
    raise NoProject(
        f"no SQLMesh project (config.yaml or config.py) in {start} or above it: run mixmesh {command} inside a "
        "project, or give one with mixmesh -p DIR"
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""

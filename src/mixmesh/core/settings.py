"""Every ``MIXMESH_*`` setting, where it is read from, and how a value that means nothing fails.

A setting is read, first found first, from:

1. its environment variable (``MIXMESH_METRICS``), when set and not empty;
2. the project's SQLMesh configuration: ``variables: {mixmesh: {metrics: ...}}`` in
   ``config.yaml`` (or ``variables={"mixmesh": {...}}`` in ``config.py``); SQLMesh refuses
   unknown top-level keys, and its ``variables`` are only seen by models that ask for them;
3. the ``[tool.mixmesh]`` table of the project's ``pyproject.toml``;
4. its default.

The key in a file is the variable's name without ``MIXMESH_``, in lower case
(``MIXMESH_FAST_PATH_THREADS`` is ``fast_path_threads``). The project is the one
``use_project`` was last told (SQLMesh's loader tells it on every load, the ``mixmesh``
command when it starts), else the current directory, where SQLMesh looks by default.

A value that means nothing is an error naming the setting and where it came from
(``described``), so ``MIXMESH_MONITOR=maybe`` or ``monitor = "maybe"`` in pyproject.toml
fails the command instead of silently monitoring. A switch accepts on/off and their usual
spellings (1/0, true/false, yes/no), any case.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import typing as t
from pathlib import Path

from mixmesh.core.errors import SettingError

ON = ("on", "1", "true", "yes")
OFF = ("off", "0", "false", "no")
PREFIX = "MIXMESH_"
PYPROJECT_TABLE = "tool.mixmesh"
CONFIG_VARIABLE = "mixmesh"  # the key under the SQLMesh config's ``variables``


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting: its variable, its default (as written) and what it does."""

    variable: str
    default: str
    about: str

    @property
    def key(self) -> str:
        """Its name in a project file: ``MIXMESH_FAST_PATH`` is ``fast_path``."""
        return key_of(self.variable)


SETTINGS: t.Tuple[Setting, ...] = (
    Setting("MIXMESH_METRICS", "", "where run figures are kept: unset, the project's .mixmesh/metrics.duckdb; "
            "off; warehouse or warehouse:GATEWAY; or a DuckDB file path, relative to the project"),
    Setting("MIXMESH_MONITOR", "on", "a switch: record each model evaluation's figures"),
    Setting("MIXMESH_MONITOR_TESTS", "off", "a switch: also record SQLMesh unit tests"),
    Setting("MIXMESH_MONITOR_SAMPLE_MS", "5", "milliseconds between samples of where Python time goes"),
    Setting("MIXMESH_FAST_PATH", "auto", "auto, on or off: run functions over large batches"),
    Setting("MIXMESH_FAST_PATH_THREADS", "", "threads the fast path uses (unset: as many as the engine runs)"),
    Setting("MIXMESH_PARALLEL", "auto", "auto or threads: whether batches may run in worker processes"),
    Setting("MIXMESH_QUARANTINE_MAX_ROWS", "1000", "rows one evaluation keeps in full in the quarantine"),
    Setting("MIXMESH_PACKAGE_VERSIONS", "", "package=major|minor|patch|exact|ignore, comma-separated: which "
            "version changes of a model's packages re-plan it"),
    Setting("MIXMESH_ARTIFACT_DIRS", "", "more directories artifacts may be read from (path-separated)"),
    Setting("MIXMESH_TREND_MIN_CHANGE", "10%", "the smallest relative change a trend must amount to"),
    Setting("MIXMESH_TREND_MIN_CHANGE_MS", "50", "the smallest change, in ms per run of the median size, a time "
            "trend must amount to"),
)
BY_VARIABLE = {setting.variable: setting for setting in SETTINGS}


@dataclasses.dataclass(frozen=True)
class Given:
    """A setting's value as written, and where: its variable, or a file and the key in it."""

    value: str
    variable: str
    file: t.Optional[Path] = None  # None: the environment
    place: str = ""  # within the file: "[tool.mixmesh]" or "variables: mixmesh:"

    @property
    def name(self) -> str:
        """The variable, or the key and the file it was read from."""
        if self.file is None:
            return self.variable
        return f"{key_of(self.variable)} in {self.place} of {self.file}"

    def described(self) -> str:
        """``MIXMESH_X='v'``, or ``x = 'v' in [tool.mixmesh] of /p/pyproject.toml``: for error messages."""
        if self.file is None:
            return f"{self.variable}={self.value!r}"
        return f"{key_of(self.variable)} = {self.value!r} in {self.place} of {self.file}"


# ------------------------------------------------------------------ the project


_project: t.Optional[Path] = None
_project_variables: t.Dict[str, t.Any] = {}


def use_project(root: t.Optional[t.Union[str, Path]], variables: t.Optional[t.Mapping[str, t.Any]] = None) -> None:
    """Read project settings from ``root`` from now on; ``variables``, the SQLMesh config's
    ``variables`` (its ``mixmesh`` entry holds settings). ``None`` forgets the project."""
    global _project, _project_variables
    _project = Path(root).absolute() if root is not None else None
    found = (variables or {}).get(CONFIG_VARIABLE) or {}
    if not isinstance(found, t.Mapping):
        raise SettingError(
            f"the SQLMesh config's variable {CONFIG_VARIABLE!r} of {_project} holds mixmesh settings and must be a "
            f"mapping (such as {{metrics: warehouse}}), not {type(found).__name__}"
        )
    _project_variables = _checked_keys(dict(found), f"variables: {CONFIG_VARIABLE}: of the SQLMesh config of {_project}")


def project() -> Path:
    """The project settings are read from: the one last used, else the current directory."""
    return _project or Path.cwd()


# ------------------------------------------------------------------ reading


def given(variable: str) -> t.Optional[Given]:
    """Where ``variable`` is set, first found first (see the module); None where nowhere."""
    value = os.environ.get(variable, "")
    if value.strip():
        return Given(value, variable)
    key = key_of(variable)
    root = project()
    if key in _project_variables:
        return Given(_text(_project_variables[key]), variable, _config_file(root), f"variables: {CONFIG_VARIABLE}:")
    path = _pyproject_file(root)
    table = _pyproject_table(path)
    if key in table:
        return Given(_text(table[key]), variable, path, f"[{PYPROJECT_TABLE}]")
    return None


def get(variable: str, default: str = "") -> str:
    """The value of ``variable`` as written (``default`` where it is set nowhere)."""
    found = given(variable)
    return found.value if found is not None else default


def named(variable: str) -> str:
    """The variable, or the key and file it is set in: what an error about its value names."""
    found = given(variable)
    return found.name if found is not None else variable


def described(variable: str) -> str:
    """``MIXMESH_X='v'`` or ``x = 'v' in ... of FILE``: a message's account of a bad value."""
    found = given(variable)
    return found.described() if found is not None else f"{variable} (unset)"


def switch(variable: str, default: bool) -> bool:
    """Whether the switch ``variable`` is on; ``default`` when it is set nowhere or empty."""
    found = given(variable)
    value = found.value.strip().lower() if found is not None else ""
    if not value:
        return default
    if value in ON:
        return True
    if value in OFF:
        return False
    raise SettingError(
        f"{t.cast(Given, found).described()} is not a switch: use on or off "
        f"(also {', '.join(ON[1:])} or {', '.join(OFF[1:])})"
    )


def number(variable: str, default: float, *, minimum: float = 0.0, percent: bool = False) -> float:
    """A number of at least ``minimum``; with ``percent``, ``10%`` reads as 0.10."""
    found = given(variable)
    if found is None or not found.value.strip():
        return default
    text = found.value.strip()
    try:
        value = float(text[:-1]) / 100 if percent and text.endswith("%") else float(text)
    except ValueError:
        value = math.nan
    if math.isnan(value) or math.isinf(value) or value < minimum:
        spelled = "a number such as 0.1 or a percentage such as 10%" if percent else "a number"
        raise SettingError(f"{found.described()} is not {spelled} of at least {minimum:g}")
    return value


def resolved() -> t.List[t.Tuple[Setting, str, str]]:
    """Every setting, its value and where it came from ("default" where set nowhere)."""
    return [
        (setting, found.value, found.name) if (found := given(setting.variable)) is not None
        else (setting, setting.default, "default")
        for setting in SETTINGS
    ]


# ------------------------------------------------------------------ helpers


def key_of(variable: str) -> str:
    return variable[len(PREFIX):].lower() if variable.startswith(PREFIX) else variable.lower()


def _text(value: t.Any) -> str:
    """A file's value as the variable would spell it (TOML and YAML have types; variables do not)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return os.pathsep.join(str(item) for item in value)
    if isinstance(value, t.Mapping):
        return ",".join(f"{key}={item}" for key, item in value.items())
    return "" if value is None else str(value)


def _checked_keys(values: t.Dict[str, t.Any], where: str) -> t.Dict[str, t.Any]:
    """A key that names no setting is an error: a typo must not leave the default in force."""
    known = {setting.key for setting in SETTINGS}
    unknown = sorted(key for key in values if key.lower() not in known)
    if unknown:
        raise SettingError(
            f"{', '.join(unknown)} in {where}: not a mixmesh setting; the settings are {', '.join(sorted(known))}"
        )
    return {key.lower(): value for key, value in values.items()}


def _config_file(root: Path) -> Path:
    return next((root / name for name in ("config.yaml", "config.yml", "config.py") if (root / name).exists()),
                root / "config.yaml")


@functools.lru_cache(maxsize=8)  # settings are read on every statement and evaluation: joined once
def _pyproject_file(root: Path) -> Path:
    return root / "pyproject.toml"


def _pyproject_table(path: Path) -> t.Dict[str, t.Any]:
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return {}
    return _read_pyproject_table(path, stamp)


@functools.lru_cache(maxsize=8)  # settings are read on every statement; the file changes rarely
def _read_pyproject_table(path: Path, stamp: int) -> t.Dict[str, t.Any]:
    try:
        import tomllib
    except ImportError:  # Python 3.10: pip's own copy of the same parser
        from pip._vendor import tomli as tomllib  # type: ignore[no-redef]

    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SettingError(f"cannot read the [{PYPROJECT_TABLE}] settings of {path}: {error}") from None
    table = document.get("tool", {}).get("mixmesh", {})
    if not isinstance(table, dict):
        raise SettingError(f"[{PYPROJECT_TABLE}] of {path} must be a table of settings")
    return _checked_keys(table, f"[{PYPROJECT_TABLE}] of {path}")

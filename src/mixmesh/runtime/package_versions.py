"""Which installed packages a model's code and artifacts need, at the version that matters.

SQLMesh records, per environment, the distributions of the modules a stored Python
environment imports at its top level (``import numpy as np``). That misses what matters most
for a score: a package imported inside a function (``from sklearn.ensemble import ...``) and
the package that unpickles a trained model, which the code never imports at all. Nor does
it tie a version to the models that depend on it.

``packages_used`` reads both: the imports anywhere in the stored code, and the modules a
pickled artifact's classes come from (read from the pickle's opcodes with ``pickletools``,
never by unpickling it). Each distribution is kept at its *significant* version: the major
one (``2`` for numpy 2.1.3), or the minor one for a 0.x package (``0.24``), whose minor
releases may break. ``MIXMESH_PACKAGE_VERSIONS`` can ask for more precision per package
(``scikit-learn=minor``), for a package whose minor releases change results, or leave one
out (``threadpoolctl=ignore``), for a package whose releases cannot.
"""

from __future__ import annotations

import ast
import functools
import pickletools
import typing as t
from importlib import metadata
from pathlib import Path

from mixmesh.core import settings
from mixmesh.core.errors import SettingError

PRECISION_VARIABLE = "MIXMESH_PACKAGE_VERSIONS"
PRECISIONS = {"major": 1, "minor": 2, "patch": 3, "exact": None, "ignore": 0}
# Their versions are the tools', not the model's: a release of either would re-plan everything.
NOT_TRACKED = frozenset({"mixmesh", "sqlmesh", "sqlglot"})
_STRINGS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"})
_PUTS = frozenset({"BINPUT", "LONG_BINPUT", "PUT"})
_GETS = frozenset({"BINGET", "LONG_BINGET", "GET"})


def packages_used(sources: t.Iterable[str], artifacts: t.Iterable[Path] = ()) -> t.Dict[str, str]:
    """Distribution -> significant version, for the modules ``sources`` import and the
    modules the pickled ``artifacts`` (those that exist) name."""
    modules = {name for source in sources for name in imported_modules(source)}
    for artifact in artifacts:
        modules |= pickled_modules(artifact)
    precision = _precisions()
    used = {}
    for distribution in distributions_of(modules):
        wanted = precision.get(_normal(distribution), "auto")
        if wanted == "ignore":
            continue
        try:
            used[distribution] = significant(metadata.version(distribution), wanted)
        except metadata.PackageNotFoundError:
            continue
    return used


def distributions_of(modules: t.Iterable[str]) -> t.List[str]:
    """The installed distributions providing ``modules`` (standard library modules have
    none), sorted, without the tools' own."""
    found = {d for module in modules for d in _distributions().get(module.partition(".")[0], ())}
    return sorted(found - NOT_TRACKED)


def imported_modules(source: str) -> t.Set[str]:
    """The absolute module names ``import`` statements in ``source`` name, at any depth."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: t.Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def pickled_modules(path: Path) -> t.Set[str]:
    """The modules a pickle (or joblib) file's classes and functions come from.

    Read from the opcodes, without running any: ``GLOBAL`` names its module; ``STACK_GLOBAL``
    takes the two strings pushed (or fetched from the memo) before it. joblib writes raw
    array bytes after the objects, where the opcodes stop making sense: the reading stops
    there, after the classes."""
    found: t.Set[str] = set()
    pushed: t.List[str] = []
    memo: t.Dict[t.Any, t.Any] = {}
    last: t.Any = None
    try:
        with open(path, "rb") as file:
            for opcode, argument, _ in pickletools.genops(file):
                name = opcode.name
                if name in _STRINGS or (name in _GETS and isinstance(memo.get(argument), str)):
                    last = argument if name in _STRINGS else memo[argument]
                    pushed.append(last)
                    continue
                if name == "MEMOIZE":
                    memo[len(memo)] = last
                elif name in _PUTS:
                    memo[argument] = last
                elif name == "GLOBAL":
                    found.add(str(argument).split()[0])
                elif name == "STACK_GLOBAL" and len(pushed) >= 2:
                    found.add(pushed[-2])
                last = None
    except (OSError, ValueError, EOFError, IndexError, KeyError):
        pass  # not a pickle, compressed, or the raw bytes after the objects
    return found


def significant(version: str, precision: str = "auto") -> str:
    """The part of ``version`` whose change may change results: ``auto`` is the major
    version, or the minor one for a 0.x release."""
    parts = version.split("+")[0].split(".")
    if precision == "auto":
        count = 2 if parts[0] == "0" else 1
    else:
        count = PRECISIONS[precision] or len(parts)
    return ".".join(parts[:count])


@functools.lru_cache(maxsize=1)
def _distributions() -> t.Mapping[str, t.List[str]]:
    return metadata.packages_distributions()


def _normal(name: str) -> str:
    return name.lower().replace("_", "-")


def _precisions() -> t.Dict[str, str]:
    """``MIXMESH_PACKAGE_VERSIONS``: ``package=major|minor|patch|exact|ignore``, comma-separated."""
    given = settings.get(PRECISION_VARIABLE).strip()
    chosen = {}
    for item in filter(None, (part.strip() for part in given.split(","))):
        package, _, precision = (piece.strip() for piece in item.partition("="))
        if not package or precision not in PRECISIONS:
            raise SettingError(
                f"{settings.described(PRECISION_VARIABLE)}: each item is package=precision, the precision one of "
                f"{', '.join(PRECISIONS)} (got {item!r})"
            )
        chosen[_normal(package)] = precision
    return chosen


LOCK_FILE = "sqlmesh-requirements.lock"  # SQLMesh's own lock file: `package==version` per line


def lock_differences(project: Path) -> t.List[t.Tuple[str, str, t.Optional[str]]]:
    """(package, locked version, installed version or None) for each entry of the project's
    lock file that the installed packages do not match; empty without a lock file."""
    try:
        lines = (project / LOCK_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    differences = []
    for line in lines:
        package, separator, locked = (part.strip() for part in line.split("#")[0].partition("=="))
        if not separator or package.startswith("^"):
            continue  # SQLMesh refuses malformed lines itself; ^package excludes one
        try:
            installed: t.Optional[str] = metadata.version(package)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != locked:
            differences.append((package, locked, installed))
    return differences


def write_lock(project: Path, packages: t.Iterable[str]) -> Path:
    """Write the project's lock file: the installed version of each of ``packages``."""
    lines = []
    for package in sorted(set(packages), key=_normal):
        try:
            lines.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    path = project / LOCK_FILE
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path

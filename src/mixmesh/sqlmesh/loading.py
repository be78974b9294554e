"""How mixmesh takes part in SQLMesh loading a project.

Functions imported into ``macros/`` from other project modules (the seed's ``python/shared/``)
are registered as macros on every load, even when Python cached the module; project modules
are re-read when their files change; project SQL functions (``sql/udfs/*.sql``, see
``mixmesh.core.sql_functions``) are read, stored with the models that call them
(``make_python_env``) and rendered under their engine-side names (``MacroEvaluator.transform``:
SQLMesh renders every query and statement through it, after the stored environment, which
installs mixmesh in a fresh ``sqlmesh run``, was re-created).
"""

from __future__ import annotations

import functools
import os
import sys
import typing as t
from pathlib import Path

from sqlglot import exp

from mixmesh.core import settings
from mixmesh.core.errors import FunctionDefinitionError
from mixmesh.core.notices import warn_once
from mixmesh.sqlmesh import provenance
from mixmesh.sqlmesh.source import installed_packages, is_udf

if t.TYPE_CHECKING:
    from mixmesh.runtime.functions import Udf


def loader_hook(original: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """Before SQLMesh loads models, audits or environment statements with the project's
    macros: artifacts resolve against the project, project modules are tracked, the project's
    functions are registered as macros and its SQL functions read; after models load, their
    calls of SQL functions are checked."""

    @functools.wraps(original)
    def hook(self: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        macros = kwargs.get("macros", args[0] if args else None)
        if macros is not None:
            from mixmesh.runtime import resources

            resources.set_project_root(self.config_path)  # artifacts resolve against the project
            settings.use_project(self.config_path, self.config.variables)  # [tool.mixmesh], variables: mixmesh:
            track_project_modules(self)
            register_project_functions(self, macros)
            provenance.add_macros(macros)
            load_sql_functions(self, macros)
        loaded = original(self, *args, **kwargs)
        if original.__name__ == "_load_models":
            check_sql_function_callers(loaded[0].values())
            warn_about_array_grains(loaded[0].values())
            warn_about_lock_differences(Path(self.config_path))
        return loaded

    return hook


def load_sql_functions(loader: t.Any, macros: t.Mapping[str, t.Any]) -> None:
    """Read the project's ``sql/udfs`` (before models load) and track its files like macros.

    SQLMesh's model cache and its file watching key on ``macros/`` mtimes; the SQL function
    files count as macros, so an edit reloads the models that call them.
    """
    from mixmesh.core import sql_functions

    files = sql_functions.project_files(loader)
    dialect = loader.config.model_defaults.dialect or ""
    functions = sql_functions.load_project(Path(loader.config_path), files, dialect)
    for path in files:
        loader._track_file(path)
        mtime = loader._path_mtimes[path]
        latest = loader._macros_max_mtime
        loader._macros_max_mtime = mtime if latest is None else max(latest, mtime)
    for name, function in functions.items():
        taken = getattr(macros.get(name), "func", None)
        if is_udf(taken):
            raise FunctionDefinitionError(
                f"{function.location}: the name {name!r} is already taken by the mixmesh function "
                f"{taken.spec.qualified}; give one of them another name"
            )


def check_sql_function_callers(models: t.Iterable[t.Any]) -> None:
    """A VIEW would call a project function whenever it is read, in sessions (other tools,
    other processes) where mixmesh never created it: models calling one are materialized."""
    from mixmesh.core import sql_functions

    for model in models:
        kind = getattr(model, "kind", None)
        if kind is None or not kind.is_view:
            continue
        called = sorted(sql_functions.stored_functions(model.python_env))
        if called:
            raise FunctionDefinitionError(
                f"model {model.name} is a VIEW and calls the project SQL function(s) "
                f"{', '.join(called)}: the view would call them whenever it is read, from sessions "
                "where they do not exist. Materialize the model (kind FULL, INCREMENTAL_BY_TIME_RANGE...)"
            )


def warn_about_array_grains(models: t.Iterable[t.Any]) -> None:
    """``grain [a, b]`` (the spelling of some documents) is one grain to SQLMesh, the array
    ``ARRAY(a, b)``: ``model.on`` fails and ``table_diff`` without ``--on`` crashes. Said once
    per model and spelling, on stderr and in the log; the model loads as SQLMesh reads it."""
    for model in models:
        for grain in getattr(model, "grains", None) or ():
            if not isinstance(grain, exp.Array):
                continue
            columns = ", ".join(item.sql() for item in grain.expressions)
            message = (
                f"model {model.name}: `grain [{columns}]` is one grain to SQLMesh, the array {grain.sql()}, "
                f"so table_diff cannot match rows on it; write `grain ({columns})` (or `grains [{columns}]`) "
                f"for a grain of {len(grain.expressions)} column(s)"
            )
            warn_once(("array grain", model.name, grain.sql()), message, __name__)


def fresh_modules_hook(load_scripts: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    @functools.wraps(load_scripts)
    def hook(self: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        forget_project_modules(Path(self.config_path))
        return load_scripts(self, *args, **kwargs)

    return hook


def track_project_modules(loader: t.Any) -> None:
    """Make SQLMesh's model cache and file watching see the modules ``macros/`` imports.

    SQLMesh keys its cache of loaded models on the mtimes of ``macros/`` files only; a model
    calling a function whose helper lives in ``python/shared/`` would otherwise keep its
    cached, stale Python code and fingerprint after the helper is edited.
    """
    latest = loader._macros_max_mtime
    root = _normal(loader.config_path)
    modules = []
    for name, path in _project_modules(root):
        _imported_for[name] = root
        modules.append(path)
    # A re-pinned artifact changes the digest stored with the models using it
    # (mixmesh.sqlmesh.source.artifacts_hook): their cached copies must be loaded again.
    for path in [*modules, *_artifact_files(modules, root)]:
        loader._track_file(path)
        mtime = loader._path_mtimes[path]
        latest = mtime if latest is None else max(latest, mtime)
    loader._macros_max_mtime = latest


def _artifact_files(modules: t.Iterable[Path], root: Path) -> t.Tuple[Path, ...]:
    """The pins files and unpinned artifacts the project's modules name."""
    from mixmesh.core.introspection import string_constants
    from mixmesh.runtime.artifact_digests import used_artifacts

    strings: t.List[str] = []
    for path in modules:
        try:
            strings.extend(string_constants(compile(path.read_bytes(), str(path), "exec")))
        except (OSError, SyntaxError, ValueError):
            continue  # the import that loaded it has said what is wrong with it
    return used_artifacts(strings, root).files


# Module name -> the project whose load found it imported from its folder (a copy of a project,
# or a second project, may import the same names from another folder).
_imported_for: t.Dict[str, Path] = {}
# The running script (``python pipeline.py`` in the project's folder, or a test runner): it is
# never re-imported, and without it in the cache a library importing ``__main__`` fails (DuckDB).
_SCRIPTS = frozenset({"__main__", "__mp_main__"})


def _project_modules(root: Path) -> t.Iterator[t.Tuple[str, Path]]:
    """Modules in Python's cache that belong to the project, not to a package, with their files.

    A package installed in development mode may live inside the project's folder; its
    modules are the package's, never the project's.
    """
    root = _normal(root)
    installed = (_normal(sys.prefix), _normal(sys.base_prefix))
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not file or name in _SCRIPTS or name.partition(".")[0] in installed_packages():
            continue
        path = _normal(file)
        # is_file: "<stdin>" and other pseudo-files (a script fed to Python) have no mtime to track.
        if path.is_relative_to(root) and not any(path.is_relative_to(prefix) for prefix in installed) and path.is_file():
            yield name, path


def _normal(path: t.Union[str, Path]) -> Path:
    """An absolute path with ``..`` folded: a script started as ``../../.venv/bin/pytest`` from
    inside the project has a ``__file__`` that only looks like it is in the project."""
    return Path(os.path.abspath(path))


def forget_project_modules(root: Path) -> None:
    """Drop the project's own modules from Python's cache so a reload reads edited helpers.

    SQLMesh re-imports ``macros/`` on every load but not the modules they import (the seed's
    ``python/shared/``); without this, an edited helper would keep its old code in a
    long-lived process (notebook, UI) and the fingerprint would miss the edit.
    """
    files = {path for _name, path in _project_modules(root)}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and name not in _SCRIPTS and (_normal(file) in files or _shadows_project_module(name, Path(file), root)):
            del sys.modules[name]


_NOT_PROJECT_CODE = frozenset({"tests", "test", "conftest"})


def _shadows_project_module(name: str, file: Path, root: Path) -> bool:
    """A module found outside this project under a name this project has a file for: another
    project's load found it (a copy's, a second project's in one process), or code imported
    it from another copy's package folder (a test importing ``python.models...`` of the
    project it was written for, then loading a copy). Importing that name must read this
    project's file. Other modules that no project load found (a test suite's own
    ``conftest``, installed packages) are left alone."""
    owner = _imported_for.get(name)
    if owner == _normal(root) or _normal(file).is_relative_to(_normal(root)):
        return False
    package = name.partition(".")[0]
    # A test suite's modules (``tests.test_x``, its conftest) are never the project's code.
    if owner is None and (not (root / package).is_dir() or package in _NOT_PROJECT_CODE or package in installed_packages()):
        return False
    relative = Path(*name.split("."))
    return (root / relative.with_suffix(".py")).is_file() or (root / relative / "__init__.py").is_file()


def register_project_functions(loader: t.Any, macros: t.MutableMapping[str, t.Any]) -> None:
    """Add every function bound in the project's ``macros/`` modules to SQLMesh's macros."""
    from sqlmesh.core import constants
    from sqlmesh.core.macros import macro

    macros_dir = Path(loader.config_path) / constants.MACROS
    for path in loader._glob_paths(macros_dir, ignore_patterns=loader.config.ignore_patterns, extension=".py"):
        module_name = ".".join(path.absolute().relative_to(Path(loader.config_path).absolute()).with_suffix("").parts)
        module = sys.modules.get(module_name)
        for value in list(vars(module).values()) if module else []:
            if is_udf(value):
                _register(macros, value, macro, path)


def _register(macros: t.MutableMapping[str, t.Any], udf: "Udf", macro: type, path: Path) -> None:
    name = udf.spec.name
    existing = macros.get(name)
    if existing is None:
        entry = macro(name)
        entry.func = udf
        macros[name] = entry
        return
    current = getattr(existing, "func", None)
    if current is udf:
        return
    if is_udf(current) and current.__wrapped__.__code__.co_code == udf.__wrapped__.__code__.co_code:
        return  # the same function reached through two imports
    kind = "another mixmesh function" if is_udf(current) else "a SQLMesh macro"
    raise FunctionDefinitionError(
        f"@udf {udf.spec.qualified} (seen in {path.name}): the name {name!r} is already taken by "
        f"{kind}; give one of them another name with @udf(name=...)"
    )


def sql_functions_env_hook(make_python_env: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """A model (audit, statement) stores the definitions of the project SQL functions it calls.

    Nothing changes for a project without ``sql/udfs``: its stored environments stay identical.
    """

    @functools.wraps(make_python_env)
    def hook(expressions: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        from sqlmesh.core import dialect as d
        from sqlmesh.utils.metaprogramming import Executable

        from mixmesh.core import sql_functions

        python_env = make_python_env(expressions, *args, **kwargs)
        module_path = kwargs.get("module_path", args[1] if len(args) > 1 else None)
        functions = sql_functions.functions_for(module_path)
        if functions:
            pairs = [item if isinstance(item, tuple) else (item, False) for item in _listed(expressions)]
            sql = [(e, m) for e, m in pairs if isinstance(e, exp.Expr) and not isinstance(e, d.Jinja)]
            stored = sql_functions.stored_entries(sql, functions, kwargs.get("path"), kwargs.get("dialect"))
            python_env.update(
                {name: Executable.value(value, is_metadata=is_metadata or None) for name, (value, is_metadata) in stored.items()}
            )
        return python_env

    return hook


def sql_function_calls_hook(transform: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """Rendered calls of project SQL functions become their engine-side names."""

    @functools.wraps(transform)
    def hook(self: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        from mixmesh.runtime import bindings

        return bindings.bind_calls(transform(self, *args, **kwargs), self.python_env)

    return hook


def _listed(expressions: t.Any) -> t.List[t.Any]:
    """What ``make_python_env`` receives: expressions, or ``(expression, is_metadata)`` pairs."""
    return expressions if isinstance(expressions, list) else [expressions]


def warn_about_lock_differences(project: Path) -> None:
    """Say, once per process, which installed packages differ from the project's lock file:
    the scores of this run may differ from those the lock describes."""
    from mixmesh.runtime.package_versions import LOCK_FILE, lock_differences

    for package, locked, installed in lock_differences(project):
        what = f"{package} {installed} is installed" if installed else f"{package} is not installed"
        message = (
            f"{what}, where {LOCK_FILE} locks {package}=={locked}: results may differ from those of the "
            f"locked environment; install the locked versions (pip install -r {LOCK_FILE}) or update the lock"
        )
        warn_once(("lock difference", project, package, installed), message, __name__)


def model_cache_key_hook(entry_id: t.Callable[..., str]) -> t.Callable[..., str]:
    """SQLMesh's cache of loaded models, keyed also on the installed packages and mixmesh.

    A model's stored environment holds the versions of the packages its code needs
    (``mixmesh.sqlmesh.source.reproducibility_hook``), and mixmesh's own code decides what
    it stores: a cached model loaded after an upgrade would keep the old ones, and the plan
    would miss the change.
    """

    @functools.wraps(entry_id)
    def hook(self: t.Any, model_path: t.Any) -> str:
        from mixmesh.runtime.package_versions import PRECISION_VARIABLE

        precision = settings.get(PRECISION_VARIABLE).replace(" ", "")
        return f"{entry_id(self, model_path)}__{_installed_digest()}__{precision}"

    return hook


@functools.lru_cache(maxsize=1)
def _installed_digest() -> str:
    """A digest of every installed distribution's name and version (one per process: an
    upgrade happens between commands)."""
    import hashlib
    from importlib import metadata

    installed = sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions() if d.metadata["Name"])
    return hashlib.sha256("\n".join(installed).encode()).hexdigest()[:16]

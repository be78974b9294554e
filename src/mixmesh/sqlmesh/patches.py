"""Every SQLMesh internal mixmesh wraps, in one table, with how to install and remove them.

Each ``Patch`` names its target (``module:attribute`` or ``module:Class.attribute``), the
wrapper factory (it receives the current value and returns the replacement), why mixmesh
needs it, the parameters of the original the wrapper relies on (tests check them against
the installed SQLMesh), and the modules that imported the name with ``from ... import``
(they hold their own reference, which must be replaced too). Patches on one target apply
in table order, each wrapping the one before.

``install`` is idempotent and thread-safe; ``uninstall`` restores every original (tests).
The SQLMesh versions mixmesh was tested with are ``TESTED``: another minor version warns
once at install, as any of these internals may have changed there.
"""

from __future__ import annotations

import dataclasses
import importlib
import threading
import typing as t
import warnings

from mixmesh.monitor import capture
from mixmesh.runtime.functions import Udf
from mixmesh.engines.spark import dialect as spark_dialect
from mixmesh.sqlmesh import calls, execution, loading, monitoring, provenance, quarantine, source

Wrapper = t.Callable[[t.Callable[..., t.Any]], t.Callable[..., t.Any]]

# The SQLMesh minor versions the test suite ran on (pyproject.toml pins the same range).
TESTED = ("0.236",)


@dataclasses.dataclass(frozen=True)
class Patch:
    target: str  # "module:attribute" or "module:Class.attribute"
    wrapper: Wrapper
    why: str
    parameters: t.Tuple[str, ...]  # the original's leading parameters the wrapper relies on
    also_in: t.Tuple[str, ...] = ()  # modules holding their own reference (from x import f)

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    def owner(self) -> t.Any:
        """The module or class the attribute lives on."""
        owner: t.Any = importlib.import_module(self.module)
        for part in self.target.partition(":")[2].split(".")[:-1]:
            owner = getattr(owner, part)
        return owner

    @property
    def attribute(self) -> str:
        return self.target.partition(":")[2].rsplit(".", 1)[-1]


def _command(name: str) -> Wrapper:
    return lambda method: monitoring.command_hook(name, method)


_UTILS = "sqlmesh.utils.metaprogramming"
_MODEL = ("sqlmesh.core.model.common", "sqlmesh.core.model.decorator", "sqlmesh.core.model.definition")
_LOADER = "sqlmesh.core.loader:SqlMeshLoader"
_EXECUTE = "sqlmesh.core.engine_adapter.base:EngineAdapter._execute"

PATCHES: t.Tuple[Patch, ...] = (
    Patch(f"{_UTILS}:normalize_source", source.explicit_source_hook, (
        "a mixmesh function's stored source spells out its SQL types (SQLMesh drops return hints)"), ("obj",)),
    Patch(f"{_UTILS}:serialize_env", source.loggers_hook, (
        "module-level loggers of a function's module are stored as look-ups (SQLMesh refuses Logger objects)"),
        ("env", "path"), _MODEL),
    Patch(f"{_UTILS}:serialize_env", source.reproducibility_hook, (
        "a model's stored environment holds the digests of the artifacts its code uses and the versions "
        "of the packages they need, so a re-pinned artifact or a new major version re-plans exactly "
        "those models"), ("env", "path"), _MODEL),
    Patch(f"{_UTILS}:func_globals", source.hint_globals_hook, (
        "names used only in a function's kept argument hints are stored too"), ("func",)),
    Patch("sqlmesh.core.model.common:make_python_env", loading.sql_functions_env_hook, (
        "a model stores the definitions of the project SQL functions it calls"),
        ("expressions", "jinja_macro_references", "module_path"),
        ("sqlmesh.core.model.definition", "sqlmesh.core.loader", "sqlmesh.core.audit.definition")),
    Patch("sqlmesh.core.macros:MacroEvaluator.transform", loading.sql_function_calls_hook, (
        "rendered calls of project SQL functions become their engine-side names"), ("self", "expression")),
    Patch(f"{_LOADER}._load_audits", loading.loader_hook, (
        "the project's functions and SQL functions are registered before audits load"), ("self", "macros")),
    Patch(f"{_LOADER}._load_models", loading.loader_hook, (
        "the project's functions and SQL functions are registered before models load; calls checked after"),
        ("self", "macros")),
    Patch(f"{_LOADER}._load_audits", quarantine.audits_hook, (
        "every project has the quarantined_rows audit"), ("self",)),
    Patch(f"{_LOADER}._load_audits", provenance.audits_hook, (
        "every project has the fallback_share and pinned_artifact audits"), ("self",)),
    Patch(f"{_LOADER}._load_environment_statements", loading.loader_hook, (
        "the project's functions are registered before environment statements load"), ("self", "macros")),
    Patch(f"{_LOADER}._Cache._model_cache_entry_id", loading.model_cache_key_hook, (
        "cached models are loaded again after packages (or mixmesh) are installed or upgraded, so the "
        "versions stored with them are the installed ones"), ("self", "model_path")),
    Patch(f"{_LOADER}._load_scripts", loading.fresh_modules_hook, (
        "project modules whose files changed are read again, not taken from Python's cache"), ("self",)),
    Patch(_EXECUTE, execution.fast_path_hook, (
        "a statement calling mixmesh functions runs them on large batches where it can"), ("self", "sql")),
    Patch(_EXECUTE, execution.call_sites_hook, (
        "each call is bound for its call site's argument types right before the statement runs"), ("self", "sql")),
    Patch(_EXECUTE, execution.create_sql_functions_hook, (
        "the project SQL functions a statement calls are created in its session"), ("self", "sql")),
    Patch(_EXECUTE, execution.explain_errors_hook, (
        "an engine error about a mixmesh function names the model, the function and the argument"),
        ("self", "sql")),
    Patch(_EXECUTE, monitoring.rows_written_hook, (
        "monitoring counts the rows a model's writes insert (DuckDB leaves rowcount at -1)"),
        ("self", "sql", "track_rows_processed")),
    Patch("sqlmesh.core.snapshot.evaluator:SnapshotEvaluator._render_and_insert_snapshot", quarantine.insert_hook, (
        "the rows quarantined while a model's interval is written go to the warehouse once it is written"),
        ("self", "start", "end", "execution_time", "snapshot")),
    Patch("sqlmesh.core.snapshot.evaluator:SnapshotEvaluator.audit", quarantine.audit_hook, (
        "a failed quarantined_rows audit names the functions and their counts"), ("self", "snapshot")),
    Patch("sqlmesh.core.snapshot.evaluator:SnapshotEvaluator.audit", provenance.audit_hook, (
        "a failed fallback_share or pinned_artifact audit names the model, the function and the artifact"),
        ("self", "snapshot")),
    Patch("sqlmesh.core.snapshot.evaluator:SnapshotEvaluator.evaluate", monitoring.evaluate_hook, (
        "monitoring records each model interval evaluated"), ("self", "snapshot")),
    Patch("sqlmesh.core.scheduler:Scheduler.evaluate", monitoring.environment_hook, (
        "monitoring records the environment each model interval is evaluated for"),
        ("self", "snapshot", "start", "end", "execution_time", "deployability_index", "batch_index",
         "environment_naming_info")),
    Patch("sqlmesh.core.snapshot.evaluator:SnapshotEvaluator.evaluate_and_fetch", monitoring.evaluate_and_fetch_hook, (
        "monitoring records `sqlmesh evaluate` previews (Context.evaluate), which do not go through evaluate"),
        ("self", "snapshot")),
    Patch("sqlmesh.core.test.definition:SqlModelTest.runTest", monitoring.test_hook, (
        "monitoring records unit tests when asked (MIXMESH_MONITOR_TESTS=1)"), ("self",)),
    Patch("sqlmesh.core.test.definition:PythonModelTest.runTest", monitoring.test_hook, (
        "monitoring records unit tests when asked (MIXMESH_MONITOR_TESTS=1)"), ("self",)),
    Patch("sqlglot.generators.spark:SparkGenerator.arrayagg_sql", spark_dialect.ordered_array_agg, (
        "ARRAY_AGG(x ORDER BY t) keeps its order (and its NULLs) on Spark; sqlglot writes COLLECT_LIST(x)"),
        ("self", "expression")),
    Patch("sqlglot.generators.spark:SparkGenerator.filter_sql", spark_dialect.ordered_array_agg_filter, (
        "ARRAY_AGG(x ORDER BY t) FILTER (WHERE c) keeps its order on Spark"), ("self", "expression")),
    *(
        Patch(f"sqlmesh.core.context:GenericContext.{name}", _command(name), (
            f"monitoring files the figures of `sqlmesh {name}` under that command"), ("self",))
        for name in capture.COMMANDS
    ),
)

_lock = threading.RLock()  # re-entered by the install SQLMesh's import triggers (see install)
_installing = False
_originals: t.List[t.Tuple[t.Any, str, t.Any]] = []  # (owner, attribute, value before), in install order
_installed = False
_warned = False


def install() -> None:
    """Apply every patch once per process (idempotent, thread-safe).

    Importing SQLMesh from here can call ``install`` again on this thread (``mixmesh`` installs
    itself right after SQLMesh's package is imported): that inner call returns at once."""
    global _installed, _installing
    if _installed:
        return
    with _lock:
        if _installed or _installing:
            return
        _installing = True
        try:
            _apply_all()
        finally:
            _installing = False


def _apply_all() -> None:
    global _installed
    check_version()
    for patch in PATCHES:
        owner = patch.owner()
        current = getattr(owner, patch.attribute)
        wrapped = patch.wrapper(current)
        _replace(owner, patch.attribute, current, wrapped)
        for module_name in patch.also_in:
            module = importlib.import_module(module_name)
            if getattr(module, patch.attribute, None) is current:
                _replace(module, patch.attribute, current, wrapped)
    monitoring.register_engine_code()
    provenance.register_macros()
    Udf.expand_in_model = staticmethod(calls.expand_call)
    _forget_dispatch_built_before_sqlmesh()
    _installed = True


def uninstall() -> None:
    """Put every original back (for tests: a process runs with mixmesh installed or not)."""
    global _installed
    with _lock:
        for owner, attribute, value in reversed(_originals):
            setattr(owner, attribute, value)
            _forget_generator_dispatch(owner)
        _originals.clear()
        _installed = False


def installed() -> bool:
    return _installed


def check_version() -> None:
    """Warn once when the installed SQLMesh is a minor version mixmesh was not tested with."""
    global _warned
    import sqlmesh

    version = getattr(sqlmesh, "__version__", "unknown")
    if _warned or ".".join(version.split(".")[:2]) in TESTED:
        return
    _warned = True
    warnings.warn(
        f"mixmesh was tested with SQLMesh {', '.join(v + '.x' for v in TESTED)}; SQLMesh {version} is installed. "
        "mixmesh wraps some of SQLMesh's internals (mixmesh.sqlmesh.patches.PATCHES), which may differ there: "
        "install a tested version, or run your project's tests before trusting a plan",
        RuntimeWarning,
        stacklevel=2,
    )


def _replace(owner: t.Any, attribute: str, current: t.Any, wrapped: t.Any) -> None:
    _originals.append((owner, attribute, current))
    setattr(owner, attribute, wrapped)
    _forget_generator_dispatch(owner)


def _forget_dispatch_built_before_sqlmesh() -> None:
    """SQL generated in a dialect before SQLMesh was imported (mixmesh's own SQL functions, a
    script's sqlglot) built that dialect's dispatch table without the expressions SQLMesh adds
    to its ``TRANSFORMS`` on import: a model then failed to render with "Unsupported
    expression type Model". Every generator builds its table again, with them."""
    from sqlglot import generator

    _forget_generator_dispatch(generator.Generator)


def _forget_generator_dispatch(owner: t.Any) -> None:
    """sqlglot's generators look their ``*_sql`` methods up once per class and keep the table
    (``sqlglot.generator._DISPATCH_CACHE``): a method replaced after the first SQL was generated
    in that dialect went unused (ARRAY_AGG(x ORDER BY t) lost its order on Spark). Dropping
    the class's table makes the next generator build it again, with the replacement."""
    from sqlglot import generator

    cache = getattr(generator, "_DISPATCH_CACHE", None)
    if isinstance(owner, type) and isinstance(cache, dict):
        for cls in [cls for cls in cache if issubclass(cls, owner)]:
            cache.pop(cls, None)

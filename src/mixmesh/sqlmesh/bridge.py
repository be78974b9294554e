"""How mixmesh functions live inside SQLMesh.

A ``@udf`` function is a SQLMesh macro: ``@python_risk_score(a, b)`` in a model expands into
``CAST(python_risk_score__<digest>(a, b) AS DOUBLE)``, a *call name*; right before a statement
holding it runs, the call is bound in the engine for the types its arguments have there
(``mixmesh.engines.call_sites``). The digest changes with the function's code and its calling model,
so two versions of a function never share a binding and every error can name its model.

SQLMesh stores macros in its state as Python source and re-executes it in later processes.
Four small hooks, each a wrapper that leaves everything else untouched, make that work for
functions (``install``):

- ``normalize_source``: SQLMesh drops return annotations from stored source; for a mixmesh
  function the stored decorator spells out every SQL type instead, so the state alone
  knows the types, and a type change changes the model's fingerprint.
- ``func_globals``: names used only in the argument hints that stay in the stored source
  (dataclasses) are stored too.
- the loader: functions imported into ``macros/`` from other project modules (the seed's
  ``python/shared/``) are registered on every load, even when Python cached the module.
- ``EngineAdapter._execute``: each call in a statement is bound for its call site's argument
  types (``mixmesh.engines.call_sites``); an engine error about a mixmesh function becomes a message
  that names the model, the function and the argument; and a statement calling functions
  takes the fast path where it can (``mixmesh.fastpath``).

Project SQL functions (``sql/udfs/*.sql``, see ``mixmesh.core.sql_functions``) use three more:
``make_python_env`` (a model stores the definitions it calls), ``MacroEvaluator.transform``
(rendered calls become engine-side names; SQLMesh renders every query and statement through
it, and it runs after the stored environment, which installs these hooks in a fresh ``sqlmesh
run``, was re-created) and ``EngineAdapter._execute`` again (the engine creates the functions
a statement calls right before running it).
"""

from __future__ import annotations

import ast
import functools
import logging
import re
import hashlib
import sys
import threading
import typing as t
from pathlib import Path

from sqlglot import exp

from mixmesh.core.errors import FunctionCallError, FunctionDefinitionError, where
from mixmesh.core.introspection import code_digest, string_constants

if t.TYPE_CHECKING:
    from sqlmesh.core.macros import MacroEvaluator

    from mixmesh.core.functions import FunctionSpec, Udf

_install_lock = threading.Lock()
_installed = False


def expand_call(
    udf: "Udf", evaluator: "MacroEvaluator", args: t.Sequence[t.Any], kwargs: t.Optional[t.Mapping[str, t.Any]] = None
) -> exp.Expr:
    """The SQL a ``@function(...)`` call becomes: a call the engine binds for its argument types
    right before the statement runs (``mixmesh.engines.call_sites``)."""
    spec = udf.spec
    model = model_name(evaluator)
    arguments = call_arguments(spec, model, args, kwargs or {})
    adapter = evaluator.locals.get("engine_adapter") if evaluator.runtime_stage != "loading" else None
    source = stored_source(evaluator, spec.func) if adapter is not None else None
    return bound_call(spec, model, arguments, adapter, source=source)


def call_arguments(
    spec: "FunctionSpec",
    model: t.Optional[str],
    args: t.Sequence[t.Any],
    kwargs: t.Mapping[str, t.Any],
    *,
    twice: t.Sequence[str] = (),
) -> t.List[exp.Expr]:
    """A call's arguments in parameter order: positional ones, then ``name := value`` ones,
    bound as Python binds them; a clear error otherwise (``twice``: keywords the call gave
    more than once, which a mapping of keywords cannot show)."""
    try:
        if twice:
            raise TypeError(f"keyword argument(s) {list(twice)} given more than once")
        ordered = spec.order_arguments(list(args), dict(kwargs))
    except TypeError as error:
        parameters = ", ".join(arg.name for arg in spec.args)
        written = ", ".join([_sql(arg) for arg in args] + [f"{key} := {_sql(value)}" for key, value in kwargs.items()])
        raise FunctionCallError(
            f"{where(spec.name, model)} takes {len(spec.args)} argument(s) ({parameters}); the call "
            f"@{spec.name}({written}) does not fit: {error}"
        ) from None
    return [_expression(arg) for arg in ordered]


def bound_call(
    spec: "FunctionSpec",
    model: t.Optional[str],
    args: t.List[exp.Expr],
    adapter: t.Any,
    *,
    source: t.Optional[str] = None,
) -> exp.Expr:
    """``CAST(name__digest(args) AS type)`` (SQL models and ``context.sql`` alike): a call name
    that ``mixmesh.engines.call_sites`` binds for the call site's argument types before it runs."""
    from mixmesh import engines

    sql_name = binding_name(spec, model)
    engines.register_call(spec, model, sql_name, source=source)
    return exp.Cast(this=exp.Anonymous(this=sql_name, expressions=args), to=spec.returns.copy())


def stored_source(evaluator: "MacroEvaluator", func: t.Callable[..., t.Any]) -> t.Optional[str]:
    """The source SQLMesh re-created a function from (Python itself cannot find it)."""
    for executable in evaluator.python_env.values():
        if executable.is_definition and executable.name == func.__name__:
            return executable.payload
    return None


def model_name(evaluator: "MacroEvaluator") -> t.Optional[str]:
    """The calling model as people write it (analytics.scored), when SQLMesh knows it."""
    from mixmesh.advice.structure import short_name

    fqn = getattr(evaluator, "_model_fqn", None)
    return short_name(fqn) if fqn else None


def binding_name(spec: "FunctionSpec", model: t.Optional[str]) -> str:
    """The engine-side name: the SQL name and a digest of the code, the types and the model."""
    digest = hashlib.sha256()
    digest.update(code_digest(spec.func).encode())
    digest.update(repr(sorted(spec.explicit_decorator_arguments().items())).encode())
    digest.update(repr([(arg.name, arg.accepts.shown if arg.accepts else None) for arg in spec.args]).encode())
    digest.update((model or "").encode())
    return f"{spec.name}__{digest.hexdigest()[:10]}"


def _expression(arg: t.Any) -> exp.Expr:
    return arg if isinstance(arg, exp.Expr) else exp.convert(arg)


def _sql(arg: t.Any) -> str:
    return arg.sql() if isinstance(arg, exp.Expr) else repr(arg)


# --- hooks into SQLMesh ------------------------------------------------------------------------


def install() -> None:
    """Install the hooks once per process (idempotent, thread-safe)."""
    global _installed
    if _installed:
        return
    with _install_lock:
        if _installed:
            return
        from sqlmesh.core import loader, macros
        from sqlmesh.core.audit import definition as audit_definition
        from sqlmesh.core.engine_adapter.base import EngineAdapter
        from sqlmesh.utils import metaprogramming

        from sqlmesh.core.model import common, decorator, definition

        metaprogramming.normalize_source = _explicit_source_hook(metaprogramming.normalize_source)
        serialize = _loggers_hook(metaprogramming.serialize_env)
        for module in (metaprogramming, common, decorator, definition):  # each imported the name
            module.serialize_env = serialize
        metaprogramming.func_globals = _hint_globals_hook(metaprogramming.func_globals)
        make_python_env = _sql_functions_env_hook(common.make_python_env)
        for module in (common, definition, loader, audit_definition):  # each imported the name
            module.make_python_env = make_python_env
        macros.MacroEvaluator.transform = _sql_function_calls_hook(macros.MacroEvaluator.transform)
        for method in ("_load_audits", "_load_models", "_load_environment_statements"):
            _wrap_loader_method(loader.SqlMeshLoader, method)
        loader.SqlMeshLoader._load_scripts = _fresh_modules_hook(loader.SqlMeshLoader._load_scripts)
        EngineAdapter._execute = _explain_errors_hook(
            _create_sql_functions_hook(_call_sites_hook(_fast_path_hook(EngineAdapter._execute)))
        )
        from mixmesh.monitor import capture

        capture.install()
        capture.register_engine_code(EngineAdapter._execute.__code__)
        _installed = True


def _loggers_hook(serialize_env: t.Callable[..., t.Dict[str, t.Any]]) -> t.Callable[..., t.Dict[str, t.Any]]:
    """Module-level loggers (``logger = logging.getLogger(__name__)``) stored as look-ups.

    SQLMesh cannot store a Logger object and refuses the model; the seed document's
    functions all log. Only environments holding a mixmesh function or model change.
    """

    @functools.wraps(serialize_env)
    def hook(env: t.Dict[str, t.Tuple[t.Any, t.Optional[bool]]], path: t.Any) -> t.Dict[str, t.Any]:
        loggers = {k: entry for k, entry in env.items() if isinstance(entry[0], logging.Logger)}
        if not loggers or not any(_spec_of(value) is not None for value, _ in env.values()):
            return serialize_env(env, path)
        from sqlmesh.utils.metaprogramming import Executable, ExecutableKind

        serialized = serialize_env({k: v for k, v in env.items() if k not in loggers}, path)
        for name, (logger, is_metadata) in loggers.items():
            serialized[name] = Executable(
                payload=f"__import__('logging').getLogger({logger.name!r})",
                kind=ExecutableKind.VALUE,
                is_metadata=is_metadata or None,
            )
        return serialized

    return hook


def _spec_of(obj: t.Any) -> t.Any:
    """The FunctionSpec or ModelSpec mixmesh attached to a user's function, if any."""
    return getattr(obj, "__mixmesh_spec__", None)


def _explicit_source_hook(normalize_source: t.Callable[[t.Any], str]) -> t.Callable[[t.Any], str]:
    @functools.wraps(normalize_source)
    def hook(obj: t.Any) -> str:
        source = normalize_source(obj)
        if isinstance(obj, type) and "__mixmesh_field_hints__" in obj.__dict__:
            return portable_class_source(source, obj)  # a struct hint of a mixmesh function
        spec = _spec_of(obj)
        return source if spec is None else explicit_source(source, spec)

    return hook


def explicit_source(source: str, spec: t.Any) -> str:
    """The function's source with a decorator that states what its hints said, and no hints.

    ``spec`` (a FunctionSpec or ModelSpec) says which decorator is its own
    (``decorator()``), what to state (``explicit_decorator_arguments()``), which argument
    hints must stay (``hints_to_keep()``, for values row mode builds) and, for a ModelSpec,
    which arguments to leave out (``metadata_decorator_arguments()``).
    """
    module = ast.parse(source)
    node = next(n for n in module.body if isinstance(n, ast.FunctionDef))
    explicit = spec.explicit_decorator_arguments()
    decorator = spec.decorator()
    position = _decorator_position(node, spec.func.__globals__, decorator)
    if position is None:
        alias = "_mixmesh_decorator"
        module.body.insert(0, ast.parse(f"from {decorator.__module__} import {decorator.__name__} as {alias}").body[0])
        node.decorator_list.insert(0, ast.Call(func=ast.Name(alias), args=[], keywords=[]))
        position = 0
    call = node.decorator_list[position]
    callee = call.func if isinstance(call, ast.Call) else call
    # Metadata the spec hands SQLMesh otherwise stays out of the source (and the data hash).
    left_out = set(explicit) | set(getattr(spec, "metadata_decorator_arguments", tuple)())
    kept = [k for k in (call.keywords if isinstance(call, ast.Call) else []) if k.arg not in left_out]
    positional = call.args if isinstance(call, ast.Call) else []
    stated = [ast.keyword(arg=key, value=ast.parse(repr(value), mode="eval").body) for key, value in explicit.items()]
    node.decorator_list[position] = ast.Call(func=callee, args=positional, keywords=kept + stated)
    hints = set(spec.hints_to_keep())
    for arg in node.args.posonlyargs + node.args.args + node.args.kwonlyargs:
        if arg.arg not in hints:
            arg.annotation = None
        elif arg.annotation is not None:
            arg.annotation = portable_annotation(arg.annotation, spec.func.__globals__)
    for arg in (node.args.vararg, node.args.kwarg):
        if arg is not None:
            arg.annotation = None
    node.returns = None
    return ast.unparse(ast.fix_missing_locations(module)).strip()


def portable_annotation(annotation: ast.expr, namespace: t.Mapping[str, t.Any]) -> ast.expr:
    """An argument hint that reads the same in SQLMesh's stored environment.

    SQLMesh stores no callable instance (``typing.List`` is one), so the names of ``typing``'s
    forms become look-ups (``__import__('typing').List``); a quoted hint is unquoted.
    """
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        try:
            annotation = ast.parse(annotation.value, mode="eval").body
        except SyntaxError:
            return annotation

    class Portable(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.expr:
            value = namespace.get(node.id)
            if _is_typing_form(value):
                return _look_up("typing", getattr(value, "_name", None) or node.id)
            module = _alias_module(node.id, value)
            return _look_up(module, node.id) if module is not None else node

    return Portable().visit(annotation)


def portable_class_source(source: str, cls: type) -> str:
    """A TypedDict's or dataclass's source with its field hints as ``portable_annotation``."""
    module = sys.modules.get(cls.__module__)
    namespace = vars(module) if module is not None else {}
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign):
            node.annotation = portable_annotation(node.annotation, namespace)
        elif isinstance(node, ast.ClassDef):  # class Transaction(TypedDict)
            node.bases = [portable_annotation(base, namespace) for base in node.bases]
    return ast.unparse(ast.fix_missing_locations(tree)).strip()


def _look_up(module: str, name: str) -> ast.expr:
    return ast.Attribute(value=ast.Call(func=ast.Name("__import__"), args=[ast.Constant(module)], keywords=[]), attr=name)


def _alias_module(name: str, value: t.Any) -> t.Optional[str]:
    """Where a hint alias such as ``mixmesh.AwareDatetime`` (an ``Annotated[...]``, which
    SQLMesh does not store) can be imported from under the same name."""
    if value is None or isinstance(value, type) or t.get_origin(value) is None:
        return None
    for module in ("mixmesh", "typing", "typing_extensions"):
        if getattr(sys.modules.get(module), name, None) is value:
            return module
    return None


def _is_typing_form(value: t.Any) -> bool:
    """``List``, ``Dict``, ``Any``, ``Optional``...: objects of ``typing`` that are not classes."""
    import inspect

    return getattr(value, "__module__", None) == "typing" and not inspect.isclass(value) or value is t.Any


def _decorator_position(node: ast.FunctionDef, namespace: t.Dict[str, t.Any], decorator: t.Any) -> t.Optional[int]:
    for position, call in enumerate(node.decorator_list):
        callee = call.func if isinstance(call, ast.Call) else call
        if _resolve(callee, namespace) is decorator:
            return position
    return None


def _resolve(node: ast.expr, namespace: t.Dict[str, t.Any]) -> t.Any:
    """The object a decorator names (``udf``, ``mixmesh.udf``), without evaluating code."""
    if isinstance(node, ast.Name):
        return namespace.get(node.id)
    if isinstance(node, ast.Attribute):
        return getattr(_resolve(node.value, namespace), node.attr, None)
    return None


def _hint_globals_hook(func_globals: t.Callable[..., t.Dict[str, t.Any]]) -> t.Callable[..., t.Dict[str, t.Any]]:
    @functools.wraps(func_globals)
    def hook(func: t.Callable[..., t.Any]) -> t.Dict[str, t.Any]:
        from mixmesh.core import sql_functions

        variables = func_globals(func)
        spec = _spec_of(func)
        if spec is not None:
            variables.update(_hint_variables(func, spec))
        variables.update(functions_called_in_sql(func))
        if hasattr(func, "__code__"):
            functions = sql_functions.functions_for(func.__code__.co_filename)
            variables.update(sql_functions.called_in_code(func.__code__, functions))
        return variables

    return hook


def functions_called_in_sql(func: t.Callable[..., t.Any]) -> t.Dict[str, t.Any]:
    """The ``@udf`` functions a function's SQL strings call by name (``context.sql``).

    Python does not see a call written inside a string, so SQLMesh would store the model
    without the function; these are stored with it, as if the code referenced them.
    """
    if not hasattr(func, "__code__"):
        return {}
    candidates = {name: value for name, value in func.__globals__.items() if _is_udf(value)}
    if not candidates:
        return {}
    text = " ".join(string_constants(func.__code__)).lower()
    return {
        name: udf
        for name, udf in candidates.items()
        if re.search(rf"\b{re.escape(udf.spec.name)}\s*\(", text)
    }


def _hint_variables(func: t.Callable[..., t.Any], spec: t.Any) -> t.Dict[str, t.Any]:
    """What the argument hints kept in the stored source need, by name: the names they use
    and, for the project's own classes among them (a TypedDict, a dataclass), the names their
    source uses (SQLMesh walks a class's bases, which for a TypedDict is ``dict``, not
    ``TypedDict``, and not its field annotations)."""
    variables: t.Dict[str, t.Any] = {}
    pending = [(name, func.__globals__) for name in _names_in_kept_hints(func, spec)]
    while pending:
        name, namespace = pending.pop()
        if name in variables or name not in namespace:
            continue
        value = namespace[name]
        if _is_typing_form(value):
            continue  # spelled as a look-up in the stored source (portable_annotation)
        variables[name] = value
        for used, module_globals in _names_in_class_source(value):
            pending.append((used, module_globals))
    return variables


def _names_in_class_source(value: t.Any) -> t.List[t.Tuple[str, t.Dict[str, t.Any]]]:
    """The names a project class's source uses, with its module's namespace."""
    import inspect

    if not inspect.isclass(value):
        return []
    module = sys.modules.get(value.__module__)
    file = getattr(module, "__file__", None)
    if module is None or not file or value.__module__.partition(".")[0] in _installed_packages():
        return []
    try:
        tree = ast.parse(inspect.getsource(value))
    except (OSError, TypeError, SyntaxError):
        return []
    return [(node.id, vars(module)) for node in ast.walk(tree) if isinstance(node, ast.Name)]


def _names_in_kept_hints(func: t.Callable[..., t.Any], spec: t.Any) -> t.Set[str]:
    kept = set(spec.hints_to_keep())
    if not kept:
        return set()
    from sqlmesh.utils.metaprogramming import parse_source

    node = next(n for n in ast.walk(parse_source(func)) if isinstance(n, ast.FunctionDef))
    names: t.Set[str] = set()
    for arg in node.args.args + node.args.posonlyargs:
        if arg.arg in kept and arg.annotation is not None:
            names.update(_annotation_names(arg.annotation))
    return names


def _annotation_names(annotation: ast.expr) -> t.Set[str]:
    """The names an annotation uses, inside quoted (forward-reference) parts too."""
    names: t.Set[str] = set()
    for node in ast.walk(annotation):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                names.update(_annotation_names(ast.parse(node.value, mode="eval").body))
            except SyntaxError:
                pass
    return names


def _wrap_loader_method(cls: type, method: str) -> None:
    original = getattr(cls, method)

    @functools.wraps(original)
    def hook(self: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        macros = kwargs.get("macros", args[0] if args else None)
        if macros is not None:
            from mixmesh.runtime import resources

            resources.set_project_root(self.config_path)  # artifacts resolve against the project
            track_project_modules(self)
            register_project_functions(self, macros)
            load_sql_functions(self, macros)
        loaded = original(self, *args, **kwargs)
        if method == "_load_models":
            check_sql_function_callers(loaded[0].values())
        return loaded

    setattr(cls, method, hook)


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
        if _is_udf(taken):
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


def _sql_functions_env_hook(make_python_env: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """A model (audit, statement) stores the definitions of the project SQL functions it calls.

    Nothing changes for a project without ``sql/udfs``: its stored environments stay identical.
    """

    @functools.wraps(make_python_env)
    def hook(expressions: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        from mixmesh.core import sql_functions

        python_env = make_python_env(expressions, *args, **kwargs)
        module_path = kwargs.get("module_path", args[1] if len(args) > 1 else None)
        functions = sql_functions.functions_for(module_path)
        if functions:
            python_env.update(
                sql_functions.env_entries(expressions, functions, kwargs.get("path"), kwargs.get("dialect"))
            )
        return python_env

    return hook


def _sql_function_calls_hook(transform: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """Rendered calls of project SQL functions become their engine-side names."""

    @functools.wraps(transform)
    def hook(self: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        from mixmesh.core import sql_functions

        return sql_functions.bind_calls(transform(self, *args, **kwargs), self.python_env)

    return hook


def _create_sql_functions_hook(execute: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """The engine creates the project SQL functions a statement calls right before running it,
    in the session that runs it (whatever thread, transaction or test connection that is)."""

    @functools.wraps(execute)
    def hook(self: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        sql = args[0] if args else kwargs.get("sql")
        if isinstance(sql, str):
            from mixmesh import engines

            engines.create_sql_functions(self, sql)
        return execute(self, *args, **kwargs)

    return hook


def _call_sites_hook(execute: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """Each call of a mixmesh function is bound for its call site's argument types right
    before the statement runs (``mixmesh.engines.call_sites``): the first statement of a plan that
    reads the query (SQLMesh creates the table from it) fails on a mismatch, before any
    interval is written."""

    @functools.wraps(execute)
    def hook(self: t.Any, sql: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        if isinstance(sql, str):
            from mixmesh import engines

            sql = engines.resolve_calls(self, sql)
        return execute(self, sql, *args, **kwargs)

    return hook


def _fast_path_hook(execute: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """A statement calling mixmesh functions runs them on large batches where it can
    (``mixmesh.fastpath``); everything else runs as it was."""

    @functools.wraps(execute)
    def hook(self: t.Any, sql: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        if isinstance(sql, str):
            from mixmesh import fastpath

            def run(statement: str) -> t.Any:
                return execute(self, statement, *args, **kwargs)

            parameters = any(key != "track_rows_processed" for key in kwargs) or len(args) > 1
            if fastpath.try_execute(self, sql, run, parameters):
                return None
        return execute(self, sql, *args, **kwargs)

    return hook


def _fresh_modules_hook(load_scripts: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
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
    for path in _project_module_files(Path(loader.config_path)):
        loader._track_file(path)
        mtime = loader._path_mtimes[path]
        latest = mtime if latest is None else max(latest, mtime)
    loader._macros_max_mtime = latest


def _project_module_files(root: Path) -> t.Iterator[Path]:
    """Files of the modules in Python's cache that belong to the project, not to a package.

    A package installed in development mode may live inside the project's folder; its
    modules are the package's, never the project's.
    """
    root = root.absolute()
    installed = (Path(sys.prefix).absolute(), Path(sys.base_prefix).absolute())
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not file or name.partition(".")[0] in _installed_packages():
            continue
        path = Path(file).absolute()
        # is_file: "<stdin>" and other pseudo-files (a script fed to Python) have no mtime to track.
        if path.is_relative_to(root) and not any(path.is_relative_to(prefix) for prefix in installed) and path.is_file():
            yield path


@functools.lru_cache(maxsize=1)
def _installed_packages() -> t.FrozenSet[str]:
    """Top-level names that installed distributions provide (mixmesh, sqlmesh, pandas...)."""
    from importlib import metadata

    return frozenset(metadata.packages_distributions())


def forget_project_modules(root: Path) -> None:
    """Drop the project's own modules from Python's cache so a reload reads edited helpers.

    SQLMesh re-imports ``macros/`` on every load but not the modules they import (the seed's
    ``python/shared/``); without this, an edited helper would keep its old code in a
    long-lived process (notebook, UI) and the fingerprint would miss the edit.
    """
    files = set(_project_module_files(root))
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).absolute() in files:
            del sys.modules[name]


def register_project_functions(loader: t.Any, macros: t.MutableMapping[str, t.Any]) -> None:
    """Add every function bound in the project's ``macros/`` modules to SQLMesh's macros."""
    from sqlmesh.core import constants
    from sqlmesh.core.macros import macro

    macros_dir = Path(loader.config_path) / constants.MACROS
    for path in loader._glob_paths(macros_dir, ignore_patterns=loader.config.ignore_patterns, extension=".py"):
        module_name = ".".join(path.absolute().relative_to(Path(loader.config_path).absolute()).with_suffix("").parts)
        module = sys.modules.get(module_name)
        for value in list(vars(module).values()) if module else []:
            if _is_udf(value):
                _register(macros, value, macro, path)


def _is_udf(value: t.Any) -> bool:
    from mixmesh.core.functions import Udf

    return isinstance(value, Udf)


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
    if _is_udf(current) and current.__wrapped__.__code__.co_code == udf.__wrapped__.__code__.co_code:
        return  # the same function reached through two imports
    kind = "another mixmesh function" if _is_udf(current) else "a SQLMesh macro"
    raise FunctionDefinitionError(
        f"@udf {udf.spec.qualified} (seen in {path.name}): the name {name!r} is already taken by "
        f"{kind}; give one of them another name with @udf(name=...)"
    )


def _explain_errors_hook(execute: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    @functools.wraps(execute)
    def hook(self: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        try:
            return execute(self, *args, **kwargs)
        except Exception as error:
            from mixmesh import engines

            explained = engines.explain_error(error, args[0] if args else kwargs.get("sql"))
            if explained is None:
                raise
            raise explained from error

    return hook

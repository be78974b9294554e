"""How a mixmesh function is stored in SQLMesh's state, and re-created from it.

SQLMesh stores macros (and a Python model's code) as Python source and re-executes it in
later processes. Three wrappers make that work for mixmesh functions:

- ``normalize_source`` (``explicit_source_hook``): SQLMesh drops return annotations from
  stored source; for a mixmesh function the stored decorator spells out every SQL type
  instead, so the state alone knows the types, and a type change changes the fingerprint.
  Argument hints stay, spelled so that they re-create without the module (``portable_*``).
- ``func_globals`` (``hint_globals_hook``): names used only in the kept hints are stored too.
- ``serialize_env`` (``loggers_hook``): module-level loggers are stored as look-ups.
- ``serialize_env`` (``reproducibility_hook``): the digests of the artifacts the code uses
  (``__mixmesh_artifacts__``) and the significant versions of the packages its code and
  artifacts need (``__mixmesh_packages__``) are stored too, so a retrained, re-pinned model
  file or a new major version of scikit-learn changes the fingerprint of exactly the models
  that use them.
"""

from __future__ import annotations

import ast
import functools
import logging
import re
import sys
import typing as t
from pathlib import Path

from mixmesh.core.introspection import string_constants
from mixmesh.core.notices import warn_once

def loggers_hook(serialize_env: t.Callable[..., t.Dict[str, t.Any]]) -> t.Callable[..., t.Dict[str, t.Any]]:
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


ARTIFACTS_ENTRY = "__mixmesh_artifacts__"
PACKAGES_ENTRY = "__mixmesh_packages__"


def reproducibility_hook(serialize_env: t.Callable[..., t.Dict[str, t.Any]]) -> t.Callable[..., t.Dict[str, t.Any]]:
    """Store with a model's environment the digests of the artifacts its code uses and the
    significant versions of the packages its code and those artifacts need.

    Each is one line of the environment, so SQLMesh's plan shows the old and the new value
    in the model's diff and offers its breaking/non-breaking choice. Only environments
    holding mixmesh code (a function, a model, a resource, ``load_artifact``) get them, and
    only when not empty: other stored environments stay identical.
    """

    @functools.wraps(serialize_env)
    def hook(env: t.Dict[str, t.Tuple[t.Any, t.Optional[bool]]], path: t.Any) -> t.Dict[str, t.Any]:
        serialized = serialize_env(env, path)
        if path is None or not any(_is_mixmesh_code(value) for value, _ in env.values()):
            return serialized
        from sqlmesh.utils.metaprogramming import Executable

        from mixmesh.runtime.artifact_digests import used_artifacts
        from mixmesh.runtime.package_versions import packages_used

        used = used_artifacts(_strings_in(serialized.values()), Path(path))
        packages = packages_used((e.payload for e in serialized.values() if e.is_import or e.is_definition), used.paths)
        if used.digests:
            serialized[ARTIFACTS_ENTRY] = Executable.value(dict(sorted(used.digests.items())))
        if packages:
            serialized[PACKAGES_ENTRY] = Executable.value(packages)
        _warn_unpinned(used.unpinned, path)
        return serialized

    return hook


def _is_mixmesh_code(obj: t.Any) -> bool:
    from mixmesh.runtime.resources import Resource, load_artifact

    return _spec_of(obj) is not None or isinstance(obj, Resource) or obj is load_artifact


def _strings_in(executables: t.Iterable[t.Any]) -> t.Iterator[str]:
    """The string constants of stored code and values: where code names its files."""
    for executable in executables:
        try:
            tree = ast.parse(executable.payload)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                yield node.value


def _warn_unpinned(unpinned: t.Iterable[str], project: t.Any) -> None:
    for artifact in unpinned:
        message = (
            f"artifact {artifact} is loaded by the project's code but listed in no pins file it names; "
            f"pin it (mixmesh.write_pins) so that load_artifact checks its bytes and the plan tracks it by "
            f"its pinned digest"
        )
        warn_once(("unpinned artifact", str(project), artifact), message, __name__)


def _spec_of(obj: t.Any) -> t.Any:
    """The FunctionSpec or ModelSpec mixmesh attached to a user's function, if any."""
    return getattr(obj, "__mixmesh_spec__", None)


def explicit_source_hook(normalize_source: t.Callable[[t.Any], str]) -> t.Callable[[t.Any], str]:
    @functools.wraps(normalize_source)
    def hook(obj: t.Any) -> str:
        source = _bodies_kept(normalize_source(obj), obj)
        if isinstance(obj, type) and "__mixmesh_field_hints__" in obj.__dict__:
            return portable_class_source(source, obj)  # a struct hint of a mixmesh function
        spec = _spec_of(obj)
        return source if spec is None else explicit_source(source, spec)

    return hook


def _bodies_kept(source: str, obj: t.Any) -> str:
    """SQLMesh drops docstrings, and a class or function whose body was only its docstring
    (``class ServiceDown(ConnectionError): \"\"\"...\"\"\"``, common for exceptions) is left with
    none: stored so, it cannot be read back. Such a body becomes ``pass``."""
    try:
        ast.parse(source)
        return source
    except SyntaxError:
        pass
    from sqlmesh.utils.metaprogramming import IGNORE_DECORATORS, _decorator_name, parse_source

    tree = parse_source(obj)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            node.decorator_list = [d for d in node.decorator_list if _decorator_name(d) not in IGNORE_DECORATORS]
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                node.returns = None
    return ast.unparse(tree).strip()


def explicit_source(source: str, spec: t.Any) -> str:
    """The function's source with a decorator that states what its hints said, and no hints.

    ``spec`` (a FunctionSpec or ModelSpec) says which decorator is its own
    (``_decorator_of``), what to state (``explicit_decorator_arguments()``), which argument
    hints must stay (``hints_to_keep()``, for values row mode builds) and, for a ModelSpec,
    which arguments to leave out (``metadata_decorator_arguments()``).
    """
    module = ast.parse(source)
    node = next(n for n in module.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    explicit = spec.explicit_decorator_arguments()
    decorator = _decorator_of(spec)
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


def hint_globals_hook(func_globals: t.Callable[..., t.Dict[str, t.Any]]) -> t.Callable[..., t.Dict[str, t.Any]]:
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
    candidates = {name: value for name, value in func.__globals__.items() if is_udf(value)}
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
    if module is None or not file or value.__module__.partition(".")[0] in installed_packages():
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

    node = next(n for n in ast.walk(parse_source(func)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
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




@functools.lru_cache(maxsize=1)
def installed_packages() -> t.FrozenSet[str]:
    """Top-level names of installed distributions: never project code."""
    from importlib import metadata

    return frozenset(metadata.packages_distributions())


def is_udf(value: t.Any) -> bool:
    from mixmesh.runtime.functions import Udf

    return isinstance(value, Udf)


def _decorator_of(spec: t.Any) -> t.Callable[..., t.Any]:
    """The decorator a spec comes from (its stored source calls it again)."""
    from mixmesh.core.functions import FunctionSpec
    from mixmesh.pymodels.models import python_model
    from mixmesh.runtime.functions import udf

    return udf if isinstance(spec, FunctionSpec) else python_model

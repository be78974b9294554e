"""What a function's code depends on: the project helpers it calls, and a digest of it all."""

from __future__ import annotations

import hashlib
import inspect
import sys
import types as pytypes
import typing as t


def code_digest(func: t.Callable[..., t.Any], *, with_mixmesh: bool = True) -> str:
    """A digest of a function's code and of the project helpers it calls, at any depth.

    ``with_mixmesh=False`` leaves mixmesh's own functions out even where mixmesh is installed
    outside site-packages (an editable install): their module state (counters, registries of
    code objects) makes the digest differ between folders, processes and runs. Provenance's
    code fingerprint, compared across engines and runs, is taken so."""
    digest = hashlib.sha256()

    def visit_code(code: pytypes.CodeType) -> None:
        digest.update(code.co_code)
        digest.update(repr(code.co_names).encode())
        for const in code.co_consts:
            if isinstance(const, pytypes.CodeType):
                visit_code(const)
            else:
                digest.update(repr(const).encode())

    for function in project_functions(func, with_mixmesh=with_mixmesh):
        visit_code(function.__code__)
        for name in _global_names(function.__code__):
            value = function.__globals__.get(name)
            if value is not None and not _is_project_function(value, function, with_mixmesh=with_mixmesh):
                digest.update(f"{name}={_identity(value)}".encode())
    return digest.hexdigest()


def project_functions(func: t.Callable[..., t.Any], *, with_mixmesh: bool = True) -> t.Iterator[t.Callable[..., t.Any]]:
    """``func`` and the project functions it calls, at any depth, each once."""
    seen: t.Set[int] = set()
    pending = [func]
    while pending:
        function = pending.pop()
        function = getattr(function, "__wrapped__", function)
        if id(function) in seen or not inspect.isfunction(function):
            continue
        seen.add(id(function))
        yield function
        for name in _global_names(function.__code__):
            value = function.__globals__.get(name)
            if _is_project_function(value, function, with_mixmesh=with_mixmesh):
                pending.append(value)


def _global_names(code: pytypes.CodeType) -> t.Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, pytypes.CodeType):
            yield from _global_names(const)


def _is_project_function(value: t.Any, caller: t.Callable[..., t.Any], *, with_mixmesh: bool = True) -> bool:
    value = getattr(value, "__wrapped__", value)
    if not inspect.isfunction(value):
        return False
    if not with_mixmesh and (value.__module__ or "").partition(".")[0] == "mixmesh":
        return False
    if value.__globals__ is caller.__globals__:
        return True
    module = sys.modules.get(value.__module__ or "")
    file = getattr(module, "__file__", None) or ""
    return bool(file) and "site-packages" not in file


def _identity(value: t.Any) -> str:
    """What a global stands for: its value for data (as SQLMesh stores it), else its name."""
    if isinstance(value, (int, float, str, bytes, bool, tuple, list, dict, set, frozenset)):
        return repr(value)
    return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', type(value).__name__)}"


def string_constants(code: pytypes.CodeType) -> t.Iterator[str]:
    """The string constants of compiled code and of the code nested in it (SQL it holds)."""
    for const in code.co_consts:
        if isinstance(const, str):
            yield const
        elif isinstance(const, pytypes.CodeType):
            yield from string_constants(const)

"""Import paths that must not change when code moves.

Projects import mixmesh's public names from the paths the docs give (``from mixmesh.functions
import udf``), and SQLMesh stores those imports in every project's state, spelled from each
object's ``__module__``: a new spelling would change every model's fingerprint and rebuild
every user's tables. So each public module keeps its path as a module alias (``shim``), and
the objects defined behind it keep that path as their ``__module__`` (``keep_import_path``).
"""

from __future__ import annotations

import sys
import typing as t


def keep_import_path(namespace: t.Dict[str, t.Any], path: str) -> None:
    """Give the public classes and functions a module defines the path projects import them from."""
    defined_here = namespace["__name__"]
    for name, value in list(namespace.items()):
        if name.startswith("_") or getattr(value, "__module__", None) != defined_here:
            continue
        if isinstance(value, type) or callable(value):
            try:
                value.__module__ = path
            except (AttributeError, TypeError):  # a builtin or a frozen object: left as it is
                pass


def shim(path: str, module: t.Any) -> None:
    """Make ``path`` the same module object as ``module`` (its code moved there)."""
    sys.modules[path] = module

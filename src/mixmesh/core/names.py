"""Names: of models as people write them, of functions in the engine, and import paths
that must not change when code moves.

Projects import mixmesh's public names from the paths the docs give (``from mixmesh.functions
import udf``), and SQLMesh stores those imports in every project's state, spelled from each
object's ``__module__``: a new spelling would change every model's fingerprint and rebuild
every user's tables. So each public module keeps its path as a module alias (``shim``), and
the objects defined behind it keep that path as their ``__module__`` (``keep_import_path``).
"""

from __future__ import annotations

import functools
import hashlib
import sys
import typing as t

from sqlglot import exp

from mixmesh.core.introspection import code_digest

if t.TYPE_CHECKING:
    from mixmesh.core.functions import FunctionSpec


@functools.lru_cache(maxsize=1024)
def short_name(name: str) -> str:
    """``"db"."analytics"."scored"`` as people write it: ``analytics.scored`` (cached:
    batches look it up)."""
    return ".".join(part.name for part in exp.to_table(name).parts[-2:])


def binding_name(spec: "FunctionSpec", model: t.Optional[str]) -> str:
    """The engine-side name of a function called from ``model``: the SQL name and a digest of
    the code, the types and the model, so two versions never share a binding."""
    digest = hashlib.sha256()
    digest.update(code_digest(spec.func).encode())
    digest.update(repr(sorted(spec.explicit_decorator_arguments().items())).encode())
    digest.update(repr([(arg.name, arg.accepts.shown if arg.accepts else None) for arg in spec.args]).encode())
    digest.update((model or "").encode())
    return f"{spec.name}__{digest.hexdigest()[:10]}"


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

"""mixmesh: Python functions in SQL models, Python models over safe SQL, on SQLMesh.

Only the public API lives here; it loads lazily so that ``import mixmesh`` stays light.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import typing as t

from mixmesh.core.version import __version__

_PUBLIC = {
    "udf": "mixmesh.functions",
    "count": "mixmesh.counting",
    "python_model": "mixmesh.models",
    "ModelKind": "mixmesh.models",
    "ModelContext": "mixmesh.context",
    "Retry": "mixmesh.resilience",
    "resource": "mixmesh.resources",
    "load_artifact": "mixmesh.resources",
    "CircuitBreaker": "mixmesh.resilience",
    "AwareDatetime": "mixmesh.types",
    "MixmeshError": "mixmesh.errors",
    "FunctionDefinitionError": "mixmesh.errors",
    "FunctionCallError": "mixmesh.errors",
    "FunctionRuntimeError": "mixmesh.errors",
}

__all__ = sorted(_PUBLIC) + ["__version__"]

if t.TYPE_CHECKING:
    from mixmesh.core.errors import (
        FunctionCallError,
        FunctionDefinitionError,
        FunctionRuntimeError,
        MixmeshError,
    )
    from mixmesh.pymodels.context import ModelContext
    from mixmesh.runtime.functions import udf
    from mixmesh.runtime.counting import count
    from mixmesh.pymodels.models import ModelKind, python_model
    from mixmesh.core.resilience import CircuitBreaker, Retry
    from mixmesh.runtime.resources import load_artifact, resource
    from mixmesh.core.sql_types import AwareDatetime


class _InstallAfterImport:
    """Installs mixmesh into SQLMesh right after SQLMesh's package is imported (a meta path
    finder that wraps the loader of ``sqlmesh``, and then leaves)."""

    def find_spec(self, name: str, path: t.Any = None, target: t.Any = None) -> t.Any:
        if name != "sqlmesh":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_install(module: t.Any) -> None:
            exec_module(module)
            _install_into_sqlmesh()

        spec.loader.exec_module = exec_then_install  # type: ignore[method-assign]
        return spec


def _install_into_sqlmesh() -> None:
    from mixmesh import sqlmesh as integration

    integration.install()


def __getattr__(name: str) -> t.Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'mixmesh' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


# mixmesh works inside SQLMesh when both are imported, in either order: SQLMesh's commands
# import mixmesh with the project's code (or the state's); a script may import SQLMesh after
# mixmesh. Declaring and calling functions alone never imports SQLMesh.
if "sqlmesh" in sys.modules:
    _install_into_sqlmesh()
elif not any(isinstance(finder, _InstallAfterImport) for finder in sys.meta_path):
    sys.meta_path.insert(0, _InstallAfterImport())

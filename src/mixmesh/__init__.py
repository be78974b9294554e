"""mixmesh: Python functions in SQL models, Python models over safe SQL, on SQLMesh.

Only the public API lives here; it loads lazily so that ``import mixmesh`` stays light.
"""

from __future__ import annotations

import importlib
import typing as t

__version__ = "0.1.0"

_PUBLIC = {
    "udf": "mixmesh.functions",
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
    from mixmesh.core.functions import udf
    from mixmesh.core.models import ModelKind, python_model
    from mixmesh.core.resilience import CircuitBreaker, Retry
    from mixmesh.runtime.resources import load_artifact, resource
    from mixmesh.core.sql_types import AwareDatetime


def __getattr__(name: str) -> t.Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'mixmesh' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

"""The errors mixmesh raises: each names the model, the function and the argument it is about."""

from __future__ import annotations

import typing as t
from mixmesh.core.names import keep_import_path

_MAX_VALUE_CHARS = 200


class MixmeshError(Exception):
    """Base class of every error mixmesh raises."""


# Definition and call errors are ValueErrors: SQLMesh's command line prints those as a
# one-line message instead of a traceback, wherever in loading they happen.
class FunctionDefinitionError(MixmeshError, ValueError):
    """A decorated function cannot become a SQL function (bad hint, bad name...)."""


class FunctionCallError(MixmeshError, ValueError):
    """A SQL model calls a function the wrong way (argument count, argument type)."""


class FunctionRuntimeError(MixmeshError, RuntimeError):
    """A function failed while the engine ran it, or returned something it did not declare."""


class SettingError(MixmeshError, ValueError):
    """A ``MIXMESH_*`` environment variable holds a value it cannot mean."""


def where(function: str, model: t.Optional[str]) -> str:
    """The prefix of every message: which function, called from which model."""
    return f"function {function!r}" + (f" in model {model}" if model else "")


def truncate(value: t.Any, limit: int = _MAX_VALUE_CHARS) -> str:
    """A repr short enough for an error message (rows may hold long lists)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Public names keep the path projects import them from (see mixmesh.core.names).
keep_import_path(globals(), "mixmesh.errors")

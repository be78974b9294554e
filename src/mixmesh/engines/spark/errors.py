"""Spark's errors about mixmesh functions, as messages naming the model, the function and the row.

Errors raised on an executor reach the driver as the worker's traceback, in text: mixmesh's own
errors are read back from it, so they name the model, the function and the row as on DuckDB.
"""

from __future__ import annotations

import re
import typing as t

from mixmesh.core.errors import (
    FunctionCallError,
    FunctionDefinitionError,
    FunctionRuntimeError,
    MixmeshError,
)
from mixmesh.runtime import bindings

if t.TYPE_CHECKING:
    from mixmesh.runtime.bindings import Binding



# The last of mixmesh's errors in a worker's traceback: "mixmesh.errors.FunctionRuntimeError: ..."
# (the path the errors keep, see mixmesh.core.names).
_RAISED = re.compile(r"^mixmesh\.errors\.(?P<kind>\w+): (?P<message>.*)$", re.MULTILINE)


_UNRESOLVED = re.compile(r"\[UNRESOLVED_ROUTINE\] Cannot resolve routine `(?P<name>\w+)`")


def explain_error(error: BaseException, sql: str, bound: t.Mapping[str, "Binding"]) -> t.Optional[Exception]:
    """The mixmesh error a Spark error stands for, if it is about a bound function."""
    if not type(error).__module__.startswith(("pyspark", "py4j")):
        return None
    message = str(error)
    raised = _RAISED.findall(message)
    if raised:
        kind, text = raised[-1]
        return _OUR_ERRORS.get(kind, MixmeshError)(text.strip())
    unresolved = _UNRESOLVED.search(message)
    if unresolved:
        return _unknown_function(unresolved.group("name"), message)
    return None


_OUR_ERRORS: t.Dict[str, t.Type[MixmeshError]] = {
    cls.__name__: cls for cls in (FunctionRuntimeError, FunctionCallError, FunctionDefinitionError, MixmeshError)
}


def _unknown_function(name: str, message: str) -> t.Optional[Exception]:
    """A misspelt project SQL function: say which one was likely meant."""
    import difflib


    known = bindings.known_functions()
    close = difflib.get_close_matches(name.lower(), list(known), n=1, cutoff=0.75)
    if not close:
        return None
    function = known[close[0]]
    hint = f'Did you mean the project SQL function "{function.name}"' + (
        f" ({function.location})?" if function.location else "?"
    )
    return FunctionCallError(f"{message.strip().splitlines()[0]} {hint}")

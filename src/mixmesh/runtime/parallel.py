"""Where a function's batches run on the fast path: ``@udf(parallel="auto")``, the default.

A pure-Python row function holds the GIL, so threads run its batches one at a time; worker
processes (``workers``) use every core, but share nothing with the model's process. "auto"
picks processes for a function whose behaviour cannot tell the difference, and threads for
every other (``place`` says which, and why):

- a row function (a vectorized one works in numpy or pyarrow, which release the GIL);
- deterministic (a non-deterministic one stays with the plain binding anyway);
- no retry, circuit_breaker, timeout_s or on_error, and no concurrency, rate_limit or
  cache: their state and counts live in the model's process;
- no process state in its code or in the project's helpers it calls (functions of its own
  module, or of any file outside the installed libraries): no ``@resource`` (built once per
  process), no ``mixmesh.count`` (counted in the model's process), no ``global`` or
  ``nonlocal`` assignment, and, in code that changes anything in place, no module-level or
  enclosing value that could be changed (a list, a dict, a set, an object, a class of
  the project);
- more than one core, and processes can be forked.

``MIXMESH_PARALLEL=threads`` turns "auto" into threads everywhere (``auto``, the default,
applies the rule); an explicit ``parallel="processes"`` or ``"threads"`` is kept. Batches
smaller than ``MIN_ROWS`` run in the model's process whatever the placement: sending them
costs more than it saves.
"""

from __future__ import annotations

import dis
import enum
import functools
import os
import re
import site
import sys
import sysconfig
import types
import typing as t

from mixmesh.core import settings
from mixmesh.core.errors import MixmeshError
from mixmesh.core.functions import FunctionSpec
from mixmesh.core.cpus import usable_cpus

VARIABLE = "MIXMESH_PARALLEL"
SETTINGS = ("auto", "threads")
# Below this many rows a batch runs in the model's process, and starts no worker: a statement
# that small is one batch, which a worker would only compute while this process waits (the
# fast path's batches hold 131,072 rows with workers). Two batches of a short row function
# sent at once, on a busy 2-core machine: 2 x 30,000 rows took 10 ms on threads and 29 ms in
# workers, 2 x 65,536 rows 74 ms and 69 ms (the break-even), 2 x 131,072 216 ms and 213 ms.
MIN_ROWS = 65_536
# Declarations of the resilience and I/O parameters that keep state in the model's process.
# Method names that change a container or an object in place.
_MUTATING_METHODS = frozenset({
    "append", "extend", "insert", "remove", "pop", "popitem", "clear", "add", "discard", "update",
    "setdefault", "appendleft", "extendleft", "popleft", "rotate", "sort", "reverse",
    "difference_update", "intersection_update", "symmetric_difference_update", "__setitem__",
    "__delitem__", "__iadd__", "write", "put", "put_nowait",
})
_MUTATING_OPCODES = frozenset({"STORE_ATTR", "DELETE_ATTR", "STORE_SUBSCR", "DELETE_SUBSCR"})
_ATTRIBUTE_OPCODES = frozenset({"LOAD_METHOD", "LOAD_ATTR"})
# Values a function may read without holding state: what it can change in them is not its
# own (a module's, a library function's), or nothing.
_IMMUTABLE = (str, bytes, int, float, complex, bool, type(None), frozenset, range, re.Pattern, enum.Enum,
              types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType)


class ParallelSettingError(MixmeshError, ValueError):
    """``MIXMESH_PARALLEL`` holds what it cannot mean."""


class Placement(t.NamedTuple):
    processes: bool  # True: worker processes; False: threads in the model's process
    reason: str  # why, as the fast path's decision and the monitor's path show it


def setting() -> str:
    """``MIXMESH_PARALLEL``: "auto" (the default) or "threads"; anything else is an error."""
    given = settings.get(VARIABLE, "auto").strip().lower() or "auto"
    if given not in SETTINGS:
        raise ParallelSettingError(
            f"{settings.named(VARIABLE)} must be one of {SETTINGS} (or unset: auto), got {settings.get(VARIABLE)!r}"
        )
    return given


def place(spec: FunctionSpec, *, can_fork: bool) -> Placement:
    """Where the fast path runs ``spec``'s batches (see the module's docstring)."""
    automatic = setting()  # checked on every statement: a mistyped value fails it, named
    if spec.parallel == "processes":
        if not can_fork:
            return Placement(False, "threads (processes cannot be forked here)")
        return Placement(True, "processes (declared)")
    if spec.parallel == "threads":
        return Placement(False, "threads (declared)")
    why_not = f"{VARIABLE}=threads" if automatic == "threads" else _why_not_processes(spec, can_fork)
    return Placement(why_not is None, "processes (auto)" if why_not is None else f"threads (auto: {why_not})")


def _why_not_processes(spec: FunctionSpec, can_fork: bool) -> t.Optional[str]:
    if spec.vectorized:
        return "vectorized"
    if not spec.deterministic:
        return "not deterministic"
    kept = _state_kept_in_process(spec)
    if kept:
        return f"{kept} keeps state in the model's process"
    if usable_cpus() < 2:
        return "one core"
    if not can_fork:
        return "processes cannot be forked here"
    return process_state(spec.func)


def _state_kept_in_process(spec: FunctionSpec) -> t.Optional[str]:
    if spec.on_error != "raise":
        return "on_error"
    if spec.rate_limit is not None:  # a policy too: named before the others
        return "rate_limit"
    if spec.policies is not None:
        return "retry, circuit_breaker or timeout_s"
    if spec.runs_rows_together:  # concurrency above 1, or async def: its pool or loop is in this process
        return "concurrency" if spec.concurrency > 1 else "async def"
    return "cache" if spec.cache is not None else None


def process_state(func: t.Callable[..., t.Any]) -> t.Optional[str]:
    """What in ``func`` (or a helper of its module it calls) ties it to the model's process,
    described for a message; None when nothing does."""
    seen: t.Set[types.CodeType] = set()
    pending = [(func.__code__, func.__globals__, func.__closure__ or ())]
    while pending:
        code, namespace, closure = pending.pop()
        if code in seen:
            continue
        seen.add(code)
        found, helpers = _state_in_code(code, namespace, closure, func.__globals__)
        if found:
            return found if code is func.__code__ else f"{found} (in {code.co_name})"
        pending.extend(helpers)
    return None


def _state_in_code(
    code: types.CodeType, namespace: t.Mapping[str, t.Any], closure: t.Sequence[t.Any], home: t.Mapping[str, t.Any]
) -> t.Tuple[t.Optional[str], t.List[t.Tuple[types.CodeType, t.Mapping[str, t.Any], t.Sequence[t.Any]]]]:
    """The state ``code`` touches, if any, and the helpers (same module) and nested code to scan."""
    from mixmesh.runtime import counting, resources

    mutates = False
    referenced: t.Dict[str, t.Any] = {}
    nested = [(const, namespace, ()) for const in code.co_consts if isinstance(const, types.CodeType)]
    for instruction in dis.get_instructions(code):
        name = instruction.argval if isinstance(instruction.argval, str) else None
        if instruction.opname in ("STORE_GLOBAL", "DELETE_GLOBAL"):
            return f"the global assignment to {name!r}", []
        if instruction.opname in ("STORE_DEREF", "DELETE_DEREF") and name in code.co_freevars:
            return f"the nonlocal assignment to {name!r}", []
        if instruction.opname in _MUTATING_OPCODES or (instruction.opname in _ATTRIBUTE_OPCODES and name in _MUTATING_METHODS):
            mutates = True
        if instruction.opname == "LOAD_GLOBAL" and name in namespace:
            referenced[name] = namespace[name]
    for cell, name in zip(closure, code.co_freevars):
        try:
            referenced[name] = cell.cell_contents
        except ValueError:  # an empty cell: nothing to hold
            continue
    helpers = []
    for name, value in list(referenced.items()):
        if _is_project_module(value):  # helpers.score(x): what the code reads of the module
            referenced.update({f"{name}.{attribute}": getattr(value, attribute) for attribute in code.co_names
                               if hasattr(value, attribute)})
    for name, value in referenced.items():
        if isinstance(value, resources.Resource):
            return f"the @resource {name!r}", []
        if value is counting.count or (_is_mixmesh_module(value) and "count" in code.co_names):
            return "mixmesh.count", []
        helper = getattr(value, "__wrapped__", value)  # another @udf: its function
        if isinstance(helper, types.FunctionType) and (helper.__globals__ is home or _project_code(helper.__code__)):
            helpers.append((helper.__code__, helper.__globals__, helper.__closure__ or ()))
        elif mutates and not _immutable(value):  # maybe changed in place: the change would stay in a worker
            return f"a change in place to {name!r}", []
    return None, nested + helpers


def _immutable(value: t.Any) -> bool:
    if isinstance(value, tuple):
        return all(_immutable(item) for item in value)
    if isinstance(value, type):  # a project's class may hold state in its attributes; a library's is not ours
        return not _is_project_module(sys.modules.get(value.__module__))
    return isinstance(value, _IMMUTABLE) or (callable(value) and not hasattr(value, "__dict__"))


def _is_mixmesh_module(value: t.Any) -> bool:
    return isinstance(value, types.ModuleType) and value.__name__ in ("mixmesh", "mixmesh.counting", "mixmesh.runtime.counting")


def _is_project_module(value: t.Any) -> bool:
    filename = getattr(value, "__file__", None) if isinstance(value, types.ModuleType) else None
    return filename is not None and not _is_mixmesh_module(value) and not filename.startswith(_library_paths())


def _project_code(code: types.CodeType) -> bool:
    """Code of the project (read for state), not of an installed library or the standard
    library (whose caches and registries are not the function's state)."""
    filename = code.co_filename
    return not filename.startswith("<frozen") and not filename.startswith(_library_paths())


@functools.lru_cache(maxsize=1)
def _library_paths() -> t.Tuple[str, ...]:
    paths = sysconfig.get_paths()
    found = {paths[name] for name in ("stdlib", "platstdlib", "purelib", "platlib") if name in paths}
    found.update(site.getsitepackages() + [site.getusersitepackages()])
    found.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # mixmesh itself
    return tuple(os.path.join(path, "") for path in sorted(found))

"""Provenance on the row: what produced each value of a function, recorded by the same call.

``@with_provenance(@f(...))`` binds ``f`` as a *provenance variant*: the same function, with
the same policies, cache and on_error, whose engine-side result is a STRUCT holding the value
and where it came from::

    STRUCT(value <f's type>,
           provenance STRUCT(source, function, artifact, artifact_digest, code_fingerprint, mixmesh_version))

One call gives both, so the value is never computed twice and cannot disagree with its
provenance. ``source`` is

- ``function``: the function computed it, from the artifacts it used (``artifact``,
  ``artifact_digest``: the paths as the code spells them and the SHA-256 of the bytes loaded,
  several joined with ``", "``);
- ``fallback``: a fallback gave it: the ``on_error`` function, or an artifact that did not load
  and whose ``load_artifact(..., fallback=...)`` stood in for it (``artifact`` names it,
  ``artifact_digest`` is NULL);
- ``on_error``: the ``on_error`` constant (NULL included) after the call failed;
- ``cache``: the result cache (``@udf(cache=...)``) answered without calling.

Artifacts are traced as the function uses them: ``load_artifact`` notes each load (or its
fallback) in the trace of the call running it, and a ``@resource`` notes, on every use, the
loads its build made (it is built once, used by every call).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import typing as t

import pyarrow as pa
from sqlglot import exp

from mixmesh.core import sql_types as types
from mixmesh.core.functions import FunctionSpec
from mixmesh.core.introspection import code_digest
from mixmesh.core.version import __version__

SOURCES = ("function", "fallback", "on_error", "cache")
FIELDS = ("source", "function", "artifact", "artifact_digest", "code_fingerprint", "mixmesh_version")
PROVENANCE_SQL = "STRUCT(" + ", ".join(f"{name} TEXT" for name in FIELDS) + ")"
VARIANT_MARK = "__mixmesh_provenance_of__"  # on a variant's func: the function it records


# ------------------------------------------------------------------------- artifact traces


class Trace:
    """The artifacts one call (or one resource build) used: loaded (path -> digest), and
    those that did not load and whose fallback stood in."""

    def __init__(self) -> None:
        self.loaded: t.Dict[str, str] = {}
        self.fell_back: t.List[str] = []

    def merge(self, other: "Trace") -> None:
        self.loaded.update(other.loaded)
        self.fell_back.extend(path for path in other.fell_back if path not in self.fell_back)

    def __bool__(self) -> bool:
        return bool(self.loaded or self.fell_back)


_trace: "contextvars.ContextVar[t.Optional[Trace]]" = contextvars.ContextVar("mixmesh_provenance_trace", default=None)


@contextlib.contextmanager
def tracing() -> t.Iterator[Trace]:
    """Collect what the code run inside uses (a call, a resource's build)."""
    trace = Trace()
    token = _trace.set(trace)
    try:
        yield trace
    finally:
        _trace.reset(token)


def traced() -> bool:
    """Whether something is being traced (a call recording provenance, a resource's build)."""
    return _trace.get() is not None


def note_loaded(path: str, digest: str) -> None:
    """``load_artifact`` unpickled ``path`` (as the code spells it), whose bytes have ``digest``."""
    trace = _trace.get()
    if trace is not None:
        trace.loaded[path] = digest


def note_fallback(path: str) -> None:
    """``load_artifact`` gave its fallback instead of ``path``."""
    trace = _trace.get()
    if trace is not None and path not in trace.fell_back:
        trace.fell_back.append(path)


def note_used(built: t.Optional[Trace]) -> None:
    """A resource built with ``built`` was used: its artifacts are the caller's too."""
    trace = _trace.get()
    if trace is not None and built:
        trace.merge(built)


# ------------------------------------------------------------------------ provenance records


@dataclasses.dataclass(frozen=True)
class Recorder:
    """Builds the provenance records of one function."""

    function: str
    code_fingerprint: str

    def record(self, source: str, trace: t.Optional[Trace] = None) -> t.Dict[str, t.Optional[str]]:
        artifact, digest = None, None
        if trace is not None and trace.fell_back:  # a stand-in answered: that is the row's story
            source, artifact = "fallback", ", ".join(trace.fell_back)
        elif trace is not None and trace.loaded:
            artifact = ", ".join(sorted(trace.loaded))
            digest = ", ".join(trace.loaded[path] for path in sorted(trace.loaded))
        return {"source": source, "function": self.function, "artifact": artifact, "artifact_digest": digest,
                "code_fingerprint": self.code_fingerprint, "mixmesh_version": __version__}


def provenance_type() -> exp.DataType:
    return types.parse_sql_type(PROVENANCE_SQL)


def variant_returns(spec: FunctionSpec) -> exp.DataType:
    """``STRUCT(value <type>, provenance STRUCT(...))``."""
    return exp.DataType(
        this=exp.DataType.Type.STRUCT,
        expressions=[
            exp.ColumnDef(this=exp.to_identifier("value"), kind=spec.returns.copy()),
            exp.ColumnDef(this=exp.to_identifier("provenance"), kind=provenance_type()),
        ],
        nested=True,
    )


def is_variant(spec: FunctionSpec) -> bool:
    return getattr(spec.func, VARIANT_MARK, None) is not None


def recorded_spec(spec: FunctionSpec) -> FunctionSpec:
    """``spec`` as ``@with_provenance`` binds it: each value paired with its provenance."""
    if is_variant(spec):
        return spec
    fingerprint = code_digest(spec.func, with_mixmesh=False)  # equal across folders and engines
    recorder = Recorder(spec.name, fingerprint[:16])
    if spec.vectorized:
        func, on_error = _vectorized(spec, recorder, fingerprint), _vectorized_on_error(spec, recorder)
    else:
        func, on_error = _row(spec, recorder, fingerprint), _row_on_error(spec, recorder)
    return dataclasses.replace(
        spec, func=func, on_error=on_error, returns=variant_returns(spec), returns_hint=None,
        returns_not_null=False, pandas_batches=spec.pandas_batches,
    )


# The wrappers are compiled with the function's code fingerprint as a constant: mixmesh tells
# functions apart by their code (binding names, cache fingerprints), and every variant would
# otherwise share this module's one wrapper code.
_ROW_WRAPPER = '''
def call(*args):
    "{fingerprint}"
    with tracing() as trace:
        value = func(*args)
    return {{"value": value, "provenance": record("function", trace)}}
'''

_ASYNC_ROW_WRAPPER = '''
async def call(*args):
    "{fingerprint}"
    with tracing() as trace:
        value = await func(*args)
    return {{"value": value, "provenance": record("function", trace)}}
'''

_VECTORIZED_WRAPPER = '''
def call(*args):
    "{fingerprint}"
    with tracing() as trace:
        result = func(*args)
    return paired(result, args, record("function", trace))
'''


def _compiled(template: str, spec: FunctionSpec, fingerprint: str, names: t.Dict[str, t.Any]) -> t.Callable[..., t.Any]:
    namespace: t.Dict[str, t.Any] = {"tracing": tracing, "func": spec.func, **names}
    exec(compile(template.format(fingerprint=fingerprint), f"<mixmesh provenance of {spec.name}>", "exec"), namespace)
    call = namespace["call"]
    call.__module__ = spec.func.__module__
    call.__qualname__ = spec.func.__qualname__
    call.__name__ = spec.func.__name__
    setattr(call, VARIANT_MARK, spec.func)
    return call


def _row(spec: FunctionSpec, recorder: Recorder, fingerprint: str) -> t.Callable[..., t.Any]:
    template = _ASYNC_ROW_WRAPPER if spec.is_async else _ROW_WRAPPER
    return _compiled(template, spec, fingerprint, {"record": recorder.record})


def _row_on_error(spec: FunctionSpec, recorder: Recorder) -> t.Any:
    on_error = spec.on_error
    if on_error == "raise":
        return on_error
    if callable(on_error):
        def fallback(*row: t.Any) -> t.Dict[str, t.Any]:
            return {"value": on_error(*row), "provenance": recorder.record("fallback")}

        return fallback
    constant = None if on_error == "null" else on_error
    return lambda *row: {"value": constant, "provenance": recorder.record("on_error")}


def _vectorized(spec: FunctionSpec, recorder: Recorder, fingerprint: str) -> t.Callable[..., t.Any]:
    def paired(result: t.Any, args: t.Sequence[t.Any], record: t.Dict[str, t.Any]) -> pa.Array:
        return _paired(spec, result, _rows(args), record)

    return _compiled(_VECTORIZED_WRAPPER, spec, fingerprint, {"record": recorder.record, "paired": paired})


def _vectorized_on_error(spec: FunctionSpec, recorder: Recorder) -> t.Any:
    on_error = spec.on_error
    if on_error == "raise":
        return on_error
    if callable(on_error):
        def fallback(*batch: t.Any) -> pa.Array:
            return _paired(spec, on_error(*batch), _rows(batch), recorder.record("fallback"))

        return fallback
    constant = None if on_error == "null" else on_error

    def constant_batch(*batch: t.Any) -> pa.Array:
        return _paired(spec, [constant] * _rows(batch), _rows(batch), recorder.record("on_error"))

    return constant_batch


def _rows(batch: t.Sequence[t.Any]) -> int:
    return len(batch[0]) if batch else 0


_converters: t.Dict[int, t.Any] = {}  # id(spec) -> BatchFunction: the return rules of the function


def _paired(spec: FunctionSpec, result: t.Any, rows: int, record: t.Dict[str, t.Any]) -> pa.Array:
    """A vectorized result (any form a vectorized function may return) as the variant's
    STRUCT array: the values by the return rules, and the batch's one provenance record."""
    from mixmesh.runtime.batches import BatchFunction

    converter = _converters.get(id(spec))
    if converter is None or converter.spec is not spec:
        converter = _converters[id(spec)] = BatchFunction(spec)
    values = converter.batch_values(result, rows)
    provenance = pa.array([record] * rows, type=types.to_arrow(provenance_type()))
    return pa.StructArray.from_arrays([values, provenance], names=["value", "provenance"])


def from_cache(values: pa.Array, hits: t.Sequence[bool]) -> pa.Array:
    """A variant's results with the rows the cache answered marked ``cache``."""
    if not isinstance(values, pa.StructArray) or not any(hits):
        return values
    records = values.field("provenance").to_pylist()
    for position, hit in enumerate(hits):
        if hit and records[position] is not None:
            records[position] = {**records[position], "source": "cache"}
    provenance = pa.array(records, type=values.type.field("provenance").type)
    return pa.StructArray.from_arrays([values.field("value"), provenance], names=["value", "provenance"],
                                      mask=values.is_null() if values.null_count else None)

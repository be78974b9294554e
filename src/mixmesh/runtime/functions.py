"""``@udf``: a plain Python function becomes a function SQL models can call.

The decorator reads the function's declaration once (``mixmesh.core.functions``). The
decorated object stays a plain callable for unit tests (a vectorized function called with
one row's values runs on a batch of one row); called by SQLMesh's macro evaluator
(``@name(...)`` in a model) it expands into a call of the function bound in the engine (see
``mixmesh.sqlmesh.calls``). Decorating imports no SQLMesh module.
"""

from __future__ import annotations

import functools
import inspect
import typing as t

from mixmesh.core import sql_types as types
from mixmesh.core.functions import (
    F,
    FunctionSpec,
    _is_batch,
    _is_macro_evaluator,
    _policies,
    build_spec,
)
from mixmesh.core.names import keep_import_path
from mixmesh.runtime.batches import BatchFunction

__all__ = ["FunctionSpec", "Udf", "udf"]


class Udf:
    """A Python function callable from SQL models; calling it from Python runs the function."""

    # How a call in a model expands (``@name(...)``, called with SQLMesh's macro evaluator):
    # set by the SQLMesh integration when it installs (``mixmesh.sqlmesh``), which happens
    # before SQLMesh evaluates any macro; declaring and calling never need it.
    expand_in_model: t.ClassVar[t.Callable[..., t.Any]]

    def __init__(self, func: t.Callable[..., t.Any], spec: FunctionSpec) -> None:
        functools.update_wrapper(self, func)
        # SQLMesh coerces macro arguments to the annotated types; ours are SQL expressions.
        self.__annotations__ = {}
        self.spec = spec
        # SQLMesh binds macro arguments against this signature: the evaluator, then SQL args.
        self.__signature__ = inspect.Signature(
            [
                inspect.Parameter("evaluator", inspect.Parameter.POSITIONAL_ONLY),
                inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
                inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),  # @f(n := cnt)
            ]
        )
        # SQLMesh serializes a macro as the source of its __wrapped__ function when it sees this.
        setattr(self, "__sqlmesh__macro__", True)

    def __call__(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
        if args and _is_macro_evaluator(args[0]):
            return self.expand_in_model(self, args[0], args[1:], kwargs)
        if self.spec.vectorized and not kwargs and args and not any(_is_batch(a) for a in args):
            return self._call_one_row(args)
        return self.__wrapped__(*args, **kwargs)  # type: ignore[attr-defined]

    def _call_one_row(self, row: t.Sequence[t.Any]) -> t.Any:
        """A vectorized function called with one row's Python values (a unit test's call):
        a batch of one row goes in, the one value comes out."""
        import pyarrow as pa

        batch = []
        for arg, value in zip(self.spec.args, row):
            if arg.sql_type is None:  # the call site decides; here, the value
                batch.append(pa.array([types.arrow_ready(value)]))
                continue
            target = types.to_arrow(arg.sql_type)
            try:
                batch.append(pa.array([types.arrow_ready(value)], type=target))
            except (pa.ArrowException, TypeError, ValueError):
                batch.append(pa.array([types.arrow_ready(value)]).cast(target))  # '2024-01-01 10:00' -> TIMESTAMP
        return BatchFunction(self.spec)(*batch)[0].as_py()

    def __repr__(self) -> str:
        return f"<mixmesh function {self.spec.name}>"


@t.overload
def udf(func: F) -> F: ...


@t.overload
def udf(
    *,
    name: t.Optional[str] = None,
    args: t.Optional[t.Union[t.Sequence[str], t.Mapping[str, str]]] = None,
    returns: t.Optional[str] = None,
    vectorized: t.Union[bool, str] = False,
    null_handling: str = "strict",
    on_error: t.Any = "raise",
    retry: t.Optional[t.Any] = None,
    circuit_breaker: t.Optional[t.Any] = None,
    timeout_s: t.Optional[float] = None,
    parallel: str = "threads",
    deterministic: bool = True,
    concurrency: int = 1,
    rate_limit: t.Optional[str] = None,
    cache: t.Any = None,
) -> t.Callable[[F], F]: ...


def udf(
    func: t.Optional[t.Callable[..., t.Any]] = None,
    *,
    name: t.Optional[str] = None,
    args: t.Optional[t.Union[t.Sequence[str], t.Mapping[str, str]]] = None,
    returns: t.Optional[str] = None,
    vectorized: t.Union[bool, str] = False,
    null_handling: str = "strict",
    on_error: t.Any = "raise",
    retry: t.Optional[t.Any] = None,
    circuit_breaker: t.Optional[t.Any] = None,
    timeout_s: t.Optional[float] = None,
    parallel: str = "threads",
    deterministic: bool = True,
    concurrency: int = 1,
    rate_limit: t.Optional[str] = None,
    cache: t.Any = None,
) -> t.Any:
    """Make a Python function callable from SQL models as ``@name(...)``.

    Args:
        name: the SQL name; the function's own name by default.
        args: SQL types of the arguments, all in order or some by name, where hints don't say.
        returns: SQL type of the result, where the return hint doesn't say; ``"DOUBLE NOT
            NULL"`` promises the function never returns None (as ``-> float`` does, where
            ``-> Optional[float]`` does not), which lets engines skip NULL rows faster.
        vectorized: receive whole batches (pyarrow arrays, or pandas Series when the hints
            say ``pd.Series`` or ``vectorized="pandas"``) instead of one row's values.
        null_handling: "strict" (a NULL argument gives NULL without calling) or "call".
        on_error: what a row (or, vectorized, a batch's failing rows) gets when the function
            raises: "raise" (the model fails, naming the row), "null", a constant, or a
            fallback function called with the same arguments.
        retry: a ``Retry`` policy for recoverable errors (the function is called again).
        circuit_breaker: a ``CircuitBreaker``; while open, calls go straight to on_error.
        timeout_s: give up on a call (a row, or a batch) after this many seconds: it counts
            as a TimeoutError (retried by ``retry``, then on_error); the hung call is left to
            finish in the background, the query goes on.
        parallel: how batches run on the fast path (see docs/fast-path.md): "threads" (the
            default; vectorized functions use as many threads as the engine, which pays off
            where they release the GIL, as numpy and pyarrow do) or "processes": worker
            processes, one per core, for pure-Python functions that hold the GIL. Worker
            processes share nothing with the model's process, so this is for functions
            without retry, circuit_breaker, timeout_s or on_error, whose state lives there.
        deterministic: False for a function whose result may differ for the same arguments
            (random numbers, the clock, a remote service): engines then call it for every
            occurrence and every row, never once for two equal calls, and the fast path
            leaves it to the plain binding.
        concurrency: row calls in flight at once, per process (for functions that wait on a
            service): a plain function's rows run on a pool of this many threads, an ``async
            def`` function's as coroutines on one event loop, this many at a time. Results
            keep their rows' order; retries, timeouts, the breaker and on_error act per row.
        rate_limit: at most this many calls, ``"N/s"``, ``"N/min"`` or ``"N/h"``, per process,
            shared by all its threads; each attempt (a retry's too) waits for its turn.
        cache: keep the results in the project's warehouse (schema ``mixmesh_cache``), keyed
            by the function's code and the argument values, so that any later run, process or
            environment calling it with the same arguments reads the result instead of calling:
            True (kept until the code changes or ``mixmesh cache --clear``), or a time to live
            ("7d", "12h", "30min", "45s", a ``datetime.timedelta``). For deterministic=True
            functions only; rows given an on_error value are not kept.
    """

    def decorate(function: t.Callable[..., t.Any]) -> Udf:
        from mixmesh.core.rate_limit import parse_rate_limit

        limit = parse_rate_limit(rate_limit, name or getattr(function, "__name__", repr(function)))
        spec = build_spec(
            function,
            name=name,
            args=args,
            returns=returns,
            vectorized=vectorized,
            null_handling=null_handling,
            on_error=on_error,
            policies=_policies(function, retry, circuit_breaker, timeout_s, limit),
            parallel=parallel,
            deterministic=deterministic,
            concurrency=concurrency,
            rate_limit=limit,
            cache=cache,
        )
        # Marks the plain function, which is what SQLMesh serializes (see mixmesh.sqlmesh.source).
        function.__mixmesh_spec__ = spec  # type: ignore[attr-defined]
        return Udf(function, spec)

    return decorate(func) if func is not None else decorate


# Public names keep the path projects import them from (see mixmesh.core.names).
keep_import_path(globals(), "mixmesh.functions")

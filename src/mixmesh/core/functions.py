"""A function's declaration: what ``@udf`` reads from a Python function (``FunctionSpec``).

The SQL name, each argument's type or what its hint accepts, the return type, the mode,
NULL handling and the policies are read once, from the signature and the decorator's
arguments, and refused with an error naming the function and the argument where they
cannot become a SQL function. The decorator itself is ``mixmesh.runtime.functions.udf``.

Longer than 450 lines because reading a signature is one pass: the decorator's arguments,
the hints and the checks refer to one another, argument by argument.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import sys
import typing as t

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from mixmesh.core import accepts as accepts_
from mixmesh.core import caching
from mixmesh.core import sql_types as types
from mixmesh.core.errors import FunctionDefinitionError
from mixmesh.core.names import keep_import_path

F = t.TypeVar("F", bound=t.Callable[..., t.Any])

# What a vectorized function receives for each argument.
ARROW, PANDAS = "arrow", "pandas"
NULL_HANDLING = ("strict", "call")
PARALLEL = ("threads", "processes")
NOT_NULL = "NOT NULL"
_SQL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclasses.dataclass(frozen=True)
class Argument:
    """One argument of a function: its name, what it accepts and how Python receives it.

    ``sql_type`` is the type it is bound with: at a call site, the one ``accepts`` resolved
    from the call site's type (``FunctionSpec.resolved``); before, the type the hint gives
    without a call site (``int``: BIGINT), or None where the call site alone decides (``Any``).
    """

    name: str
    sql_type: t.Optional[exp.DataType]
    hint: t.Any = None
    accepts: t.Optional[accepts_.Accepts] = None
    explicit: bool = False  # its SQL type was given with args=

    @property
    def batch_kind(self) -> str:
        return PANDAS if _is_pandas_hint(self.hint) else ARROW

    def python_converter(self) -> t.Optional[t.Callable[[t.Any], t.Any]]:
        """How the engine's value becomes the value the hint asks for (None: as it is)."""
        steps = [
            self.accepts.python_converter(self.sql_type) if self.accepts and self.sql_type is not None else None,
            accepts_.values_converter(self.sql_type) if self.sql_type is not None else None,
            types.python_converter(self.hint),
        ]
        steps = [step for step in steps if step is not None]
        if len(steps) <= 1:
            return steps[0] if steps else None
        return lambda value: functools.reduce(lambda converted, step: step(converted), steps, value)


@dataclasses.dataclass(frozen=True)
class FunctionSpec:
    """Everything an engine needs to know to bind a Python function."""

    name: str
    func: t.Callable[..., t.Any]
    args: t.Tuple[Argument, ...]
    returns: exp.DataType
    vectorized: bool = False
    null_handling: str = "strict"
    returns_hint: t.Any = None
    returns_not_null: bool = False  # "-> float" (not Optional) or returns="DOUBLE NOT NULL"
    pandas_batches: bool = False  # vectorized="pandas": every argument arrives as a Series
    on_error: t.Any = "raise"  # "raise", "null", a constant, or a fallback function
    policies: t.Any = None  # a resilience.Policy (retries, circuit breaker) or None
    parallel: str = "threads"  # on the fast path: batches on threads, or in worker processes
    deterministic: bool = True  # the same arguments always give the same result
    concurrency: int = 1  # row calls in flight at once, per process (a pool or an event loop)
    rate_limit: t.Any = None  # a rate_limit.RateLimit: calls per second, per process

    @property
    def is_async(self) -> bool:
        """An ``async def`` function: its rows run as coroutines on an event loop."""
        return inspect.iscoroutinefunction(self.func)

    @property
    def runs_rows_together(self) -> bool:
        """Whether an engine hands this row function whole batches, so that several of its
        rows can be in flight at once (``concurrency`` above 1, or ``async def``)."""
        return not self.vectorized and (self.concurrency > 1 or self.is_async)
    cache: t.Any = None  # a caching.CachePolicy: results kept in the warehouse; None: not cached

    @property
    def is_protected(self) -> bool:
        """Whether calls go through error handling beyond "the model fails"."""
        return self.on_error != "raise" or self.policies is not None

    @property
    def qualified(self) -> str:
        """How messages name the function: its SQL name and where it is defined."""
        return f"{self.name} ({self.func.__module__}.{self.func.__qualname__})"

    def explicit_decorator_arguments(self) -> t.Dict[str, t.Any]:
        """The decorator arguments that pin this spec without any type hint.

        SQLMesh stores functions as source with their return annotation removed; mixmesh
        stores this explicit form instead, so the state alone says what the types are. The
        argument hints stay in the source (``hints_to_keep``): they say what each argument
        accepts, which only a call site turns into a SQL type.
        """
        arguments: t.Dict[str, t.Any] = {"name": self.name}
        explicit = {arg.name: types.sql(arg.sql_type) for arg in self.args if arg.explicit and arg.sql_type is not None}
        if explicit:
            arguments["args"] = explicit
        arguments["returns"] = types.sql(self.returns) + (f" {NOT_NULL}" if self.returns_not_null else "")
        if self.vectorized:
            arguments["vectorized"] = PANDAS if self.pandas_batches else True
        if self.null_handling != "strict":
            arguments["null_handling"] = self.null_handling
        return arguments

    @property
    def may_return_null(self) -> bool:
        """Whether the function may return None for arguments that are not NULL.

        A return hint that is not ``Optional[...]`` (or ``returns="... NOT NULL"``) says it
        cannot, and engines use a stricter, faster contract then.
        """
        return not self.returns_not_null

    def hints_to_keep(self) -> t.List[str]:
        """Arguments whose hints the stored source keeps: all but those args= typed."""
        return [arg.name for arg in self.args if not arg.explicit]

    def resolved(self, bound: t.Sequence[exp.DataType]) -> "FunctionSpec":
        """This function as bound at one call site, each argument with the type resolved there."""
        args = tuple(dataclasses.replace(arg, sql_type=sql_type) for arg, sql_type in zip(self.args, bound))
        return dataclasses.replace(self, args=args)

    def order_arguments(self, positional: t.Sequence[t.Any], keywords: t.Mapping[str, t.Any]) -> t.List[t.Any]:
        """A call's arguments in parameter order, bound as Python binds them; a TypeError says
        what is wrong (too many, unknown name, given twice, missing)."""
        signature = inspect.Signature(
            [inspect.Parameter(arg.name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for arg in self.args]
        )
        lowered = {arg.name.lower(): arg.name for arg in self.args}
        unknown = [key for key in keywords if key.lower() not in lowered]
        if unknown:
            raise TypeError(f"unknown keyword argument(s) {unknown}")
        named = {lowered.get(key.lower(), key): value for key, value in keywords.items()}
        bound = signature.bind(*positional, **named)
        return [bound.arguments[arg.name] for arg in self.args]

    def receives_pandas(self, arg: Argument) -> bool:
        """Whether a vectorized function gets this argument as a pandas Series."""
        return self.pandas_batches or arg.batch_kind == PANDAS


def build_spec(
    func: t.Callable[..., t.Any],
    *,
    name: t.Optional[str],
    args: t.Optional[t.Union[t.Sequence[str], t.Mapping[str, str]]],
    returns: t.Optional[str],
    vectorized: t.Union[bool, str],
    null_handling: str,
    on_error: t.Any = "raise",
    policies: t.Any = None,
    parallel: str = "threads",
    deterministic: bool = True,
    concurrency: int = 1,
    rate_limit: t.Any = None,
    cache: t.Any = None,
) -> FunctionSpec:
    """Read a function's hints and the decorator arguments into a FunctionSpec."""
    if not inspect.isfunction(func):
        raise FunctionDefinitionError(f"@udf decorates a function, got {func!r}")
    if inspect.isasyncgenfunction(func):
        raise FunctionDefinitionError(
            f"@udf {func.__qualname__}: an async generator cannot be called from SQL; define it with "
            "async def returning one value per row"
        )
    sql_name = _check_sql_name(func.__name__ if name is None else name, func)
    if null_handling not in NULL_HANDLING:
        raise FunctionDefinitionError(
            f"@udf {sql_name}: null_handling must be one of {NULL_HANDLING}, got {null_handling!r}"
        )
    if vectorized not in (True, False, ARROW, PANDAS):
        raise FunctionDefinitionError(
            f"@udf {sql_name}: vectorized must be True, False, 'arrow' or 'pandas', got {vectorized!r}"
        )
    hints = _hints(func, sql_name)
    parameters = _parameters(func, sql_name)
    if not parameters:
        raise FunctionDefinitionError(
            f"@udf {sql_name}: a function called from SQL takes at least one argument "
            "(a constant belongs in SQL)"
        )
    explicit = _explicit_arg_types(args, parameters, sql_name)
    batch_default = _batch_hint(vectorized)
    arguments = tuple(
        _argument(sql_name, position, param, explicit.get(param), hints.get(param, batch_default), vectorized, func.__globals__)
        for position, param in enumerate(parameters, start=1)
    )
    returns_hint = hints.get("return", batch_default)
    pandas_batches = vectorized == PANDAS or (
        bool(vectorized)
        and (any(arg.batch_kind == PANDAS for arg in arguments) or _is_pandas_hint(returns_hint))
    )
    returns, returns_not_null = _split_not_null(returns, sql_name)
    if returns is None:
        returns_not_null = returns_hint is not None and not types.is_optional(returns_hint)
    if on_error == "null" or (on_error is None):
        returns_not_null = False  # the fallback itself is NULL
    spec = FunctionSpec(
        name=sql_name,
        func=func,
        args=arguments,
        returns=_explicit(sql_name, "returns", returns)
        if returns
        else _hint_type(sql_name, "the return value", returns_hint, vectorized),
        vectorized=bool(vectorized),
        null_handling=null_handling,
        returns_hint=returns_hint,
        returns_not_null=returns_not_null and not vectorized,
        pandas_batches=pandas_batches,
        on_error=on_error,
        policies=policies,
        parallel=parallel,
        deterministic=bool(deterministic),
        concurrency=concurrency,
        rate_limit=rate_limit,
        cache=caching.policy_of(sql_name, cache, deterministic=bool(deterministic)),
    )
    _check_on_error(spec)
    _check_parallel(spec)
    _check_concurrency(spec)
    return spec


def _check_concurrency(spec: "FunctionSpec") -> None:
    """Calls in flight are a row function's: a vectorized one receives whole batches."""
    concurrency = spec.concurrency
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise FunctionDefinitionError(
            f"@udf {spec.name}: concurrency must be a whole number of calls in flight, at least 1, got {concurrency!r}"
        )
    if spec.vectorized and (concurrency > 1 or spec.is_async):
        what = "concurrency > 1" if concurrency > 1 else "async def"
        raise FunctionDefinitionError(
            f"@udf {spec.name}: {what} is for row functions; a vectorized function receives whole batches, "
            "one call per batch. Drop vectorized=True to have up to N rows in flight, or keep it and drop "
            f"{'concurrency' if concurrency > 1 else 'async'}"
        )
    if spec.parallel == "processes" and spec.runs_rows_together:
        raise FunctionDefinitionError(
            f"@udf {spec.name}: parallel='processes' and concurrency run rows two different ways; use one"
        )


def _check_parallel(spec: "FunctionSpec") -> None:
    if spec.parallel not in PARALLEL:
        raise FunctionDefinitionError(
            f"@udf {spec.name}: parallel must be one of {PARALLEL}, got {spec.parallel!r}"
        )
    if spec.parallel == "processes" and spec.is_protected:
        raise FunctionDefinitionError(
            f"@udf {spec.name}: parallel='processes' runs the function in worker processes, which "
            "share nothing with the model's process; retry, circuit_breaker, timeout_s, rate_limit and on_error "
            "keep their state and counts there. Use one or the other"
        )
    if spec.parallel == "processes" and spec.cache is not None:
        raise FunctionDefinitionError(
            f"@udf {spec.name}: parallel='processes' runs the function in worker processes, which cannot "
            "read or write the warehouse's result cache; use cache= with parallel='threads'"
        )


def _policies(
    func: t.Callable[..., t.Any], retry: t.Any, circuit_breaker: t.Any, timeout_s: t.Any, rate_limit: t.Any = None
) -> t.Any:
    """The policies around each call, outermost first: breaker, retries, the rate limit (each
    attempt takes a token), then the timeout (which does not count the wait for a token)."""
    from mixmesh.core.rate_limit import RateLimited
    from mixmesh.core.resilience import CircuitBreaker, Policies, Retry, Timeout

    for value, kind, name in ((retry, Retry, "retry"), (circuit_breaker, CircuitBreaker, "circuit_breaker")):
        if value is not None and not isinstance(value, kind):
            raise FunctionDefinitionError(
                f"@udf {func.__name__}: {name}= takes a mixmesh {kind.__name__}(...), got {value!r}"
            )
        if value is not None and value.problems():
            raise FunctionDefinitionError(f"@udf {func.__name__}: {name}={kind.__name__}(...): {'; '.join(value.problems())}")
    try:
        timeout = Timeout(timeout_s) if timeout_s is not None else None
    except (TypeError, ValueError):
        raise FunctionDefinitionError(
            f"@udf {func.__name__}: timeout_s must be a positive, finite number of seconds, got {timeout_s!r}"
        ) from None
    limited = RateLimited(rate_limit) if rate_limit is not None else None
    chosen = [policy for policy in (circuit_breaker, retry, limited, timeout) if policy is not None]
    return Policies(chosen) if chosen else None


def _check_on_error(spec: "FunctionSpec") -> None:
    """A constant fallback must be a value of the declared type (checked now, not mid-run)."""
    fallback = spec.on_error
    if isinstance(fallback, type) and issubclass(fallback, BaseException):
        # A class is callable, so it would pass as a fallback and put an exception object in the row.
        raise FunctionDefinitionError(
            f"@udf {spec.name}: on_error={fallback.__name__} is an exception class; on_error says what "
            f"a failing row gets ('raise', 'null', a value or a function), not which errors to catch"
        )
    if fallback in ("raise", "null", None) or callable(fallback):
        return
    import pyarrow as pa

    try:
        pa.array([types.arrow_ready(fallback)], type=types.to_arrow(spec.returns))
    except (pa.ArrowException, TypeError, ValueError) as error:
        raise FunctionDefinitionError(
            f"@udf {spec.name}: on_error={fallback!r} is not a value of the declared "
            f"{types.sql(spec.returns)} ({error}); use 'raise', 'null', a value or a function"
        ) from None


def _split_not_null(returns: t.Optional[str], sql_name: str = "") -> t.Tuple[t.Optional[str], bool]:
    """``"DOUBLE NOT NULL"`` -> ("DOUBLE", True): the function never returns None."""
    if returns is None:
        return None, False
    if not isinstance(returns, str) or not returns.strip():
        raise FunctionDefinitionError(
            f"@udf {sql_name}: returns= takes a SQL type as a string, e.g. returns='DOUBLE', got {returns!r}"
        )
    text = returns.strip()
    if text.upper().endswith(NOT_NULL):
        return text[: -len(NOT_NULL)].strip(), True
    return text, False


def _check_sql_name(sql_name: str, func: t.Callable[..., t.Any]) -> str:
    if not isinstance(sql_name, str) or not _SQL_NAME.match(sql_name):
        raise FunctionDefinitionError(
            f"@udf {func.__qualname__}: {sql_name!r} is not a valid SQL function name "
            "(letters, digits and underscores, not starting with a digit)"
        )
    if sql_name.upper() in _sql_builtin_names():
        raise FunctionDefinitionError(
            f"@udf {func.__qualname__}: the name {sql_name!r} is a SQL built-in function; "
            f"give another with @udf(name=...) so models say which one they mean"
        )
    return sql_name.lower()


@functools.lru_cache(maxsize=1)
def _sql_builtin_names() -> t.FrozenSet[str]:
    """Function names SQL already has, in any dialect mixmesh runs on."""
    names: t.Set[str] = set()
    for dialect in ("duckdb", "spark"):
        parser = Dialect.get_or_raise(dialect).parser_class
        names.update(parser.FUNCTIONS)
        names.update(parser.FUNCTION_PARSERS)
    return frozenset(name.upper() for name in names)


def _hints(func: t.Callable[..., t.Any], sql_name: str) -> t.Dict[str, t.Any]:
    try:
        return t.get_type_hints(func, include_extras=True)
    except Exception as error:
        raise FunctionDefinitionError(f"@udf {sql_name}: cannot read the type hints: {error}") from None


def _parameters(func: t.Callable[..., t.Any], sql_name: str) -> t.List[str]:
    parameters = []
    for param in inspect.signature(func).parameters.values():
        if param.kind not in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            raise FunctionDefinitionError(
                f"@udf {sql_name}: parameter {param.name!r} is {param.kind.description}; "
                "SQL passes a fixed number of positional arguments"
            )
        parameters.append(param.name)
    return parameters


def _explicit_arg_types(
    args: t.Optional[t.Union[t.Sequence[str], t.Mapping[str, str]]],
    parameters: t.List[str],
    sql_name: str,
) -> t.Dict[str, exp.DataType]:
    if args is None:
        return {}
    if isinstance(args, str):
        raise FunctionDefinitionError(
            f"@udf {sql_name}: args= takes a list of SQL types in parameter order, or a mapping "
            f"from parameter name to SQL type; got the string {args!r}"
        )
    if isinstance(args, t.Mapping):
        unknown = sorted(set(args) - set(parameters))
        if unknown:
            raise FunctionDefinitionError(
                f"@udf {sql_name}: args= names {unknown}, which are not parameters of the function "
                f"(it has {parameters})"
            )
        return {param: _explicit(sql_name, f"args[{param!r}]", sql) for param, sql in args.items()}
    if len(args) != len(parameters):
        raise FunctionDefinitionError(
            f"@udf {sql_name}: args= gives {len(args)} SQL types "
            f"for {len(parameters)} parameters {parameters}"
        )
    return {
        param: _explicit(sql_name, f"argument {position} ({param})", sql)
        for position, (param, sql) in enumerate(zip(parameters, args), start=1)
    }


def _explicit(sql_name: str, what: str, sql: str) -> exp.DataType:
    try:
        return types.parse_sql_type(sql)
    except types.NoSqlType as error:
        raise FunctionDefinitionError(f"@udf {sql_name}: {what}: {error}") from None


def _argument(
    sql_name: str,
    position: int,
    param: str,
    explicit: t.Optional[exp.DataType],
    hint: t.Any,
    vectorized: t.Union[bool, str],
    namespace: t.Mapping[str, t.Any],
) -> Argument:
    """An argument: what its hint (or args=) accepts, and its type where no call site decides."""
    if explicit is not None:
        return Argument(param, explicit, hint, accepts_.Exact(explicit), explicit=True)
    element = _batch_element(hint) if vectorized and _is_batch_hint(hint) else hint
    if isinstance(element, str):  # Annotated[pa.Array, "DECIMAL(10, 2)"]
        declared = _explicit(sql_name, f"argument {position} ({param})", element)
        return Argument(param, declared, hint, accepts_.Exact(declared))
    try:
        accepted = accepts_.of_hint(element, namespace=namespace)
    except types.NoSqlType as error:
        raise FunctionDefinitionError(
            f"@udf {sql_name}: argument {position} ({param}): {error}. Or give its SQL type "
            f"explicitly: @udf(args={{{param!r}: 'STRUCT(amount DOUBLE, category VARCHAR)[]'}})"
        ) from None
    return Argument(param, accepted.default(), hint, accepted)


def _hint_type(sql_name: str, what: str, hint: t.Any, vectorized: t.Union[bool, str]) -> exp.DataType:
    """The return type: from the hint or returns=, never from a call site."""
    fix = (
        "Hint it (-> float, -> Optional[int], -> a TypedDict) or give its SQL type, e.g. "
        "@udf(returns='DOUBLE') or @udf(returns='STRUCT(score DOUBLE, reason VARCHAR)')"
    )
    if vectorized and _is_batch_hint(hint):
        hint = _batch_element(hint)
        if hint is None:
            return types.parse_sql_type("DOUBLE")  # a plain pa.Array / pd.Series: numbers
        if isinstance(hint, str):
            return _explicit(sql_name, what, hint)
    if hint is None or hint is t.Any or hint is object:
        raise FunctionDefinitionError(
            f"@udf {sql_name}: {what} has {'no type hint' if hint is None else 'the hint Any'}: the "
            f"type of a result is not taken from the call site. {fix}"
        )
    try:
        return types.sql_type_of_hint(hint)
    except types.NoSqlType as error:
        raise FunctionDefinitionError(f"@udf {sql_name}: {what}: {error}. {fix}") from None


def _batch_hint(vectorized: t.Union[bool, str]) -> t.Any:
    """The hint assumed for an unannotated parameter of a vectorized function."""
    return None if not vectorized else ("pd.Series" if vectorized == PANDAS else "pa.Array")


def _batch_element(hint: t.Any) -> t.Any:
    """The element type of a batch hint: ``Annotated[pa.Array, int]`` says int; a plain
    ``pa.Array`` says nothing (the call site's type)."""
    if t.get_origin(hint) is t.Annotated:
        return t.get_args(hint)[1]
    return None


def _is_batch_hint(hint: t.Any) -> bool:
    base = t.get_args(hint)[0] if t.get_origin(hint) is t.Annotated else hint
    if isinstance(base, str):
        return base in ("pa.Array", "pd.Series")
    module = getattr(base, "__module__", "") or ""
    return module.split(".")[0] in ("pyarrow", "pandas", "numpy", "polars")


def _is_pandas_hint(hint: t.Any) -> bool:
    base = t.get_args(hint)[0] if t.get_origin(hint) is t.Annotated else hint
    if isinstance(base, str):
        return base == "pd.Series"
    return (getattr(base, "__module__", "") or "").split(".")[0] == "pandas"


def _is_batch(value: t.Any) -> bool:
    return (type(value).__module__ or "").split(".")[0] in ("pyarrow", "pandas", "numpy", "polars")


def _is_macro_evaluator(value: t.Any) -> bool:
    # Only SQLMesh creates evaluators; checking sys.modules keeps plain calls free of imports.
    macros = sys.modules.get("sqlmesh.core.macros")
    return macros is not None and isinstance(value, macros.MacroEvaluator)


# Public names keep the path projects import them from (see mixmesh.core.names).
keep_import_path(globals(), "mixmesh.functions")

"""DuckDB's errors about mixmesh functions, as messages naming the model, the function and the argument."""

from __future__ import annotations

import re
import typing as t

from mixmesh.core import sql_types as types
from mixmesh.core.errors import (
    FunctionCallError,
    FunctionRuntimeError,
    MixmeshError,
    where,
)
from mixmesh.runtime import bindings

if t.TYPE_CHECKING:
    from mixmesh.runtime.bindings import Binding
from mixmesh.engines.duckdb.dialect import NAME

_NO_MATCH = re.compile(r"No function matches the given name and argument types '(?P<name>\w+)\((?P<types>.*)\)'")


_RAISED = re.compile(
    r"Python exception occurred while executing the UDF: (?P<kind>\w+): (?P<message>.*?)(?:\n\nAt:|\Z)",
    re.DOTALL,
)


_UNKNOWN_FUNCTION = re.compile(
    r"(?P<kind>Scalar|Table) Function with name (?P<name>\w+) does not exist!(?P<hint>\s*Did you mean \"[^\"]*\"\?)?"
)


_NULL_RESULT = "The returned result contained NULL values, but the 'null_handling' was set to DEFAULT"


_RETURN_CAST = re.compile(r"Failed to cast value: (?P<detail>.*)", re.DOTALL)


def explain_error(error: BaseException, sql: str, bound: t.Mapping[str, "Binding"]) -> t.Optional[Exception]:
    """The mixmesh error a DuckDB error stands for, if it is about a bound function."""
    message = str(error)
    unknown = _UNKNOWN_FUNCTION.search(message)
    if unknown:
        return _unknown_function(error, message, unknown)
    raised = _RAISED.search(message)
    if raised and raised.group("kind") in _OUR_ERRORS:
        return _OUR_ERRORS[raised.group("kind")](raised.group("message").strip())
    no_match = _NO_MATCH.search(message)
    if no_match and no_match.group("name") in bound:
        return _wrong_argument_types(bound[no_match.group("name")], _split_types(no_match.group("types")))
    cast = _RETURN_CAST.search(message)
    if cast:
        return _wrong_return_value(cast.group("detail").strip(), _called_in(sql, bound))
    if _NULL_RESULT in message:
        return _unexpected_null(_called_in(sql, bound))
    return None


def _unknown_function(error: BaseException, message: str, unknown: "re.Match[str]") -> t.Optional[Exception]:
    """DuckDB's suggestion for a misspelt function is one of its own; a project SQL function
    with a close name is the likelier one (DuckDB does not know it in a session that has not
    created it yet)."""
    import difflib


    known = bindings.known_functions()
    close = difflib.get_close_matches(unknown.group("name").lower(), list(known), n=1, cutoff=0.75)
    if not close:
        return None
    function = known[close[0]]
    hint = f' Did you mean the project SQL function "{function.name}"' + (
        f" ({function.location})?" if function.location else "?"
    )
    start, end = unknown.span("hint") if unknown.group("hint") else (unknown.end(), unknown.end())
    try:
        return type(error)(message[:start] + hint + message[end:])
    except Exception:
        return FunctionCallError(message[:start] + hint + message[end:])


_OUR_ERRORS: t.Dict[str, t.Type[MixmeshError]] = {
    cls.__name__: cls for cls in (FunctionRuntimeError, FunctionCallError, MixmeshError)
}


def _called_in(sql: str, bound: t.Mapping[str, "Binding"]) -> t.List["Binding"]:
    """The row functions a query calls (the ones DuckDB converts return values for)."""
    lowered = sql.lower()
    return [b for name, b in bound.items() if not b.spec.vectorized and f"{name.lower()}(" in lowered]


def _wrong_return_value(detail: str, candidates: t.List["Binding"]) -> t.Optional[FunctionRuntimeError]:
    if not candidates:
        return None
    named = " or ".join(
        f"{where(b.spec.name, b.model)} (declared {types.sql(b.spec.returns, NAME)})" for b in candidates
    )
    return FunctionRuntimeError(f"{named} returned a value that does not convert to its declared type: {detail}")


def _unexpected_null(candidates: t.List["Binding"]) -> t.Optional[FunctionRuntimeError]:
    candidates = [b for b in candidates if not b.spec.may_return_null]
    if not candidates:
        return None
    named = " or ".join(where(b.spec.name, b.model) for b in candidates)
    return FunctionRuntimeError(
        f"{named} returned None for a row without NULL arguments, but its return hint does not "
        "allow None; hint Optional[...] (e.g. -> Optional[float]) for a function that returns NULL"
    )


def _wrong_argument_types(binding: "Binding", actual: t.List[str]) -> FunctionCallError:
    spec = binding.spec
    problems = []
    for position, (arg, got) in enumerate(zip(spec.args, actual), start=1):
        declared = types.sql(arg.sql_type, NAME)
        if not _same_type(got, declared) and not _both_numeric(got, declared):
            problems.append(f"argument {position} ({arg.name}) is {got}, declared {declared}")
    detail = "; ".join(problems) or (
        f"the arguments are ({', '.join(actual)}), declared "
        f"({', '.join(types.sql(arg.sql_type, NAME) for arg in spec.args)})"
    )
    return FunctionCallError(
        f"{where(spec.name, binding.model)}: {detail}. Cast the argument in SQL "
        "(CAST(x AS type)) or change the function's type hint."
    )


def _split_types(text: str) -> t.List[str]:
    """Split ``'VARCHAR, STRUCT(a INTEGER, b VARCHAR)[]'`` at its top-level commas."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "(<[":
            depth += 1
        elif char in ")>]":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return parts + [current.strip()] if current.strip() else parts


def _parse(sql_type: str) -> t.Any:
    from sqlglot import exp

    try:
        return exp.DataType.build(sql_type, dialect=NAME)
    except Exception:
        return None


def _same_type(left: str, right: str) -> bool:
    parsed = _parse(left), _parse(right)
    return parsed[0] == parsed[1] if None not in parsed else left.upper() == right.upper()


def _both_numeric(left: str, right: str) -> bool:
    """DuckDB converts between numeric types by itself; a mismatch is elsewhere."""
    from sqlglot import exp

    parsed = _parse(left), _parse(right)
    return None not in parsed and all(p.is_type(*exp.DataType.NUMERIC_TYPES) for p in parsed)

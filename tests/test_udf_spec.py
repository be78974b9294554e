"""The @udf contract, without an engine: names, types, the plain callable, definition errors."""

import dataclasses
import datetime as dt
import functools
import re
import types as pytypes
import typing as t
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest
from sqlglot import exp

from mixmesh import AwareDatetime, FunctionDefinitionError, MixmeshError, udf
from mixmesh.core.sql_types import sql


class Item(t.TypedDict):
    name: str
    price: float
    tags: t.List[str]


class Loose(t.TypedDict):
    amount: float
    extra: t.Any


@dataclasses.dataclass
class Reading:
    sensor: str
    value: t.Optional[float]
    at: AwareDatetime


def duck(sql_type: str) -> str:
    """A SQL type as DuckDB's dialect writes it (VARCHAR is TEXT, ...), for comparisons."""
    return exp.DataType.build(sql_type, dialect="duckdb").sql("duckdb")


def arg_types(fn: t.Any) -> t.List[str]:
    return [None if arg.sql_type is None else sql(arg.sql_type) for arg in fn.spec.args]


def without_hints(func: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """The same function with no annotations at all (as SQLMesh's stored source may be)."""
    return pytypes.FunctionType(func.__code__, func.__globals__, func.__name__, func.__defaults__, func.__closure__)


# --- the decorator's two forms and the SQL name --------------------------------------------


def test_bare_and_called_forms_give_the_same_spec() -> None:
    def area(width: float, height: float) -> float:
        return width * height

    for decorated in (udf(area), udf()(area), udf(null_handling="strict")(area)):
        assert decorated.spec.name == "area"
        assert [arg.name for arg in decorated.spec.args] == ["width", "height"]
        assert arg_types(decorated) == ["DOUBLE", "DOUBLE"]
        assert sql(decorated.spec.returns) == "DOUBLE"
        assert (decorated.spec.vectorized, decorated.spec.null_handling) == (False, "strict")


def test_sql_name_defaults_to_the_function_name_and_name_overrides_it() -> None:
    @udf
    def risk_score(amount: float) -> float:
        return amount

    @udf(name="risk_v2")
    def risk_score_impl(amount: float) -> float:
        return amount

    @udf(name="Mixed_Case")
    def anything(amount: float) -> float:
        return amount

    @udf(name="shout")  # a Python name that is a SQL built-in is fine once name= gives another
    def upper(text: str) -> str:
        return text.upper()

    assert risk_score.spec.name == "risk_score"
    assert risk_score_impl.spec.name == "risk_v2"
    assert anything.spec.name == "mixed_case"  # SQL names are case-insensitive
    assert upper.spec.name == "shout" and upper("a") == "A"


# --- types -----------------------------------------------------------------------------------

HINTS = [
    (float, "DOUBLE"),
    (int, "BIGINT"),
    (bool, "BOOLEAN"),
    (str, "VARCHAR"),
    (bytes, "BLOB"),
    (Decimal, "DECIMAL(38, 9)"),
    (dt.date, "DATE"),
    (dt.datetime, "TIMESTAMP"),
    (AwareDatetime, "TIMESTAMPTZ"),
    (dt.time, "TIME"),
    (list[float], "DOUBLE[]"),
    (t.List[t.List[int]], "BIGINT[][]"),
    (t.Optional[str], "VARCHAR"),
    (bytes | None, "BLOB"),
    (Item, "STRUCT(name VARCHAR, price DOUBLE, tags VARCHAR[])"),
    (list[Item], "STRUCT(name VARCHAR, price DOUBLE, tags VARCHAR[])[]"),
    (Reading, "STRUCT(sensor VARCHAR, value DOUBLE, at TIMESTAMPTZ)"),
    (dict[str, float], "MAP(VARCHAR, DOUBLE)"),
    (t.Dict[str, t.List[int]], "MAP(VARCHAR, BIGINT[])"),
    (t.Annotated[Decimal, "DECIMAL(10, 2)"], "DECIMAL(10, 2)"),
    (t.Annotated[t.Any, "STRUCT(a DOUBLE, b VARCHAR)[]"], "STRUCT(a DOUBLE, b VARCHAR)[]"),
]
HINT_IDS = [repr(hint).replace("typing.", "") for hint, _ in HINTS]


@pytest.mark.parametrize("hint, expected", HINTS, ids=HINT_IDS)
def test_types_from_hints(hint: t.Any, expected: str) -> None:
    def echo(value):  # type: ignore[no-untyped-def]
        return value

    echo.__annotations__ = {"value": hint, "return": hint}
    decorated = udf(echo)
    assert arg_types(decorated) == [duck(expected)]
    assert sql(decorated.spec.returns) == duck(expected)


def test_types_from_explicit_args_list_mapping_and_returns() -> None:
    @udf(args=["DECIMAL(18, 4)", "VARCHAR[]"], returns="STRUCT(total DECIMAL(18, 4), n INTEGER)")
    def summarize(amount, labels):  # type: ignore[no-untyped-def]
        return {"total": amount, "n": len(labels)}

    # A mapping names only the arguments it types; the others keep their hints.
    @udf(args={"details": "STRUCT(amount DOUBLE, merchant_category VARCHAR)[]"})
    def score(threshold: float, details: t.List[t.Dict[str, t.Any]]) -> float:
        return threshold

    # Explicit types win over hints.
    @udf(args={"count": "INTEGER"}, returns="SMALLINT")
    def narrow(count: int) -> int:
        return count

    assert arg_types(summarize) == [duck("DECIMAL(18, 4)"), duck("VARCHAR[]")]
    assert sql(summarize.spec.returns) == duck("STRUCT(total DECIMAL(18, 4), n INTEGER)")
    assert arg_types(score) == ["DOUBLE", duck("STRUCT(amount DOUBLE, merchant_category VARCHAR)[]")]
    assert (arg_types(narrow), sql(narrow.spec.returns)) == (["INT"], "SMALLINT")


def test_vectorized_types_come_from_the_call_site_unless_annotated_or_explicit() -> None:
    @udf(vectorized=True)
    def batch(a, b: t.Annotated[pa.Array, int], c: pa.Array, d: pd.Series) -> pa.Array:  # type: ignore
        return a

    @udf(vectorized=True, args={"c": "VARCHAR"}, returns="BOOLEAN")
    def explicit(a: pa.Array, c: pa.Array) -> pa.Array:
        return a

    assert batch.spec.vectorized is True
    # None: the call site's type (mixmesh.engines.call_sites); int: BIGINT until a call site says more.
    assert arg_types(batch) == [None, "BIGINT", None, None]
    assert [arg.batch_kind for arg in batch.spec.args] == ["arrow", "arrow", "arrow", "pandas"]
    assert (arg_types(explicit), sql(explicit.spec.returns)) == ([None, duck("VARCHAR")], "BOOLEAN")


def test_vectorized_annotated_batch_hint_accepts_a_sql_type_string() -> None:
    @udf(vectorized=True)
    def labels(x: pa.Array) -> t.Annotated[pa.Array, "VARCHAR"]:
        return x

    assert sql(labels.spec.returns) == duck("VARCHAR")


# --- the decorated object stays a plain callable ----------------------------------------------


def test_the_decorated_function_stays_a_plain_callable() -> None:
    @udf
    def ratio(numerator: float, denominator: float = 1.0) -> float:
        """numerator / denominator"""
        return numerator / denominator

    @udf
    def reading_value(reading: Reading) -> t.Optional[float]:
        return reading.value

    assert ratio(3.0, 2.0) == 1.5
    assert ratio(3.0) == 3.0 and ratio(denominator=4.0, numerator=1.0) == 0.25
    with pytest.raises(ZeroDivisionError):  # the function's own errors, unchanged
        ratio(1.0, 0.0)
    assert reading_value(Reading("s", 2.5, dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc))) == 2.5
    assert (ratio.__name__, ratio.__doc__) == ("ratio", "numerator / denominator")
    assert ratio.__wrapped__(6.0, 3.0) == 2.0
    assert ratio.spec.func is ratio.__wrapped__


# --- definition errors -------------------------------------------------------------------------

MISSING = object()


def scorer_with(payload: t.Any = MISSING, returns: t.Any = float) -> t.Callable[..., t.Any]:
    """``scorer(amount: float, payload: <payload>) -> <returns>``; MISSING leaves a hint out."""

    def scorer(amount, payload):  # type: ignore[no-untyped-def]
        return amount

    hints = {"amount": float, "payload": payload, "return": returns}
    scorer.__annotations__ = {k: v for k, v in hints.items() if v is not MISSING}
    return scorer


def variadic(amount: float, *rest: float) -> float: ...
def keyword_only(amount: float, *, rest: float) -> float: ...
def keywords(amount: float, **rest: float) -> float: ...
def constant() -> float: ...
def upper(text: str) -> str: ...
def unresolved(payload: "NoSuchType") -> float: ...  # type: ignore[name-defined] # noqa: F821


def _error(func: t.Any, *fragments: str, **options: t.Any) -> t.Any:
    return pytest.param(func, options, fragments)


DEFINITION_ERRORS = {
    # hints with no SQL type, each naming the argument by position and name
    "return object": _error(scorer_with(float, returns=object), "return value", "not taken from the call site"),
    "return Any": _error(scorer_with(float, returns=t.Any), "return value", "not taken from the call site", "returns="),
    "return dict of Any": _error(scorer_with(float, returns=t.Dict[str, t.Any]), "return value", "returns="),
    "return bare list": _error(scorer_with(float, returns=list), "return value", "returns="),
    "set has no SQL type": _error(scorer_with(t.Set[int]), "argument 2 (payload)", "has no SQL type", "args="),
    "Any inside a TypedDict": _error(scorer_with(Loose), "argument 2 (payload)", "Loose.extra", "Any"),
    "missing return hint": _error(scorer_with(float, returns=MISSING), "return value", "no type hint"),
    "union": _error(scorer_with(t.Union[int, str]), "argument 2 (payload)", "is a union of several types; SQL columns have one type"),
    "union pipe": _error(scorer_with(int | str | None), "argument 2 (payload)", "union"),
    "unresolved hint": _error(unresolved, "cannot read the type hints: name 'NoSuchType' is not defined"),
    # names
    "built-in function name": _error(upper, "'upper'", "built-in"),
    "built-in name=": _error(scorer_with(float), "the name 'sum' is a SQL built-in function; give another with @udf(name=...) so models say which one they mean", name="sum"),
    "built-in name= upper case": _error(scorer_with(float), "'COUNT'", "built-in", name="COUNT"),
    "dash in name": _error(scorer_with(float), "'my-func' is not a valid SQL function name (letters, digits and underscores, not starting with a digit)", name="my-func"),
    "leading digit": _error(scorer_with(float), "'1st'", "not a valid SQL function name", name="1st"),
    "space in name": _error(scorer_with(float), "'two words'", "not a valid SQL function name", name="two words"),
    "dotted name": _error(scorer_with(float), "'ns.fn'", "not a valid SQL function name", name="ns.fn"),
    # args= / returns=
    "args too few": _error(scorer_with(float), "args= gives 1 SQL types for 2 parameters ['amount', 'payload']", args=["DOUBLE"]),
    "args too many": _error(scorer_with(float), "args= gives 3", "payload", args=["DOUBLE"] * 3),
    "args unknown name": _error(
        scorer_with(float), "args= names ['paylod'], which are not parameters of the function (it has ['amount', 'payload'])",
        args={"paylod": "DOUBLE"},
    ),
    "args bad type": _error(
        scorer_with(float), "args['payload']", "'DUBBLE((' is not a SQL type", args={"payload": "DUBBLE(("}
    ),
    "args unsupported type": _error(
        scorer_with(float), "argument 2 (payload): SQL type INTERVAL is not supported by mixmesh functions", args=["DOUBLE", "INTERVAL"]
    ),
    "returns bad type": _error(scorer_with(float), "returns", "'STRUCT(a' is not a SQL type", returns="STRUCT(a"),
    # parameters
    "*args": _error(variadic, "parameter 'rest' is variadic positional; SQL passes a fixed number of positional arguments"),
    "**kwargs": _error(keywords, "parameter 'rest' is variadic keyword; SQL passes a fixed number of positional arguments"),
    "keyword-only": _error(keyword_only, "parameter 'rest' is keyword-only; SQL passes a fixed number of positional arguments"),
    "no parameters": _error(constant, "a function called from SQL takes at least one argument (a constant belongs in SQL)"),
    # modes
    "null_handling unknown": _error(scorer_with(float), "null_handling must be one of ('strict', 'call'), got 'skip'", null_handling="skip"),
    "null_handling upper case": _error(scorer_with(float), "null_handling", "'STRICT'", null_handling="STRICT"),
    "null_handling None": _error(scorer_with(float), "null_handling", "None", null_handling=None),
    "vectorized unknown": _error(scorer_with(float), "vectorized must be True, False, 'arrow' or 'pandas', got 'yes'", vectorized="yes"),
    "vectorized None": _error(scorer_with(float), "vectorized", "None", vectorized=None),
    "vectorized 2": _error(scorer_with(float), "vectorized", "got 2", vectorized=2),
}


@pytest.mark.parametrize(
    "func, options, fragments",
    [pytest.param(*case.values, id=case_id) for case_id, case in DEFINITION_ERRORS.items()],
)
def test_definition_errors_name_the_function_and_the_problem(
    func: t.Callable[..., t.Any], options: t.Dict[str, t.Any], fragments: t.Tuple[str, ...]
) -> None:
    with pytest.raises(FunctionDefinitionError) as raised:
        udf(**options)(func)
    message = str(raised.value)
    assert message.startswith("@udf ") and func.__name__ in message.split(":")[0]  # which function
    for fragment in fragments:
        assert fragment in message
    assert isinstance(raised.value, MixmeshError)


@pytest.mark.parametrize("thing", [42, Reading, functools.partial(round, ndigits=2), print], ids=repr)
def test_only_functions_can_be_decorated(thing: t.Any) -> None:
    with pytest.raises(FunctionDefinitionError, match=f"^@udf decorates a function, got {re.escape(repr(thing))}$"):
        udf(thing)


def test_an_empty_name_is_rejected() -> None:
    with pytest.raises(FunctionDefinitionError, match="not a valid SQL function name"):
        udf(name="")(scorer_with(float))


def test_args_given_as_a_string_says_so() -> None:
    def halve(value: float) -> float:
        return value / 2

    with pytest.raises(FunctionDefinitionError) as raised:
        udf(args="DOUBLE")(halve)  # type: ignore[arg-type]
    assert str(raised.value) == (
        "@udf halve: args= takes a list of SQL types in parameter order, or a mapping from parameter name to SQL "
        "type; got the string 'DOUBLE'"
    )


# --- explicit_decorator_arguments ---------------------------------------------------------------


def test_a_return_hint_that_is_not_optional_promises_no_null() -> None:
    def plain(x: float) -> float: ...

    def optional(x: float) -> t.Optional[float]: ...

    assert udf(plain).spec.may_return_null is False
    assert udf(optional).spec.may_return_null is True
    assert udf(returns="DOUBLE NOT NULL")(without_return_hint(plain)).spec.may_return_null is False
    assert udf(returns="DOUBLE")(without_return_hint(plain)).spec.may_return_null is True


def without_return_hint(func: t.Any) -> t.Any:
    """A copy of ``func`` without its return hint."""

    def copy(x):  # type: ignore[no-untyped-def]
        return func(x)

    copy.__annotations__ = {k: v for k, v in func.__annotations__.items() if k != "return"}
    copy.__name__ = func.__name__
    return copy


def test_explicit_decorator_arguments_spell_out_every_type() -> None:
    @udf
    def enrich(items: t.List[Item], at: AwareDatetime, price: Decimal, rates: t.Dict[str, float]) -> Reading: ...

    @udf(name="Scaled", vectorized=True, null_handling="call", args={"x": "BIGINT"})
    def scale(x: pa.Array, factor: t.Annotated[pa.Array, int]) -> pa.Array: ...

    @udf(vectorized=True)
    def pandas_batch(x: pd.Series) -> pd.Series: ...

    @udf(vectorized="pandas", args=["DECIMAL(18, 4)"], returns="DECIMAL(18, 4)")
    def pandas_explicit(x): ...  # type: ignore[no-untyped-def]

    # Argument hints stay in the stored source (they say what a call site may pass); only
    # args= types are stated.
    assert enrich.spec.explicit_decorator_arguments() == {
        "name": "enrich",
        "returns": duck("STRUCT(sensor VARCHAR, value DOUBLE, at TIMESTAMPTZ)") + " NOT NULL",
    }
    assert enrich.spec.hints_to_keep() == ["items", "at", "price", "rates"]
    assert scale.spec.explicit_decorator_arguments() == {
        "name": "scaled",
        "args": {"x": "BIGINT"},
        "returns": "DOUBLE",
        "vectorized": True,
        "null_handling": "call",
    }
    assert scale.spec.hints_to_keep() == ["factor"]
    assert pandas_batch.spec.explicit_decorator_arguments() == {
        "name": "pandas_batch", "returns": "DOUBLE", "vectorized": "pandas"
    }
    assert pandas_explicit.spec.explicit_decorator_arguments() == {
        "name": "pandas_explicit", "args": {"x": "DECIMAL(18, 4)"}, "returns": "DECIMAL(18, 4)", "vectorized": "pandas"
    }


@pytest.mark.parametrize("hint", [hint for hint, _ in HINTS], ids=HINT_IDS)
@pytest.mark.parametrize("options", [{}, {"null_handling": "call", "name": "renamed"}], ids=["plain", "options"])
def test_explicit_decorator_arguments_rebuild_the_same_spec_without_hints(
    hint: t.Any, options: t.Dict[str, t.Any]
) -> None:
    def echo(value, other: int):  # type: ignore[no-untyped-def]
        return value

    echo.__annotations__ = {"value": hint, "other": int, "return": hint}
    explicit = udf(**options)(echo).spec.explicit_decorator_arguments()
    rebuilt = udf(**explicit)(without_hints(echo))
    assert rebuilt.spec.explicit_decorator_arguments() == explicit
    assert rebuilt(1, 2) == 1

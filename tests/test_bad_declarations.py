"""Bad declarations fail when the function (or model) is defined, naming it and the argument
(issue 16, defect 8): they used to pass silently (timeout_s=nan gave random NULLs) or fail
unclearly (a bare TypeError)."""

from __future__ import annotations

import typing as t

import pytest

from mixmesh import CircuitBreaker, Retry, python_model, udf
from mixmesh.core.errors import FunctionDefinitionError, MixmeshError


def scored(x: float) -> float:
    return x


async def fetched(x: float) -> float:
    return x


BAD = {
    "timeout_s nan": ({"timeout_s": float("nan")}, "timeout_s must be a positive, finite number", "nan"),
    "timeout_s text": ({"timeout_s": "fast"}, "timeout_s must be a positive, finite number", "'fast'"),
    "timeout_s zero": ({"timeout_s": 0}, "timeout_s must be a positive"),
    "timeout_s infinite": ({"timeout_s": float("inf")}, "finite"),
    "a negative backoff": ({"retry": Retry(backoff=[-1])}, "retry=Retry(...)", "backoff waits", "[-1]"),
    "a nan backoff": ({"retry": Retry(backoff=[1, float("nan")])}, "backoff waits"),
    "no backoff": ({"retry": Retry(backoff=[])}, "backoff lists no wait"),
    "zero attempts": ({"retry": Retry(attempts=0)}, "attempts must be a whole number of at least 1"),
    "attempts as text": ({"retry": Retry(attempts="3")}, "attempts must be a whole number"),
    "on= not an exception": ({"retry": Retry(on=(ValueError, "oops"))}, "on= takes exception types"),
    "a negative jitter": ({"retry": Retry(jitter=-1)}, "jitter"),
    "fail_max zero": ({"circuit_breaker": CircuitBreaker(fail_max=0)}, "circuit_breaker=CircuitBreaker(...)", "fail_max"),
    "a negative reset_timeout": ({"circuit_breaker": CircuitBreaker(reset_timeout=-5)}, "reset_timeout", "-5"),
    "returns with trailing junk": ({"returns": "DOUBLE ???"}, "returns", "'DOUBLE ???' is not a SQL type"),
    "args with trailing junk": ({"args": {"x": "INTEGER garbage"}}, "args['x']", "is not a SQL type"),
}


@pytest.mark.parametrize("options, fragments", [(o, f) for o, *f in BAD.values()], ids=BAD.keys())
def test_a_bad_declaration_fails_when_the_function_is_defined(options: t.Dict[str, t.Any], fragments: t.List[str]) -> None:
    with pytest.raises(FunctionDefinitionError) as raised:
        udf(**options)(scored)
    message = str(raised.value)
    assert message.startswith("@udf scored")
    for fragment in fragments:
        assert fragment in message


def test_an_async_function_is_a_row_function_never_a_vectorized_one() -> None:
    assert udf(fetched).spec.is_async  # its rows run as coroutines (tests/test_concurrency.py)
    with pytest.raises(FunctionDefinitionError, match="@udf fetched: async def is for row functions"):
        udf(vectorized=True, returns="DOUBLE")(fetched)


@pytest.mark.parametrize("options, fragment", [
    ({"timeout_s": float("nan")}, "timeout_s must be a positive, finite number"),
    ({"retry": Retry(backoff=[-1])}, "backoff waits"),
])
def test_a_models_bad_declaration_names_the_model(options: t.Dict[str, t.Any], fragment: str) -> None:
    with pytest.raises(MixmeshError) as raised:
        python_model(name="analytics.m", columns={"x": "DOUBLE"}, **options)(lambda context: None)
    assert "model analytics.m" in str(raised.value) and fragment in str(raised.value)


class Custom:
    """A class no SQL type maps to."""


def takes_custom(x: Custom) -> float:
    return 1.0


def returns_custom(x: float) -> Custom:
    return Custom()


def labelled(x: float) -> str:
    return "a"


# More @udf options of the wrong kind or value: function, options, the message's words.
MORE_BAD = {
    "a lambda": (lambda x: x, {}, "@udf <lambda>: '<lambda>' is not a valid SQL function name"),
    "name= not a string": (scored, {"name": 3}, "@udf scored: 3 is not a valid SQL function name"),
    "on_error not a DOUBLE": (scored, {"on_error": "n/a"},
                              "@udf scored: on_error='n/a' is not a value of the declared DOUBLE (",
                              "); use 'raise', 'null', a value or a function"),
    "on_error a list": (scored, {"on_error": [1, 2]}, "@udf scored: on_error=[1, 2] is not a value of the declared DOUBLE"),
    "on_error an exception class": (scored, {"on_error": ValueError},
                                    "@udf scored: on_error=ValueError is an exception class; on_error says what"),
    "on_error a number for text": (labelled, {"on_error": 1}, "@udf labelled: on_error=1 is not a value of the declared TEXT"),
    "parallel unknown": (scored, {"parallel": "gpu"}, "@udf scored: parallel must be one of ('threads', 'processes'), got 'gpu'"),
    "processes with on_error": (scored, {"parallel": "processes", "on_error": "null"},
                                "@udf scored: parallel='processes' runs the function in worker processes, which share "
                                "nothing with the model's process; retry, circuit_breaker, timeout_s, rate_limit and on_error keep "
                                "their state and counts there. Use one or the other"),
    "processes with timeout_s": (scored, {"parallel": "processes", "timeout_s": 1}, "parallel='processes'", "Use one or the other"),
    "retry not a Retry": (scored, {"retry": 3}, "@udf scored: retry= takes a mixmesh Retry(...), got 3"),
    "circuit_breaker not a CircuitBreaker": (scored, {"circuit_breaker": 5},
                                             "@udf scored: circuit_breaker= takes a mixmesh CircuitBreaker(...), got 5"),
    "returns an unknown type": (scored, {"returns": "FOO"}, "@udf scored: returns: SQL type FOO is not supported by mixmesh functions"),
    "args an unknown type": (scored, {"args": {"x": "FOO"}}, "@udf scored: args['x']: SQL type FOO is not supported by mixmesh functions"),
    "returns not a string": (scored, {"returns": 3}, "@udf scored: returns= takes a SQL type as a string, e.g. returns='DOUBLE', got 3"),
    "returns empty": (scored, {"returns": ""}, "@udf scored: returns= takes a SQL type as a string, e.g. returns='DOUBLE', got ''"),
    "a class as an argument hint": (takes_custom, {}, "@udf takes_custom: argument 1 (x): Custom has no SQL type. Or give its SQL type "
                                    "explicitly: @udf(args={'x': "),
    "a class as the return hint": (returns_custom, {}, "@udf returns_custom: the return value: Custom has no SQL type. Hint it "
                                   "(-> float, -> Optional[int], -> a TypedDict) or give its SQL type"),
}


@pytest.mark.parametrize("function, options, fragments", [(f, o, w) for f, o, *w in MORE_BAD.values()], ids=MORE_BAD.keys())
def test_options_of_the_wrong_kind_fail_naming_the_function(function: t.Any, options: t.Dict[str, t.Any],
                                                             fragments: t.List[str]) -> None:
    with pytest.raises(FunctionDefinitionError) as raised:
        udf(**options)(function)
    for fragment in fragments:
        assert fragment in str(raised.value), str(raised.value)


def model_function(context, **kwargs):  # noqa: ANN001, ANN201
    return None


COLUMNS = {"id": "INT", "day": "DATE"}

# @python_model declarations: arguments, the message's words after "model analytics.m: ".
BAD_MODELS = {
    "an unknown kind": ({"columns": COLUMNS, "kind": "NONSENSE"},
                        "kind 'NONSENSE' is not a model kind; use ModelKind.FULL, ModelKind.INCREMENTAL or "
                        "ModelKind.INCREMENTAL_BY_UNIQUE_KEY (or another SQLMesh kind)"),
    "kind VIEW": ({"columns": COLUMNS, "kind": "VIEW"},
                  "kind VIEW is not for Python models: a view is a SQL query; write it as a SQL model"),
    "kind SEED": ({"columns": COLUMNS, "kind": "SEED"},
                  "kind SEED is not for Python models: a seed is loaded from a CSV file; declare it as a SEED model in SQL"),
    "kind EMBEDDED": ({"columns": COLUMNS, "kind": "EMBEDDED"},
                      "kind EMBEDDED is not for Python models: an embedded model is a SQL query inlined into others; "
                      "write it as a SQL model"),
    "kind EXTERNAL": ({"columns": COLUMNS, "kind": "EXTERNAL"},
                      "kind EXTERNAL is not for Python models: an external table is declared in external_models.yaml"),
    "columns as a list": ({"columns": ["id", "day"]},
                          "columns= maps each column's name to its SQL type, e.g. columns={'customer_id': 'INT'}; got ['id', 'day']"),
    "a column type that is not SQL": ({"columns": {"id": "FOO"}}, "column 'id': 'FOO' is not a SQL type"),
    "depends_on as a string": ({"columns": COLUMNS, "depends_on": "raw.events"},
                               "depends_on= takes a list of model names, got the string 'raw.events'; "
                               "write depends_on=['raw.events']"),
    "no date column in the grain": ({"columns": COLUMNS, "kind": "INCREMENTAL", "grain": ["id"]},
                                    "an INCREMENTAL model needs its time column; its grain has no date or timestamp "
                                    "column. Add time_column='...' to @python_model"),
    "two date columns in the grain": ({"columns": {"day": "DATE", "at": "TIMESTAMP"}, "kind": "INCREMENTAL", "grain": ["day", "at"]},
                                      "an INCREMENTAL model needs its time column; its grain has 2 date/timestamp columns "
                                      "['day', 'at']. Add time_column='...' to @python_model"),
    "unique_key naming no column": ({"columns": COLUMNS, "kind": "INCREMENTAL_BY_UNIQUE_KEY", "unique_key": "key"},
                                    "unique_key names ['key'], which are not among its columns ['id', 'day']"),
    "retry not a Retry": ({"columns": COLUMNS, "retry": 3}, "retry= takes a mixmesh Retry(...), got 3"),
    "fallbacks keyed by a name": ({"columns": COLUMNS, "fallbacks": {"ValueError": model_function}},
                                  "fallbacks= maps error types to functions, e.g. {ConnectionError: from_cache}; got ('ValueError',)"),
    "a fallback that is not a function": ({"columns": COLUMNS, "fallbacks": {ValueError: 5}},
                                          "fallbacks= maps error types to functions", ": 5"),
    "requirements twice": ({"columns": COLUMNS, "requirements": {"machine_learning": True},
                            "session_properties": {"mixmesh_requirements": {"machine_learning": True}}},
                           "requirements are declared twice, in requirements= and in "
                           "session_properties['mixmesh_requirements']; keep requirements="),
}


@pytest.mark.parametrize("arguments, fragments", [(a, f) for a, *f in BAD_MODELS.values()], ids=BAD_MODELS.keys())
def test_a_models_declaration_of_the_wrong_kind_names_the_model(arguments: t.Dict[str, t.Any], fragments: t.List[str]) -> None:
    from mixmesh.models import ModelDefinitionError

    with pytest.raises(ModelDefinitionError) as raised:
        python_model(name="analytics.m", **arguments)(model_function)
    message = str(raised.value)
    assert message.startswith("model analytics.m: "), message
    for fragment in fragments:
        assert fragment in message, message

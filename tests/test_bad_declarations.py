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


def test_an_async_function_is_refused_until_they_are_supported() -> None:
    with pytest.raises(FunctionDefinitionError, match="@udf fetched: an async def function is not supported yet"):
        udf(fetched)


@pytest.mark.parametrize("options, fragment", [
    ({"timeout_s": float("nan")}, "timeout_s must be a positive, finite number"),
    ({"retry": Retry(backoff=[-1])}, "backoff waits"),
])
def test_a_models_bad_declaration_names_the_model(options: t.Dict[str, t.Any], fragment: str) -> None:
    with pytest.raises(MixmeshError) as raised:
        python_model(name="analytics.m", columns={"x": "DOUBLE"}, **options)(lambda context: None)
    assert "model analytics.m" in str(raised.value) and fragment in str(raised.value)

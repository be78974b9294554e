"""What ``@udf(cache=...)`` declares, and the keys a cached result is found by.

A cached function's results are kept in the project's warehouse (``mixmesh.runtime.cache``)
under a key made of the function's *fingerprint* (a digest of its code, the project helpers
it calls, its argument and return types) and of one row's argument values. The values are
encoded canonically (``encode_row``): every value carries a tag for its kind, text is
quoted and escaped (``repr``) and containers are delimited, so two different argument tuples never encode
alike: ``1`` and ``1.0`` and ``True`` and ``"1"``, NULL and NaN, ``[[1], 2]`` and ``[1, [2]]``
all differ. Floats are written exactly (``float.hex``), decimals keep their scale, and
times keep their time zone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import hashlib
import re
import typing as t
import uuid

from mixmesh.core.errors import FunctionDefinitionError
from mixmesh.core.introspection import code_digest

if t.TYPE_CHECKING:
    from mixmesh.core.functions import FunctionSpec

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|min|m|h|d|w)\s*$", re.I)
_UNIT_SECONDS = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclasses.dataclass(frozen=True)
class CachePolicy:
    """A cached function's results are kept; for ``ttl`` when given (then they expire)."""

    ttl: t.Optional[dt.timedelta] = None

    def expires_at(self, now: dt.datetime) -> t.Optional[dt.datetime]:
        return None if self.ttl is None else now + self.ttl


def policy_of(name: str, cache: t.Any, *, deterministic: bool) -> t.Optional[CachePolicy]:
    """``cache=`` as the decorator got it (False/None, True, "7d", "12h", "30min", a timedelta)
    as a CachePolicy, or None; refused where caching would change results."""
    if cache is None or cache is False:
        return None
    if not deterministic:
        raise FunctionDefinitionError(
            f"@udf {name}: cache= keeps the results of a deterministic function, but it is declared "
            "deterministic=False (its result may differ for the same arguments); remove one of the two"
        )
    if cache is True:
        return CachePolicy()
    return CachePolicy(ttl=_duration(name, cache))


def _duration(name: str, cache: t.Any) -> dt.timedelta:
    ttl: t.Optional[dt.timedelta] = None
    if isinstance(cache, dt.timedelta):
        ttl = cache
    elif isinstance(cache, str):
        match = _DURATION.match(cache)
        if match:
            ttl = dt.timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()])
    if ttl is None or ttl <= dt.timedelta(0):
        raise FunctionDefinitionError(
            f"@udf {name}: cache= takes True, a time to live such as '7d', '12h', '30min' or '45s', "
            f"or a positive datetime.timedelta; got {cache!r}"
        )
    return ttl


def fingerprint(spec: "FunctionSpec") -> str:
    """What a cached result depends on besides the arguments: the code (and the project helpers
    it calls) and the types the function is bound with. An edit changes it."""
    from mixmesh.core import sql_types as types

    digest = hashlib.sha256()
    digest.update(code_digest(spec.func).encode())
    digest.update(types.sql(spec.returns).encode())
    for arg in spec.args:
        digest.update(f"|{arg.name}:{types.sql(arg.sql_type) if arg.sql_type is not None else '?'}".encode())
    return digest.hexdigest()


def row_key(function_fingerprint: str, row: t.Sequence[t.Any]) -> bytes:
    """The key of one call: the fingerprint and the row's values, hashed (SHA-256)."""
    return key_of_encoded(function_fingerprint, encode_row(row))


def key_of_encoded(function_fingerprint: str, encoded_row: str) -> bytes:
    return hashlib.sha256(f"{function_fingerprint}\x1f{encoded_row}".encode()).digest()


def encode_row(row: t.Sequence[t.Any]) -> str:
    """A row's arguments as canonical text (see ``encode``)."""
    return "(" + ",".join([encode(value) for value in row]) + ")"


def encode(value: t.Any) -> str:
    """A value's canonical text: a tag for its kind, then the value written exactly."""
    exact = _EXACT.get(type(value))  # the common kinds in one look-up
    if exact is not None:
        return exact(value)
    if value is None:
        return "N"
    if isinstance(value, bool):  # before int: True is an int too
        return "B1" if value else "B0"
    if isinstance(value, int):
        return f"I{int(value)}"
    if isinstance(value, float):
        return _float(float(value))
    if isinstance(value, decimal.Decimal):
        return f"M{value}"  # keeps its scale: 1.10 and 1.1 are different arguments
    if isinstance(value, str):
        return "S" + repr(str(value))  # repr: quoted and escaped, so "a,b" is one value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "X" + bytes(value).hex()
    if isinstance(value, dt.datetime):  # before date: a datetime is a date too
        return f"T{value.isoformat()}@{value.tzinfo}"
    if isinstance(value, dt.date):
        return f"D{value.isoformat()}"
    if isinstance(value, dt.time):
        return f"H{value.isoformat()}@{value.tzinfo}"
    if isinstance(value, dt.timedelta):
        return f"V{value.days},{value.seconds},{value.microseconds}"
    if isinstance(value, uuid.UUID):
        return f"U{value}"
    if isinstance(value, dict):  # a STRUCT (fields in their declared order) or a MAP
        return "{" + ",".join([f"{encode(key)}:{encode(item)}" for key, item in value.items()]) + "}"
    if isinstance(value, list):  # a LIST
        return "[" + ",".join([encode(item) for item in value]) + "]"
    if isinstance(value, tuple):  # a MAP as (key, value) pairs
        return "<" + ",".join([encode(item) for item in value]) + ">"
    raise TypeError(f"a value of type {type(value).__name__} cannot key a cached result: {value!r}")


def _float(value: float) -> str:
    return "Fnan" if value != value else f"F{value.hex()}"  # every NaN is one argument: NaN


_EXACT: t.Dict[type, t.Callable[[t.Any], str]] = {
    type(None): lambda value: "N",
    bool: lambda value: "B1" if value else "B0",
    int: lambda value: f"I{value}",
    float: _float,
    str: lambda value: "S" + repr(value),
    dt.date: lambda value: f"D{value.isoformat()}",
}

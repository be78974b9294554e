"""Rate limits: ``@udf(rate_limit="100/s")`` paces a function's calls in each process.

``RateLimit`` is the parsed declaration ("N/s", "N/min" or "N/h"; N may be a fraction). As
a policy (``RateLimited``) it sits between the retries and the timeout: every attempt, a
retry's included, takes a token, and the wait for a token is not counted against
``timeout_s``. Over the limit a call waits for its token; it never fails for it.

The limiter is pyrate-limiter's GCRA (a leaky bucket kept as one timestamp,
https://pyratelimiter.readthedocs.io): one per function per process, shared by every thread
and every model calling the function, since the limit is the service's, not a model's.
Its burst is two calls: one call of slack lets a caller that overslept its wait catch up, so
the achieved rate stays within a fraction of a percent of the limit instead of below it.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
import typing as t

from mixmesh.core.errors import FunctionDefinitionError
from mixmesh.core.resilience import Call, Policy

_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0}
_SPELLING = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|min|h)\s*$")
_BURST = 2  # calls admitted at once after a pause (see the module's docstring)


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """At most ``calls`` calls per ``per_seconds`` seconds (``"100/s"``, ``"2.5/min"``)."""

    text: str
    calls: float
    per_seconds: float

    @property
    def per_second(self) -> float:
        return self.calls / self.per_seconds


def parse_rate_limit(value: t.Any, function: str) -> t.Optional[RateLimit]:
    """``"100/s"`` as a RateLimit (None stays None); an error naming the function otherwise."""
    if value is None:
        return None
    match = _SPELLING.match(value) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise FunctionDefinitionError(
            f"@udf {function}: rate_limit must be a positive number of calls per second, minute or hour "
            f"written 'N/s', 'N/min' or 'N/h' (e.g. rate_limit='100/s' or '2.5/min'), got {value!r}"
        )
    return RateLimit(value.strip(), float(match.group(1)), _UNITS[match.group(2)])


class RateLimited(Policy):
    """Wait for a token of the function's limiter before each attempt."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit

    def protect(self, func: Call, *, function: str, model: t.Optional[str]) -> Call:
        limiter = limiter_of(function, self.limit)

        def call(*args: t.Any) -> t.Any:
            limiter.acquire()
            return func(*args)

        return call

    def __repr__(self) -> str:
        return f"RateLimited({self.limit.text!r})"


class FunctionLimiter:
    """A function's limiter in this process, and the tokens it gave (for the achieved rate)."""

    def __init__(self, function: str, limit: RateLimit) -> None:
        from pyrate_limiter import GCRA, Limiter, Rate, StateBucket

        self.function = function
        self.limit = limit
        # Rates in whole calls per whole milliseconds: calls scaled by 1000 keep "2.5/s" exact.
        rate = Rate(max(1, round(limit.calls * 1000)), round(limit.per_seconds * 1000 * 1000), burst=_BURST)
        # buffer_ms=0: pyrate-limiter adds 50 ms to every wait by default, which would cap a
        # single caller far below the limit.
        self._limiter = Limiter(StateBucket([rate], GCRA()), buffer_ms=0)
        self._lock = threading.Lock()
        self.tokens = 0
        self.first: t.Optional[float] = None
        self.last: t.Optional[float] = None

    def acquire(self) -> None:
        """Wait for a token (a thread sleeps; the others take theirs meanwhile)."""
        self._limiter.try_acquire(self.function)
        self._given()

    async def acquire_async(self) -> None:
        """Wait for a token without blocking the event loop."""
        await self._limiter.try_acquire_async(self.function)
        self._given()

    def _given(self) -> None:
        now = time.perf_counter()
        with self._lock:
            self.tokens += 1
            self.first = now if self.first is None else self.first
            self.last = now

    def taken(self) -> t.Tuple[int, t.Optional[float], t.Optional[float]]:
        """Tokens given so far, and when the first and the last were given (perf_counter)."""
        with self._lock:
            return self.tokens, self.first, self.last


_limiters: t.Dict[str, FunctionLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_of(function: str, limit: RateLimit) -> FunctionLimiter:
    """The function's limiter in this process (one per function and limit, made on first use)."""
    key = f"{function}:{limit.text}"
    with _limiters_lock:
        found = _limiters.get(key)
        if found is None:
            found = _limiters[key] = FunctionLimiter(function, limit)
        return found


def achieved_rate(tokens: int, first: t.Optional[float], last: t.Optional[float]) -> t.Optional[float]:
    """Calls per second between the first token and the last (None below two tokens)."""
    if tokens < 2 or first is None or last is None or last <= first:
        return None
    return (tokens - 1) / (last - first)

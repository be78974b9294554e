"""A small exchange-rate service on 127.0.0.1, for the example's tests and the benchmark.

``GET /rate?currency=EUR&day=2024-01-05`` answers ``{"currency": "EUR", "day": "2024-01-05",
"rate": 1.0912}``: US dollars per unit of the currency that day. Every answer is the same
for the same inputs (rates come from a hash of them), after a configurable latency. A chosen
share of the keys fail:

  transient   the first request for the key answers 503; the next ones succeed
  permanent   every request for the key answers 404 (the service has no rate for it)

Which keys fail is a hash of the key too, so tests know in advance (``fails_permanently``,
``fails_transiently``). The service counts requests (by status) and the most requests it
ever had in flight at once, and when each request arrived.

In Python, it runs in a child process on a free port (``/stats`` and ``/reset`` read and
reset its counts)::

    with ExchangeRateService(latency_ms=20, transient_rate=0.02, permanent_rate=0.01) as service:
        os.environ["EXCHANGE_RATES_URL"] = service.url
        ...
        service.requests, service.max_in_flight

From a shell, in the foreground: ``python service.py --port 8321 --latency-ms 20``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import typing as t
import urllib.request
from pathlib import Path

from aiohttp import web

# US dollars per unit, around which each day's rate moves by up to 2.5% either way.
BASE_RATES: t.Dict[str, float] = {
    "USD": 1.0, "EUR": 1.09, "GBP": 1.27, "JPY": 0.0068, "CHF": 1.14, "CAD": 0.74, "AUD": 0.66,
    "NZD": 0.61, "SEK": 0.096, "NOK": 0.094, "DKK": 0.146, "PLN": 0.25, "CZK": 0.044, "HUF": 0.0028,
    "MXN": 0.058, "BRL": 0.2, "INR": 0.012, "CNY": 0.14, "SGD": 0.75, "ZAR": 0.054, "KRW": 0.00075,
    "HKD": 0.128, "TRY": 0.033, "ILS": 0.27, "THB": 0.028,
}
# Which share of keys fail is decided by one hash, which the rate does not use.
_FAILURE_SALT, _RATE_SALT = b"failure", b"rate"


def _unit(salt: bytes, currency: str, day: str) -> float:
    """A number in [0, 1) that depends on the key only (not on the process, as hash() would)."""
    digest = hashlib.sha256(salt + f"{currency}|{day}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def rate_of(currency: str, day: str) -> float:
    """The rate the service gives for a known currency on a day (``YYYY-MM-DD``)."""
    if currency == "USD":
        return 1.0
    return round(BASE_RATES[currency] * (0.975 + 0.05 * _unit(_RATE_SALT, currency, day)), 8)


class RateServer:
    """The HTTP side: answers rates, counts requests. One event loop serves every request,
    so the counters need no lock."""

    def __init__(self, latency_ms: float, failures: "Failures") -> None:
        self.latency_ms = latency_ms
        self.failures = failures
        self._attempts: t.Counter[t.Tuple[str, str]] = collections.Counter()
        self.reset_counts()

    def reset_counts(self) -> None:
        self.requests = 0
        self.statuses: t.Counter[int] = collections.Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrivals: t.List[float] = []

    async def rate(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.arrivals.append(time.monotonic())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency_ms / 1000)
            status, body = self.answer(request.query.get("currency", ""), request.query.get("day", ""))
            self.statuses[status] += 1
            return web.json_response(body, status=status)
        finally:
            self.in_flight -= 1

    def answer(self, currency: str, day: str) -> t.Tuple[int, t.Dict[str, t.Any]]:
        try:
            datetime.date.fromisoformat(day)
        except ValueError:
            return 400, {"error": f"day must be YYYY-MM-DD, got {day!r}"}
        key = (currency, day)
        self._attempts[key] += 1
        if self.failures.permanently(currency, day):
            return 404, {"error": f"no rate for {currency} on {day}"}
        if self.failures.transiently(currency, day) and self._attempts[key] == 1:
            return 503, {"error": "service busy, try again"}
        return 200, {"currency": currency, "day": day, "rate": rate_of(currency, day)}

    async def stats(self, request: web.Request) -> web.Response:
        counted = {
            "requests": self.requests, "statuses": {str(code): n for code, n in self.statuses.items()},
            "in_flight": self.in_flight, "max_in_flight": self.max_in_flight,
        }
        if request.query.get("arrivals"):
            counted["arrivals"] = self.arrivals
        return web.json_response(counted)

    async def reset(self, request: web.Request) -> web.Response:
        self.reset_counts()
        return web.json_response({"reset": True})

    def application(self) -> web.Application:
        application = web.Application()
        application.router.add_get("/rate", self.rate)
        application.router.add_get("/stats", self.stats)
        application.router.add_post("/reset", self.reset)
        return application


@dataclasses.dataclass(frozen=True)
class Failures:
    """Which keys fail, and how: a hash of the key against the two shares."""

    transient_rate: float = 0.0
    permanent_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("transient_rate", "permanent_rate"):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"exchange-rate service: {name} must be between 0 and 1, got {share!r}")
        if self.transient_rate + self.permanent_rate > 1.0:
            raise ValueError("exchange-rate service: transient_rate + permanent_rate must be at most 1")

    def permanently(self, currency: str, day: t.Union[str, datetime.date]) -> bool:
        """Whether every request for this key answers 404."""
        return currency not in BASE_RATES or _unit(_FAILURE_SALT, currency, str(day)) < self.permanent_rate

    def transiently(self, currency: str, day: t.Union[str, datetime.date]) -> bool:
        """Whether the first request for this key answers 503."""
        share = _unit(_FAILURE_SALT, currency, str(day))
        return not self.permanently(currency, day) and share < self.permanent_rate + self.transient_rate


class ExchangeRateService:
    """The service in a child process (its own interpreter: serving costs the caller's
    process no CPU and no GIL), on a free port of 127.0.0.1, stopped on leaving ``with``."""

    def __init__(self, latency_ms: float = 20.0, transient_rate: float = 0.0, permanent_rate: float = 0.0) -> None:
        self.latency_ms = latency_ms
        self.failures = Failures(transient_rate, permanent_rate)
        self.url = ""
        self._process: t.Optional[subprocess.Popen] = None

    def fails_permanently(self, currency: str, day: t.Union[str, datetime.date]) -> bool:
        """Whether every request for this key answers 404."""
        return self.failures.permanently(currency, day)

    def fails_transiently(self, currency: str, day: t.Union[str, datetime.date]) -> bool:
        """Whether the first request for this key answers 503 (and the next ones succeed)."""
        return self.failures.transiently(currency, day)

    # What it counted since it started, or since reset_counts().

    def stats(self, arrivals: bool = False) -> t.Dict[str, t.Any]:
        """``requests``, ``statuses`` (by code, as text), ``in_flight`` and ``max_in_flight``;
        with ``arrivals``, also when each request arrived (seconds, the service's monotonic clock)."""
        with urllib.request.urlopen(f"{self.url}/stats{'?arrivals=1' if arrivals else ''}", timeout=10) as answer:
            return json.load(answer)

    @property
    def requests(self) -> int:
        return self.stats()["requests"]

    @property
    def max_in_flight(self) -> int:
        return self.stats()["max_in_flight"]

    def reset_counts(self) -> None:
        """Count requests and the most in flight from zero again (keys already served once
        no longer fail transiently)."""
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/reset", method="POST"), timeout=10).close()

    def __enter__(self) -> "ExchangeRateService":
        command = [
            sys.executable, str(Path(__file__).resolve()), "--port", "0", "--latency-ms", str(self.latency_ms),
            "--transient-rate", str(self.failures.transient_rate), "--permanent-rate", str(self.failures.permanent_rate),
            "--exit-with-parent",
        ]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        announced = self._process.stdout.readline() if self._process.stdout else ""
        if not announced.startswith("serving on "):
            self._process.kill()
            raise RuntimeError(f"the exchange-rate service did not start: {announced!r}")
        self.url = announced.split()[-1]
        return self

    def __exit__(self, *exc: t.Any) -> None:
        assert self._process is not None
        self._process.terminate()
        self._process.wait(timeout=10)


async def serve(server: RateServer, port: int, with_parent: bool = False) -> None:
    """Serve until cancelled; say where on stdout first (port 0: a free one)."""
    runner = web.AppRunner(server.application(), access_log=None)
    await runner.setup()
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.bind(("127.0.0.1", port))
    await web.SockSite(runner, listening, backlog=1024).start()
    print(f"serving on http://127.0.0.1:{listening.getsockname()[1]}", flush=True)
    try:
        await _until_orphaned() if with_parent else asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def _until_orphaned() -> None:
    """Return once the process that started the service is gone (killed before it could stop
    the service): a test or benchmark interrupted leaves no server behind."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve exchange rates on 127.0.0.1 until interrupted.")
    parser.add_argument("--port", type=int, default=8321)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--transient-rate", type=float, default=0.02, help="share of keys whose first request answers 503")
    parser.add_argument("--permanent-rate", type=float, default=0.01, help="share of keys that always answer 404")
    parser.add_argument("--exit-with-parent", action="store_true", help="stop when the process that started it ends")
    args = parser.parse_args()
    server = RateServer(args.latency_ms, Failures(args.transient_rate, args.permanent_rate))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(server, args.port, args.exit_with_parent))


if __name__ == "__main__":
    main()

"""A small HTTP service on 127.0.0.1 for the tests of functions that call the outside world.

``GET /value?key=K`` answers ``{"key": K, "value": value_of(K)}`` after ``latency`` seconds.
Which keys fail is decided by the key, not by chance, so a test knows them in advance:
``transient_rate`` of the keys answer 503 to their first request and 200 afterwards (a
retry succeeds), ``permanent_rate`` of them always answer 500; the key ``"hang"`` is never
answered. The service counts requests and the most requests in flight at once, and
notes when each request arrived (for the rate it was called at).

It runs on its own event loop in a daemon thread (aiohttp), on a free port.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import threading
import time
import typing as t

from aiohttp import web

HANG = "hang"


def value_of(key: str) -> float:
    """The value the service gives for a key (what a test expects)."""
    return int(_digest(key, "value")[:8], 16) % 100_000 / 100


def fails(key: str, rate: float, kind: str) -> bool:
    """Whether ``key`` is among the ``rate`` of keys that fail this way (transient, permanent)."""
    return rate > 0 and int(_digest(key, kind)[:8], 16) / 0xFFFFFFFF < rate


def _digest(key: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()


class HttpService:
    """The service, started with ``start()``; ``url`` is its base address."""

    def __init__(self, latency: float = 0.0, transient_rate: float = 0.0, permanent_rate: float = 0.0) -> None:
        self.latency = latency
        self.transient_rate = transient_rate
        self.permanent_rate = permanent_rate
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests_by_key: t.Counter[str] = collections.Counter()
        self.arrivals: t.List[float] = []  # time.monotonic() of each request
        self._loop = asyncio.new_event_loop()
        self._runner: t.Optional[web.AppRunner] = None
        self._stopping: t.Optional[asyncio.Event] = None  # ends the hung requests
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset_counts(self) -> None:
        self.requests = self.max_in_flight = 0
        self.requests_by_key.clear()
        self.arrivals.clear()

    def start(self) -> "HttpService":
        threading.Thread(target=self._loop.run_forever, name="test-http-service", daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=30)
        return self

    def stop(self) -> None:
        if self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_get("/value", self._value)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _value(self, request: web.Request) -> web.Response:
        key = request.query.get("key", "")
        self.requests += 1  # on the service's loop only: no lock needed
        self.arrivals.append(time.monotonic())
        self.requests_by_key[key] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if key == HANG and self._stopping is not None:
                await self._stopping.wait()
            if self.latency:
                await asyncio.sleep(self.latency)
            if fails(key, self.permanent_rate, "permanent"):
                return web.json_response({"error": f"no value for {key}"}, status=500)
            if fails(key, self.transient_rate, "transient") and self.requests_by_key[key] == 1:
                return web.json_response({"error": "try again"}, status=503)
            return web.json_response({"key": key, "value": value_of(key)})
        finally:
            self.in_flight -= 1

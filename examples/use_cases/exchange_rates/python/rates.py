"""Exchange rates from an HTTP service, called from SQL: up to 32 calls in flight, at most
500 a second, each answer kept in the warehouse's cache, a busy service retried, and a rate
the service does not have quarantined (the row's rate is NULL).

The service's address comes from the environment variable ``EXCHANGE_RATES_URL`` (for
example ``http://127.0.0.1:8321``; ``service.py`` in this folder is such a service).
"""

from __future__ import annotations

import os
from datetime import date
from urllib.parse import quote

import httpx

from mixmesh import Retry, resource, udf

URL_VARIABLE = "EXCHANGE_RATES_URL"


class ServiceUnavailable(ConnectionError):
    """The service answered 503: busy for now, worth asking again."""


class RateNotFound(LookupError):
    """The service has no rate for this currency and day (404): asking again will not help."""


@resource
def http_client() -> httpx.Client:
    """One httpx Client for the process, shared by the threads calls run on: its pool keeps
    connections open from call to call (building a Client costs milliseconds, one per
    thread would cost more than the calls)."""
    return httpx.Client(
        timeout=httpx.Timeout(10.0),
        limits=httpx.Limits(max_connections=128, max_keepalive_connections=128),
        trust_env=False,
    )


def service_url() -> str:
    url = os.environ.get(URL_VARIABLE)
    if not url:
        raise RuntimeError(f"exchange_rate: set {URL_VARIABLE} to the exchange-rate service's address, e.g. http://127.0.0.1:8321")
    return url.rstrip("/")


def fetch_rate(currency: str, day: date) -> float:
    """US dollars per unit of ``currency`` on ``day``, as the service says."""
    # The query string written out: httpx's params= costs a fifth more CPU per request.
    answer = http_client().get(f"{service_url()}/rate?currency={quote(currency)}&day={day.isoformat()}")
    if answer.status_code == 503:
        raise ServiceUnavailable(f"exchange-rate service busy for {currency} on {day}")
    if answer.status_code == 404:
        raise RateNotFound(answer.json().get("error", f"no rate for {currency} on {day}"))
    answer.raise_for_status()
    return float(answer.json()["rate"])


# A busy service (503) or a broken connection is asked again after 50 ms, 200 ms, 1 s; a
# missing rate (404) is not retried. Either way a row whose call still failed gets NULL and a
# record in mixmesh_quarantine.rows; the model's audit fails the interval past 10 such rows.
@udf(
    concurrency=32,
    rate_limit="500/s",
    cache=True,
    retry=Retry(attempts=4, backoff=[0.05, 0.2, 1.0], on=(ServiceUnavailable, httpx.TransportError)),
    on_error=None,
)
def exchange_rate(currency: str, day: date) -> float:
    """US dollars per unit of ``currency`` on ``day``."""
    return fetch_rate(currency, day)

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

import urllib3

from mixmesh import Retry, resource, udf

URL_VARIABLE = "EXCHANGE_RATES_URL"


class ServiceUnavailable(ConnectionError):
    """The service answered 503: busy for now, worth asking again."""


class RateNotFound(LookupError):
    """The service has no rate for this currency and day (404): asking again will not help."""


@resource
def http_client() -> urllib3.PoolManager:
    """One urllib3 pool for the process, shared by the threads calls run on (it is
    thread-safe): connections stay open from call to call. urllib3 (the client under
    requests) spends about 0.35 ms of CPU on a request where httpx spends 2 ms, and with 32
    calls in flight the client's CPU, not the service's latency, sets the pace. Its own
    retries are off: mixmesh's Retry decides, and counts them."""
    return urllib3.PoolManager(maxsize=128, retries=False, timeout=urllib3.Timeout(total=10.0))


def service_url() -> str:
    url = os.environ.get(URL_VARIABLE)
    if not url:
        raise RuntimeError(f"exchange_rate: set {URL_VARIABLE} to the exchange-rate service's address, e.g. http://127.0.0.1:8321")
    return url.rstrip("/")


def fetch_rate(currency: str, day: date) -> float:
    """US dollars per unit of ``currency`` on ``day``, as the service says."""
    answer = http_client().request("GET", f"{service_url()}/rate?currency={quote(currency)}&day={day.isoformat()}")
    if answer.status == 503:
        raise ServiceUnavailable(f"exchange-rate service busy for {currency} on {day}")
    if answer.status == 404:
        raise RateNotFound(answer.json().get("error", f"no rate for {currency} on {day}"))
    if answer.status != 200:
        raise RuntimeError(f"exchange-rate service answered {answer.status} for {currency} on {day}")
    return float(answer.json()["rate"])


# A busy service (503) or a broken connection is asked again after 50 ms, 200 ms, 1 s; a
# missing rate (404) is not retried. Either way a row whose call still failed gets NULL and a
# record in mixmesh_quarantine.rows; the model's audit fails the interval past 10 such rows.
@udf(
    concurrency=32,
    rate_limit="500/s",
    cache=True,
    retry=Retry(attempts=4, backoff=[0.05, 0.2, 1.0], on=(ServiceUnavailable, urllib3.exceptions.HTTPError)),
    on_error=None,
)
def exchange_rate(currency: str, day: date) -> float:
    """US dollars per unit of ``currency`` on ``day``."""
    return fetch_rate(currency, day)

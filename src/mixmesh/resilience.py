"""Resilience policies: retries with backoff, circuit breakers, and what they counted.

``Retry`` wraps tenacity (its stop, wait and retry strategies; ``sleep`` injectable so
tests never sleep). ``CircuitBreaker`` wraps pybreaker, which is thread-safe; one policy
object keeps one breaker per function (and per model calling it), so a failing function
cannot open another's circuit. Policies combine with ``&``: ``Retry(3) & CircuitBreaker(5,
60)`` retries each call, and the breaker counts a call that still failed after its retries.

Every retry, circuit transition and fallback is counted per model and function
(``events()``) and logged once per kind, not once per row.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import time
import typing as t

import pybreaker
import tenacity

logger = logging.getLogger(__name__)

Call = t.Callable[..., t.Any]
RECOVERABLE = (ConnectionError, TimeoutError)


class Policy:
    """Something that protects a call; policies combine with ``&`` (left runs outermost)."""

    def protect(self, func: Call, *, function: str, model: t.Optional[str]) -> Call:
        raise NotImplementedError

    def __and__(self, other: "Policy") -> "Policy":
        return Policies((self, other))


class Policies(Policy):
    """Several policies, the first one outermost."""

    def __init__(self, policies: t.Sequence[Policy]) -> None:
        self.policies = tuple(
            inner for policy in policies for inner in (policy.policies if isinstance(policy, Policies) else (policy,))
        )

    def protect(self, func: Call, *, function: str, model: t.Optional[str]) -> Call:
        for policy in reversed(self.policies):
            func = policy.protect(func, function=function, model=model)
        return func

    def __repr__(self) -> str:
        return " & ".join(map(repr, self.policies))


class Retry(Policy):
    """Retry a call that raised a recoverable error, waiting between attempts.

    Args:
        attempts: calls in all, the first included.
        backoff: seconds to wait before each retry (``[1, 5, 15]``; the last repeats), or a
            tenacity wait strategy (``Retry.exponential(...)``).
        on: the error types worth retrying (ConnectionError and TimeoutError by default).
        jitter: up to this many seconds added at random to each wait.
        sleep: how to wait (injected by tests).
    """

    def __init__(
        self,
        attempts: int = 3,
        backoff: t.Union[t.Sequence[float], t.Any] = (1, 5, 15),
        on: t.Union[t.Type[BaseException], t.Tuple[t.Type[BaseException], ...]] = RECOVERABLE,
        jitter: float = 0.0,
        sleep: t.Callable[[float], None] = time.sleep,
    ) -> None:
        self.attempts = attempts
        self.backoff = backoff
        self.on = on if isinstance(on, tuple) else (on,)
        self.jitter = jitter
        self.sleep = sleep

    def problems(self) -> t.List[str]:
        """What is wrong with this policy's arguments (``@udf``/``@python_model`` say whose)."""
        found = []
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            found.append(f"attempts must be a whole number of at least 1, got {self.attempts!r}")
        if isinstance(self.backoff, (list, tuple)):
            if not self.backoff:
                found.append("backoff lists no wait; give at least one, e.g. backoff=[1, 5, 15]")
            bad = [w for w in self.backoff if not _seconds(w, allow_zero=True)]
            if bad:
                found.append(f"backoff waits must be finite numbers of seconds, at least 0; got {bad}")
        elif not hasattr(self.backoff, "__call__"):
            found.append(f"backoff must be a list of seconds or Retry.exponential(...), got {self.backoff!r}")
        if not _seconds(self.jitter, allow_zero=True):
            found.append(f"jitter must be a finite number of seconds, at least 0, got {self.jitter!r}")
        bad_types = [e for e in self.on if not (isinstance(e, type) and issubclass(e, BaseException))]
        if bad_types:
            found.append(f"on= takes exception types, got {bad_types}")
        return found

    @staticmethod
    def exponential(start: float = 1, maximum: float = 60, base: float = 2) -> t.Any:
        """Waits of start, start*base, start*base**2... seconds, at most ``maximum``."""
        return tenacity.wait_exponential(multiplier=start, max=maximum, exp_base=base)

    def _wait(self) -> t.Any:
        if isinstance(self.backoff, (list, tuple)):
            wait = tenacity.wait_chain(*[tenacity.wait_fixed(seconds) for seconds in self.backoff])
        else:
            wait = self.backoff
        return wait + tenacity.wait_random(0, self.jitter) if self.jitter else wait

    def protect(self, func: Call, *, function: str, model: t.Optional[str]) -> Call:
        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            record(model, function, "retries", f"retrying after {type(error).__name__}: {error}")

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=self._wait(),
            retry=tenacity.retry_if_exception_type(self.on),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return lambda *args: retrying(func, *args)

    def __repr__(self) -> str:
        return f"Retry(attempts={self.attempts}, backoff={self.backoff!r}, on={tuple(e.__name__ for e in self.on)})"


class CircuitBreaker(Policy):
    """Stop calling a function that keeps failing; try again after ``reset_timeout`` seconds.

    While the circuit is open, calls do not reach the function: they go to the fallback
    (``on_error``), or fail with ``CircuitOpenError`` when there is none.
    """

    def __init__(self, fail_max: int = 5, reset_timeout: float = 60) -> None:
        self.fail_max = fail_max
        self.reset_timeout = reset_timeout
        self._breakers: t.Dict[t.Tuple[t.Optional[str], str], pybreaker.CircuitBreaker] = {}
        self._lock = threading.Lock()

    def problems(self) -> t.List[str]:
        """What is wrong with this breaker's arguments (``@udf`` says whose)."""
        found = []
        if isinstance(self.fail_max, bool) or not isinstance(self.fail_max, int) or self.fail_max < 1:
            found.append(f"fail_max must be a whole number of at least 1, got {self.fail_max!r}")
        if not _seconds(self.reset_timeout):
            found.append(f"reset_timeout must be a positive, finite number of seconds, got {self.reset_timeout!r}")
        return found

    def breaker(self, *, function: str, model: t.Optional[str]) -> pybreaker.CircuitBreaker:
        """The breaker of one function as one model calls it (created on first use)."""
        key = (model, function)
        with self._lock:
            if key not in self._breakers:
                self._breakers[key] = pybreaker.CircuitBreaker(
                    fail_max=self.fail_max,
                    reset_timeout=self.reset_timeout,
                    listeners=[_Transitions(model, function)],
                    # The failure that trips the circuit is still that call's own error.
                    throw_new_error_on_trip=False,
                )
            return self._breakers[key]

    def protect(self, func: Call, *, function: str, model: t.Optional[str]) -> Call:
        breaker = self.breaker(function=function, model=model)

        def call(*args: t.Any) -> t.Any:
            try:
                return breaker.call(func, *args)
            except pybreaker.CircuitBreakerError as error:
                raise CircuitOpenError(f"the circuit of function {function!r} is open: {error}") from None

        return call

    def __repr__(self) -> str:
        return f"CircuitBreaker(fail_max={self.fail_max}, reset_timeout={self.reset_timeout})"


class Timeout(Policy):
    """Stop waiting for a call after ``seconds``: the caller gets a TimeoutError.

    Python cannot stop a running thread, so the call itself runs in a worker thread and,
    if it hangs, finishes (or not) in the background: the engine and the process go on.
    ``on_late_result`` receives what an abandoned call returns, if it ever does (a model
    drops its staged rows with it). Timeouts are recoverable: a ``Retry`` retries them.
    """

    # Shared by all timeouts; hung calls hold a worker each, so the pool is generous. Its
    # threads are daemons: a call that hangs for ever does not keep the process alive once
    # the statement has ended (a ThreadPoolExecutor's threads are joined at exit).
    _workers: "_DaemonPool"

    def __init__(self, seconds: float, on_late_result: t.Optional[t.Callable[[t.Any], None]] = None) -> None:
        if not _seconds(seconds):
            raise ValueError(f"a timeout must be a positive, finite number of seconds, got {seconds!r}")
        self.seconds = seconds
        self.on_late_result = on_late_result

    def protect(self, func: Call, *, function: str, model: t.Optional[str]) -> Call:
        def call(*args: t.Any) -> t.Any:
            future = self._workers.submit(func, *args)
            try:
                return future.result(timeout=self.seconds)
            except concurrent.futures.TimeoutError:
                if self.on_late_result is not None:
                    future.add_done_callback(self._late)
                record(model, function, "timeouts", f"no answer within {self.seconds:g} s")
                raise TimeoutError(f"{_where(function, model)} gave no answer within {self.seconds:g} s") from None

        return call

    def _late(self, future: "concurrent.futures.Future[t.Any]") -> None:
        if future.exception() is None and self.on_late_result is not None:
            self.on_late_result(future.result())

    def __repr__(self) -> str:
        return f"Timeout({self.seconds:g})"


def _seconds(value: t.Any, *, allow_zero: bool = False) -> bool:
    """A finite number of seconds, above zero (or at least zero)."""
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return value >= 0 if allow_zero else value > 0


class _DaemonPool:
    """Daemon threads running submitted calls; a hung call holds one, and the process still
    exits when its work is done."""

    def __init__(self, max_workers: int, name: str) -> None:
        import queue

        self._work: "queue.SimpleQueue[t.Any]" = queue.SimpleQueue()
        self._max, self._name = max_workers, name
        self._threads = 0
        self._busy = 0
        self._lock = threading.Lock()

    def submit(self, func: Call, *args: t.Any) -> "concurrent.futures.Future[t.Any]":
        future: "concurrent.futures.Future[t.Any]" = concurrent.futures.Future()
        self._work.put((future, func, args))
        with self._lock:  # a thread more while the waiting calls outnumber the idle threads
            if self._threads < self._max and self._work.qsize() > self._threads - self._busy:
                self._threads += 1
                threading.Thread(target=self._serve, name=f"{self._name}-{self._threads}", daemon=True).start()
        return future

    def _serve(self) -> None:
        while True:
            future, func, args = self._work.get()
            with self._lock:
                self._busy += 1
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(func(*args))
                    except BaseException as error:  # noqa: BLE001 - handed to the waiting caller
                        future.set_exception(error)
            finally:
                with self._lock:
                    self._busy -= 1


Timeout._workers = _DaemonPool(max_workers=64, name="mixmesh-timeout")


class CircuitOpenError(RuntimeError):
    """A call did not reach its function because the function's circuit is open."""


class _Transitions(pybreaker.CircuitBreakerListener):
    def __init__(self, model: t.Optional[str], function: str) -> None:
        self.model, self.function = model, function

    def state_change(self, breaker: t.Any, old: t.Any, new: t.Any) -> None:
        record(self.model, self.function, "breaker_transitions", f"circuit {old.name} -> {new.name}")


# --- what was counted ---------------------------------------------------------------------

_counts: t.Counter[t.Tuple[t.Optional[str], str, str]] = collections.Counter()
_logged: t.Set[t.Tuple[t.Optional[str], str, str]] = set()
_counts_lock = threading.Lock()


def record(
    model: t.Optional[str], function: str, event: str, detail: str = "", *, log: bool = True, times: int = 1
) -> None:
    """Count one event of a function (in a model), or ``times`` of them (counted in another
    process); log the first of each kind (unless the caller logs it itself)."""
    key = (model, function, event)
    with _counts_lock:
        _counts[key] += times
        first = key not in _logged
        _logged.add(key)
    if first and log:
        logger.warning(
            "%s: %s (%s; further ones are counted, not logged)", _where(function, model), detail or event, event
        )


def _where(function: str, model: t.Optional[str]) -> str:
    if function == "model" and model:
        return f"model {model}"
    return f"function {function!r}" + (f" in model {model}" if model else "")


def events(model: t.Optional[str] = None) -> t.Dict[t.Tuple[t.Optional[str], str, str], int]:
    """Counts so far, by (model, function, event); only one model's with ``model=``."""
    with _counts_lock:
        return {key: n for key, n in _counts.items() if model is None or key[0] == model}


def reset_events() -> None:
    """Forget the counts (a new run, a new test)."""
    with _counts_lock:
        _counts.clear()
        _logged.clear()

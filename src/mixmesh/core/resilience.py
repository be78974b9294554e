"""Resilience policies: retries with backoff, circuit breakers, and what they counted.

``Retry`` wraps tenacity (its stop, wait and retry strategies; ``sleep`` injectable so
tests never sleep). ``CircuitBreaker`` keeps one circuit per function (and per model calling
it), so a failing function cannot open another's circuit; its lock never spans a call. Policies combine with ``&``: ``Retry(3) & CircuitBreaker(5,
60)`` retries each call, and the breaker counts a call that still failed after its retries.

Every retry, circuit transition and fallback is counted per model and function
(``events()``) and logged once per kind, not once per row.

Longer than 450 lines because the three policies share one event counter and compose with
one another (the breaker counts what a timeout gives up on; a retry runs it again).
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import os
import threading
import time
import typing as t

import tenacity
from mixmesh.core.names import keep_import_path

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
            inner for policy in policies for inner in policies_in(policy)
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
        retrying = tenacity.Retrying(**self.tenacity_arguments(function=function, model=model))

        def call(*args: t.Any) -> t.Any:
            try:
                return retrying(func, *args)
            except Exception as error:  # given up: say after how many calls (quarantined rows record it)
                note_attempts(error, retrying.statistics.get("attempt_number", 1))
                raise

        return call

    def tenacity_arguments(self, *, function: str, model: t.Optional[str]) -> t.Dict[str, t.Any]:
        """What tenacity's ``Retrying`` (or ``AsyncRetrying``, for async functions) is built with."""

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            record(model, function, "retries", f"retrying after {type(error).__name__}: {error}")

        return dict(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=self._wait(),
            retry=tenacity.retry_if_exception_type(self.on) & tenacity.retry_if_not_exception_type(Abandoned),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )

    def __repr__(self) -> str:
        return f"Retry(attempts={self.attempts}, backoff={self.backoff!r}, on={tuple(e.__name__ for e in self.on)})"


class CircuitBreaker(Policy):
    """Stop calling a function that keeps failing; try again after ``reset_timeout`` seconds.

    ``fail_max`` failures in a row open the circuit. While it is open, calls do not reach
    the function: they go to the fallback (``on_error``), or fail with ``CircuitOpenError``
    when there is none. After ``reset_timeout`` one trial call goes through (half-open): its
    success closes the circuit, its failure opens it again. ``clock`` is injectable (tests).
    """

    def __init__(
        self, fail_max: int = 5, reset_timeout: float = 60, clock: t.Callable[[], float] = time.monotonic
    ) -> None:
        self.fail_max = fail_max
        self.reset_timeout = reset_timeout
        self.clock = clock
        self._circuits: t.Dict[t.Tuple[t.Optional[str], str], _Circuit] = {}
        self._lock = threading.Lock()

    def problems(self) -> t.List[str]:
        """What is wrong with this breaker's arguments (``@udf`` says whose)."""
        found = []
        if isinstance(self.fail_max, bool) or not isinstance(self.fail_max, int) or self.fail_max < 1:
            found.append(f"fail_max must be a whole number of at least 1, got {self.fail_max!r}")
        if not _seconds(self.reset_timeout):
            found.append(f"reset_timeout must be a positive, finite number of seconds, got {self.reset_timeout!r}")
        return found

    def breaker(self, *, function: str, model: t.Optional[str]) -> "_Circuit":
        """The circuit of one function as one model calls it (created on first use)."""
        key = (model, function)
        with self._lock:
            if key not in self._circuits:
                self._circuits[key] = _Circuit(self, function=function, model=model)
            return self._circuits[key]

    def protect(self, func: Call, *, function: str, model: t.Optional[str]) -> Call:
        circuit = self.breaker(function=function, model=model)
        return lambda *args: circuit.call(func, *args)

    def __repr__(self) -> str:
        return f"CircuitBreaker(fail_max={self.fail_max}, reset_timeout={self.reset_timeout})"


class _Circuit:
    """One function's circuit. Its lock guards the state only, never a call: concurrent calls
    run at once, and a hung call blocks no other (a breaker holding its lock across the call
    would queue every thread behind the slowest call, and behind a hung one for ever)."""

    def __init__(self, policy: CircuitBreaker, *, function: str, model: t.Optional[str]) -> None:
        self._policy, self._function, self._model = policy, function, model
        self._lock = threading.Lock()
        self._state = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._trial_running = False

    @property
    def current_state(self) -> str:
        """"closed", "open" or "half-open"."""
        with self._lock:
            return self._state

    def call(self, func: Call, *args: t.Any) -> t.Any:
        trial = self._admit()
        try:
            result = func(*args)
        except Exception:
            self._failed(trial)
            raise
        except BaseException:  # an abandoned or stopped call: no answer from the service either way
            self._settle(trial)
            raise
        self._succeeded(trial)
        return result

    def _admit(self) -> bool:
        """Whether the call is the half-open trial; raises CircuitOpenError when it may not run."""
        with self._lock:
            if self._state == "open" and self._policy.clock() - self._opened_at >= self._policy.reset_timeout:
                self._move("half-open")
            if self._state == "closed":
                return False
            if self._state == "half-open" and not self._trial_running:
                self._trial_running = True
                return True
        raise CircuitOpenError(
            f"the circuit of function {self._function!r} is open: {self._policy.fail_max} calls failed in a row; "
            f"the next call goes through {self._policy.reset_timeout:g} s after it opened"
        )

    def _failed(self, trial: bool) -> None:
        with self._lock:
            self._trial_running = self._trial_running and not trial
            self._failures += 1
            if trial or (self._state == "closed" and self._failures >= self._policy.fail_max):
                self._opened_at = self._policy.clock()
                self._move("open")

    def _succeeded(self, trial: bool) -> None:
        with self._lock:
            self._failures = 0
            if trial:
                self._trial_running = False
                self._move("closed")

    def _settle(self, trial: bool) -> None:
        with self._lock:
            if trial:
                self._trial_running = False

    def _move(self, state: str) -> None:
        record(self._model, self._function, "breaker_transitions", f"circuit {self._state} -> {state}")
        self._state = state


class Timeout(Policy):
    """Stop waiting for a call after ``seconds``: the caller gets a TimeoutError.

    Python cannot stop a running thread, so a call that hangs finishes (or not) in the
    background while the engine and the process go on. Calls run one of two ways:

    - Alone (a vectorized batch, a model): in a worker thread the caller waits for.
      ``on_late_result`` receives what an abandoned call returns, if it ever does (a model
      drops its staged rows with it).
    - Row by row (``run_rows``): a batch's rows run in one worker thread while the caller
      watches its progress; a row that makes none for ``seconds`` (within a tenth of them)
      is given up and the rows after it go on in a fresh worker. One thread switch per
      batch, and no clock read per row.

    Timeouts are recoverable: a ``Retry`` retries them.
    """

    # Shared by all timeouts; hung calls hold a worker each, so the pool grows as needed. Its
    # threads are daemons: a call that hangs for ever does not keep the process alive once
    # the statement has ended (a ThreadPoolExecutor's threads are joined at exit).
    _workers: "_DaemonPool"

    def __init__(self, seconds: float, on_late_result: t.Optional[t.Callable[[t.Any], None]] = None) -> None:
        if not _seconds(seconds):
            raise ValueError(f"a timeout must be a positive, finite number of seconds, got {seconds!r}")
        self.seconds = seconds
        self.on_late_result = on_late_result

    def protect(self, func: Call, *, function: str, model: t.Optional[str]) -> Call:
        gave_up = self.gave_up(function, model)

        def call(*args: t.Any) -> t.Any:
            watch: t.Optional[_RowWatch] = getattr(_watched, "rows", None)
            if watch is not None:  # a row of run_rows: timed by its waiter
                return watch.attempt(func, args, gave_up)
            future = self._workers.submit(func, *args)
            try:
                return future.result(timeout=self.seconds)
            except concurrent.futures.TimeoutError:
                if self.on_late_result is not None:
                    future.add_done_callback(self._late)
                raise gave_up() from None

        return call

    def gave_up(self, function: str, model: t.Optional[str]) -> t.Callable[[], TimeoutError]:
        """The error of a call given up (counted as a timeout when made)."""

        def error() -> TimeoutError:
            record(model, function, "timeouts", f"no answer within {self.seconds:g} s")
            return TimeoutError(f"{_where(function, model)} gave no answer within {self.seconds:g} s")

        return error

    def run_rows(
        self,
        call: Call,
        columns: t.Sequence[t.Sequence[t.Any]],
        timed_out: t.Optional[t.Callable[[t.Tuple[t.Any, ...]], t.Any]] = None,
    ) -> t.List[t.Any]:
        """``list(map(call, *columns))``, each row's call bounded by ``seconds``.

        With ``timed_out``, ``call`` is the bare row call and a row given up gets
        ``timed_out(row)`` (a fallback, or an error raised). Without it, ``call`` holds this
        timeout among its policies: each attempt inside it is timed, a row given up runs
        again from the top in the fresh worker, its given-up attempt failing there with
        TimeoutError (so retries, the breaker and on_error see it as they would)."""
        rows = len(columns[0]) if columns else 0
        results: t.List[t.Any] = []
        resumed = False
        while len(results) < rows:
            start = len(results)
            watch = _RowWatch([column[start:] for column in columns], resumed, attempts_timed=timed_out is None)
            self._workers.submit(watch.run, call)
            results.extend(watch.wait(self.seconds))
            resumed = watch.abandoned and timed_out is None  # the row runs again, its first attempt given up
            if watch.abandoned and timed_out is not None:
                results.append(timed_out(tuple(column[len(results)] for column in columns)))
        return results

    def _late(self, future: "concurrent.futures.Future[t.Any]") -> None:
        if future.exception() is None and self.on_late_result is not None:
            self.on_late_result(future.result())

    def __repr__(self) -> str:
        return f"Timeout({self.seconds:g})"


class Abandoned(BaseException):
    """Raised in a worker whose hung call returned after its row was given up: unwinds the
    worker without a retry or a breaker count (a BaseException: no ``except Exception`` of
    a policy or a function catches it)."""


_watched = threading.local()


class _RowWatch:
    """One worker's run over the rows of a batch, as its waiter sees it.

    Progress is read without costing the rows anything: the worker extends its own list
    from ``map``, which CPython grows one item at a time, so its length is the rows done;
    attempts timed inside the call (retries) tick ``ticks``, odd while one runs. Giving up
    empties the inputs, so the worker stops after the call it is in."""

    def __init__(self, inputs: t.List[t.List[t.Any]], resumed: bool, *, attempts_timed: bool) -> None:
        self.inputs = inputs
        self.results: t.List[t.Any] = []
        self.resumed = resumed  # the first row's first attempt is the one given up: it fails at once
        self.attempts_timed = attempts_timed
        self.ticks = 0
        self.abandoned = False
        self.finished = threading.Event()
        self.error: t.Optional[BaseException] = None

    def run(self, call: Call) -> None:
        _watched.rows = self if self.attempts_timed else None
        try:
            if self.resumed and self.inputs and self.inputs[0]:  # the row given up, on its own
                self.results.append(call(*(column[0] for column in self.inputs)))
                self.resumed = False
                for column in self.inputs:
                    del column[0]
            self.results.extend(map(call, *self.inputs))
        except Abandoned:
            return
        except BaseException as error:  # noqa: BLE001 - handed to the waiting caller
            self.error = error
        finally:
            _watched.rows = None
        self.finished.set()

    def attempt(self, func: Call, args: t.Tuple[t.Any, ...], gave_up: t.Callable[[], TimeoutError]) -> t.Any:
        if self.resumed:
            self.resumed = False
            raise gave_up()
        self.ticks += 1
        try:
            return func(*args)
        finally:
            self.ticks += 1
            if self.abandoned:
                raise Abandoned()

    def wait(self, seconds: float) -> t.List[t.Any]:
        """The results of the rows done: all of them (a row's error is raised), or those
        before the row given up (``abandoned`` then says so)."""
        poll = min(seconds / 10, 0.05)
        seen, since = self._progress(), time.monotonic()
        while not self.finished.wait(poll):
            progress, now = self._progress(), time.monotonic()
            if progress != seen or (self.attempts_timed and self.ticks % 2 == 0):
                seen, since = progress, now
            elif now - since >= seconds:
                return self._give_up()
        if self.error is not None:
            raise self.error
        return self.results

    def _progress(self) -> t.Tuple[int, int]:
        return len(self.results), self.ticks

    def _give_up(self) -> t.List[t.Any]:
        # The rows done first, then the inputs emptied: a row that finishes meanwhile is
        # still taken as given up (it took the whole timeout), never one that did not start.
        done = self.results[:]
        self.abandoned = True
        for column in self.inputs:
            column.clear()
        return done


_ATTEMPTS = "__mixmesh_attempts__"


def note_attempts(error: BaseException, attempts: int) -> None:
    try:
        setattr(error, _ATTEMPTS, attempts)
    except (AttributeError, TypeError):  # an exception refusing attributes: counted as one call
        pass


def attempts_of(error: BaseException) -> int:
    """The calls made before ``error`` was given up: as ``Retry`` noted on it, 0 when the
    circuit was open (the function was not called), 1 otherwise."""
    if isinstance(error, CircuitOpenError):
        return 0
    return int(getattr(error, _ATTEMPTS, 1))


def policies_in(policy: t.Optional[Policy]) -> t.Tuple[Policy, ...]:
    """The single policies a function's ``policies`` holds, outermost first (none for None)."""
    if policy is None:
        return ()
    return policy.policies if isinstance(policy, Policies) else (policy,)


def timeout_of(policy: t.Optional[Policy]) -> t.Optional[Timeout]:
    """The timeout among a function's policies, if any."""
    return next((p for p in policies_in(policy) if isinstance(p, Timeout)), None)


def _seconds(value: t.Any, *, allow_zero: bool = False) -> bool:
    """A finite number of seconds, above zero (or at least zero)."""
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return value >= 0 if allow_zero else value > 0


class _DaemonPool:
    """Daemon threads running submitted calls; a hung call holds one, and the process still
    exits when its work is done."""

    def __init__(self, name: str) -> None:
        import queue

        self._work: "queue.SimpleQueue[t.Any]" = queue.SimpleQueue()
        self._name = name
        self._threads = 0
        # Both counted under the lock, and a thread takes one off each only after it has taken
        # a call from the queue: between the two it is still idle and its call still waiting,
        # so a call submitted then is never counted as served by a thread that will hang.
        self._waiting = 0
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, func: Call, *args: t.Any) -> "concurrent.futures.Future[t.Any]":
        future: "concurrent.futures.Future[t.Any]" = concurrent.futures.Future()
        # A thread more while the waiting calls outnumber the idle threads. No cap: a hung call
        # holds its thread for ever, and a cap would let hung calls stall every later one.
        with self._lock:
            self._waiting += 1
            if self._waiting > self._idle:
                self._threads += 1
                self._idle += 1
                threading.Thread(target=self._serve, name=f"{self._name}-{self._threads}", daemon=True).start()
        self._work.put((future, func, args))
        return future

    def _serve(self) -> None:
        while True:
            future, func, args = self._work.get()
            with self._lock:
                self._waiting -= 1
                self._idle -= 1
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(func(*args))
                    except BaseException as error:  # noqa: BLE001 - handed to the waiting caller
                        future.set_exception(error)
            finally:
                with self._lock:
                    self._idle += 1


Timeout._workers = _DaemonPool(name="mixmesh-timeout")


def _new_workers_after_fork() -> None:
    """A forked child has none of its parent's worker threads, only their count: it would
    queue timed calls for threads that are not there."""
    Timeout._workers = _DaemonPool(name="mixmesh-timeout")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_workers_after_fork)


class CircuitOpenError(RuntimeError):
    """A call did not reach its function because the function's circuit is open."""


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


# Public names keep the path projects import them from (see mixmesh.core.names).
keep_import_path(globals(), "mixmesh.resilience")

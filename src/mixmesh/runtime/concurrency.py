"""Row calls in flight together, for functions that wait on a service (``@udf(concurrency=N)``).

A batch's rows (a DuckDB vector, a fast-path batch, a Spark Arrow batch) run through the
function's runner, made once per function per process: a plain function's on a pool of
daemon threads (``ThreadedRows``), an ``async def`` function's as coroutines on the
process's event loop (``AsyncRows``). A per-function semaphore keeps at most N calls in
flight across every batch the engine runs at once. Each row is one task, with its own
retries (a backoff sleeps in that task only), its timeout (an attempt given up frees the
row, which goes on to its retry or on_error), its breaker check and its on_error value;
results come back in the rows' order, so they are those of ``concurrency=1``.

The threads are daemons: a call that hangs for ever keeps no process alive once its row is
given up (``timeout_s``) and the query is done, as with ``resilience.Timeout``'s workers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import os
import queue
import threading
import typing as t

from mixmesh import sink
from mixmesh.core import resilience
from mixmesh.core import sql_types as types
from mixmesh.core.errors import FunctionRuntimeError, where
from mixmesh.core.functions import FunctionSpec
from mixmesh.runtime.quarantine import fall_back
from mixmesh.runtime.values import STOPS, describe_row, raised


class InFlight:
    """How many calls of a function are in flight in this process now, and the most ever."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def enter(self) -> int:
        """One call more; how many are in flight now."""
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
            return self.now

    def leave(self) -> None:
        with self._lock:
            self.now -= 1


class _BatchPeak:
    """The most calls in flight in the process while one batch ran (its rows and others')."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def see(self, in_flight: int) -> None:
        with self._lock:
            self.value = max(self.value, in_flight)


class _Runner:
    """What both runners share: the counter of calls in flight, the last batch's peak."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.in_flight = InFlight()
        self._last = threading.local()  # per calling thread: engines run batches on several

    def last_peak(self) -> t.Optional[int]:
        """The most calls in flight while this thread's last batch ran."""
        return getattr(self._last, "peak", None)


class _RowErrors:
    """The first error by row position: the one ``concurrency=1`` would have raised, since
    every row before it was started (rows are taken in order) and ran to its end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.found: t.Optional[t.Tuple[int, BaseException]] = None

    def add(self, position: int, error: BaseException) -> None:
        with self._lock:
            if self.found is None or position < self.found[0]:
                self.found = (position, error)

    def raise_first(self) -> None:
        if self.found is not None:
            raise self.found[1]


class ThreadedRows(_Runner):
    """A plain function's rows on daemon threads, at most ``concurrency`` calls in flight."""

    def __init__(self, function: str, concurrency: int) -> None:
        super().__init__(concurrency)
        self._slots = threading.BoundedSemaphore(concurrency)
        self._pool = _DaemonThreads(name=f"mixmesh-{function}", size=concurrency)

    def run(self, call: t.Callable[..., t.Any], columns: t.Sequence[t.Sequence[t.Any]]) -> t.List[t.Any]:
        """``list(map(call, *columns))``, up to ``concurrency`` rows at a time."""
        rows = len(columns[0]) if columns else 0
        results: t.List[t.Any] = [None] * rows
        positions = iter(range(rows))
        taking = threading.Lock()  # rows are taken in order, by one worker at a time
        errors, peak = _RowErrors(), _BatchPeak()

        def work() -> None:
            while errors.found is None:
                with taking:
                    position = next(positions, None)
                if position is None:
                    return
                with self._slots:
                    peak.see(self.in_flight.enter())
                    try:
                        results[position] = call(*(column[position] for column in columns))
                    except BaseException as error:  # noqa: BLE001 - raised by the caller, in row order
                        errors.add(position, error)
                    finally:
                        self.in_flight.leave()

        workers = [self._pool.submit(work) for _ in range(min(self.concurrency, rows))]
        for worker in workers:
            worker.result()
        self._last.peak = peak.value
        errors.raise_first()
        return results


class _DaemonThreads:
    """A fixed number of daemon threads (started as work arrives) running submitted calls.

    Not a ThreadPoolExecutor: its threads are joined at exit, so one call hung for ever (its
    row given up by ``timeout_s``) would keep the process from exiting."""

    def __init__(self, name: str, size: int) -> None:
        self._work: "queue.SimpleQueue[t.Tuple[concurrent.futures.Future[t.Any], t.Callable[[], t.Any]]]" = (
            queue.SimpleQueue()
        )
        self._name, self._size, self._started = name, size, 0
        self._lock = threading.Lock()

    def submit(self, func: t.Callable[[], t.Any]) -> "concurrent.futures.Future[t.Any]":
        future: "concurrent.futures.Future[t.Any]" = concurrent.futures.Future()
        self._work.put((future, func))
        with self._lock:
            if self._started < self._size:
                self._started += 1
                threading.Thread(target=self._serve, name=f"{self._name}-{self._started}", daemon=True).start()
        return future

    def _serve(self) -> None:
        while True:
            future, func = self._work.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(func())
                except BaseException as error:  # noqa: BLE001 - handed to the waiting batch
                    future.set_exception(error)


class AsyncRows(_Runner):
    """An ``async def`` function's rows as coroutines on the process's event loop, at most
    ``concurrency`` awaiting at once."""

    def __init__(self, function: str, concurrency: int) -> None:
        super().__init__(concurrency)
        self._function = function
        self._slots: t.Optional[asyncio.Semaphore] = None  # made on the loop, which owns it
        self._loop: t.Optional[asyncio.AbstractEventLoop] = None  # the loop _slots belongs to

    def run(self, call: t.Callable[..., t.Awaitable[t.Any]], columns: t.Sequence[t.Sequence[t.Any]]) -> t.List[t.Any]:
        peak = _BatchPeak()
        loop = event_loop()
        if loop is not self._loop:  # a new loop (the last one stopped): a semaphore of its own
            self._loop, self._slots = loop, None
        future = asyncio.run_coroutine_threadsafe(self._run(call, columns, peak), loop)
        while True:
            try:
                results = future.result(timeout=LOOP_CHECK_S)
                break
            except concurrent.futures.TimeoutError:
                if not _running(loop):
                    raise FunctionRuntimeError(
                        f"{self._function}: the event loop running its calls stopped (a call raised SystemExit "
                        "or KeyboardInterrupt, which end an event loop); the batch was not computed"
                    ) from None
        self._last.peak = peak.value
        return results

    async def _run(
        self, call: t.Callable[..., t.Awaitable[t.Any]], columns: t.Sequence[t.Sequence[t.Any]], peak: _BatchPeak
    ) -> t.List[t.Any]:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        slots = self._slots
        rows = len(columns[0]) if columns else 0
        results: t.List[t.Any] = [None] * rows
        positions = iter(range(rows))  # shared by the workers: one loop, no lock needed
        errors = _RowErrors()

        async def work() -> None:
            for position in positions:
                if errors.found is not None:
                    return
                async with slots:
                    peak.see(self.in_flight.enter())
                    try:
                        results[position] = await call(*(column[position] for column in columns))
                    except BaseException as error:  # noqa: BLE001 - raised by the caller, in row order
                        errors.add(position, error)
                    finally:
                        self.in_flight.leave()

        # One worker per slot, not a task per row: a fast-path batch may hold a million rows.
        await asyncio.gather(*(work() for _ in range(min(self.concurrency, rows))))
        errors.raise_first()
        return results


_runners: t.Dict[str, t.Union[ThreadedRows, AsyncRows]] = {}
_runners_lock = threading.Lock()


def runner_of(spec: FunctionSpec) -> t.Union[ThreadedRows, AsyncRows]:
    """The function's runner in this process (made on first use): one pool or one semaphore
    per function, whatever model or batch calls it."""
    key = f"{spec.name}:{spec.concurrency}:{'async' if spec.is_async else 'threads'}"
    with _runners_lock:
        found = _runners.get(key)
        if found is None:
            kind = AsyncRows if spec.is_async else ThreadedRows
            found = _runners[key] = kind(spec.name, spec.concurrency)
        return found


_loop: t.Optional[asyncio.AbstractEventLoop] = None
_loop_thread: t.Optional[threading.Thread] = None
_loop_lock = threading.Lock()
# How often a batch waiting on the event loop checks that the loop still runs: a call that
# raises SystemExit or KeyboardInterrupt ends it, and its batch would otherwise wait for ever.
LOOP_CHECK_S = 1.0


def event_loop() -> asyncio.AbstractEventLoop:
    """The process's event loop for async functions, running in a daemon thread (a new one
    when the last one stopped)."""
    global _loop, _loop_thread
    with _loop_lock:
        if _loop is None or not _running(_loop):
            loop = asyncio.new_event_loop()
            _loop_thread = threading.Thread(target=loop.run_forever, name="mixmesh-async", daemon=True)
            _loop_thread.start()
            _loop = loop
        return _loop


def _running(loop: asyncio.AbstractEventLoop) -> bool:
    return loop is _loop and not loop.is_closed() and _loop_thread is not None and _loop_thread.is_alive()


def _forget_after_fork() -> None:
    """A forked child (a user's ``multiprocessing`` in a Python model, say) has none of the
    threads the runners and the event loop were running on, only their copies: a batch given
    to them would wait for ever. The child makes its own on first use; its parent's locks may
    have been held by a thread the fork did not copy."""
    global _loop, _loop_thread, _loop_lock, _runners_lock
    _runners.clear()
    _loop, _loop_thread, _loop_lock, _runners_lock = None, None, threading.Lock(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


# --- an async function's row call, with its policies -----------------------------------------


def async_row_function(
    spec: FunctionSpec, model: t.Optional[str], *, skip_nulls: bool
) -> t.Callable[..., t.Awaitable[t.Any]]:
    """An ``async def`` function's row call, as ``rows.row_function`` makes a plain one's: its
    arguments converted, its policies (breaker, retries, rate limit, timeout) awaited, on_error
    applied, errors naming the model, the function and the row. Returns the value unconverted
    (``RowBatchFunction`` converts a batch's values together)."""
    converters = [arg.python_converter() for arg in spec.args]
    func = spec.func
    sink.register_user_code(func.__code__, spec.name, "row")  # its time is Python's

    async def converted(*row: t.Any) -> t.Any:
        return await func(*(types.apply(convert, value) for convert, value in zip(converters, row)))

    protected = converted
    for policy in reversed(resilience.policies_in(spec.policies)):
        protected = _async_policy(policy, protected, spec.name, model)
    context = where(spec.name, model)

    def failure(error: BaseException, row: t.Tuple[t.Any, ...]) -> FunctionRuntimeError:
        return FunctionRuntimeError(f"{context} {raised(error)}; the row's arguments were {describe_row(spec, row)}")

    async def call(*row: t.Any) -> t.Any:
        if skip_nulls and any(value is None for value in row):
            return None
        try:
            return await protected(*row)
        except STOPS as error:
            raise failure(error, row) from error
        except Exception as error:
            if spec.on_error == "raise":
                raise failure(error, row) from error
            result = fall_back(spec, model, row, error, f"{type(error).__name__}: {error}")
            return await result if inspect.isawaitable(result) else result

    return call


AsyncCall = t.Callable[..., t.Awaitable[t.Any]]


def _async_policy(policy: t.Any, func: AsyncCall, function: str, model: t.Optional[str]) -> AsyncCall:
    """One policy around an async call, as ``policy.protect`` puts it around a plain one."""
    from mixmesh.core.rate_limit import RateLimited, limiter_of

    if isinstance(policy, resilience.Retry):
        return _async_retry(policy, func, function, model)
    if isinstance(policy, resilience.CircuitBreaker):
        return _async_breaker(policy.breaker(function=function, model=model), func)
    if isinstance(policy, resilience.Timeout):
        return _async_timeout(policy, func, function, model)
    if isinstance(policy, RateLimited):
        limiter = limiter_of(function, policy.limit)

        async def limited(*args: t.Any) -> t.Any:
            await limiter.acquire_async()
            return await func(*args)

        return limited
    raise TypeError(f"{where(function, model)}: no async form of the policy {policy!r}")


def _async_retry(policy: "resilience.Retry", func: AsyncCall, function: str, model: t.Optional[str]) -> AsyncCall:
    import time

    import tenacity

    arguments = policy.tenacity_arguments(function=function, model=model)
    if policy.sleep is time.sleep:  # a backoff that lets the loop's other rows run meanwhile
        arguments["sleep"] = asyncio.sleep
    else:  # a sleep a test injected: called as it is
        injected = policy.sleep

        async def sleep(seconds: float) -> None:
            injected(seconds)

        arguments["sleep"] = sleep

    async def retried(*args: t.Any) -> t.Any:
        retrying = tenacity.AsyncRetrying(**arguments)
        try:
            return await retrying(func, *args)
        except Exception as error:  # given up: say after how many calls, as the sync retry does
            resilience.note_attempts(error, retrying.statistics.get("attempt_number", 1))
            raise

    return retried


def _async_breaker(circuit: t.Any, func: AsyncCall) -> AsyncCall:
    async def guarded(*args: t.Any) -> t.Any:
        trial = circuit._admit()
        try:
            result = await func(*args)
        except Exception:
            circuit._failed(trial)
            raise
        except BaseException:  # cancelled: no answer from the service either way
            circuit._settle(trial)
            raise
        circuit._succeeded(trial)
        return result

    return guarded


def _async_timeout(policy: "resilience.Timeout", func: AsyncCall, function: str, model: t.Optional[str]) -> AsyncCall:
    gave_up = policy.gave_up(function, model)

    async def timed(*args: t.Any) -> t.Any:
        try:
            return await asyncio.wait_for(func(*args), policy.seconds)
        except asyncio.TimeoutError:
            raise gave_up() from None

    return timed


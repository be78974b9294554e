"""The sink monitoring data is recorded into, while a model evaluation is under way.

Code that calls functions (``mixmesh.runtime``) records here what it knows cheaply: a
batch's rows and time (``record_batch``), which code objects are project functions and
which wait for the engine (``register_user_code``, ``register_engine_code``), which wait on
purpose (``register_wait_code``: a retry's backoff), rows a Python model read.
``Evaluation`` holds one model interval's figures; a sampler thread looks at every thread's
stack every few milliseconds (``MIXMESH_MONITOR_SAMPLE_MS``, default 5; every 0.1 s while
it finds nothing a sample alone tells) to split the time between Python, the engine and
waiting where a clock read per row would cost too much.

A leaf: it imports nothing of mixmesh but names, so that the layers that call functions can
write to it without knowing who reads it (``mixmesh.monitor.capture`` opens and saves the
evaluations, around SQLMesh's).

Longer than 450 lines because the figures and the sampler that fills them are read and written
under the same locks by the threads of one evaluation: split, each half would reach into the
other's state.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import types
import typing as t
import uuid

from mixmesh.core import settings
from mixmesh.core.names import short_name

SAMPLE_MS_VARIABLE = "MIXMESH_MONITOR_SAMPLE_MS"
DEFAULT_SAMPLE_MS = 5.0
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_RSS_EVERY_S = 0.1  # between two readings of the resident memory by the sampler
# The sampler waits at least this many times as long as its last round of samples took (up
# to MAX_PAUSE_S): it keeps its share of the time near 1% where the threads it looks at
# contend for the GIL. A round is some 5 us in a quiet process; with row batches waiting
# on worker processes it took 150 us, and sampling every 5 ms cost that model 6% of its time.
PAUSE_PER_SAMPLE_TIME = 100
MAX_PAUSE_S = 0.1
# After a round that found nothing only a sample can tell (the engine working, or vectorized
# functions, whose time is clocked batch by batch), the sampler waits MAX_PAUSE_S: each sample
# takes the GIL from the threads running batches, and sampling such a model of 45 ms every 5 ms
# cost it 3%. A round that finds a row function, a model's code or a backoff, and a new
# evaluation, bring back the interval.

# Code objects of project functions (entry points: @udf functions and their compiled
# copies, Python model functions) and of the places where Python waits for the engine.
# code -> (function name, mode, the model it runs for when the code is that model's own)
_user_code: t.Dict[types.CodeType, t.Tuple[str, str, t.Optional[str]]] = {}
# Where a walk out from a thread's innermost frame stops: a project function's entry in
# _user_code, or None at an engine call: one dictionary lookup per frame where there were
# two, as a sample walks some 60 frames of SQLMesh's stack for each thread that moved.
_stops: t.Dict[types.CodeType, t.Optional[t.Tuple[str, str, t.Optional[str]]]] = {}
# Code that sleeps on purpose (a retry's backoff between attempts): neither Python's work nor
# the engine's. Only a thread whose *innermost* frame is here is waiting: the same code also
# calls the attempt, whose own frames are then inside it.
_wait_code: t.Set[types.CodeType] = set()
# The evaluations under way, by model: SQLMesh may evaluate several at once on its threads.
_active: t.Dict[str, "Evaluation"] = {}
_active_lock = threading.Lock()
# Registrations so far: a walk remembered from an earlier sample holds while this is unchanged.
_registered = 0
def register_user_code(code: types.CodeType, function: str, mode: str, model: t.Optional[str] = None) -> None:
    """Mark ``code`` as a project function's: time inside it is Python time (``model``'s, if given)."""
    global _registered
    _user_code[code] = _stops[code] = (function, mode, None if model is None else short_name(model))
    _registered += 1


def register_engine_code(code: types.CodeType) -> None:
    """Mark ``code`` as running a query: time under it (and not in user code) is the engine's."""
    global _registered
    _stops.setdefault(code, None)  # a project function's code stays one
    _registered += 1


def register_wait_code(code: types.CodeType) -> None:
    """Mark ``code`` as sleeping on purpose when it is a thread's innermost frame (a C-level
    ``time.sleep`` adds no frame of its own): that time is waiting, not Python's or the engine's."""
    _wait_code.add(code)


# ------------------------------------------------------------------------- batch timing


def active_model() -> t.Optional[str]:
    """The model being evaluated in this process, when there is exactly one (events recorded
    outside any function, such as an artifact's fallback, are filed under it)."""
    with _active_lock:
        return next(iter(_active)) if len(_active) == 1 else None


def forget_evaluations() -> None:
    """In a forked worker process: record nothing. The evaluations it was copied with are
    its parent's (which records the worker's batches), and their locks may have been held by
    a thread the fork did not copy."""
    _active.clear()


def evaluating() -> bool:
    """Whether some model evaluation is being recorded (figures worth computing)."""
    return bool(_active)


def record_batch(
    model: t.Optional[str],
    function: str,
    rows: int,
    seconds: float,
    failed: bool,
    list_length: t.Optional[float],
    mode: str = "vectorized",
) -> None:
    """One batch's figures, from the function's wrapper (on one of the engine's threads): a
    vectorized call, or a row function run over a batch on the fast path."""
    evaluation = _evaluation_of(model)
    if evaluation is not None:
        evaluation.batch(function, rows, seconds, failed, list_length, mode)


def record_pace(
    model: t.Optional[str], function: str, in_flight: t.Optional[int], tokens: int, started: float, last_token: t.Optional[float]
) -> None:
    """A batch of a function with calls in flight together or a rate limit: the most calls in
    flight while it ran, and the rate limit's tokens it took (from ``started`` to ``last_token``,
    ``time.perf_counter`` readings of this process)."""
    evaluation = _evaluation_of(model)
    if evaluation is not None:
        with evaluation.lock:
            figures = evaluation.functions.setdefault(function, FunctionFigures(mode_of(function)))
            figures.paced(in_flight, tokens, started, last_token)


def record_cache(model: t.Optional[str], function: str, hits: int, misses: int) -> None:
    """A cached function's batch: rows read from the result cache, calls made for the others."""
    evaluation = _evaluation_of(model)
    if evaluation is not None:
        with evaluation.lock:
            figures = evaluation.functions.setdefault(function, FunctionFigures(mode_of(function)))
            figures.cache_hits += hits
            figures.cache_misses += misses


def _evaluation_of(model: t.Optional[str]) -> t.Optional["Evaluation"]:
    """The evaluation of ``model``, or the only one under way when the model is not known."""
    if model is not None:
        found = _active.get(short_name(model))
        if found is not None:
            return found
    evaluations = list(_active.values())
    return evaluations[0] if len(evaluations) == 1 else None


def evaluation_on_this_thread() -> t.Optional["Evaluation"]:
    """The evaluation SQLMesh runs on the calling thread (its writes and a Python model's reads)."""
    me = threading.get_ident()
    return next((evaluation for evaluation in list(_active.values()) if evaluation.thread == me), None)


def record_path(functions: t.Iterable[str], path: str) -> None:
    """How a statement of the evaluation on the calling thread ran the functions it calls: on
    the fast path or the plain binding, and why (``mixmesh.fastpath``)."""
    evaluation = evaluation_on_this_thread()
    if evaluation is not None:
        with evaluation.lock:
            for function in functions:
                figures = evaluation.functions.setdefault(function, FunctionFigures(mode_of(function)))
                if path not in figures.paths:
                    figures.paths.append(path)


def record_rows_read(rows: int) -> None:
    """Rows a Python model read through ``context.sql``."""
    evaluation = evaluation_on_this_thread()
    if evaluation is not None:
        with evaluation.lock:
            evaluation.rows_read = (evaluation.rows_read or 0) + rows


class FunctionFigures:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.calls = 0
        self.rows = 0
        self.errors = 0
        self.batch_seconds: t.List[float] = []
        self.sampled_seconds = 0.0
        self.list_lengths: t.List[float] = []
        self.paths: t.List[str] = []  # how its statements ran it (fast path or plain binding, why), in order
        self.max_in_flight: t.Optional[int] = None  # concurrency: the most calls in flight at once
        self.tokens = 0  # rate_limit: tokens taken, between the first batch's start and the last token
        self.tokens_from: t.Optional[float] = None
        self.tokens_until: t.Optional[float] = None
        self.cache_hits = 0  # rows of a cached function read from the result cache
        self.cache_misses = 0  # calls it made for arguments not in the cache

    def paced(self, in_flight: t.Optional[int], tokens: int, started: float, last_token: t.Optional[float]) -> None:
        if in_flight is not None:
            self.max_in_flight = max(self.max_in_flight or 0, in_flight)
        if tokens and last_token is not None:
            self.tokens += tokens
            self.tokens_from = started if self.tokens_from is None else min(self.tokens_from, started)
            self.tokens_until = last_token if self.tokens_until is None else max(self.tokens_until, last_token)

    @property
    def calls_per_s(self) -> t.Optional[float]:
        """The rate the rate limit let calls through (attempts per second), if it paced any."""
        if self.tokens < 2 or self.tokens_from is None or self.tokens_until is None:
            return None
        return self.tokens / max(self.tokens_until - self.tokens_from, 1e-9)


# ------------------------------------------------------------------------- one evaluation


class Evaluation:
    """The figures of one model interval being evaluated."""

    def __init__(self, model: str, sample_seconds: float) -> None:
        self.model = model
        self.run_id = uuid.uuid4().hex  # the figures' run, and the run its quarantined rows are filed under
        self.thread = threading.get_ident()
        self.functions: t.Dict[str, FunctionFigures] = {}
        self.lock = threading.Lock()
        self.python_sampled = 0.0
        self.wait_sampled = 0.0  # backoff between retries, on this evaluation's threads
        self.rows_written: t.Optional[int] = None
        self.rows_read: t.Optional[int] = None  # known for what Python models read
        # The resident memory when the evaluation began: what it added is its peak less this.
        self.start_rss = self.peak_rss = _rss_bytes()
        self.interval = sample_seconds
        self._last = self._rss_read = time.perf_counter()

    def batch(
        self, function: str, rows: int, seconds: float, failed: bool, list_length: t.Optional[float], mode: str
    ) -> None:
        with self.lock:
            figures = self.functions.setdefault(function, FunctionFigures(mode))
            figures.calls += 1
            figures.rows += rows
            figures.errors += int(failed)
            figures.batch_seconds.append(seconds)
            if list_length is not None:
                figures.list_lengths.append(list_length)

    def add_rows_written(self, rows: int) -> None:
        with self.lock:
            self.rows_written = (self.rows_written or 0) + rows

    def start(self) -> None:
        self._last = time.perf_counter()
        _sampler().add(self)

    def stop(self) -> None:
        _sampler().remove(self)  # returns once no sample of this evaluation is under way
        self.peak_rss = max(self.peak_rss, _rss_bytes())

    def sample(self, sampler: int, frames: t.Mapping[int, types.FrameType]) -> bool:
        """One look at the threads' stacks (``frames``, from the sampler thread ``sampler``):
        the time since the last look goes to the function running Python, or to waiting, or to
        the engine. Whether it found what only a sample tells: Python time of a row function or
        of a model's code, or a backoff (a vectorized function's time is clocked)."""
        now = time.perf_counter()
        elapsed, self._last = now - self._last, now
        if now - self._rss_read >= _RSS_EVERY_S:  # a peak needs no reading every few milliseconds
            self.peak_rss, self._rss_read = max(self.peak_rss, _rss_bytes()), now
        found = self._python_frame(sampler, frames)
        if found is None:
            if not self._waiting(sampler, frames):
                return False
            with self.lock:
                self.wait_sampled += elapsed
            return True
        function, mode, frame = found
        with self.lock:
            self.python_sampled += elapsed
            figures = self.functions.setdefault(function, FunctionFigures(mode))
            figures.sampled_seconds += elapsed
            if mode == "row":
                length = _list_argument_length(frame)
                if length is not None:
                    figures.list_lengths.append(length)
        return mode != "vectorized"

    def _python_frame(
        self, sampler: int, frames: t.Mapping[int, types.FrameType]
    ) -> t.Optional[t.Tuple[str, str, types.FrameType]]:
        """A thread running Python for this model now: its function, mode and frame."""
        alone = len(_active) <= 1
        for ident, frame in frames.items():
            # A thread sleeping between retries is waiting, even inside a function's wrapper.
            waiting = frame is not None and frame.f_code in _wait_code
            found = None if ident == sampler or waiting else _walks.innermost_user_frame(ident, frame)
            if found is None:
                continue
            function, mode, model, frame = found
            # With other models evaluating, only code known to be this model's counts.
            if model == self.model or (model is None and alone):
                return function, mode, frame
        return None

    def _waiting(self, sampler: int, frames: t.Mapping[int, types.FrameType]) -> bool:
        """Whether a thread of this evaluation is sleeping between attempts (its own thread, or
        any thread while it is the only evaluation)."""
        alone = len(_active) <= 1
        return any(
            frame.f_code in _wait_code and (ident == self.thread or alone)
            for ident, frame in frames.items() if ident != sampler
        )


def calling_function(frame: t.Optional[types.FrameType]) -> t.Optional[t.Tuple[str, str, t.Optional[str]]]:
    """The project function ``frame`` runs in (walking out from it): its name, its mode, and
    the model it is that model's own code of, if any; None outside any project function."""
    found = _innermost_user_frame(frame)
    return None if found is None else found[:3]


def mode_of(function: str) -> str:
    """The mode a project function was registered with (``row`` when it is not known)."""
    return next((mode for name, mode, _model in list(_user_code.values()) if name == function), "row")


def _innermost_user_frame(frame: t.Optional[types.FrameType]) -> t.Optional[t.Tuple[str, str, t.Optional[str], types.FrameType]]:
    """Walking out from the innermost frame: a project function's frame, or None at an engine call."""
    stops = _stops
    while frame is not None:
        stop = stops.get(frame.f_code, _GO_ON)
        if stop is not _GO_ON:
            return None if stop is None else (*stop, frame)
        frame = frame.f_back
    return None


_GO_ON: t.Any = object()  # a frame of neither a project function nor an engine call


class _Walks:
    """``_innermost_user_frame`` per thread, remembered from one sample to the next.

    A frame's callers never change while it runs, so a thread whose innermost frame is the
    one of the last sample (waiting in the engine, on a lock, for a batch) has the same
    answer: only threads that moved are walked again. Walking every thread's whole stack
    (SQLMesh's run nests some 60 frames) was most of a sample's cost: 100 us of 140 us with
    six threads. The frames remembered are those running at the last sample, let go at the
    next one (and when nothing is evaluated), so no finished call's locals are kept long.
    """

    def __init__(self) -> None:
        # No lock of its own: the sampler's rounds and its forgetting are serialized by the
        # sampler's lock, and a dictionary's get and set are atomic anyway (a write racing a
        # forget is at worst a walk again).
        self._last: t.Dict[int, t.Tuple[types.FrameType, int, t.Any]] = {}

    def innermost_user_frame(self, ident: int, frame: t.Optional[types.FrameType]) -> t.Any:
        if frame is None:
            return None
        known = self._last.get(ident)
        if known is not None and known[0] is frame and known[1] == _registered:
            return known[2]
        found = _innermost_user_frame(frame)
        self._last[ident] = (frame, _registered, found)
        return found

    def forget(self, keep: t.Container[int] = ()) -> None:
        """Let go of the frames of threads not in ``keep`` (all by default)."""
        last = self._last
        if any(ident not in keep for ident in last):
            self._last = {ident: known for ident, known in last.items() if ident in keep}


_walks = _Walks()


def _list_argument_length(frame: types.FrameType) -> t.Optional[float]:
    code = frame.f_code
    lengths = [len(value) for value in (frame.f_locals.get(name) for name in code.co_varnames[: code.co_argcount])
               if isinstance(value, (list, tuple))]
    return float(max(lengths)) if lengths else None


_statm: t.Dict[int, int] = {}  # by process: /proc/self/statm, kept open


def _rss_bytes() -> int:
    """The process's resident memory now (Linux), or its peak so far (elsewhere).

    The file stays open and is read again from its start: opening it took up to 0.1 ms in a
    busy process (three times per evaluation at least), reading it again 0.5 us."""
    try:
        descriptor = _statm.get(os.getpid())
        if descriptor is None:
            descriptor = _statm.setdefault(os.getpid(), os.open("/proc/self/statm", os.O_RDONLY))
        return int(os.pread(descriptor, 256, 0).split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError, AttributeError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


class _Sampler:
    """One thread for the process that samples every evaluation under way.

    A thread started and joined per evaluation cost a model of a few tens of milliseconds
    several percent of its time (the start waits for the new thread to run, the join for it
    to wake and end); this one is started once and sleeps, without a timeout, while nothing
    is evaluated.
    """

    def __init__(self) -> None:
        self._evaluations: t.List[Evaluation] = []
        self._changed = threading.Condition()
        self._sampling = threading.Lock()  # held during a round of samples
        self._thread: t.Optional[threading.Thread] = None
        self._added = False  # an evaluation came since the sampler began its pause
        self._clock = time.monotonic  # the pauses' clock (a test's own, to check them exactly)

    def add(self, evaluation: Evaluation) -> None:
        with self._changed:
            self._evaluations.append(evaluation)
            self._added = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mixmesh-monitor", daemon=True)
                self._thread.start()
            self._changed.notify()

    def remove(self, evaluation: Evaluation) -> None:
        with self._sampling, self._changed:
            if evaluation in self._evaluations:
                self._evaluations.remove(evaluation)
            if not self._evaluations:  # nothing sampled until the next one: no frame kept meanwhile
                _walks.forget()

    def _run(self) -> None:
        me = threading.get_ident()
        took = 0.0  # the last round of samples
        found = True  # whether it found what only a sample tells
        while True:
            with self._changed:
                while not self._evaluations:
                    self._changed.wait()
                self._pause(found, took)
            with self._sampling:
                started = time.perf_counter()
                frames = sys._current_frames()  # one look for every evaluation
                found = False
                for evaluation in list(self._evaluations):
                    found = evaluation.sample(me, frames) or found
                # Frames of threads that ended, and of every thread once nothing is evaluated.
                _walks.forget(frames if self._evaluations else ())
                del frames  # no frame kept alive while the sampler sleeps
                took = time.perf_counter() - started

    def _interval(self) -> float:
        return min((evaluation.interval for evaluation in self._evaluations), default=MAX_PAUSE_S)

    def _pause(self, found: bool, took: float) -> None:
        """Wait until the next round: an interval after one that ``found`` what only a sample
        tells, MAX_PAUSE_S after one that did not, longer after a costly one (``took``); an
        evaluation added since the last round is looked at an interval after it came. Called
        holding ``_changed``."""
        costly = min(took * PAUSE_PER_SAMPLE_TIME, MAX_PAUSE_S)
        pause = self._interval() if found or self._added else MAX_PAUSE_S
        deadline = self._clock() + max(pause, costly)
        self._added = False
        while (left := deadline - self._clock()) > 0:
            self._changed.wait(left)
            if self._added:
                self._added = False
                deadline = min(deadline, self._clock() + max(self._interval(), costly))


_the_sampler: t.Optional[_Sampler] = None
_sampler_lock = threading.Lock()


def _sampler() -> _Sampler:
    global _the_sampler
    with _sampler_lock:
        if _the_sampler is None:
            _the_sampler = _Sampler()
        return _the_sampler


def _forget_sampler() -> None:
    """A forked child has no sampler thread (only the forking thread is copied), and its locks
    may be held by that thread: it starts its own when it opens an evaluation."""
    global _the_sampler, _sampler_lock, _walks
    _the_sampler, _sampler_lock, _walks = None, threading.Lock(), _Walks()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_sampler)


def open_evaluation(model: str) -> "Evaluation":
    """Start recording the evaluation of ``model`` (its sampler runs until ``close_evaluation``)."""
    evaluation = Evaluation(model, sample_seconds())
    with _active_lock:
        _active[model] = evaluation
    evaluation.start()
    return evaluation


def close_evaluation(evaluation: "Evaluation") -> None:
    evaluation.stop()
    with _active_lock:
        _active.pop(evaluation.model, None)


def sample_seconds() -> float:
    try:
        return max(float(settings.get(SAMPLE_MS_VARIABLE, str(DEFAULT_SAMPLE_MS))), 0.5) / 1000
    except ValueError:
        return DEFAULT_SAMPLE_MS / 1000

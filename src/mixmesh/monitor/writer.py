"""The process's writer of evaluations' figures: their spool files, written off the model's
thread and several evaluations to a file.

``MetricsStore.append_later`` hands an evaluation's rows to this writer, as the function
that builds them from its figures (0.2 ms of the model's thread otherwise), and returns at
once. The writer, a daemon thread of its own, writes what it holds ``WRITE_AFTER_S`` after
the first of it, or sooner when asked (``write_soon``: at the end of a SQLMesh command), as
one batch file per store (``MetricsStore.append``): in a run of many models, one file
instead of one per model. Writing a spool file (creating, writing and renaming it) took the
writer 1.5 ms per evaluation on two busy cores, while the next model, of some 36 ms, ran.

Whatever reads the spool in this process first waits for the rows held (``wait_for_writes``),
and the process writes them before it exits (an ``atexit`` handler, which runs while daemon
threads still do). A process killed without its exit handlers (``kill -9``) loses the rows
held: at most the last ``WRITE_AFTER_S`` seconds of figures, or those of the command under way.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import typing as t

logger = logging.getLogger(__name__)

WRITE_AFTER_S = 1.0
THREAD_NAME = "mixmesh-metrics-writer"


class _Store(t.Protocol):
    def append(self, model_runs: t.Sequence[t.Any], function_runs: t.Sequence[t.Any] = ()) -> bool: ...


# Builds an evaluation's rows: (model runs, function runs).
Rows = t.Callable[[], t.Tuple[t.Sequence[t.Any], t.Sequence[t.Any]]]


class _Held:
    """Rows of one store not written yet, in the order they were handed over, with what each
    is about."""

    def __init__(self, store: _Store) -> None:
        self.store = store
        self.rows: t.List[t.Tuple[Rows, str]] = []


class _Writer:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._held: t.Dict[int, _Held] = {}  # by id() of the store
        self._since: t.Optional[float] = None  # when the oldest row held was handed over
        self._soon = False  # write what is held now, without waiting for WRITE_AFTER_S
        self._writing = False
        self._thread: t.Optional[threading.Thread] = None

    def hand_over(self, store: _Store, rows: Rows, about: str) -> None:
        with self._changed:
            self._held.setdefault(id(store), _Held(store)).rows.append((rows, about))
            if self._since is None:
                self._since = time.monotonic()
                self._start()
                self._changed.notify_all()

    def write_soon(self) -> None:
        with self._changed:
            if self._held:
                self._soon = True
                self._changed.notify_all()

    def wait(self) -> None:
        if threading.current_thread() is self._thread:
            return
        with self._changed:
            if self._held and (self._thread is None or not self._thread.is_alive()):
                self._write_now_locked()  # no writer thread (one did not start): written here
                return
            self._soon = bool(self._held)
            self._changed.notify_all()
            while self._held or self._writing:
                self._changed.wait()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._held:
                    self._changed.wait()
                while not self._soon and self._since is not None:
                    left = self._since + WRITE_AFTER_S - time.monotonic()
                    if left <= 0:
                        break
                    self._changed.wait(left)
                batches = self._take_locked()
                self._writing = True
            try:
                _write(batches)
            finally:
                with self._changed:
                    self._writing = False
                    self._changed.notify_all()

    def _take_locked(self) -> t.List[_Held]:
        batches = list(self._held.values())
        self._held.clear()
        self._since, self._soon = None, False
        return batches

    def _write_now_locked(self) -> None:
        _write(self._take_locked())


def _write(batches: t.Sequence[_Held]) -> None:
    for held in batches:
        model_runs: t.List[t.Any] = []
        function_runs: t.List[t.Any] = []
        for rows, about in held.rows:
            try:
                built = rows()
            except Exception:  # noqa: BLE001 - monitoring must never fail a model, nor lose the others
                logger.warning("mixmesh could not record the figures of %s", about, exc_info=True)
                continue
            model_runs.extend(built[0])
            function_runs.extend(built[1])
        held.store.append(model_runs, function_runs)  # never raises: it logs


_writer = _Writer()


def hand_over(store: _Store, rows: Rows, about: str = "an evaluation") -> None:
    """Rows for ``store.append``, built (``rows()``) and written by the writer thread with those
    handed over after them."""
    _writer.hand_over(store, rows, about)


def write_soon() -> None:
    """Write the rows held now, on the writer thread; returns at once."""
    _writer.write_soon()


def wait_for_writes() -> None:
    """Return once every row handed over is in the spool; at once on the writer thread itself."""
    _writer.wait()


def held() -> int:
    """How many evaluations' rows are handed over and not written yet."""
    with _writer._changed:
        return sum(len(batch.rows) for batch in _writer._held.values()) + int(_writer._writing)


def _forget_after_fork() -> None:
    """A forked child has no writer thread, and its lock may have been held by a thread the
    fork did not copy; what its parent held is the parent's to write."""
    global _writer
    _writer = _Writer()


atexit.register(wait_for_writes)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)

"""Worker processes for row functions on the fast path (``parallel="auto"`` or ``"processes"``).

A pure-Python function holds the GIL: threads take turns, so only processes use more than
one core for it. A process keeps one pool of workers (one per core), started the first time
a batch needs it and kept for the statements after: a small model never forks, and a large
one pays for it once. Each worker inherits the functions to run (``_functions``, filled
before the fork) and gets the argument columns of a batch as Arrow arrays, answering with
the result array. A statement calling a function the pool was not forked with starts a new
pool; the old one finishes the batches it was given, then ends.

Workers are forked from a thread of their own that lives as long as the process
(``_Forker``): Linux ties a worker's death signal to the thread that forked it. Workers
also end with the model's process when it is killed (kill -9 runs no clean-up): each asks
Linux to kill it when its parent goes (``prctl(PR_SET_PDEATHSIG)``,
https://man7.org/linux/man-pages/man2/prctl.2.html), and a watchdog thread in it ends it
when a pipe from the parent closes or its parent process changes, where prctl is absent.
The folder batches cross in is named after the process that made it and removed when the
process exits; the next pool (or the next run, ``remove_dead_scratch``) removes those of
dead processes.

Where processes cannot be forked (no ``fork`` start method), batches run on threads.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import logging
import multiprocessing
import os
import queue
import re
import select
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
import typing as t
import uuid

import pyarrow as pa

from mixmesh import sink
from mixmesh.core.errors import FunctionRuntimeError, where
from mixmesh.core.cpus import usable_cpus

logger = logging.getLogger(__name__)

# The functions workers run, by key (engine-side name); filled before a fork, so that each
# worker finds them in the memory it was copied from. Never emptied: a pool forked later
# takes every function known by then, and the functions are kept anyway.
_functions: t.Dict[str, t.Callable[..., pa.Array]] = {}


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


class Workers(t.NamedTuple):
    executor: concurrent.futures.ProcessPoolExecutor
    directory: str  # where batches cross
    keys: t.FrozenSet[str]  # the functions the workers were forked with
    owner: int  # the process that forked them


def offer(functions: t.Mapping[str, t.Callable[..., pa.Array]]) -> None:
    """Functions that may run in workers: pools forked from now on can run them."""
    _functions.update(functions)


def ready(keys: t.Iterable[str], *, wait: bool) -> t.Optional[Workers]:
    """The process's workers, if they can run every function of ``keys`` (``offer``ed
    before); otherwise a pool that can starts, and this waits for it if ``wait``, else
    returns None (the caller computes in its own process meanwhile)."""
    needed = frozenset(keys)
    with _pool_lock:
        current = _current
        if current is not None and current.owner == os.getpid() and needed <= current.keys:
            return current
        if _starting is None or not needed <= _starting_keys:
            _start_pool(frozenset(_functions))
        starting = _starting
    if not wait:
        return None
    return starting.result()


_pool_lock = threading.Lock()
_current: t.Optional[Workers] = None
_starting: t.Optional["concurrent.futures.Future[Workers]"] = None
_starting_keys: t.FrozenSet[str] = frozenset()


def _start_pool(keys: t.FrozenSet[str]) -> None:
    """(Under ``_pool_lock``) fork a pool for ``keys`` on the forker thread."""
    global _starting, _starting_keys
    _starting, _starting_keys = _forker().submit(_fork_pool, keys), keys


def _fork_pool(keys: t.FrozenSet[str]) -> Workers:
    """On the forker thread: a new pool, every worker forked now; the previous pool ends
    once it has finished what it was given."""
    global _current, _starting
    processes = usable_cpus()
    lifeline, held = _lifeline()
    executor = concurrent.futures.ProcessPoolExecutor(
        processes, mp_context=multiprocessing.get_context("fork"),
        initializer=_die_with_parent, initargs=(os.getpid(), lifeline, held),
    )
    try:
        # A fork context starts every worker at the first task, from this thread.
        for future in [executor.submit(os.getpid) for _ in range(processes)]:
            future.result()
    except BaseException:
        executor.shutdown(wait=False, cancel_futures=True)
        with _pool_lock:
            _starting = None if _starting_keys == keys else _starting  # a later start stays
        raise
    workers = Workers(executor, _process_scratch(), keys, os.getpid())
    with _pool_lock:
        previous, _current = _current, workers
        _starting = None if _starting_keys == keys else _starting  # a later start (more keys) stays
    if previous is not None and previous.owner == os.getpid():
        previous.executor.shutdown(wait=False)  # its queued batches still run
    logger.debug("started %d worker processes for %s", processes, ", ".join(sorted(keys)))
    return workers


def forget(workers: Workers) -> None:
    """Stop using ``workers`` (broken: a worker died); the next batch starts a new pool."""
    global _current
    with _pool_lock:
        if _current is workers:
            _current = None
    workers.executor.shutdown(wait=False, cancel_futures=True)


class _Forker:
    """One daemon thread running the forks, alive as long as the process (see the module's
    docstring: PR_SET_PDEATHSIG fires when the forking thread ends)."""

    def __init__(self) -> None:
        self._tasks: "queue.SimpleQueue[t.Tuple[t.Callable[[], t.Any], concurrent.futures.Future[t.Any]]]" = (
            queue.SimpleQueue()
        )
        threading.Thread(target=self._serve, name="mixmesh-workers-forker", daemon=True).start()

    def submit(self, function: t.Callable[..., t.Any], *args: t.Any) -> "concurrent.futures.Future[t.Any]":
        future: "concurrent.futures.Future[t.Any]" = concurrent.futures.Future()
        self._tasks.put((lambda: function(*args), future))
        return future

    def _serve(self) -> None:
        while True:
            task, future = self._tasks.get()
            try:
                future.set_result(task())
            except BaseException as error:  # noqa: BLE001 - handed to whoever waits
                future.set_exception(error)


_forker_of: t.Dict[int, _Forker] = {}  # by process: a forked child needs a thread of its own


def _forker() -> _Forker:
    """(Under ``_pool_lock``.)"""
    forker = _forker_of.get(os.getpid())
    if forker is None:
        forker = _forker_of[os.getpid()] = _Forker()
    return forker


_lifelines: t.Dict[int, t.Tuple[int, int]] = {}  # by process


def _lifeline() -> t.Tuple[int, int]:
    """A pipe whose write end only this process holds (it closes when the process dies), and
    whose read end every worker watches; one for the process's life, shared by its pools."""
    pipe = _lifelines.get(os.getpid())
    if pipe is None:
        pipe = _lifelines[os.getpid()] = os.pipe()
    return pipe


# --- dying with the parent ---------------------------------------------------------------

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCHDOG_INTERVAL_S = 1.0  # how often a worker checks its parent when no pipe tells it


def _die_with_parent(parent: int, lifeline: int, held: int) -> None:
    """In a worker, first thing: end this process when ``parent`` ends."""
    os.close(held)  # only the parent's copy may keep the pipe open
    sink.forget_evaluations()
    _ask_kernel_for_death_signal()
    if os.getppid() != parent:  # the parent died before the request was in place
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent, lifeline), name="mixmesh-worker-watchdog", daemon=True).start()


def _ask_kernel_for_death_signal() -> bool:
    """Linux: SIGKILL this process when its parent ends; False where not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int, lifeline: int, interval: float = WATCHDOG_INTERVAL_S) -> None:
    """End the worker once the pipe from ``parent`` closes (read gives EOF) or the process
    is no longer ``parent``'s child (reparented: it died). Either alone would do; the pipe
    is immediate, the parent check holds even if some other process kept the pipe open."""
    while True:
        try:
            readable, _, _ = select.select([lifeline], [], [], interval)
            if readable and not os.read(lifeline, 1):
                os._exit(1)
        except OSError:  # a closed or odd descriptor: the parent check decides
            time.sleep(interval)
        if os.getppid() != parent:
            os._exit(1)


def _run(key: str, arguments: str) -> str:
    """In a worker: one batch, read from a file and answered in another."""
    columns = _read(arguments)
    return _write(pa.record_batch([_functions[key](*columns.columns)], names=["result"]), arguments + ".out")


# Batches cross between processes as Arrow IPC files in memory-backed storage (/dev/shm
# where there is one): one copy each way. Pickled through a pipe, a million doubles took
# 30 ms, as long as the work on them.


def _write(batch: pa.RecordBatch, path: str) -> str:
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return path


def _read(path: str) -> pa.RecordBatch:
    """The batch in a file, copied into memory; the file is removed."""
    try:
        with pa.memory_map(path) as source:
            batch = pa.ipc.open_stream(source).read_next_batch()
            return pa.record_batch([pa.concat_arrays([column]) for column in batch.columns], schema=batch.schema)
    finally:
        os.unlink(path)


# --- where batches cross ------------------------------------------------------------------

SCRATCH_PREFIX = "mixmesh-workers-"  # then the owner's pid: mixmesh-workers-<pid>-<random>
_OWNED = re.compile(rf"{SCRATCH_PREFIX}(?P<pid>\d+)-")
_scratch: t.Set[str] = set()  # this process's folders in use
_scratch_lock = threading.Lock()  # a folder is in use from the moment it exists


def _process_scratch() -> str:
    """This process's folder for batches: made at its first pool, removed when it exits."""
    with _scratch_lock:
        directory = _process_scratch_of.get(os.getpid())
        if directory is None or not os.path.isdir(directory):
            directory = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=_scratch_base())
            _process_scratch_of[os.getpid()] = directory
            _scratch.add(directory)
            atexit.register(_remove_scratch, directory)
    if len(_process_scratch_of) == 1:  # the first in this process: what killed runs left goes now
        remove_dead_scratch()
    return directory


_process_scratch_of: t.Dict[int, str] = {}


def _remove_scratch(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    with _scratch_lock:
        _scratch.discard(directory)


def _scratch_base() -> t.Optional[str]:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def remove_dead_scratch() -> t.List[str]:
    """Remove the scratch folders of processes that are gone (killed before their clean-up);
    the folders removed. A folder of a live process, or one whose owner is unknown, stays."""
    removed = []
    for base in {_scratch_base() or tempfile.gettempdir(), tempfile.gettempdir()}:
        try:
            names = os.listdir(base)
        except OSError:
            continue
        for name in names:
            owner = _OWNED.match(name)
            path = os.path.join(base, name)
            with _scratch_lock:
                if owner is None or path in _scratch or not _ours(path) or _alive(int(owner["pid"])):
                    continue
                shutil.rmtree(path, ignore_errors=True)
            if not os.path.exists(path):
                removed.append(path)
                logger.debug("removed %s, left by process %s", path, owner["pid"])
    return removed


def _ours(path: str) -> bool:
    """A folder (not a link) of this user, as mkdtemp makes them."""
    try:
        status = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(status.st_mode) and status.st_uid == os.getuid()


def _alive(pid: int) -> bool:
    if pid == os.getpid():  # ours, but not in use: a process of the same pid before us left it
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # another user's live process, or no pid at all: keep it
        return True
    return True


class InWorkers:
    """A batch function whose batches run in the process's worker processes.

    ``always`` (``parallel="processes"``): every batch, waiting for the workers to start.
    Otherwise (``parallel="auto"``) only batches of ``min_rows`` rows or more, and only once
    the workers are up; the others run here, in the model's process, with the same results.
    Monitoring is recorded in the model's process (a worker's figures would stay in the
    worker): the batch's rows and its time, transfer included.
    """

    def __init__(self, key: str, function: t.Any, *, always: bool, min_rows: int) -> None:
        self._key = key
        self._function = function
        self.always = always
        self._min_rows = min_rows
        # For the fast path's decision: batches large enough for the workers, and those sent.
        self.large_batches = self.batches_sent = 0
        self.spec = function.spec
        self._model = function.model
        self._mode = "vectorized" if function.spec.vectorized else "row"
        self.return_type = function.return_type
        self._wait = _waiting_for(key, function.spec.name, self._mode, function.model)

    def __call__(self, *columns: t.Union[pa.Array, pa.ChunkedArray]) -> pa.Array:
        rows = len(columns[0]) if columns else 0
        large = self.always or rows >= self._min_rows
        self.large_batches += large
        pool = ready([self._key], wait=self.always) if large else None
        if pool is None:
            return self._function(*columns)  # which records its own figures
        started = time.perf_counter()
        arrays = [column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column for column in columns]
        failed = True
        try:
            self.batches_sent += 1
            result = self._in(pool, arrays)
            failed = False
            return result
        finally:
            if sink.evaluating():
                seconds = time.perf_counter() - started
                sink.record_batch(self._model, self.spec.name, rows, seconds, failed, None, mode=self._mode)

    def _in(self, pool: Workers, arrays: t.List[pa.Array]) -> pa.Array:
        names = [f"a{i}" for i in range(len(arrays))]
        path = _write(pa.record_batch(arrays, names=names), os.path.join(pool.directory, uuid.uuid4().hex))
        try:
            answer = self._wait(self._submit(pool, path))
        except concurrent.futures.BrokenExecutor as error:
            forget(pool)
            raise FunctionRuntimeError(
                f"{where(self.spec.name, self._model)}: a worker process running it ended abruptly ({error}); "
                "the batch was not computed"
            ) from error
        finally:
            if os.path.exists(path):  # not read: the worker failed before
                os.unlink(path)
        return _read(answer).column(0)

    def _submit(self, pool: Workers, path: str) -> "concurrent.futures.Future[str]":
        try:
            return pool.executor.submit(_run, self._key, path)
        except RuntimeError:  # replaced by a newer pool since ready(): that one takes it
            newer = ready([self._key], wait=True)
            assert newer is not None
            return newer.executor.submit(_run, self._key, path)


_waits: t.Dict[str, t.Callable[["concurrent.futures.Future[str]"], str]] = {}


def _waiting_for(key: str, function: str, mode: str, model: t.Optional[str]) -> t.Callable[..., str]:
    """How a thread waits for a worker's answer, as code of the function's own: the monitor's
    sampler then counts the wait as the function's Python time, as it counts the same batch
    computed on a thread (``sink.register_user_code``). One code object per function (its
    key is the docstring: code objects equal in everything else compare equal)."""
    wait = _waits.get(key)
    if wait is None:
        namespace: t.Dict[str, t.Any] = {}
        source = f"def wait(future):\n    {key!r}\n    return future.result()\n"
        exec(compile(source, f"<mixmesh worker batch of {function}>", "exec"), namespace)
        wait = _waits.setdefault(key, namespace["wait"])
        sink.register_user_code(wait.__code__, function, mode, model)
    return wait

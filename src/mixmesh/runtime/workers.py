"""Worker processes for functions declared ``@udf(parallel="processes")`` (fast path only).

A pure-Python function holds the GIL: threads take turns, so only processes use more than
one core for it. For one statement, mixmesh forks one worker per core, before the engine
starts the query (so no engine thread is mid-work when the process is copied); each
worker inherits the functions to run and gets the argument columns of a batch as Arrow
arrays, answering with the result array. The workers end with the statement.

Workers also end with the model's process when it is killed (kill -9 runs no clean-up):
each asks Linux to kill it when its parent goes (``prctl(PR_SET_PDEATHSIG)``,
https://man7.org/linux/man-pages/man2/prctl.2.html), and a watchdog thread in it ends it
when a pipe from the parent closes or its parent process changes, where prctl is absent.
The folders batches cross in are named after the process that made them; the next
statement with workers (or the next run, ``remove_dead_scratch``) removes those of dead
processes.

Where processes cannot be forked (no ``fork`` start method), batches run on threads.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import multiprocessing
import os
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

logger = logging.getLogger(__name__)

# The functions workers run, by key (engine-side name); filled before the fork, so that each
# worker finds them in the memory it was copied from. Never emptied: statements on other
# threads may be forking their own workers meanwhile, and the functions are kept anyway.
_functions: t.Dict[str, t.Callable[..., pa.Array]] = {}


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


class Workers(t.NamedTuple):
    executor: concurrent.futures.ProcessPoolExecutor
    directory: str  # where batches cross


@contextlib.contextmanager
def pool(functions: t.Mapping[str, t.Callable[..., pa.Array]]) -> t.Iterator[Workers]:
    """Workers (one per core) able to run ``functions`` on batches, for one statement."""
    _functions.update(functions)
    remove_dead_scratch()
    processes = os.cpu_count() or 1
    # The workers hold the read end; this process, the write end: it closes when we die.
    lifeline, held = os.pipe()
    executor = concurrent.futures.ProcessPoolExecutor(
        processes, mp_context=multiprocessing.get_context("fork"),
        initializer=_die_with_parent, initargs=(os.getpid(), lifeline, held),
    )
    directory = _scratch_directory()
    try:
        # Fork every worker now (a fork context starts them all at the first task), from
        # this thread, before the engine's threads get busy. This thread outlives the
        # workers: PR_SET_PDEATHSIG fires when the thread that forked ends.
        for future in [executor.submit(os.getpid) for _ in range(processes)]:
            future.result()
        yield Workers(executor, directory)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        os.close(lifeline)
        os.close(held)
        _remove_scratch(directory)


# --- dying with the parent ---------------------------------------------------------------

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCHDOG_INTERVAL_S = 1.0  # how often a worker checks its parent when no pipe tells it


def _die_with_parent(parent: int, lifeline: int, held: int) -> None:
    """In a worker, first thing: end this process when ``parent`` ends."""
    os.close(held)  # only the parent's copy may keep the pipe open
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


def _scratch_directory() -> str:
    with _scratch_lock:
        directory = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=_scratch_base())
        _scratch.add(directory)
    return directory


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
    """A batch function whose batches run in the statement's worker processes.

    Monitoring is recorded here, in the model's process (a worker's figures would stay in
    the worker): the batch's rows and its time, transfer included.
    """

    def __init__(self, workers: Workers, key: str, function: t.Any) -> None:
        self._workers = workers
        self._key = key
        self._model = function.model
        self._name = function.spec.name
        self._mode = "vectorized" if function.spec.vectorized else "row"
        self.return_type = function.return_type

    def __call__(self, *columns: t.Union[pa.Array, pa.ChunkedArray]) -> pa.Array:
        started = time.perf_counter()
        arrays = [column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column for column in columns]
        failed = True
        try:
            names = [f"a{i}" for i in range(len(arrays))]
            path = _write(pa.record_batch(arrays, names=names), os.path.join(self._workers.directory, uuid.uuid4().hex))
            result = _read(self._workers.executor.submit(_run, self._key, path).result())
            failed = False
            return result.column(0)
        finally:
            if sink.evaluating():
                rows = len(arrays[0]) if arrays else 0
                seconds = time.perf_counter() - started
                sink.record_batch(self._model, self._name, rows, seconds, failed, None, mode=self._mode)

"""Worker processes for functions declared ``@udf(parallel="processes")`` (fast path only).

A pure-Python function holds the GIL: threads take turns, so only processes use more than
one core for it. For one statement, mixmesh forks one worker per core, before the engine
starts the query (so no engine thread is mid-work when the process is copied); each
worker inherits the functions to run and gets the argument columns of a batch as Arrow
arrays, answering with the result array. The workers end with the statement.

Where processes cannot be forked (no ``fork`` start method), batches run on threads.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import shutil
import tempfile
import time
import typing as t
import uuid

import pyarrow as pa

from mixmesh.monitor import capture

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
    processes = os.cpu_count() or 1
    executor = concurrent.futures.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"))
    directory = _scratch_directory()
    try:
        # Fork every worker now (a fork context starts them all at the first task), from
        # this thread, before the engine's threads get busy.
        for future in [executor.submit(os.getpid) for _ in range(processes)]:
            future.result()
        yield Workers(executor, directory)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(directory, ignore_errors=True)


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


def _scratch_directory() -> str:
    shm = "/dev/shm"
    return tempfile.mkdtemp(prefix="mixmesh-", dir=shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None)


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
            if capture.evaluating():
                rows = len(arrays[0]) if arrays else 0
                seconds = time.perf_counter() - started
                capture.record_batch(self._model, self._name, rows, seconds, failed, None, mode=self._mode)

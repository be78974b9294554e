"""The sampler's cheap paths: walks remembered per thread, the resident memory read from a
kept file, a pause after a costly sample. Each must give what the slow path gave: the same
function found, the same memory figure. (The writer of the figures: test_monitor_writer.)"""

from __future__ import annotations

import os
import time
import threading
import types
import typing as t

from mixmesh import sink


def scored(ready: threading.Event, done: threading.Event) -> None:
    """A project function that waits: its frame stays the thread's innermost."""
    ready.set()
    done.wait(30)


def _waiting_thread() -> t.Tuple[threading.Thread, threading.Event]:
    ready, done = threading.Event(), threading.Event()
    thread = threading.Thread(target=scored, args=(ready, done), daemon=True)
    thread.start()
    ready.wait(30)
    return thread, done


def test_a_remembered_walk_gives_what_a_new_walk_gives_and_sees_later_registrations() -> None:
    thread, done = _waiting_thread()
    try:
        walks = sink._Walks()
        frame = sys_frame(thread)
        assert walks.innermost_user_frame(thread.ident, frame) is None  # not registered yet
        sink.register_user_code(scored.__code__, "scored", "row")
        found = walks.innermost_user_frame(thread.ident, sys_frame(thread))
        assert found is not None and found[:2] == ("scored", "row")
        assert walks.innermost_user_frame(thread.ident, sys_frame(thread)) == found  # remembered
        assert found == sink._innermost_user_frame(sys_frame(thread))
    finally:
        sink._user_code.pop(scored.__code__, None)
        done.set()
        thread.join()


def test_no_frame_is_kept_once_no_evaluation_is_under_way() -> None:
    thread, done = _waiting_thread()
    try:
        evaluation = sink.open_evaluation("analytics.kept_frames")
        sink._walks.innermost_user_frame(thread.ident, sys_frame(thread))
        assert sink._walks._last
        sink.close_evaluation(evaluation)
        assert not sink._walks._last
    finally:
        done.set()
        thread.join()


def test_the_resident_memory_read_from_the_kept_file_is_the_processs() -> None:
    with open("/proc/self/statm", "rb") as statm:
        pages = int(statm.read().split()[1])
    kept = sink._rss_bytes()
    allowed = 64 << 20  # what the process may have allocated between the two reads
    assert abs(kept - pages * os.sysconf("SC_PAGE_SIZE")) < allowed
    assert sink._rss_bytes() > 0  # read again from its start, not at its end


def sys_frame(thread: threading.Thread) -> types.FrameType:
    import sys

    return sys._current_frames()[thread.ident]


def test_the_sampler_waits_longer_after_a_costly_sample(monkeypatch: t.Any) -> None:
    """A sample that takes 2 ms (threads contending for the GIL, cores busy with worker
    processes) is followed by a pause 100 times as long, at most 0.1 s, instead of the 5 ms
    interval: the sampler keeps its share of the time near 1%."""
    samples: t.List[float] = []

    def costly(self: sink.Evaluation, sampler: int, frames: t.Any = None) -> None:
        samples.append(time.perf_counter())
        busy_until = time.perf_counter() + 0.002
        while time.perf_counter() < busy_until:
            pass

    monkeypatch.setattr(sink.Evaluation, "sample", costly)
    monkeypatch.setenv(sink.SAMPLE_MS_VARIABLE, "5")
    evaluation = sink.open_evaluation("analytics.costly")
    try:
        time.sleep(1.0)
    finally:
        sink.close_evaluation(evaluation)
    # Every 5 ms it would have sampled some 140 times in that second; pausing 0.1 s, about 10.
    assert 1 <= len(samples) <= 25

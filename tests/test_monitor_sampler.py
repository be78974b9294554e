"""The sampler's cheap paths: walks remembered per thread, the resident memory read from a
kept file, a pause after a costly sample. Each must give what the slow path gave: the same
function found, the same memory figure. (The writer of the figures: test_monitor_writer.)"""

from __future__ import annotations

import os
import time
import threading
import types
import typing as t

import pytest

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

    def costly(self: sink.Evaluation, sampler: int, frames: t.Any = None) -> bool:
        samples.append(time.perf_counter())
        busy_until = time.perf_counter() + 0.002
        while time.perf_counter() < busy_until:
            pass
        return True  # it found a row function: only its cost slows the sampler down

    monkeypatch.setattr(sink.Evaluation, "sample", costly)
    monkeypatch.setenv(sink.SAMPLE_MS_VARIABLE, "5")
    evaluation = sink.open_evaluation("analytics.costly")
    try:
        time.sleep(1.0)
    finally:
        sink.close_evaluation(evaluation)
    # Every 5 ms it would have sampled some 140 times in that second; pausing 0.1 s, about 10.
    assert 1 <= len(samples) <= 25


def samples_of(monkeypatch: t.Any, finds: bool) -> t.List[str]:
    """The models sampled, in order, by a sampler whose every sample ``finds`` (or not) what
    only a sample tells."""
    sampled: t.List[str] = []

    def sample(self: sink.Evaluation, sampler: int, frames: t.Any = None) -> bool:
        sampled.append(self.model)
        return finds

    monkeypatch.setattr(sink.Evaluation, "sample", sample)
    monkeypatch.setenv(sink.SAMPLE_MS_VARIABLE, "5")
    # Not the longer pause after a costly round: on a loaded machine even these rounds are.
    monkeypatch.setattr(sink, "PAUSE_PER_SAMPLE_TIME", 0)
    return sampled


def evaluated(model: str, seconds: float) -> None:
    evaluation = sink.open_evaluation(model)
    try:
        time.sleep(seconds)
    finally:
        sink.close_evaluation(evaluation)


@pytest.mark.parametrize("finds", [True, False])
def test_the_sampler_waits_longest_while_its_samples_find_nothing_they_alone_tell(monkeypatch: t.Any, finds: bool) -> None:
    """Rounds that find only the engine or vectorized functions (clocked batch by batch) are
    followed by a pause of MAX_PAUSE_S (0.1 s) instead of the 5 ms interval."""
    sampled = samples_of(monkeypatch, finds)
    evaluated("analytics.scaled", 0.6)
    if finds:
        assert len(sampled) >= 20  # every 5 ms: some 100
    else:
        assert 1 <= len(sampled) <= 10  # every 0.1 s: about 6


def test_an_evaluation_that_comes_during_a_long_pause_is_looked_at_an_interval_on(monkeypatch: t.Any) -> None:
    """A short model evaluated after one whose samples found nothing is still sampled: its
    row function's Python time would otherwise go unseen."""
    sampled = samples_of(monkeypatch, finds=False)
    outer = sink.open_evaluation("analytics.slow_sql")
    try:
        time.sleep(0.3)  # the sampler is in its long pauses now
        for number in range(10):
            evaluated(f"analytics.short_{number}", 0.03)
    finally:
        sink.close_evaluation(outer)
    seen = {model for model in sampled if model.startswith("analytics.short_")}
    assert len(seen) >= 7  # waiting out the 0.1 s pause, only about 3 of the 10 would be

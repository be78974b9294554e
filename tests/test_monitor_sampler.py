"""The sampler's cheap paths: walks remembered per thread, the resident memory read from a
kept file, a pause after a costly sample. Each must give what the slow path gave: the same
function found, the same memory figure. (The writer of the figures: test_monitor_writer.)"""

from __future__ import annotations

import os
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


INTERVAL = 0.005  # MIXMESH_MONITOR_SAMPLE_MS=5, the default


class _Looked:
    """An evaluation as the sampler sees it: its interval, and what its samples find."""

    def __init__(self, finds: t.Sequence[bool]) -> None:
        self.interval = INTERVAL
        self._finds = iter(finds)

    def sample(self, sampler: int, frames: t.Any) -> bool:
        return next(self._finds)


class _Clock:
    """The sampler's clock and its condition for one pause: a wait moves the clock by
    what it waits for, and the evaluations in ``arriving`` (seconds after the pause began)
    come during it, as ``_Sampler.add`` makes them come (it sets ``_added`` and notifies)."""

    def __init__(self, sampler: sink._Sampler, arriving: t.Sequence[float] = ()) -> None:
        self.now = 100.0
        self.began = self.now
        self._sampler = sampler
        self._arriving = sorted(self.began + s for s in arriving)

    def monotonic(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        if self._arriving and self._arriving[0] < self.now + seconds:
            self.now = self._arriving.pop(0)
            self._sampler._added = True
            return True
        self.now += seconds
        return False

    @property
    def waited(self) -> float:
        return self.now - self.began


def paused(found: bool, took: float, arriving: t.Sequence[float] = ()) -> float:
    """How long the sampler waits after a round that ``found`` what only a sample tells and
    ``took`` seconds, with evaluations ``arriving`` during the pause (seconds after it began)."""
    sampler = sink._Sampler()
    sampler._evaluations = [_Looked([])]
    clock = _Clock(sampler, arriving)
    sampler._changed = types.SimpleNamespace(wait=clock.wait)  # type: ignore[assignment]
    sampler._clock = clock.monotonic
    sampler._pause(found, took)
    return clock.waited


def test_the_sampler_waits_longer_after_a_costly_round() -> None:
    """A round that took 2 ms (threads contending for the GIL, cores busy with worker
    processes) is followed by a pause 100 times as long, at most 0.1 s, instead of the 5 ms
    interval: the sampler keeps its share of the time near 1%."""
    assert paused(found=True, took=0.00001) == pytest.approx(INTERVAL)
    assert paused(found=True, took=0.0002) == pytest.approx(0.02)  # 100 times the round
    assert paused(found=True, took=0.002) == pytest.approx(sink.MAX_PAUSE_S)  # at most 0.1 s


def test_the_sampler_waits_longest_after_a_round_that_finds_nothing_only_it_tells() -> None:
    """Rounds that find only the engine or vectorized functions (clocked batch by batch) are
    followed by a pause of MAX_PAUSE_S (0.1 s) instead of the 5 ms interval."""
    assert paused(found=True, took=0.0) == pytest.approx(INTERVAL)
    assert paused(found=False, took=0.0) == pytest.approx(sink.MAX_PAUSE_S)


def test_an_evaluation_that_comes_during_a_long_pause_is_looked_at_an_interval_on() -> None:
    """A short model evaluated after one whose samples found nothing is still sampled: its
    row function's Python time would otherwise go unseen."""
    assert paused(found=False, took=0.0, arriving=[0.03]) == pytest.approx(0.03 + INTERVAL)
    # After a costly round, the new evaluation still waits out the costly round's pause.
    assert paused(found=False, took=0.0004, arriving=[0.01]) == pytest.approx(0.01 + 0.04)
    assert paused(found=False, took=0.0, arriving=[0.099]) == pytest.approx(sink.MAX_PAUSE_S)


class _Stop(Exception):
    pass


def test_each_round_tells_the_pause_what_it_found_and_what_it_took(monkeypatch: t.Any) -> None:
    """The sampler's loop: a round samples every evaluation under way, then pauses with what
    any of them found and how long the round took."""
    sampler = sink._Sampler()
    pauses: t.List[t.Tuple[bool, float]] = []

    def pause(found: bool, took: float) -> None:
        pauses.append((found, took))
        if len(pauses) == 4:
            raise _Stop

    monkeypatch.setattr(sampler, "_pause", pause)
    sampler._evaluations = [_Looked([True, False, False]), _Looked([False, False, True])]
    with pytest.raises(_Stop):
        sampler._run()
    # The first pause comes before any round; then one per round: found by either evaluation.
    assert [found for found, _ in pauses] == [True, True, False, True]
    assert pauses[0][1] == 0.0 and all(0.0 < took < 1.0 for _, took in pauses[1:])

"""Waiting in tests for something another thread or process does: a bound on the wait, never a timing."""

from __future__ import annotations

import subprocess
import time
import typing as t


def wait_for(condition: t.Callable[[], bool], seconds: float, process: t.Optional[subprocess.Popen] = None) -> bool:
    """Whether ``condition`` comes true within ``seconds`` (``process``, if given, must keep running meanwhile)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        assert process is None or process.poll() is None, "the plan ended before it could be killed"
        time.sleep(0.05)
    return condition()

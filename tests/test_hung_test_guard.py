"""The suite's guard against a hung test (tests/conftest.py): a run whose test never ends fails
with every thread's stack in its log, instead of waiting for CI's time limit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_hung_test_ends_its_run_with_every_thread_s_stack(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_configure, pytest_runtest_protocol\n")
    (tmp_path / "test_hangs.py").write_text(textwrap.dedent("""
        import threading

        def test_waits_for_ever():
            held = threading.Lock()
            held.acquire()
            threading.Thread(target=held.acquire, name="second-waiter", daemon=True).start()
            held.acquire()
    """))
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "MIXMESH_TEST_HUNG_AFTER_S": "2"}
    finished = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path)],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120,
    )
    assert finished.returncode != 0
    assert "Timeout (0:00:02)!" in finished.stderr
    assert "test_waits_for_ever" in finished.stderr
    assert finished.stderr.count("Thread 0x") >= 2  # the test's thread and the one it started

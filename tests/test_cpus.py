"""Pools are sized by the CPUs the process may use, not the machine's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mixmesh.core.cpus import usable_cpus


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux's")
def test_a_process_allowed_one_cpu_counts_one() -> None:
    script = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); from mixmesh.core.cpus import usable_cpus; print(usable_cpus())"
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.strip() == "1"


def test_the_count_is_at_least_one_and_at_most_the_machines() -> None:
    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)

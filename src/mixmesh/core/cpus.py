"""How many CPUs this process may use: what worker pools and thread pools are sized by.

``os.cpu_count()`` counts the machine's CPUs; a container, ``taskset`` or a batch scheduler
may allow the process fewer, and a pool sized by the machine would then oversubscribe them.
"""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), at least 1."""
    counted = getattr(os, "process_cpu_count", None)  # Python 3.13 and later
    if counted is not None:
        return counted() or 1
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity on this platform (macOS)
        return os.cpu_count() or 1

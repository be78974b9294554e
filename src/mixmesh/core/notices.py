"""Warnings said once per process: on stderr, where a user running ``sqlmesh plan`` sees them,
and in the log, where a scheduler keeps them."""

from __future__ import annotations

import logging
import sys
import threading
import typing as t

_said: t.Set[t.Hashable] = set()
_lock = threading.Lock()


def warn_once(key: t.Hashable, message: str, logger: str = "mixmesh") -> bool:
    """Say ``message`` unless something was already said under ``key`` in this process.
    Returns whether it was said now."""
    with _lock:
        if key in _said:
            return False
        _said.add(key)
    logging.getLogger(logger).warning(message)
    print(f"mixmesh: {message}", file=sys.stderr)
    return True

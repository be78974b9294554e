"""``mixmesh.count``: a function counts what it found in the data, for the run's figures.

A data check inside a function (a total that does not add up, a value out of range) should
neither fail the run nor log one line per row. ``count("amount_mismatches", n)`` adds ``n``
to the calling function's count of that finding in the model being evaluated: the first
of each kind is logged once (with ``detail``), and monitoring keeps the counts with the
function's figures (``mixmesh stats``). Counts made on Spark executors come back with the
executors' other figures.
"""

from __future__ import annotations

import inspect
import numbers
import re
import typing as t

from mixmesh.core.errors import FunctionCallError
from mixmesh.core.names import keep_import_path
from mixmesh.core.resilience import record
from mixmesh.sink import active_model, calling_function

# Findings are counted with mixmesh's own events (retries, fallbacks...), under this prefix:
# ``events()`` keys a finding as (model, function, "finding:<name>").
PREFIX = "finding:"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def count(finding: str, n: int = 1, *, detail: str = "") -> None:
    """Count ``n`` occurrences of ``finding`` (a name such as ``amount_mismatches``) for the
    function calling this, in the model being evaluated. ``n`` may be 0 (nothing counted)."""
    _check(finding, n)
    if n == 0:
        return
    caller = inspect.currentframe()
    found = calling_function(caller.f_back if caller is not None else None)
    if found is None:
        function, model = _plain_caller(caller), active_model()
    else:
        function, model = found[0], found[2] or active_model()
    record(model, function, PREFIX + finding, detail or finding, times=int(n))


def _check(finding: t.Any, n: t.Any) -> None:
    if not isinstance(finding, str) or not _NAME.match(finding):
        raise FunctionCallError(
            f"mixmesh.count: finding must be a name of letters, digits and underscores (at most 63), "
            f"got {finding!r}"
        )
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise FunctionCallError(f"mixmesh.count({finding!r}, n): n must be a whole number >= 0, got {n!r}")


def _plain_caller(frame: t.Optional[t.Any]) -> str:
    """A caller that is no project function mixmesh knows of (a test calling it directly)."""
    caller = frame.f_back if frame is not None else None
    return caller.f_code.co_name if caller is not None else "<unknown>"


keep_import_path(globals(), "mixmesh.counting")

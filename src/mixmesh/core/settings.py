"""Reading ``MIXMESH_*`` switches: a value that means nothing is an error, never a guess.

A switch accepts on/off and their usual spellings (1/0, true/false, yes/no), any case. Any
other value raises ``SettingError`` naming the variable, what it holds and what it accepts,
so ``MIXMESH_MONITOR=maybe`` fails the command instead of silently monitoring.
"""

from __future__ import annotations

import os

from mixmesh.core.errors import SettingError

ON = ("on", "1", "true", "yes")
OFF = ("off", "0", "false", "no")


def switch(variable: str, default: bool) -> bool:
    """Whether the switch ``variable`` is on; ``default`` when it is unset or empty."""
    given = os.environ.get(variable, "").strip().lower()
    if not given:
        return default
    if given in ON:
        return True
    if given in OFF:
        return False
    raise SettingError(
        f"{variable}={os.environ[variable]!r} is not a switch: use on or off "
        f"(also {', '.join(ON[1:])} or {', '.join(OFF[1:])})"
    )

"""DuckDB's plan of a statement, as ``EXPLAIN (FORMAT JSON)`` gives it, without running it."""

from __future__ import annotations

import json
import typing as t


def explained(cursor: t.Any, sql: str) -> t.Any:
    """The plan of ``sql``: a list of operator nodes (``name``, ``extra_info``, ``children``)."""
    return json.loads(cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}").fetchall()[0][1])


def operators(plan: t.Any, parent: t.Any = None) -> t.Iterator[t.Tuple[t.Dict[str, t.Any], t.Any]]:
    """Every operator of ``plan`` with the one above it (None at the top), top down."""
    if isinstance(plan, list):
        for node in plan:
            yield from operators(node, parent)
        return
    yield plan, parent
    yield from operators(plan.get("children", []), plan)

"""mixmesh inside SQLMesh: the only package that touches SQLMesh's internals.

Every wrapper of a SQLMesh internal is listed in ``patches.PATCHES`` (target, wrapper, why);
``install()`` applies them, once per process, and ``uninstall()`` takes them off. mixmesh
installs them itself whenever SQLMesh and mixmesh are both imported, in either order (see
``mixmesh.__init__``): declaring or calling a function never imports SQLMesh.

- ``calls``: a ``@function(...)`` call in a model as the macro evaluator expands it.
- ``source``: how a function is stored in SQLMesh's state and re-created from it.
- ``loading``: registering the project's functions and SQL functions as SQLMesh loads it.
- ``execution``: the statements SQLMesh runs (fast path, call sites, SQL functions, errors).
- ``monitoring``: the evaluator, unit tests and commands, for ``mixmesh.monitor``.
"""

from __future__ import annotations

from mixmesh.sqlmesh.patches import install, installed, uninstall

__all__ = ["install", "installed", "uninstall"]

"""``mixmesh.resilience``, the path projects import from and SQLMesh stores in their state: the
code lives in ``mixmesh.core.resilience`` (see ``mixmesh.core.names``)."""

from mixmesh.core.names import shim
from mixmesh.core import resilience as _moved

shim(__name__, _moved)

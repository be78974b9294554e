"""``mixmesh.context``, the path projects import from and SQLMesh stores in their state: the
code lives in ``mixmesh.pymodels.context`` (see ``mixmesh.core.names``)."""

from mixmesh.core.names import shim
from mixmesh.pymodels import context as _moved

shim(__name__, _moved)

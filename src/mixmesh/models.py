"""``mixmesh.models``, the path projects import from and SQLMesh stores in their state: the
code lives in ``mixmesh.core.models`` (see ``mixmesh.core.names``)."""

from mixmesh.core.names import shim
from mixmesh.core import models as _moved

shim(__name__, _moved)

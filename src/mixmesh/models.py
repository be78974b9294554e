"""``mixmesh.models``, the path projects import from and SQLMesh stores in their state: the
code lives in ``mixmesh.pymodels.models`` (the declaration in ``mixmesh.core.models``) (see ``mixmesh.core.names``)."""

from mixmesh.core.names import shim
from mixmesh.pymodels import models as _moved

shim(__name__, _moved)

"""``mixmesh.counting``, the path projects import ``count`` from (``from mixmesh import count``):
the code lives in ``mixmesh.runtime.counting`` (see ``mixmesh.core.names``)."""

from mixmesh.core.names import shim
from mixmesh.runtime import counting as _moved

shim(__name__, _moved)

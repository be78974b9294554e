"""What travels to Spark's executors with a function, so that it runs where the data is.

Spark runs Python functions on its executors: Python worker processes apart from the driver
(on a cluster, on other machines), which unpickle what Spark sends them with cloudpickle.
cloudpickle sends a function of an importable module by reference, "import the module, take
the name" (https://github.com/cloudpipe/cloudpickle#overriding-pickles-serialization-mechanism-for-importable-constructs):
right for installed packages (mixmesh, numpy...: the executors have them installed), wrong
for a project's own modules (``macros/``, ``python/shared/``), which only the driver can
import. So a project's modules go by value: the function's code, and that of the project
helpers and classes it uses, travel with it.

A circuit breaker holds a lock and its process's count of failures: it travels as its
settings, and each executor process keeps its own count (a breaker opens in the process
whose calls fail). An ``@resource`` holds a lock and the value it built: it travels as its
builder and settings, and each executor process builds its own value, once (a trained model
is loaded where the rows are, never pickled along with the function).

On a cluster the executors have no copy of the project either, so the files an ``@resource``
watches (its artifacts and their pins) travel with it as bytes, under their paths relative to
the project. An executor writes them once per process into a folder of its own, a copy of
the project holding only those files, and resolves the project's relative paths there:
``load_artifact`` then reads them as on the driver, and checks their pinned hashes there,
where they are unpickled (``project_copy``).

Spark pickles a function once, when it is registered, and its Python workers outlive queries
and plans: a worker that built a model keeps it. So a resource travels with the SHA-256 of
each file it watches as the driver has it (``resources.Origin``; a missing one as None, which
removes it from an executor's copy), and executors build one value per origin: a worker never
answers with a model built from files the driver no longer has. ``shipping`` records what a
registration shipped; ``Shipped.current`` tells, before each statement, whether the function
must be registered again (``functions.bind_session``) because those files changed or went
missing (retrained and re-pinned, deleted) or another project is run.
"""

from __future__ import annotations

import contextlib
import copyreg
import functools
import hashlib
import os
import sys
import sysconfig
import tempfile
import threading
import typing as t
from pathlib import Path

_lock = threading.Lock()
_by_value: t.Set[str] = set()  # modules already registered with cloudpickle
# On an executor: the driver's project folder -> {path relative to it: bytes} that arrived
# with resources (the latest bytes of each), and what this process wrote of them.
_arrived: t.Dict[str, t.Dict[str, t.Optional[bytes]]] = {}  # None: missing on the driver
_written: t.Dict[str, t.Dict[str, t.Optional[bytes]]] = {}


def ship_project_modules() -> None:
    """Send every project module imported so far by value (idempotent, cheap)."""
    from pyspark import cloudpickle

    _ship_breakers_as_settings()
    _ship_resources_as_builders()
    with _lock:
        for name in project_modules():
            if name not in _by_value:
                cloudpickle.register_pickle_by_value(sys.modules[name])
                _by_value.add(name)


def project_modules() -> t.List[str]:
    """Modules the executors cannot import: neither installed, nor Python's own."""
    return sorted(name for name, module in list(sys.modules.items()) if _is_project_module(name, module))


def _is_project_module(name: str, module: t.Any) -> bool:
    file = getattr(module, "__file__", None)
    top = name.partition(".")[0]
    if not file or name == "__main__" or top in sys.stdlib_module_names or top in _installed_packages():
        return False
    path = Path(file).absolute()
    return path.is_file() and not any(path.is_relative_to(prefix) for prefix in _installed_prefixes())


@functools.lru_cache(maxsize=1)
def _installed_packages() -> t.FrozenSet[str]:
    """Top-level names that installed distributions provide (mixmesh, pyspark, pandas...)."""
    from importlib import metadata

    return frozenset(metadata.packages_distributions())


@functools.lru_cache(maxsize=1)
def _installed_prefixes() -> t.Tuple[Path, ...]:
    paths = {sys.prefix, sys.base_prefix, *(sysconfig.get_paths()[key] for key in ("stdlib", "purelib", "platlib"))}
    return tuple(Path(path).absolute() for path in paths)


@functools.lru_cache(maxsize=1)
def _ship_breakers_as_settings() -> None:
    from mixmesh.core.resilience import CircuitBreaker

    copyreg.pickle(CircuitBreaker, _breaker_settings)


def _breaker_settings(breaker: t.Any) -> t.Tuple[t.Any, t.Tuple[t.Any, ...]]:
    return type(breaker), (breaker.fail_max, breaker.reset_timeout)


@functools.lru_cache(maxsize=1)
def _ship_resources_as_builders() -> None:
    from mixmesh.runtime.resources import Resource

    copyreg.pickle(Resource, _resource_builder)


def _resource_builder(resource: t.Any) -> t.Tuple[t.Any, t.Tuple[t.Any, ...]]:
    from mixmesh.runtime.resources import Origin

    root, watched = _driver_root(), resource.watched
    origin = Origin(str(root), watched_digests(watched))
    collected = getattr(_shipping, "collected", None)
    if collected is not None:
        collected.resources.append((resource, origin))
    arguments = (resource._builder, resource._watch, resource._check_every, resource._clock)
    files = _project_files(root, watched)
    return _arrived_resource, (type(resource), arguments, origin, files, str(resource._decorated_in))


def _driver_root() -> Path:
    from mixmesh.runtime import resources

    return resources.project_root() or Path.cwd()


def watched_digests(watched: t.Iterable[Path]) -> t.Tuple[t.Tuple[str, t.Optional[str]], ...]:
    """Each watched file's SHA-256 as the driver sees it now; None while it is missing."""
    return tuple((str(path), _digest(Path(path))) for path in watched)


# path -> ((mtime_ns, size, inode), SHA-256): a file is hashed again only once it changed.
_digests: t.Dict[str, t.Tuple[t.Tuple[int, int, int], str]] = {}


def _digest(path: Path) -> t.Optional[str]:
    from mixmesh.runtime.resources import file_sha256

    try:
        stat = path.stat()
    except OSError:
        return None
    if not path.is_file():
        return None
    signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    with _lock:
        cached = _digests.get(str(path))
    if cached is not None and cached[0] == signature:
        return cached[1]
    digest = file_sha256(path)
    with _lock:
        _digests[str(path)] = (signature, digest)
    return digest


class Shipped:
    """What one registration of a function sent its executors: the driver's project, and each
    ``@resource`` it carried with the state of its watched files then."""

    def __init__(self) -> None:
        self.root = _driver_root()
        self.resources: t.List[t.Tuple[t.Any, t.Any]] = []  # (resource, resources.Origin)

    def current(self) -> bool:
        """Whether the executors would get the same now: the same project, the same files.
        A function shipped before the driver's artifacts changed or went missing is stale."""
        return _driver_root() == self.root and all(
            watched_digests(resource.watched) == origin.digests for resource, origin in self.resources
        )


_shipping = threading.local()


@contextlib.contextmanager
def shipping() -> t.Iterator[Shipped]:
    """Collect what the functions pickled inside (a registration) ship with them."""
    shipped = Shipped()
    _shipping.collected = shipped
    try:
        yield shipped
    finally:
        _shipping.collected = None


def _project_files(root: Path, watched: t.Iterable[Path]) -> t.Dict[str, t.Optional[bytes]]:
    """The watched files inside the project, by path relative to it, with their bytes; None
    for one missing on the driver, so that a copy made earlier loses it too."""
    files: t.Dict[str, t.Optional[bytes]] = {}
    for path in watched:
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(root):
            continue
        if resolved.is_file():
            files[resolved.relative_to(root).as_posix()] = resolved.read_bytes()
        elif not resolved.exists():
            files[resolved.relative_to(root).as_posix()] = None
    return files


def _arrived_resource(
    kind: type, arguments: t.Tuple[t.Any, ...], origin: t.Any, files: t.Dict[str, t.Optional[bytes]], decorated_in: str,
) -> t.Any:
    """A resource unpickled on an executor: its files kept until a function asks for them, its
    value built for the driver's files as they were shipped (``resources.Origin``)."""
    if files:
        with _lock:
            _arrived.setdefault(origin.root, {}).update(files)
    resource = kind(*arguments, origin=origin)
    resource._decorated_in = Path(decorated_in)  # outside a project, relative paths are the driver's
    return resource


def project_copy(root: t.Optional[str]) -> t.Optional[Path]:
    """On an executor without the project: a folder holding the files that resources of the
    project at ``root`` (on the driver) brought, at their relative paths; None if none came.

    Written in Spark's per-application scratch folder (removed with the executor), a file
    again only when other bytes arrive for it, each atomically: Python workers of one
    executor may write the same copy.
    """
    with _lock:
        files = dict(_arrived.get(root or "", {}))
    if root is None or not files:
        return None
    copy = _scratch() / f"mixmesh-project-{hashlib.sha256(root.encode()).hexdigest()[:16]}"
    with _lock:
        written = _written.setdefault(root, {})
        for relative, data in files.items():
            if relative in written and written[relative] == data:
                continue
            if data is None:
                (copy / relative).unlink(missing_ok=True)  # gone on the driver: gone here
            else:
                _write_atomically(copy / relative, data)
            written[relative] = data
    return copy


def _scratch() -> Path:
    from pyspark.files import SparkFiles

    try:
        return Path(SparkFiles.getRootDirectory())  # the executor's own, deleted when it ends
    except Exception:  # not inside a Spark task (a test calling this directly)
        return Path(tempfile.gettempdir())


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "wb") as file:
        file.write(data)
    os.replace(temporary, path)

"""Safe resources: expensive values built once per process, artifacts unpickled only when trusted.

``@resource`` caches what a zero-argument builder returns (an ML model, a lookup table), so
a function called on every row does not reload it; a watched source file that changes
rebuilds it. ``load_artifact`` unpickles a pickle or joblib file only from allowed
directories and, when a SHA-256 is pinned, only when the bytes match it: unpickling runs
code, so a file that is refused is never unpickled. Together::

    @resource(watch="models/churn.joblib")
    def churn_model():
        return load_artifact("models/churn.joblib", sha256="9f86d0...")

Longer than 450 lines because loading an artifact is one security boundary: allowed paths,
pins and hashes, the fallback and its counting are checked in one place, so that none can be
skipped.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import importlib.util
import inspect
import io
import logging
import os
import pickle
import sys
import threading
import types
import time
import typing as t
from pathlib import Path

from mixmesh.core import settings
from mixmesh.core.errors import MixmeshError
from mixmesh.core.names import keep_import_path
from mixmesh.runtime import provenance

logger = logging.getLogger(__name__)

PathLike = t.Union[str, "os.PathLike[str]"]

ARTIFACT_DIRS_VARIABLE = "MIXMESH_ARTIFACT_DIRS"
_CHUNK = 1 << 20
_JOBLIB_SUFFIXES = (".joblib", ".pkl")
_LOADERS = ("auto", "pickle", "joblib")
_EVENTS = ("loaded", "refused_hash", "refused_path", "unpinned", "missing", "fallback")
_UNBUILT = object()  # a builder may return None, so "not built" needs its own marker


class ResourceError(MixmeshError, ValueError):
    """``@resource`` is used the wrong way (a builder that takes arguments, a bad option)."""


class ArtifactError(MixmeshError, ValueError):
    """An artifact is missing or refused (outside the allowed directories, hash mismatch)."""

    def __init__(self, message: str, path: PathLike, reason: str) -> None:
        super().__init__(message)
        self.path = str(path)
        # "missing", "refused_path", "refused_hash", "unpinned" (as counted), "bad_argument" or "unreadable"
        self.reason = reason


# ---------------------------------------------------------------------------- @resource


class _Built:
    """A resource's cached value and what it was built from, shared by copies of the same builder."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: t.Any = _UNBUILT
        self.signature: t.Tuple[t.Optional[t.Tuple[int, int]], ...] = ()
        self.checked_at = 0.0
        self.built_at: t.Optional[float] = None
        self.builds = 0
        self.artifacts: t.Any = None  # the artifacts the build loaded (a provenance.Trace)


# SQLMesh runs a model's functions from their stored source, so one process may hold several
# copies of a project's @resource (one per model, per unit test). Copies of the same code of
# one project, watching the same files, share one value: "once per process" holds for them too.
_SHARED: t.Dict[t.Tuple[t.Any, ...], _Built] = {}
_SHARED_LOCK = threading.Lock()


def _built_for(builder: t.Callable[[], t.Any], watch: t.Tuple[Path, ...], scope: t.Any) -> _Built:
    """The value shared by copies of ``builder`` watching ``watch`` in ``scope``: the project
    they run for (its root), or, for a copy shipped from a driver, what the driver saw."""
    if getattr(builder, "__closure__", None) or not hasattr(builder, "__code__"):
        return _Built()  # a closure's value depends on what it captured: never shared
    # The project too: relative paths (its artifacts, its watched files) are another project's
    # files in another copy, loaded in the same process.
    identity = (builder.__qualname__, _code_identity(builder.__code__), _values_used(builder), watch)
    key = (*identity, scope)
    with _SHARED_LOCK:
        built = _SHARED.get(key)
        if built is None:
            if isinstance(scope, Origin):
                _forget_superseded(identity, scope)
            built = _SHARED[key] = _Built()
        return built


class Origin(t.NamedTuple):
    """What a resource copied from another process (Spark's driver) is built from there: the
    project's root, and each watched file's SHA-256 (None while it is missing). A process
    that receives copies builds one value per origin, so one whose files changed or went
    missing on the driver is built again, never served from the value built before."""

    root: str
    digests: t.Tuple[t.Tuple[str, t.Optional[str]], ...]


def _forget_superseded(identity: t.Tuple[t.Any, ...], origin: Origin) -> None:
    # The driver moved on from the older files: their value would be a stale model, and holds memory.
    for key in [key for key in _SHARED if key[:-1] == identity and isinstance(key[-1], Origin)]:
        if key[-1].root == origin.root:
            del _SHARED[key]


def _code_identity(code: "types.CodeType") -> t.Tuple[t.Any, ...]:
    # What the code does, not where it was compiled from (file names and lines differ by copy).
    consts = tuple(_code_identity(c) if inspect.iscode(c) else repr(c) for c in code.co_consts)
    return (code.co_code, code.co_names, consts)


def _values_used(builder: t.Callable[[], t.Any]) -> t.Tuple[t.Any, ...]:
    # The same code reading another module's SOURCE = "..." builds another value.
    names = builder.__code__.co_names
    used = [(name, builder.__globals__.get(name)) for name in names if name in builder.__globals__]
    plain = tuple((name, repr(value)) for name, value in used if isinstance(value, (str, bytes, int, float, bool, tuple, type(None))))
    return plain + (repr(builder.__defaults__),)


class Resource:
    """A zero-argument builder whose value is built once per process (and project), and on
    watched file changes."""

    def __init__(
        self,
        builder: t.Callable[[], t.Any],
        watch: t.Sequence[Path] = (),
        check_every: float = 1.0,
        clock: t.Callable[[], float] = time.monotonic,
        *,
        origin: t.Optional[Origin] = None,
    ) -> None:
        functools.update_wrapper(self, builder)
        self._builder = builder
        self._watch = tuple(watch)  # as given: relative paths resolve against the project run
        self._check_every = check_every
        self._clock = clock
        self._origin = origin
        self._decorated_in = Path.cwd()  # where relative paths resolve outside any project
        # By project root: SQLMesh may reuse one copy of a project's code for another project
        # with the same code in the same process; each has its own files, so its own value.
        self._by_scope: t.Dict[t.Any, _Built] = {}
        self._scope_lock = threading.Lock()

    @property
    def builds(self) -> int:
        """How many times the value was built in this process."""
        return self._built().builds

    @property
    def built_at(self) -> t.Optional[float]:
        """Wall-clock time (time.time()) of the last build."""
        return self._built().built_at

    def __call__(self) -> t.Any:
        built = self._built()
        value = built.value
        if value is not _UNBUILT and not self._check_due(built):
            provenance.note_used(built.artifacts)  # the caller's values come from them too
            return value  # the common path takes no lock
        with built.lock:
            # Another thread may have built (or checked) while this one waited for the lock.
            if built.value is _UNBUILT or (self._check_due(built) and self._changed(built)):
                self._build(built)
            provenance.note_used(built.artifacts)
            return built.value

    def reset(self) -> None:
        """Drop the cached value; the next call builds it again."""
        built = self._built()
        with built.lock:
            built.value = _UNBUILT

    @property
    def watched(self) -> t.Tuple[Path, ...]:
        """The files whose change rebuilds the value (relative ones in the project run now)."""
        base = _project_root if _project_root is not None else self._decorated_in
        return tuple(path if path.is_absolute() else base / path for path in self._watch)

    def _built(self) -> _Built:
        scope = self._origin if self._origin is not None else _project_root
        built = self._by_scope.get(scope)
        if built is None:
            with self._scope_lock:  # threads calling first get one value (a closure's is not shared)
                built = self._by_scope.get(scope)
                if built is None:
                    built = self._by_scope[scope] = _built_for(self._builder, self._watch, scope)
        return built

    def _check_due(self, built: _Built) -> bool:
        return bool(self._watch) and self._clock() - built.checked_at >= self._check_every

    def _changed(self, built: _Built) -> bool:
        built.checked_at = self._clock()
        return _signature(self.watched) != built.signature

    def _build(self, built: _Built) -> None:
        # The files are read before building: a change made during the build rebuilds again.
        signature = _signature(self.watched)
        with provenance.tracing() as artifacts:
            built.value = self._builder()
        built.artifacts = artifacts
        built.signature = signature
        built.checked_at = self._clock()
        built.built_at = time.time()
        built.builds += 1

    def __repr__(self) -> str:
        state = "unbuilt" if self._built().value is _UNBUILT else f"built {self.builds} time(s)"
        return f"<resource {self.__qualname__} ({state})>"


@t.overload
def resource(builder: t.Callable[[], t.Any]) -> Resource: ...


@t.overload
def resource(
    *,
    watch: t.Union[PathLike, t.Iterable[PathLike], None] = None,
    check_every: float = 1.0,
    clock: t.Callable[[], float] = time.monotonic,
) -> t.Callable[[t.Callable[[], t.Any]], Resource]: ...


def resource(
    builder: t.Optional[t.Callable[[], t.Any]] = None,
    *,
    watch: t.Union[PathLike, t.Iterable[PathLike], None] = None,
    check_every: float = 1.0,
    clock: t.Callable[[], float] = time.monotonic,
) -> t.Any:
    """Cache what a zero-argument function builds, once per process; changed ``watch=`` files rebuild it.

    Relative ``watch=`` paths resolve against the project's root, as ``load_artifact``'s do
    (the directory of the decoration outside a SQLMesh project); each project run in the
    process has its own value. ``check_every``: seconds between looks at the watched files.
    """
    if isinstance(check_every, bool) or not isinstance(check_every, (int, float)) or check_every < 0:
        raise ResourceError(f"@resource check_every must be a number of seconds >= 0, not {check_every!r}")
    paths = _watched_paths(watch)

    def decorate(function: t.Callable[[], t.Any]) -> Resource:
        _check_builder(function)
        return Resource(function, paths, float(check_every), clock)

    return decorate if builder is None else decorate(builder)


def _watched_paths(watch: t.Union[PathLike, t.Iterable[PathLike], None]) -> t.Tuple[Path, ...]:
    if watch is None:
        return ()
    items = [watch] if isinstance(watch, (str, os.PathLike)) else list(watch)
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise ResourceError(f"@resource watch= takes paths, not {item!r}")
    # Relative paths stay relative: they resolve against the project being run, as
    # load_artifact's do (Resource.watched), not against the directory of each call.
    return tuple(Path(item).expanduser() for item in items)


def _check_builder(function: t.Any) -> None:
    if not callable(function):
        raise ResourceError(f"@resource decorates a zero-argument function, not {function!r}")
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return  # some builtins have no signature; calling them will tell
    required = [
        p.name
        for p in signature.parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if required:
        name = getattr(function, "__qualname__", repr(function))
        raise ResourceError(
            f"@resource {name} must take no arguments (it is called as {name}()); it requires "
            f"{', '.join(required)}"
        )


def _signature(paths: t.Sequence[Path]) -> t.Tuple[t.Optional[t.Tuple[int, int]], ...]:
    """Each watched file's (mtime_ns, size); None while it does not exist."""
    return tuple(_stat(path) for path in paths)


def _stat(path: Path) -> t.Optional[t.Tuple[int, int]]:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


# ------------------------------------------------------------------------- load_artifact

_events: t.Dict[str, int] = dict.fromkeys(_EVENTS, 0)
_warned: t.Set[t.Tuple[str, str]] = set()
_events_lock = threading.Lock()


def artifact_events() -> t.Dict[str, int]:
    """How many artifacts this process loaded, refused, found missing, or replaced by a fallback."""
    with _events_lock:
        return dict(_events)


def reset_artifact_events() -> None:
    """Set every artifact event count back to zero."""
    with _events_lock:
        _events.update(dict.fromkeys(_EVENTS, 0))


def file_sha256(path: PathLike) -> str:
    """The SHA-256 of a file's bytes as lowercase hex, the value ``load_artifact(sha256=)`` pins."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# The root of the SQLMesh project being loaded or run in this process (set by the integration
# when SQLMesh loads it; carried to Spark's executors): relative artifact paths mean the same
# wherever the command was started from.
_project_root: t.Optional[Path] = None


def set_project_root(root: t.Optional[PathLike]) -> None:
    """Where relative artifact paths (and ``pins``) resolve, and the default allowed directory."""
    global _project_root
    _project_root = Path(root).resolve() if root is not None else None


def project_root() -> t.Optional[Path]:
    return _project_root


def _base() -> Path:
    return _project_root if _project_root is not None else Path.cwd()


def _in_project(path: PathLike) -> Path:
    given = Path(path).expanduser()
    return given if given.is_absolute() else _base() / given


def load_artifact(
    path: PathLike,
    *,
    sha256: t.Optional[str] = None,
    pins: t.Optional[PathLike] = None,
    fallback: t.Any = None,
    allowed_dirs: t.Union[PathLike, t.Iterable[PathLike], None] = None,
    loader: str = "auto",
    allow_unpinned: bool = False,
) -> t.Any:
    """Unpickle a pickle or joblib file from an allowed directory, only if its hash matches
    ``sha256`` or its entry in ``pins``.

    Relative paths (``path``, ``pins``) resolve against the project's root (the folder of the
    SQLMesh project being run; the current directory outside SQLMesh), whatever directory the
    command was started from. The allowed directories are the project's root and those in
    ``MIXMESH_ARTIFACT_DIRS`` (``os.pathsep``-separated), unless ``allowed_dirs`` is given.
    Unpickling runs code, so a file with neither ``sha256`` nor ``pins`` is refused
    (``unpinned``) unless the call says ``allow_unpinned=True``. A missing or refused file
    returns ``fallback`` (a value, or a zero-argument callable building it) with one warning
    per file and reason, or raises ``ArtifactError`` when there is no fallback. A callable
    fallback is always called: wrap a value that is itself callable in a lambda.

    ``pins`` names a ``sha256sum``-format file (``<hex digest>  <file name>`` per line, names
    relative to its directory, as ``write_pins`` writes it) holding the digest instead: a file it does not list is refused
    (``unpinned``), so dropping a new artifact in place is not enough to get it unpickled.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ArtifactError(
            f"load_artifact: path must be a file path (str or pathlib.Path), not {type(path).__name__} "
            f"{path!r}",
            path,
            "bad_argument",
        )
    if loader not in _LOADERS:
        raise ArtifactError(
            f"artifact {path}: loader must be one of {', '.join(_LOADERS)}, not {loader!r}",
            path,
            "bad_argument",
        )
    resolved = _in_project(path).resolve()  # symlinks and ".." resolved before any check
    pins = _in_project(pins) if pins is not None else None
    named = _name(path, resolved)
    if pins is not None and sha256 is not None:
        raise ArtifactError(f"artifact {path}: give sha256= or pins=, not both", path, "bad_argument")
    expected = None if pins is not None else _expected_digest(path, sha256)
    directories = _allowed_dirs(allowed_dirs)
    if not any(resolved.is_relative_to(directory) for directory in directories):
        listed = ", ".join(str(d) for d in directories) or "none"
        message = f"artifact {named} is outside the allowed directories ({listed})"
        return _refused(path, resolved, "refused_path", message, fallback)
    try:
        file = open(resolved, "rb")
    except IsADirectoryError:
        return _refused(path, resolved, "missing", f"artifact {named} is a directory, not a file", fallback)
    except (FileNotFoundError, NotADirectoryError):
        return _refused(path, resolved, "missing", f"artifact {named} is missing", fallback)
    with file:
        if pins is not None:  # read after the file is found: a missing file is "missing"
            expected = read_pins(pins).get(_pinned_name(pins, resolved))
            if expected is None:
                where = "in " + os.fspath(pins) if Path(pins).is_file() else f"(the pins file {os.fspath(pins)} does not exist)"
                message = f"artifact {named} has no pinned hash {where}; it was not unpickled"
                return _refused(path, resolved, "unpinned", message, fallback)
            expected = _expected_digest(path, expected)
        if expected is None and not allow_unpinned:
            message = (
                f"artifact {named} has no hash to check (sha256= or pins=), and unpickling runs the code "
                "it holds; it was not unpickled. Pin it (mixmesh.write_pins, then pins=...), give sha256=, "
                "or accept the risk with load_artifact(..., allow_unpinned=True)"
            )
            return _refused(path, resolved, "unpinned", message, fallback)
        if expected is None:
            value = _unpickle(file, resolved, loader, named)
        else:
            # Read once: the bytes that were hashed are the bytes that are unpickled.
            data = file.read()
            actual = hashlib.sha256(data).hexdigest()
            if not hmac.compare_digest(actual, expected):
                return _refused(
                    path,
                    resolved,
                    "refused_hash",
                    f"artifact {named} failed its hash check (expected sha256 {expected}, actual {actual}); "
                    "it was not unpickled",
                    fallback,
                )
            value = _unpickle(io.BytesIO(data), resolved, loader, named)
    _count("loaded")
    if provenance.traced():  # rows record the bytes they came from (an unpinned file's are hashed here)
        provenance.note_loaded(os.fspath(path), expected or f"unpinned {file_sha256(resolved)}")
    return value


def read_pins(pins: PathLike) -> t.Dict[str, str]:
    """File name -> pinned SHA-256 from a ``sha256sum``-format file; empty when it does not exist."""
    try:
        lines = Path(pins).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}
    pinned = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        digest, separator, name = line.partition("  ")
        if not separator or not name.strip():
            raise ArtifactError(
                f"{os.fspath(pins)}, line {number}: expected '<sha256>  <file name>', found {line!r}", pins, "bad_argument"
            )
        pinned[name.strip().lstrip("*")] = digest.strip()  # "*": sha256sum's binary-mode marker
    return pinned


def write_pins(pins: PathLike, artifacts: t.Iterable[PathLike]) -> t.Dict[str, str]:
    """Pin the current bytes of ``artifacts`` in ``pins`` (replacing their entries; others kept).

    The file is what ``sha256sum -c`` checks, from the directory holding it.
    """
    pinned = read_pins(pins)
    for artifact in artifacts:
        pinned[_pinned_name(pins, Path(artifact).resolve())] = file_sha256(artifact)
    lines = [f"{digest}  {name}" for name, digest in sorted(pinned.items())]
    Path(pins).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return pinned


def _pinned_name(pins: PathLike, resolved: Path) -> str:
    # As sha256sum lists it: relative to the pins file's directory, with forward slashes.
    return Path(os.path.relpath(resolved, Path(pins).resolve().parent)).as_posix()


def _expected_digest(path: PathLike, sha256: t.Optional[str]) -> t.Optional[str]:
    if sha256 is None:
        return None
    digest = sha256.strip().lower() if isinstance(sha256, str) else sha256
    # A mistyped pin must fail loudly, not quietly fall back as if the file had changed.
    if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ArtifactError(
            f"artifact {path}: sha256 must be 64 hexadecimal digits (see file_sha256), not {sha256!r}",
            path,
            "bad_argument",
        )
    return digest


def _allowed_dirs(allowed_dirs: t.Union[PathLike, t.Iterable[PathLike], None]) -> t.List[Path]:
    if allowed_dirs is None:
        # Read on each call: the environment may be set after import (tests, notebooks).
        listed = settings.get(ARTIFACT_DIRS_VARIABLE).split(os.pathsep)
        items: t.List[PathLike] = [_base(), *(item for item in listed if item)]
    elif isinstance(allowed_dirs, (str, os.PathLike)):
        items = [allowed_dirs]
    else:
        items = list(allowed_dirs)
    return [Path(item).resolve() for item in items]


def _name(path: PathLike, resolved: Path) -> str:
    given = os.fspath(path)
    return given if given == str(resolved) else f"{given} (resolved to {resolved})"


def _refused(path: PathLike, resolved: Path, reason: str, message: str, fallback: t.Any) -> t.Any:
    _count(reason)
    if fallback is None:
        raise ArtifactError(message, path, reason)
    with _events_lock:
        first = (str(resolved), reason) not in _warned
        _warned.add((str(resolved), reason))
        _events["fallback"] += 1
    from mixmesh.core.resilience import record

    record(_active_model(), "load_artifact", "fallbacks", log=False)
    provenance.note_fallback(os.fspath(path))
    if first:
        logger.warning("%s; using the fallback instead (reported once per process)", message)
        # On the console too: every row this feeds is a fallback's, and the run still succeeds.
        print(f"mixmesh: {message}; using the fallback instead", file=sys.stderr)
    return fallback() if callable(fallback) else fallback


def _count(event: str) -> None:
    from mixmesh.core.resilience import record

    with _events_lock:
        _events[event] += 1
    # Also where every other resilience event is counted (monitoring reads one place), under
    # the model being evaluated, so the metrics show which model ran on a fallback.
    record(_active_model(), "load_artifact", event, log=False)


def _active_model() -> t.Optional[str]:
    from mixmesh import sink

    return sink.active_model()


def _unpickle(file: t.BinaryIO, resolved: Path, loader: str, named: str) -> t.Any:
    if loader == "pickle" or (loader == "auto" and not _joblib_fits(resolved)):
        load, how = pickle.load, "pickle"
    else:
        import joblib  # loader="joblib" without joblib installed fails here, naming it

        load, how = joblib.load, "joblib"
    try:
        return load(file)
    except Exception as error:  # an empty or truncated file, or not a pickle at all
        detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        raise ArtifactError(
            f"artifact {named} could not be unpickled with {how} ({detail})",
            resolved,
            "unreadable",
        ) from error


def _joblib_fits(resolved: Path) -> bool:
    return resolved.suffix.lower() in _JOBLIB_SUFFIXES and importlib.util.find_spec("joblib") is not None


# Public names keep the path projects import them from (see mixmesh.core.names).
keep_import_path(globals(), "mixmesh.resources")

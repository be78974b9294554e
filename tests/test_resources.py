"""Safe resources: values built once per process, artifacts unpickled only when trusted."""

from __future__ import annotations

import logging
import os
import pickle
import threading
import time
import typing as t
from pathlib import Path

import pytest

from mixmesh.core.errors import MixmeshError
from mixmesh.runtime.resources import (
    ArtifactError,
    Resource,
    ResourceError,
    artifact_events,
    file_sha256,
    load_artifact,
    reset_artifact_events,
    write_pins,
    resource,
)

# Every object unpickled from a Trap lands here, and its marker file is created.
UNPICKLED: t.List[str] = []


def _sprung(marker: str, payload: str) -> str:
    UNPICKLED.append(payload)
    Path(marker).write_text(payload)
    return payload


class Trap:
    """Unpickling it runs code (as any pickle may): proof of whether a file was unpickled."""

    def __init__(self, marker: Path, payload: str = "payload-A") -> None:
        self.marker = marker
        self.payload = payload

    def __reduce__(self) -> t.Tuple[t.Any, ...]:
        return (_sprung, (str(self.marker), self.payload))


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def fresh_events() -> t.Iterator[None]:
    reset_artifact_events()
    UNPICKLED.clear()
    yield
    reset_artifact_events()


def _events(**counts: int) -> t.Dict[str, int]:
    return {"loaded": 0, "refused_hash": 0, "refused_path": 0, "unpinned": 0, "missing": 0, "fallback": 0, **counts}


def _dump(path: Path, value: t.Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(value))
    return path


# ----------------------------------------------------------------------------- @resource


def test_resource_is_built_once_and_cached() -> None:
    calls = []

    @resource
    def table() -> t.Dict[str, int]:
        """A lookup table."""
        calls.append(1)
        return {"a": 1}

    assert table.builds == 0 and table.built_at is None
    first = table()
    assert table() is first and table() is first
    assert len(calls) == 1 and table.builds == 1
    assert table.built_at is not None and abs(table.built_at - time.time()) < 60
    # update_wrapper keeps the builder's identity for docs and error messages.
    assert table.__name__ == "table" and table.__doc__ == "A lookup table."
    assert table.__wrapped__ is not None


def test_resource_caches_none() -> None:
    calls = []

    @resource()
    def nothing() -> None:
        calls.append(1)

    assert nothing() is None and nothing() is None
    assert len(calls) == 1


def test_concurrent_first_calls_build_once() -> None:
    calls = []
    barrier = threading.Barrier(8)

    @resource
    def model() -> object:
        calls.append(1)
        time.sleep(0.05)  # long enough for every thread to arrive while the build runs
        return object()

    results: t.List[object] = []

    def call() -> None:
        barrier.wait()
        results.append(model())

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and model.builds == 1
    assert len(results) == 8 and all(result is results[0] for result in results)


def test_a_failed_build_is_not_cached() -> None:
    attempts = []

    @resource
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first build fails")
        return "built"

    with pytest.raises(RuntimeError, match="first build fails"):
        flaky()
    assert flaky() == "built" and flaky.builds == 1


def test_watched_file_change_rebuilds_after_check_interval(tmp_path: Path) -> None:
    source = tmp_path / "table.csv"
    source.write_text("a,1\n")
    clock = Clock()

    @resource(watch=source, clock=clock)
    def table() -> str:
        return source.read_text()

    assert table() == "a,1\n"
    source.write_text("a,1\nb,2\n")
    clock.now += 0.5
    assert table() == "a,1\n"  # not checked again before check_every (1.0 s)
    clock.now += 0.5
    assert table() == "a,1\nb,2\n" and table.builds == 2
    clock.now += 5
    assert table() == "a,1\nb,2\n" and table.builds == 2  # checked, unchanged: no rebuild


def test_same_size_change_is_seen_by_its_mtime(tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(b"aaaa")
    stat = source.stat()
    clock = Clock()

    @resource(watch=[str(source)], check_every=0.25, clock=clock)
    def weights() -> bytes:
        return source.read_bytes()

    assert weights() == b"aaaa"
    source.write_bytes(b"bbbb")
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    clock.now += 0.25
    assert weights() == b"bbbb" and weights.builds == 2


def test_watched_file_appearing_rebuilds(tmp_path: Path) -> None:
    source = tmp_path / "late.txt"
    clock = Clock()

    @resource(watch=[source, tmp_path / "other.txt"], clock=clock)
    def text() -> str:
        return source.read_text() if source.exists() else "default"

    assert text() == "default"
    source.write_text("arrived")
    clock.now += 1
    assert text() == "arrived" and text.builds == 2


def test_reset_drops_the_value() -> None:
    @resource
    def value() -> object:
        return object()

    first = value()
    value.reset()
    second = value()
    assert second is not first and value() is second
    assert value.builds == 2


def test_builder_with_arguments_is_refused() -> None:
    with pytest.raises(ResourceError, match=r"^@resource .*needs_path must take no arguments \(it is called as .*needs_path\(\)\); it requires path$"):

        @resource
        def needs_path(path: str) -> str:
            return path

    with pytest.raises(ResourceError, match=r"^@resource check_every must be a number of seconds >= 0, not -1$"):
        resource(check_every=-1)
    with pytest.raises(ResourceError, match="^@resource watch= takes paths, not 3$"):
        resource(watch=[3])
    assert issubclass(ResourceError, MixmeshError)


# ------------------------------------------------------------------------- load_artifact


def test_loads_a_pickled_object(tmp_path: Path) -> None:
    path = _dump(tmp_path / "table.pkl", {"weights": [1.5, 2.5], "name": "m"})
    assert load_artifact(path, allowed_dirs=[tmp_path], allow_unpinned=True) == {"weights": [1.5, 2.5], "name": "m"}
    assert load_artifact(str(path), allowed_dirs=tmp_path, loader="pickle", allow_unpinned=True)["name"] == "m"
    assert artifact_events() == _events(loaded=2)


def test_loads_with_a_pinned_hash(tmp_path: Path) -> None:
    path = _dump(tmp_path / "table.pickle", [1, 2, 3])
    digest = file_sha256(path)
    assert len(digest) == 64
    assert load_artifact(path, sha256=digest, allowed_dirs=[tmp_path]) == [1, 2, 3]
    assert load_artifact(path, sha256=f" {digest.upper()} ", allowed_dirs=[tmp_path]) == [1, 2, 3]


def test_file_sha256_streams_large_files(tmp_path: Path) -> None:
    import hashlib

    data = os.urandom(3 * (1 << 20) + 17)  # several 1 MiB chunks and a partial one
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_loads_a_joblib_dump(tmp_path: Path) -> None:
    joblib = pytest.importorskip(
        "joblib", reason="joblib is not installed; the pickle path is tested instead"
    )
    path = tmp_path / "model.joblib"
    joblib.dump({"coef": [0.1, 0.2], "intercept": 3.0}, path)
    loaded = load_artifact(path, sha256=file_sha256(path), allowed_dirs=[tmp_path])
    assert loaded == {"coef": [0.1, 0.2], "intercept": 3.0}
    assert load_artifact(path, allowed_dirs=[tmp_path], loader="joblib", allow_unpinned=True)["intercept"] == 3.0


def test_tampered_file_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    path = _dump(tmp_path / "model.pkl", Trap(marker, "payload-A"))
    pinned = file_sha256(path)
    data = path.read_bytes()
    assert data.count(b"payload-A") == 1
    path.write_bytes(data.replace(b"payload-A", b"payload-B"))  # one byte changed, still a valid pickle

    with pytest.raises(ArtifactError) as raised:
        load_artifact(path, sha256=pinned, allowed_dirs=[tmp_path])
    message = str(raised.value)
    assert str(path) in message
    assert f"failed its hash check (expected sha256 {pinned}, actual {file_sha256(path)}); it was not unpickled" in message
    assert raised.value.reason == "refused_hash"
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, MixmeshError)
    assert load_artifact(path, sha256=pinned, fallback="safe", allowed_dirs=[tmp_path]) == "safe"
    assert not marker.exists() and UNPICKLED == []
    assert artifact_events() == _events(refused_hash=2, fallback=1)

    # The control: this file does run code when it is unpickled.
    assert load_artifact(path, allowed_dirs=[tmp_path], allow_unpinned=True) == "payload-B"
    assert marker.read_text() == "payload-B" and UNPICKLED == ["payload-B"]


def test_absolute_path_outside_allowed_dirs_is_refused(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    marker = tmp_path / "marker.txt"
    outside = _dump(tmp_path / "outside" / "model.pkl", Trap(marker))

    with pytest.raises(ArtifactError, match="outside the allowed directories") as raised:
        load_artifact(outside, allowed_dirs=[allowed], allow_unpinned=True)
    assert str(outside) in str(raised.value) and str(allowed) in str(raised.value)
    assert raised.value.reason == "refused_path"
    assert not marker.exists() and UNPICKLED == []


def test_dotdot_traversal_is_refused(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    marker = tmp_path / "marker.txt"
    _dump(tmp_path / "outside" / "model.pkl", Trap(marker))
    sneaky = allowed / ".." / "outside" / "model.pkl"

    with pytest.raises(ArtifactError, match="outside the allowed directories") as raised:
        load_artifact(sneaky, allowed_dirs=[allowed], allow_unpinned=True)
    assert str(tmp_path / "outside" / "model.pkl") in str(raised.value)  # the resolved path is named
    # A prefix of the directory name is not the directory: allowed-evil is not inside allowed.
    _dump(tmp_path / "allowed-evil" / "model.pkl", Trap(marker))
    with pytest.raises(ArtifactError, match="outside"):
        load_artifact(tmp_path / "allowed-evil" / "model.pkl", allowed_dirs=[allowed], allow_unpinned=True)
    assert not marker.exists() and UNPICKLED == []
    assert artifact_events() == _events(refused_path=2)


def test_symlink_pointing_outside_is_refused(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    marker = tmp_path / "marker.txt"
    target = _dump(tmp_path / "outside" / "model.pkl", Trap(marker))
    link = allowed / "model.pkl"
    link.symlink_to(target)
    (allowed / "elsewhere").symlink_to(tmp_path / "outside", target_is_directory=True)

    for sneaky in (link, allowed / "elsewhere" / "model.pkl"):
        with pytest.raises(ArtifactError, match="outside the allowed directories"):
            load_artifact(sneaky, allowed_dirs=[allowed], allow_unpinned=True)
    assert not marker.exists() and UNPICKLED == []


def test_symlink_within_allowed_dirs_loads(tmp_path: Path) -> None:
    target = _dump(tmp_path / "models" / "v2.pkl", "version 2")
    (tmp_path / "models" / "current.pkl").symlink_to(target)
    assert load_artifact(tmp_path / "models" / "current.pkl", allowed_dirs=[tmp_path], allow_unpinned=True) == "version 2"


def test_default_allowed_dirs_are_cwd_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    _dump(project / "models" / "a.pkl", "inside")
    shared = _dump(tmp_path / "shared" / "b.pkl", "shared")
    monkeypatch.chdir(project)
    monkeypatch.delenv("MIXMESH_ARTIFACT_DIRS", raising=False)

    assert load_artifact("models/a.pkl", allow_unpinned=True) == "inside"  # relative to the current directory
    with pytest.raises(ArtifactError, match="outside"):
        load_artifact(shared, allow_unpinned=True)
    listed = ["", str(tmp_path / "nowhere"), str(tmp_path / "shared")]  # empty entries are ignored
    monkeypatch.setenv("MIXMESH_ARTIFACT_DIRS", os.pathsep.join(listed))
    assert load_artifact(shared, allow_unpinned=True) == "shared"
    # allowed_dirs= replaces the defaults, the current directory included.
    with pytest.raises(ArtifactError, match="outside"):
        load_artifact("models/a.pkl", allowed_dirs=[tmp_path / "shared"], allow_unpinned=True)


def test_missing_file_with_fallback_value_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mixmesh.runtime.resources")
    missing = tmp_path / "absent.pkl"
    assert load_artifact(missing, fallback={"default": True}, allowed_dirs=[tmp_path], allow_unpinned=True) == {"default": True}
    assert load_artifact(missing, fallback={"default": True}, allowed_dirs=[tmp_path], allow_unpinned=True) == {"default": True}
    warnings = [r for r in caplog.records if r.name == "mixmesh.runtime.resources"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert str(missing) in warnings[0].getMessage() and "missing" in warnings[0].getMessage()
    assert artifact_events() == _events(missing=2, fallback=2)


def test_missing_file_with_fallback_callable_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mixmesh.runtime.resources")
    missing = tmp_path / "absent.pkl"
    built = []

    def build() -> str:
        built.append(1)
        return "built default"

    assert load_artifact(missing, fallback=build, allowed_dirs=[tmp_path], allow_unpinned=True) == "built default"
    assert load_artifact(missing, fallback=build, allowed_dirs=[tmp_path], allow_unpinned=True) == "built default"
    assert len(built) == 2  # built per call; cache it with @resource
    assert len([r for r in caplog.records if r.name == "mixmesh.runtime.resources"]) == 1


def test_each_reason_warns_once_per_path(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mixmesh.runtime.resources")
    path = _dump(tmp_path / "model.pkl", "model")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for _ in range(3):
        load_artifact(path, sha256="0" * 64, fallback="x", allowed_dirs=[tmp_path])
        load_artifact(path, fallback="x", allowed_dirs=[elsewhere], allow_unpinned=True)
    messages = [r.getMessage() for r in caplog.records if r.name == "mixmesh.runtime.resources"]
    assert len(messages) == 2
    assert "hash check" in messages[0] and "outside" in messages[1]


def test_missing_file_without_fallback_raises(tmp_path: Path) -> None:
    missing = tmp_path / "absent.pkl"
    with pytest.raises(ArtifactError, match="missing") as raised:
        load_artifact(missing, allowed_dirs=[tmp_path], allow_unpinned=True)
    assert str(missing) in str(raised.value) and raised.value.path == str(missing)
    assert raised.value.reason == "missing"
    with pytest.raises(ArtifactError) as directory:
        load_artifact(tmp_path, allowed_dirs=[tmp_path], allow_unpinned=True)  # a directory is not an artifact
    assert str(directory.value) == f"artifact {tmp_path} is a directory, not a file"
    assert directory.value.reason == "missing"  # counted, and given its fallback, as a missing file is
    assert load_artifact(tmp_path, allowed_dirs=[tmp_path], allow_unpinned=True, fallback="rules") == "rules"
    assert artifact_events() == _events(missing=3, fallback=1)


@pytest.mark.parametrize("content", [b"", b"not a pickle at all", pickle.dumps("cut short")[:-3]],
                         ids=["empty", "not a pickle", "truncated"])
@pytest.mark.parametrize("name", ["model.pkl", "model.pickle"], ids=["joblib", "pickle"])
def test_a_file_that_does_not_unpickle_fails_naming_it(tmp_path: Path, content: bytes, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    loader = "joblib" if name.endswith(".pkl") and _has_joblib() else "pickle"
    # Pinned as it is, so it passes its hash: the pin itself points at a broken file, which is
    # an error to fix, not a fallback's case (as a malformed pin is).
    for pinned in ({"sha256": file_sha256(path)}, {"allow_unpinned": True}):
        with pytest.raises(ArtifactError) as raised:
            load_artifact(path, allowed_dirs=[tmp_path], fallback="rules", **pinned)
        message = str(raised.value)
        assert message.startswith(f"artifact {path} could not be unpickled with {loader} (") and message.endswith(")")
        assert raised.value.reason == "unreadable" and raised.value.path == str(path)
        if not content:
            assert f"with {loader} (EOFError" in message
    assert artifact_events() == _events()


def _has_joblib() -> bool:
    import importlib.util

    return importlib.util.find_spec("joblib") is not None


def test_bad_arguments_are_errors_not_fallbacks(tmp_path: Path) -> None:
    path = _dump(tmp_path / "model.pkl", "model")
    with pytest.raises(ArtifactError, match=r": sha256 must be 64 hexadecimal digits \(see file_sha256\), not 'abc'$"):
        load_artifact(path, sha256="abc", fallback="x", allowed_dirs=[tmp_path])
    with pytest.raises(ArtifactError, match=r": loader must be one of auto, pickle, joblib, not 'yaml'$"):
        load_artifact(path, loader="yaml", allowed_dirs=[tmp_path], allow_unpinned=True)
    with pytest.raises(ArtifactError, match=r"^load_artifact: path must be a file path \(str or pathlib.Path\), not NoneType None$"):
        load_artifact(None, fallback="x", allowed_dirs=[tmp_path])  # type: ignore[arg-type]
    assert artifact_events() == _events()


def test_events_count_each_outcome(tmp_path: Path) -> None:
    path = _dump(tmp_path / "model.pkl", "model")
    outside = tmp_path / "outside"
    outside.mkdir()
    load_artifact(path, allowed_dirs=[tmp_path], allow_unpinned=True)
    load_artifact(path, sha256=file_sha256(path), allowed_dirs=[tmp_path])
    load_artifact(path, sha256="f" * 64, fallback=1, allowed_dirs=[tmp_path])
    load_artifact(path, fallback=1, allowed_dirs=[outside], allow_unpinned=True)
    load_artifact(tmp_path / "absent.pkl", fallback=1, allowed_dirs=[tmp_path], allow_unpinned=True)
    with pytest.raises(ArtifactError):
        load_artifact(tmp_path / "absent.pkl", allowed_dirs=[tmp_path], allow_unpinned=True)
    assert artifact_events() == _events(loaded=2, refused_hash=1, refused_path=1, missing=2, fallback=3)

    returned = artifact_events()
    returned["loaded"] = 99  # a copy: callers cannot change the counts
    assert artifact_events()["loaded"] == 2
    reset_artifact_events()
    assert artifact_events() == _events()


def test_events_are_counted_across_threads(tmp_path: Path) -> None:
    path = _dump(tmp_path / "model.pkl", "model")

    def load_many() -> None:
        for _ in range(50):
            load_artifact(path, allowed_dirs=[tmp_path], allow_unpinned=True)

    threads = [threading.Thread(target=load_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert artifact_events()["loaded"] == 400


def test_resource_and_artifact_together(tmp_path: Path) -> None:
    path = _dump(tmp_path / "model.pkl", {"version": 1})
    clock = Clock()

    @resource(watch=path, clock=clock)
    def model() -> t.Any:
        return load_artifact(path, allowed_dirs=[tmp_path], allow_unpinned=True)

    assert model() == {"version": 1} and model() is model()
    _dump(path, {"version": 2, "more": "bytes"})
    clock.now += 1
    assert model() == {"version": 2, "more": "bytes"}
    assert artifact_events()["loaded"] == 2


# ------------------------------------------------------------------------------ pins files


def test_pins_file_pins_each_artifact_relative_to_it(tmp_path: Path) -> None:
    first = _dump(tmp_path / "models" / "risk.joblib", {"kind": "risk"})
    second = _dump(tmp_path / "models" / "nested" / "ltv.pkl", {"kind": "ltv"})
    pins = tmp_path / "models" / "SHA256SUMS"
    write_pins(pins, [first, second])
    # The format sha256sum -c reads, from the pins file's directory.
    assert pins.read_text().splitlines() == [
        f"{file_sha256(second)}  nested/ltv.pkl",
        f"{file_sha256(first)}  risk.joblib",
    ]
    assert load_artifact(first, pins=pins, allowed_dirs=[tmp_path]) == {"kind": "risk"}
    assert load_artifact(second, pins=pins, allowed_dirs=[tmp_path]) == {"kind": "ltv"}


def test_pins_file_refuses_a_changed_or_unlisted_artifact(tmp_path: Path) -> None:
    pinned = _dump(tmp_path / "risk.pkl", "trained")
    pins = tmp_path / "SHA256SUMS"
    write_pins(pins, [pinned])
    _dump(pinned, "tampered")
    assert load_artifact(pinned, pins=pins, fallback="rules", allowed_dirs=[tmp_path]) == "rules"
    unlisted = _dump(tmp_path / "dropped_in.pkl", "unknown")
    with pytest.raises(ArtifactError, match="dropped_in.pkl has no pinned hash in .*SHA256SUMS; it was not unpickled$") as refused:
        load_artifact(unlisted, pins=pins, allowed_dirs=[tmp_path])
    assert refused.value.reason == "unpinned"
    # No pins file at all pins nothing: everything is refused.
    assert load_artifact(pinned, pins=tmp_path / "absent", fallback="rules", allowed_dirs=[tmp_path]) == "rules"
    assert artifact_events() == _events(refused_hash=1, unpinned=2, fallback=2)


def test_pins_file_errors_are_named(tmp_path: Path) -> None:
    path = _dump(tmp_path / "m.pkl", 1)
    pins = tmp_path / "SHA256SUMS"
    pins.write_text("# trained models\n\nnot-a-pin-line\n")
    with pytest.raises(ArtifactError, match=r"SHA256SUMS, line 3: expected '<sha256>  <file name>', found 'not-a-pin-line'$"):
        load_artifact(path, pins=pins, allowed_dirs=[tmp_path])
    with pytest.raises(ArtifactError, match="sha256= or pins=, not both"):
        load_artifact(path, pins=pins, sha256="0" * 64, allowed_dirs=[tmp_path])
    pins.write_text("deadbeef  m.pkl\n")  # a digest cut short
    with pytest.raises(ArtifactError) as short:
        load_artifact(path, pins=pins, fallback="rules", allowed_dirs=[tmp_path])
    assert str(short.value) == f"artifact {path}: sha256 must be 64 hexadecimal digits (see file_sha256), not 'deadbeef'"


def test_copies_of_one_builder_share_their_value() -> None:
    # SQLMesh executes a model's functions from stored source: each execution makes a copy.
    source = "import itertools\ncounter = itertools.count()\ndef lookup_table():\n    return next(counter)\n"
    copies = []
    for _ in range(2):
        namespace: t.Dict[str, t.Any] = {"__name__": "project.tables"}
        exec(source, namespace)  # noqa: S102 - a fixed string, as SQLMesh runs stored code
        copies.append(resource(namespace["lookup_table"]))
    first, second = copies
    first.reset()
    assert first() == second() == 0 and first.builds == second.builds == 1


def test_the_same_code_reading_other_values_does_not_share() -> None:
    source = "def table():\n    return SOURCE\n"
    built = []
    for value in ("project A", "project B"):
        namespace: t.Dict[str, t.Any] = {"__name__": "project.tables", "SOURCE": value}
        exec(source, namespace)  # noqa: S102 - a fixed string
        built.append(resource(namespace["table"])())
    assert built == ["project A", "project B"]


def test_closures_do_not_share() -> None:
    def make(value: int) -> Resource:
        return resource(lambda: value)

    assert make(1)() == 1 and make(2)() == 2


@pytest.fixture
def in_project() -> t.Iterator[t.Callable[[t.Optional[Path]], None]]:
    """Run as SQLMesh runs a project (its root set), the root as it was restored afterwards."""
    from mixmesh.runtime import resources

    before = resources.project_root()
    yield resources.set_project_root
    resources.set_project_root(before)


def test_relative_watched_paths_resolve_against_the_project_run_not_the_current_directory(
    tmp_path: Path, in_project: t.Callable[[t.Optional[Path]], None]
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    in_project(first)
    watching = resource(watch=("artifacts/model.txt", tmp_path / "shared.txt"))(lambda: "model")
    assert watching.watched == (first / "artifacts/model.txt", tmp_path / "shared.txt")
    # SQLMesh may run one copy of a project's code for another project with the same code.
    in_project(second)
    assert watching.watched == (second / "artifacts/model.txt", tmp_path / "shared.txt")


def test_one_copy_of_a_resource_run_for_two_projects_builds_a_value_for_each(
    tmp_path: Path, in_project: t.Callable[[t.Optional[Path]], None]
) -> None:
    clock = Clock()
    builds: t.List[Path] = []

    def build() -> str:
        from mixmesh.runtime import resources

        builds.append(resources.project_root())
        return f"model of {resources.project_root().name}"

    model = Resource(build, (Path("model.txt"),), clock=clock)
    in_project(tmp_path / "first")
    assert model() == model() == "model of first"
    in_project(tmp_path / "second")
    assert model() == "model of second"  # never the first project's model
    in_project(tmp_path / "first")
    assert model() == "model of first" and builds == [tmp_path / "first", tmp_path / "second"]

"""The example project built once on DuckDB for a whole test run: the raw rows generated, the
ML models trained and pinned, every model planned. The Spark parity tests (local mode, a
standalone cluster, Spark Connect) compare their builds with it and copy its artifacts, so that
each engine scores with the same model bytes.

With pytest-xdist, the workers share it: the first to ask builds it, under a lock in the run's
shared temporary folder, and the others wait for it. Its users only read it (its artifacts and,
through read-only connections, its DuckDB file).
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import typing as t
from pathlib import Path

from tests.parity import builds

BUILT = ".built"  # written last: a folder without it is a build that did not finish


def shared_folder(request: t.Any, tmp_path_factory: t.Any) -> Path:
    """The run's folder shared by xdist's workers (their temporary folders' parent), named by
    the run's id; the session's own temporary folder without xdist."""
    root = tmp_path_factory.getbasetemp()
    worker_input = getattr(request.config, "workerinput", None)
    if worker_input is None:
        return root
    return root.parent / f"shared-{worker_input['testrunuid']}"


def example_on_duckdb(folder: Path) -> Path:
    """The example built on DuckDB in ``folder`` (once: later calls return the same build)."""
    folder.mkdir(parents=True, exist_ok=True)
    project = folder / "example-on-duckdb"
    with _locked(folder / "example-on-duckdb.lock"):
        if not (project / BUILT).exists():
            shutil.rmtree(project, ignore_errors=True)
            builds.copy_example(project)
            builds.generate_and_train(project)
            builds.build_on_duckdb(project)
            (project / BUILT).touch()
    return project


def copy_artifacts(reference: Path, project: Path) -> None:
    """The reference build's trained models and pins into ``project``: the same bytes, the same pins."""
    shutil.copytree(reference / "artifacts", project / "artifacts")


@contextlib.contextmanager
def _locked(path: Path) -> t.Iterator[None]:
    with open(path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

"""Issue 16, defect 6: kill -9 leaves nothing behind.

A ``sqlmesh plan`` killed while ``@udf(parallel="processes")`` workers are busy leaves no
worker alive (they die with their parent) and, once the next run has started, no
shared-memory folder of the dead run; the rerun builds the same table as a clean build.
A streaming Python model killed mid-stream leaves a staging table that the next
``sqlmesh`` command loading mixmesh removes, even one that lands no Python model.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

import pytest

from tests.projects import Project
from tests.waiting import wait_for

ROWS = 4_000_000  # about 30 batches for the workers, each a quarter of a second long

FUNCTIONS = '''
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from mixmesh import udf

MARKS = str(Path(__file__).resolve().parent.parent / "marks")  # stored as text


@udf(vectorized=True, parallel="processes")
def slow_plus_one(x: pa.Array) -> pa.Array:
    Path(MARKS, str(os.getpid())).touch()  # which processes ran a batch
    time.sleep(0.25)  # busy long enough to be killed at work
    return pc.add(x, 1.0)
'''

SCORED = f"""
MODEL (name analytics.scored, kind FULL);
SELECT x, @slow_plus_one(x) AS y FROM (SELECT range::DOUBLE AS x FROM range({ROWS}))
"""


def sqlmesh(project: Project, *args: str) -> subprocess.Popen:
    command = [str(Path(sys.executable).with_name("sqlmesh")), *args]
    return subprocess.Popen(command, cwd=project.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def end_survivors(pids: t.Iterable[int]) -> None:
    """When a test fails, its orphaned workers must not outlive it."""
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def scratch_folders() -> t.Set[Path]:
    return {
        folder for base in {Path("/dev/shm"), Path(tempfile.gettempdir())} if base.is_dir()
        for folder in base.glob("mixmesh-*")
    }


def owner_alive(folder: Path) -> bool:
    """Whether the process named in a scratch folder's name (mixmesh-workers-<pid>-...) still runs."""
    owner = re.match(r"mixmesh-workers-(\d+)-", folder.name)
    return owner is not None and alive(int(owner[1]))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads processes from /proc")
def test_sigkill_with_busy_worker_processes_leaves_no_worker_and_no_scratch_folder(project: Project) -> None:
    project.write("macros/functions.py", FUNCTIONS)
    project.write("models/scored.sql", SCORED)
    marks = project.root / "marks"
    marks.mkdir()
    before = scratch_folders()

    killed = sqlmesh(project, "plan", "--auto-apply", "--no-prompts")
    workers = lambda: {int(mark.name) for mark in marks.iterdir()} - {killed.pid}  # noqa: E731
    assert wait_for(lambda: len(workers()) >= min(2, os.cpu_count() or 1), 120, killed), "no worker started"
    left_by_kill = scratch_folders() - before
    assert left_by_kill, "the workers' scratch folder was not seen"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    busy = workers()

    # Workers die with their parent: none runs on (holding memory and the database file).
    try:
        assert wait_for(lambda: not any(alive(pid) for pid in busy), 10), [pid for pid in busy if alive(pid)]
    finally:
        end_survivors(busy)

    rerun = subprocess.run(
        [str(Path(sys.executable).with_name("sqlmesh")), "plan", "--auto-apply", "--no-prompts"],
        cwd=project.root, capture_output=True, text=True,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    # The rerun cleared the dead run's shared-memory folder (folders of live runs may exist).
    assert [folder for folder in left_by_kill if folder.exists() and not owner_alive(folder)] == []
    # ... and built what a clean build gives.
    assert project.query("SELECT count(*), sum(y), count(*) FILTER (WHERE y <> x + 1) FROM analytics.scored") == [
        (ROWS, float(sum(range(ROWS)) + ROWS), 0)
    ]


# Where prctl is absent (or did nothing), the watchdog thread of each worker ends it.
KILLED_PARENT = """
import sys, time
from mixmesh.runtime import workers

if sys.argv[1] == "watchdog-only":
    workers._ask_kernel_for_death_signal = lambda: False
pool = workers.ready([], wait=True)
pids = {pool.executor.submit(__import__("os").getpid).result() for _ in range(20)}
print(" ".join(map(str, pids)), flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads processes from /proc")
@pytest.mark.parametrize("how", ["prctl-and-watchdog", "watchdog-only"])
def test_workers_end_when_their_parent_is_killed(how: str) -> None:
    parent = subprocess.Popen([sys.executable, "-c", KILLED_PARENT, how], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pids = {int(pid) for pid in parent.stdout.readline().split()}
    assert pids and parent.pid not in pids and all(alive(pid) for pid in pids)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    try:
        assert wait_for(lambda: not any(alive(pid) for pid in pids), 5), [pid for pid in pids if alive(pid)]
    finally:
        end_survivors(pids)
    from mixmesh.runtime import workers

    removed = [Path(path).name for path in workers.remove_dead_scratch()]
    assert [name for name in removed if name.startswith(f"mixmesh-workers-{parent.pid}-")] != []


def test_scratch_folders_of_dead_processes_are_removed_and_others_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mixmesh.runtime import workers

    monkeypatch.setattr(workers, "_scratch_base", lambda: str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    dead = tmp_path / f"mixmesh-workers-{ended.pid}-abc"
    live = tmp_path / f"mixmesh-workers-{os.getppid()}-abc"
    unknown = tmp_path / "mixmesh-abc"  # named before folders carried their owner
    other = tmp_path / f"mixmesh-{ended.pid}-abc"  # not a name mixmesh gives: not touched
    for folder in (dead, live, unknown, other):
        (folder / "batch").mkdir(parents=True)
    monkeypatch.setattr(workers, "_process_scratch_of", {})  # as in a process that has no workers yet
    directory = Path(workers._process_scratch())  # the first pool of a process removes the dead one's
    assert not dead.exists()
    assert directory.name.startswith(f"mixmesh-workers-{os.getpid()}-")
    assert workers.remove_dead_scratch() == [] and directory.is_dir()  # its own is in use
    workers._remove_scratch(str(directory))  # as when the process exits
    assert sorted(folder.name for folder in tmp_path.iterdir()) == sorted([live.name, unknown.name, other.name])


EVENTS = """
MODEL (name raw.events, kind FULL);
SELECT i, (i % 7)::DOUBLE AS amount FROM range(2000) AS t(i)
"""

STREAMING = '''
import time
from pathlib import Path

from mixmesh import python_model

PROGRESS = str(Path(__file__).resolve().parent.parent / "progress.log")  # stored as text
SLOW = str(Path(__file__).resolve().parent.parent / "slow")


@python_model(name="analytics.copy", columns={"i": "BIGINT", "amount": "DOUBLE"})
def copy(context, **kwargs):
    for batch in context.sql("SELECT i, amount FROM raw.events ORDER BY i").batches(rows=VERSION):
        yield batch
        with open(PROGRESS, "a") as progress:  # written once the batch is staged
            progress.write("batch\\n")
        if Path(SLOW).exists():
            time.sleep(0.2)  # slow enough to be killed mid-stream
'''


def staging_tables(project: Project) -> t.List[t.Tuple[str]]:
    return project.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'mixmesh_staging'")


@pytest.mark.slow
def test_a_killed_streaming_model_s_staging_table_is_dropped_by_the_next_command(project: Project) -> None:
    project.write("models/events.sql", EVENTS)
    project.write("models/copy.py", STREAMING.replace("VERSION", "500"))
    project.cli("plan", "--auto-apply", "--no-prompts")
    progress = project.root / "progress.log"
    progress.unlink()

    # A new version of the model, killed while it streams into its staging table.
    project.write("models/copy.py", STREAMING.replace("VERSION", "100"))
    (project.root / "slow").touch()
    killed = sqlmesh(project, "plan", "--auto-apply", "--no-prompts")
    assert wait_for(lambda: progress.exists() and len(progress.read_text().split()) >= 2, 120, killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    streamed = progress.read_text()
    assert len(staging_tables(project)) == 1  # what the kill left

    # The change is given up: the next plan has nothing to build and lands no Python model,
    # yet the dead run's staging table goes. (`sqlmesh run` with nothing due never loads the
    # project, so mixmesh, which cannot act there, tidies at the next command that loads it.)
    project.write("models/copy.py", STREAMING.replace("VERSION", "500"))
    project.cli("plan", "--auto-apply", "--no-prompts")
    assert progress.read_text() == streamed  # no Python model ran
    assert staging_tables(project) == []
    assert project.query("SELECT count(*), sum(amount) FROM analytics.copy") == project.query(
        "SELECT count(*), sum(amount) FROM raw.events"
    )

"""A Spark standalone cluster for the tests: a master and two workers, each its own JVM,
started from the installed pyspark (``bin/spark-class``), bound to 127.0.0.1.

A cluster is what users move a project to when it outgrows ``local[2]``: the executors are
separate processes with working directories of their own and no copy of the project. So
the workers run from a folder outside any project (their ``SPARK_WORKER_DIR``), with only
what a cluster's machines would have installed: this interpreter (``PYSPARK_PYTHON``) with
mixmesh and its dependencies. Every process runs in a process group of its own, which
``Cluster.stop`` ends whatever state the tests left it in.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import typing as t
import urllib.request
from pathlib import Path

import mixmesh
from tests.spark import session

WORKERS = 2
WORKER_CORES = 1
WORKER_MEMORY = "1g"
READY_WITHIN_SECONDS = 90


class Cluster(t.NamedTuple):
    """A running standalone cluster: its master URL, folders and processes."""

    master_url: str  # spark://127.0.0.1:PORT, the value of spark.master
    folder: Path  # logs, and each worker's working directory (work/worker-N)
    processes: t.Tuple[subprocess.Popen, ...]
    start_seconds: float  # from launching the master to every worker registered

    def worker_dirs(self) -> t.List[Path]:
        return [self.folder / "work" / f"worker-{number}" for number in range(WORKERS)]

    def stop(self) -> None:
        """End every JVM of the cluster (and their children: executors, Python workers)."""
        for process in reversed(self.processes):
            _end_group(process)


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment(folder: Path) -> t.Dict[str, str]:
    """What each JVM runs with: loopback only, this Python for executors' workers, and the
    mixmesh under test importable there (installed, on a real cluster)."""
    package_parent = str(Path(mixmesh.__file__).resolve().parents[1])
    return {
        **{key: value for key, value in os.environ.items() if not key.startswith(("SPARK_", "PYSPARK_"))},
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": "127.0.0.1",  # also the address the web UIs bind to
        "SPARK_LOG_DIR": str(folder / "logs"),
        "SPARK_NO_DAEMONIZE": "1",
        "SPARK_DAEMON_JAVA_OPTS": session.JVM_OPTIONS,  # the master's and workers' JVMs
        "PYSPARK_PYTHON": sys.executable,
        "PYTHONPATH": package_parent,  # mixmesh's code as the driver has it, not the project
    }


def start(folder: Path) -> Cluster:
    """Start a master and ``WORKERS`` workers; return once every worker has registered."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "logs").mkdir(exist_ok=True)
    started = time.monotonic()
    port, ui_port = free_port(), free_port()
    master_url = f"spark://127.0.0.1:{port}"
    env = environment(folder)
    processes = [_launch("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                    "--port", str(port), "--webui-port", str(ui_port)], folder, folder, env)]
    cluster = Cluster(master_url, folder, (), 0.0)
    try:
        for number, work_dir in enumerate(cluster.worker_dirs()):
            work_dir.mkdir(parents=True, exist_ok=True)
            arguments = ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--port", str(free_port()),
                         "--webui-port", str(free_port()), "--cores", str(WORKER_CORES), "--memory", WORKER_MEMORY,
                         "--work-dir", str(work_dir), master_url]
            processes.append(_launch(f"worker-{number}", arguments, work_dir, folder, env))
        _wait_for_workers(ui_port, processes, folder)
    except BaseException:
        for process in reversed(processes):
            _end_group(process)
        raise
    return Cluster(master_url, folder, tuple(processes), time.monotonic() - started)


def _launch(name: str, arguments: t.List[str], cwd: Path, folder: Path, env: t.Mapping[str, str]) -> subprocess.Popen:
    log = open(folder / "logs" / f"{name}.log", "wb")  # noqa: SIM115 - kept open by the process
    command = [str(spark_home() / "bin" / "spark-class"), *arguments]
    with log:
        # A group of its own: stopping it ends the JVM and whatever it started (executors).
        return subprocess.Popen(command, cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _wait_for_workers(ui_port: int, processes: t.List[subprocess.Popen], folder: Path) -> None:
    """Poll the master's JSON status (its web UI, on 127.0.0.1) until every worker is ALIVE."""
    deadline = time.monotonic() + READY_WITHIN_SECONDS
    while time.monotonic() < deadline:
        ended = [process for process in processes if process.poll() is not None]
        if ended:
            raise RuntimeError(f"a Spark cluster process ended at start-up; see the logs in {folder / 'logs'}")
        if _alive_workers(ui_port) >= WORKERS:
            return
        time.sleep(0.25)
    raise RuntimeError(f"the Spark cluster's workers did not register in {READY_WITHIN_SECONDS} s; see {folder / 'logs'}")


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as response:
            return int(json.load(response).get("aliveworkers", 0))
    except (OSError, ValueError):
        return 0  # not listening yet


def _end_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    # Executors are children of a worker, in its group; a SIGTERM'd worker may leave one behind.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)

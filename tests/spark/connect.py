"""One Spark Connect server for a whole test run, on 127.0.0.1 and a free port.

The server is Spark's own (``spark-submit --class ...SparkConnectServer``), local mode, its
warehouse in a temporary folder, its Python workers this interpreter with this ``PYTHONPATH``
(the executors import mixmesh as the tests do). With pytest-xdist every worker uses the same
server: the first to ask starts it, under a lock in the run's shared temporary folder; each
worker adds its pid to the state file and removes it when its session ends. The server runs
under a keeper process (``python connect.py keep ...``) that stops it once no listed test
process is alive: when the last one has finished, or was killed.

A process that has a classic SparkSession cannot open a Connect one (pyspark refuses, and
after Connect, it would open Connect sessions only), so the clients run in fresh processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import pytest

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
STARTUP_SECONDS = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_command(port: int, folder: Path) -> t.List[str]:
    import pyspark

    from tests.spark.session import JVM_OPTIONS

    home = Path(pyspark.__file__).parent
    settings = {
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.ui.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.sql.warehouse.dir": str(folder / "warehouse"),
        "spark.driver.extraJavaOptions": f"{JVM_OPTIONS} -Dderby.system.home={folder}",
    }
    command = [str(home / "bin" / "spark-submit"), "--class", SERVER_CLASS, "--master", "local[2]"]
    for key, value in settings.items():
        command += ["--conf", f"{key}={value}"]
    return command


def server_environment() -> t.Dict[str, str]:
    import pyspark

    return {
        **os.environ,
        "SPARK_HOME": str(Path(pyspark.__file__).parent),
        "PYSPARK_PYTHON": sys.executable,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and Path(p).is_dir()),
    }


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


@contextlib.contextmanager
def locked(folder: Path) -> t.Iterator[None]:
    with open(folder / "connect.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(state: Path) -> t.Dict[str, t.Any]:
    return json.loads(state.read_text()) if state.exists() else {}


def acquire(folder: Path) -> str:
    """The run's server (started if needed) as a ``sc://`` URL; this process is listed as a user."""
    from tests.spark.session import require_java

    require_java()
    folder.mkdir(parents=True, exist_ok=True)
    state_file = folder / "connect.json"
    with locked(folder):
        state = _read(state_file)
        if not state or not alive(state["keeper"]):
            state = _start(folder)
        # One entry per acquire: a process holding it twice releases it twice.
        state["users"] = [pid for pid in state["users"] if alive(pid)] + [os.getpid()]
        state_file.write_text(json.dumps(state))
    return f"sc://127.0.0.1:{state['port']}"


def release(folder: Path) -> None:
    """This process no longer uses the server; the last user stops it (and waits for that)."""
    state_file = folder / "connect.json"
    with locked(folder):
        state = _read(state_file)
        if not state:
            return
        users = [pid for pid in state["users"] if alive(pid)]
        if os.getpid() in users:
            users.remove(os.getpid())
        state["users"] = users
        state_file.write_text(json.dumps(state))
        if state["users"]:
            return
        state_file.unlink()
    _stop(state["keeper"])


def _start(folder: Path) -> t.Dict[str, t.Any]:
    port = free_port()
    log = open(folder / "connect-server.log", "ab")
    keeper = subprocess.Popen(
        [sys.executable, __file__, "keep", str(folder / "connect.json"), str(os.getpid()),
         *server_command(port, folder)],
        cwd=folder, env=server_environment(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + STARTUP_SECONDS
    while not listening(port):
        if keeper.poll() is not None or time.monotonic() > deadline:
            _stop(keeper.pid)
            tail = (folder / "connect-server.log").read_text(errors="replace")[-4000:]
            raise RuntimeError(f"the Spark Connect server did not start on port {port}:\n{tail}")
        time.sleep(0.5)
    return {"port": port, "keeper": keeper.pid, "users": []}


def _stop(keeper: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(keeper, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while alive(keeper) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(keeper, os.WNOHANG)[0]:
                return
        time.sleep(0.2)


def server_folder(request: t.Any, tmp_path_factory: t.Any) -> Path:
    """The run's folder for the server, shared by xdist's workers (their temporary folders'
    parent), named by the run's id."""
    root = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):
        root = root.parent
    uid = getattr(request.config, "workerinput", {}).get("testrunuid", "local")
    return root / f"spark-connect-{uid}"


@pytest.fixture(scope="session")
def connect_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[str]:
    """The ``sc://`` URL of the run's Spark Connect server (import this fixture where it is used)."""
    folder = server_folder(request, tmp_path_factory)
    url = acquire(folder)
    yield url
    release(folder)


# --------------------------------------------------------------------------- the keeper process


def keep(state_file: Path, starter: int, command: t.List[str]) -> None:
    """Run the server; stop it (its whole process group) on SIGTERM or once no user is alive
    (until the state file lists users, the process that started it is the one)."""
    server = subprocess.Popen(command, start_new_session=True)
    stopping = False

    def stop(*_: t.Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    while not stopping and server.poll() is None:
        users = _read(state_file).get("users", []) if state_file.exists() else [starter]
        if not any(alive(pid) for pid in users):
            break
        time.sleep(1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


if __name__ == "__main__" and sys.argv[1:2] == ["keep"]:
    keep(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])

"""The `sqlmesh` and `mixmesh` commands in a fresh process, without paying for SQLMesh's
imports every time.

A `sqlmesh` process spends over a second importing SQLMesh and pandas before it reads the
project, and the tests run the commands well over a hundred times. So each test process starts
one server: a new interpreter that imports what ``sqlmesh.cli.main`` (the console script's
module) imports, and pandas, which every command imports; nothing of mixmesh or of a project.
For each command the server forks. The child takes the command's working directory,
environment, arguments and output files, then runs what the console script runs
(``from sqlmesh.cli.main import cli; sys.exit(cli())``, or ``mixmesh.cli``'s ``main``) and exits as any interpreter does:
threads joined, ``atexit`` handlers, exit code. mixmesh, the project's modules, its config and
its DuckDB file are all loaded by the child, as in a user's command.

A command whose environment differs from the server's in what an interpreter or SQLMesh reads
only when it starts (``PYTHONPATH`` and the other ``PYTHON*`` variables, ``SQLMESH_HOME``...)
is started with ``subprocess``, as are tests that signal or time a process, or that need an
interpreter started from nothing (import order).
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import threading
import typing as t
from pathlib import Path

# The console scripts: where each is installed, and what it calls.
PROGRAMS = {"sqlmesh": ("sqlmesh.cli.main", "cli"), "mixmesh": ("mixmesh.cli", "main")}

# The server's environment: the test process's, before any test changed it.
SERVER_ENVIRONMENT = dict(os.environ)
# Read when an interpreter starts or SQLMesh is imported, so never by a forked command.
READ_AT_START = ("PYTHON", "SQLMESH_HOME", "MAX_FORK_WORKERS", "SQLMESH__DISABLE_ANONYMIZED_ANALYTICS")

# Runs in the server: one JSON request a line on stdin, one exit code a line on stdout.
SERVER = """
import importlib, json, os, sys
sys.path[0] = os.path.dirname(sys.executable)  # a console script's first entry: its own folder
import sqlmesh.cli.main
# Every command imports pandas (SQLMesh's loader does), whatever the project. Not DuckDB or
# pyarrow: a child forked after they are imported aborts when it exits.
import pandas

# The CLI's own modules are imported again by each command: their option defaults read the
# working directory (``--paths``) when they are imported.
for name in [name for name in sys.modules if name == "sqlmesh.cli" or name.startswith("sqlmesh.cli.")]:
    del sys.modules[name]
del sqlmesh.cli

def run(request):
    for fd, path in ((0, os.devnull), (1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_RDONLY if fd == 0 else os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = [os.path.join(os.path.dirname(sys.executable), request["program"]), *request["args"]]
    module, function = request["entry"]
    entry = getattr(importlib.import_module(module), function)
    sys.exit(entry())  # as the console script; SystemExit ends this child as it ends a process

for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        run(request)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
"""


class Finished(t.NamedTuple):
    """What ``subprocess.run`` reports of a command (the fields the tests read)."""

    args: t.List[str]
    returncode: int
    stdout: str
    stderr: str


class _Server:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, env=SERVER_ENVIRONMENT,
        )
        self.lock = threading.Lock()

    def run(self, request: t.Dict[str, t.Any]) -> int:
        with self.lock:
            assert self.process.stdin is not None and self.process.stdout is not None
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            reply = self.process.stdout.readline()
        if not reply:
            raise RuntimeError(f"the sqlmesh command server ended (exit code {self.process.poll()})")
        return int(reply)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


_server: t.Optional[_Server] = None


def run_sqlmesh(args: t.Sequence[str], *, cwd: Path, env: t.Mapping[str, str]) -> Finished:
    """``sqlmesh ARGS`` run in ``cwd`` with exactly ``env``, in a fresh process."""
    return run("sqlmesh", args, cwd=cwd, env=env)


def run_mixmesh(args: t.Sequence[str], *, cwd: Path, env: t.Mapping[str, str]) -> Finished:
    """``mixmesh ARGS`` run in ``cwd`` with exactly ``env``, in a fresh process."""
    return run("mixmesh", args, cwd=cwd, env=env)


def run(program: str, args: t.Sequence[str], *, cwd: Path, env: t.Mapping[str, str]) -> Finished:
    if _read_at_start(env) != _read_at_start(SERVER_ENVIRONMENT):
        done = subprocess.run([str(Path(sys.executable).with_name(program)), *args], cwd=cwd, env=dict(env),
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        return Finished([program, *args], done.returncode, done.stdout, done.stderr)
    global _server
    if _server is None or _server.process.poll() is not None:
        _server = _Server()
        atexit.register(_server.close)
    with tempfile.TemporaryDirectory(prefix="sqlmesh-command-") as folder:
        stdout, stderr = Path(folder) / "stdout", Path(folder) / "stderr"
        request = {"program": program, "entry": PROGRAMS[program], "args": list(args), "cwd": str(cwd),
                   "env": dict(env), "stdout": str(stdout), "stderr": str(stderr)}
        code = _server.run(request)
        return Finished([program, *args], code, stdout.read_text(errors="replace"), stderr.read_text(errors="replace"))


def _read_at_start(env: t.Mapping[str, str]) -> t.Dict[str, str]:
    return {name: value for name, value in env.items() if name.startswith(READ_AT_START)}

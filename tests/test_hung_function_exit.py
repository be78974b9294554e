"""A hung function with timeout_s does not keep the process alive (issue 16, defect 5): the
row gets its on_error value, the statement ends, and the process exits at once, where it
used to wait for the hung call (54 s after its work, or never)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import threading, time
    import duckdb
    from mixmesh import udf
    from mixmesh.engines.duckdb import register

    forever = threading.Event()

    @udf(timeout_s=0.2, on_error="null")
    def hangs(x: float) -> float:
        if x == 2.0:
            forever.wait()  # a call that never returns
        return x * 2

    connection = duckdb.connect()
    connection.execute("SET enable_progress_bar = false")  # a slow machine would print it to stdout
    register(connection, hangs)
    print(connection.sql("SELECT list(hangs(x::DOUBLE) ORDER BY x) FROM range(4) t(x)").fetchone()[0], flush=True)
    """
)


def test_the_process_exits_once_the_statement_has_ended_despite_a_hung_call() -> None:
    # The hung call never returns: a process that waited for it would never exit, and the
    # guard below fails the test instead of hanging the suite.
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0.0, 2.0, None, 6.0]"

"""What SQLMesh stores of a project's code reads back: a class (or function) whose body is
only its docstring, which SQLMesh's normalisation leaves empty, is stored with ``pass``."""

from __future__ import annotations

from tests.projects import Project


def test_a_docstring_only_exception_class_in_a_retry_is_stored_and_runs(project: Project) -> None:
    project.write("python/__init__.py", "")
    project.write("python/errors.py", '''
        class ServiceDown(ConnectionError):
            """The service is down for now: worth asking again."""


        def not_yet():
            """Nothing here yet."""
    ''')
    project.write("macros/functions.py", """
        from mixmesh import Retry, udf
        from python.errors import ServiceDown

        @udf(retry=Retry(attempts=2, backoff=[0], on=(ServiceDown,)), on_error=None)
        def checked(x: float) -> float:
            if x < 0:
                raise ServiceDown("down")
            return x
    """)
    project.write("models/checked.sql", """
        MODEL (name analytics.checked, kind FULL);
        SELECT x, @checked(x) AS y FROM (VALUES (1.0), (-1.0)) AS v(x)
    """)
    project.cli("plan", "--auto-apply", "--no-prompts")
    assert sorted(project.query("SELECT x, y FROM analytics.checked"), key=str) == sorted([(1.0, 1.0), (-1.0, None)], key=str)
    project.cli("run")  # the functions re-created from SQLMesh's state, in a fresh process

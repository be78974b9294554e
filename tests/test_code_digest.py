"""The code fingerprint provenance records depends on a function's code and the project helpers
it calls, never on mixmesh's own state: two copies of a project in two folders and processes,
and one process before and after running, agree."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from mixmesh.core.introspection import code_digest, project_functions

MODULE = '''
import mixmesh
from mixmesh import load_artifact


def helper(x):
    mixmesh.count("seen")
    return x * 2


def scored(x):
    if x < 0:
        return load_artifact("artifacts/missing.pkl", fallback=0)
    return helper(x) + 1
'''

DIGEST = '''
import sys
sys.path.insert(0, ".")
from digest_subject import scored
from mixmesh.core.introspection import code_digest
print(code_digest(scored, with_mixmesh=False))
'''


def digest_in(folder: Path) -> str:
    folder.mkdir()
    (folder / "digest_subject.py").write_text(textwrap.dedent(MODULE))
    done = subprocess.run([sys.executable, "-c", DIGEST], cwd=folder, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_two_copies_of_a_project_in_two_folders_have_one_digest(tmp_path: Path) -> None:
    assert digest_in(tmp_path / "one") == digest_in(tmp_path / "two")


def test_mixmesh_s_own_functions_are_not_walked_as_project_code(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "digest_subject.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    import digest_subject as scoring

    walked = {f.__module__ for f in project_functions(scoring.scored, with_mixmesh=False)}
    assert walked == {"digest_subject"}
    before = code_digest(scoring.scored, with_mixmesh=False)
    scoring.scored(-1)  # mixmesh's module state changes: a fallback counted, a warning said
    assert code_digest(scoring.scored, with_mixmesh=False) == before

"""The build: the package as pyproject.toml declares it, with the example project inside.

`mixmesh demo DIR` copies the seed's example project out of the installed package. The
project stays at examples/customer_analytics in the repository (its tests run there), and
is copied into the package when the package is built, leaving out what running it leaves
behind (mixmesh/cli/demo_project.py lists that).
"""

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _demo_project():
    # Loaded by path: mixmesh is not installed while it is being built.
    path = ROOT / "src" / "mixmesh" / "cli" / "demo_project.py"
    spec = importlib.util.spec_from_file_location("_mixmesh_demo_project", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildWithExample(build_py):
    """setuptools' build_py, then the example project copied into mixmesh/cli/examples/."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's examples/ directly
        project = _demo_project()
        target = Path(self.build_lib) / "mixmesh" / "cli" / "examples" / project.NAME
        shutil.rmtree(target, ignore_errors=True)  # no file left over from an earlier build
        project.copy_example(ROOT / "examples" / project.NAME, target)


setup(cmdclass={"build_py": BuildWithExample})

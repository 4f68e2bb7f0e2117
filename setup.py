"""Build hook: generate the P4Runtime bindings (p4/proto/generate.py) before packaging pyctl.

Everything else about the package is in pyproject.toml. The bindings are written into the source
tree (pyctl/p4rt/pb/, git-ignored) so that editable installs see them too. A built package also
carries the conformance vectors (tests/vectors, as pyctl/vectors) for `icpn vectors`; an editable
install reads them from the source tree.
"""

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


def _generate() -> None:
    path = Path(__file__).resolve().parent / "p4" / "proto" / "generate.py"
    spec = importlib.util.spec_from_file_location("icpn_proto_generate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate()


class BuildWithBindings(build_py):
    def run(self) -> None:
        _generate()
        super().run()
        vectors = Path(__file__).resolve().parent / "tests" / "vectors"
        if not self.editable_mode and vectors.is_dir():
            shutil.copytree(vectors, Path(self.build_lib) / "pyctl" / "vectors", dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithBindings})

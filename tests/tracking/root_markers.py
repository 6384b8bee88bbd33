"""The markers of tests/conftest.py for this folder's tests.

pytest imports every folder's conftest.py under the one module name `conftest`, so here (a folder with its own
conftest, collected next to others) `from conftest import requires_cuda` can find the wrong file.
"""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("pav_tests_root_conftest", Path(__file__).parents[1] / "conftest.py")
_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)

requires_cuda = _root.requires_cuda  # the project's one GPU marker, not a copy

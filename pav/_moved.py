"""Module paths from before the one-package-per-stage layout, kept importable: each names its new place.

`import pav.checkpoint` returns `pav.train.checkpoint` itself (with a FutureWarning naming it); `python -m` of an
old command stops with the new command instead of running code under the wrong package.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# old module (and everything below it) -> new module
MOVED = {
    "pav.cache": "pav.common.cache",
    "pav.checkpoint": "pav.train.checkpoint",
    "pav.config": "pav.common.cli",
    "pav.drive": "pav.render.drive",
    "pav.evaluation": "pav.evaluate.scoring",
    "pav.heldout": "pav.evaluate.heldout",
    "pav.losses": "pav.train.losses",
    "pav.report": "pav.evaluate.report",
    "pav.system": "pav.train.system",
    "pav.tracking": "pav.track",
    "pav.training": "pav.train.run",
    "pav.video": "pav.common.video",
}


def new_place(name: str) -> str | None:
    """The module an old dotted name now lives at; None for a name that did not move."""
    for old, new in MOVED.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old):]
    return None


class _MovedLoader(importlib.abc.Loader):
    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        warnings.warn(f"{self.old} moved to {self.new}; import it from there", FutureWarning, stacklevel=2)
        # the import system hands back whatever sys.modules holds after exec: the new module itself
        sys.modules[self.old] = importlib.import_module(self.new)

    def get_code(self, fullname: str):
        command = self.new.removesuffix(".__main__")
        raise ImportError(f"python -m {fullname.removesuffix('.__main__')} moved: run python -m {command}")


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path=None, target=None):
        new = new_place(name)
        if new is None:
            return None
        found = importlib.util.find_spec(new)
        if found is None:
            return None
        return importlib.util.spec_from_loader(name, _MovedLoader(name, new),
                                               is_package=found.submodule_search_locations is not None)


def install() -> None:
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())  # before the path finder, which would load a second copy

"""The package layout: one package per stage, old module paths that name their new place, README commands."""

import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pav._moved import _MovedLoader, new_place

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("old, new", [("pav.checkpoint", "pav.train.checkpoint"), ("pav.training", "pav.train.run"),
                                      ("pav.tracking.fit", "pav.track.fit"), ("pav.video", "pav.common.video")])
def test_an_old_module_path_is_the_new_module(monkeypatch, old, new):
    for name in list(sys.modules):
        if name == old or name.startswith(old + "."):
            monkeypatch.delitem(sys.modules, name)
    with pytest.warns(FutureWarning, match=re.escape(f"{old} moved to {new}")):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


def test_old_import_lines_keep_working():
    code = ("import warnings; warnings.simplefilter('ignore')\n"
            "from pav.checkpoint import load_avatar\nfrom pav.training import typed_config, run\n"
            "from pav.data.collection import Collection, CollectionWriter, read_flame_npz\n"
            "import pav.train.checkpoint, pav.train.config\n"
            "assert load_avatar is pav.train.checkpoint.load_avatar and typed_config is pav.train.config.typed_config\n"
            "assert callable(Collection.open)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("old, new", [("pav.heldout", "pav.evaluate.heldout"), ("pav.report", "pav.evaluate.report")])
def test_an_old_command_names_the_new_one(old, new):
    proc = subprocess.run([sys.executable, "-m", old], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and f"run python -m {new}" in proc.stderr, proc.stderr


def _commands(text: str) -> set[str]:
    return set(re.findall(r"python3? -m (pav(?:\.\w+)*)", text))


def test_every_documented_command_is_implemented_where_its_name_says():
    commands = set()
    for doc in ("README.md", "Makefile", "docs/ARCHITECTURE.md"):
        text = (REPO / doc).read_text().replace("$(PY)", "python")
        commands |= _commands(text.split("## Old module paths")[0])  # the table of moves names old commands
    assert {"pav.train", "pav.track", "pav.prepare", "pav.evaluate"} <= commands, commands
    for name in sorted(commands):
        spec = importlib.util.find_spec(name)
        assert spec is not None, f"{name}: documented but not importable"
        assert not isinstance(spec.loader, _MovedLoader), f"{name}: an old name, now {new_place(name)}"
        if spec.submodule_search_locations is not None:
            assert importlib.util.find_spec(name + ".__main__") is not None, f"{name}: a package without __main__"
        else:
            assert 'if __name__ == "__main__":' in Path(spec.origin).read_text(), f"{name}: no command in {spec.origin}"


def test_the_package_root_holds_only_packages():
    loose = sorted(p.name for p in (REPO / "pav").glob("*.py") if p.name not in ("__init__.py", "_moved.py"))
    assert not loose, f"modules loose at the root of pav/: {loose}; each belongs to a stage's package"


def test_no_module_is_longer_than_a_sitting():
    long = {str(p.relative_to(REPO)): n for p in (REPO / "pav").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"modules over 500 lines, split them by responsibility: {long}"

"""pav.ops.set_num_threads: one CPU thread count for torch and the extension's OpenMP loops."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from pav.ops import get_num_threads, set_num_threads
from pav.ops._ext import load


@pytest.fixture
def ext():
    module = load()
    before = torch.get_num_threads()
    yield module
    module.set_num_threads(0)
    torch.set_num_threads(before)


def test_set_num_threads_reaches_torch_and_the_extension(ext):
    set_num_threads(1)
    assert torch.get_num_threads() == 1 and ext.get_num_threads() == 1 and get_num_threads() == 1
    set_num_threads(3)
    assert torch.get_num_threads() == 3 and ext.get_num_threads() == 3


def test_the_extension_follows_torch_until_told_otherwise(ext):
    ext.set_num_threads(0)
    torch.set_num_threads(1)
    assert ext.get_num_threads() == 1
    ext.set_num_threads(2)  # its own count, whatever torch's
    assert ext.get_num_threads() == 2 and torch.get_num_threads() == 1


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ValueError, match="set_num_threads"):
        set_num_threads(bad)


def test_the_native_binding_checks_its_argument(ext):
    with pytest.raises(ValueError, match="set_num_threads"):
        ext.set_num_threads(-1)


def test_set_num_threads_compiles_nothing(tmp_path):
    code = (
        "import sys, torch, pav.ops\n"
        "pav.ops.set_num_threads(1)\n"
        "assert torch.get_num_threads() == 1 and pav.ops.get_num_threads() == 1\n"
        "assert 'pav_C' not in sys.modules and 'pav._C' not in sys.modules\n"
    )
    env = {**os.environ, "PAV_CACHE_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    assert not (tmp_path / "ext").exists()

"""How the native extension is built and what happens when it cannot be."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from pav.ops import _ext
from pav.ops.bvh import MeshBVH

CUDA_SOURCES = sorted((_ext.SOURCE_DIR / "src").glob("*.cu"))


def _nvcc() -> str | None:
    from torch.utils.cpp_extension import CUDA_HOME

    candidates = [shutil.which("nvcc")] + ([str(Path(CUDA_HOME) / "bin" / "nvcc")] if CUDA_HOME else [])
    return next((c for c in candidates if c and Path(c).exists()), None)


@pytest.mark.skipif(_nvcc() is None, reason="nvcc is not installed")
@pytest.mark.parametrize("source", CUDA_SOURCES, ids=lambda p: p.name)
def test_cuda_sources_compile_with_nvcc(source, tmp_path):
    """The kernels need no torch headers, so nvcc checks them even where torch has no CUDA."""
    cmd = [_nvcc(), "-std=c++17", "-O1", "-I", str(_ext.SOURCE_DIR / "include"), "-c", str(source),
           "-o", str(tmp_path / "out.o")]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, f"nvcc rejected {source.name}:\n{result.stderr[-3000:]}"


def test_cuda_sources_exist():
    names = {p.name for p in CUDA_SOURCES}
    assert "bvh_cuda.cu" in names


def test_importing_pav_compiles_nothing(tmp_path):
    code = (
        "import sys, pav, pav.ops, pav.ops.bvh, pav.head.flame\n"
        "assert 'pav_C' not in sys.modules and 'pav._C' not in sys.modules\n"
    )
    env = {**os.environ, "PAV_CACHE_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    assert not (tmp_path / "ext").exists()


@pytest.fixture
def fresh_loader(monkeypatch):
    """The loader's module state, reset for this test and restored after it."""
    monkeypatch.setattr(_ext, "_module", None)
    monkeypatch.setattr(_ext, "_error", None)
    monkeypatch.setattr(_ext, "_warned", False)
    return monkeypatch


def test_missing_compiler_gives_a_clear_error_and_the_twin_serves(fresh_loader):
    fresh_loader.setenv("CXX", "/nonexistent/c++")
    with pytest.raises(_ext.ExtensionUnavailable, match="no C\\+\\+ compiler"):
        _ext.get_ext("ext", "test")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _ext.get_ext("auto", "test") is None
        assert _ext.get_ext("auto", "test") is None
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "no C++ compiler" in messages[0] and "\n" not in messages[0]
    verts = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]])
    bvh = MeshBVH(verts, torch.tensor([[0, 1, 2]]))
    assert bvh.backend == "torch"
    face, _, sqdist = bvh.nearest(torch.tensor([[0.2, 0.2, 1.0]]))
    assert face.tolist() == [0] and sqdist.tolist() == [1.0]


def test_disabled_by_environment(fresh_loader):
    fresh_loader.setenv("PAV_NO_EXT", "1")
    with pytest.raises(_ext.ExtensionUnavailable, match="PAV_NO_EXT"):
        _ext.load()


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend"):
        _ext.get_ext("fast", "test")

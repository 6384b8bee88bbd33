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
    monkeypatch.setattr(_ext, "_cuda_reason", None)
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


# ---- CUDA builds, as far as a machine without a GPU can check them -----------------------------------------


@pytest.fixture
def no_visible_gpu(monkeypatch):
    """A build node: torch has CUDA, no GPU is visible (CUDA_VISIBLE_DEVICES=)."""
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_75", "sm_80", "sm_90", "sm_100", "sm_120"])
    return monkeypatch


def test_architectures_without_a_visible_gpu_are_torchs_own(no_visible_gpu):
    supported = {"7.5", "8.0", "8.6", "9.0", "9.0a", "10.0"}  # this nvcc cannot build sm_120
    assert _ext.cuda_arch_list(supported) == ["7.5", "8.0", "9.0", "10.0+PTX"]
    toolchain = _ext.CudaToolchain(Path("nvcc"), "13.0", tuple(_ext.cuda_arch_list(supported)))
    flags = toolchain.arch_flags()
    assert "-gencode=arch=compute_75,code=sm_75" in flags
    assert flags[-1] == "-gencode=arch=compute_100,code=compute_100"  # PTX of the newest for later GPUs
    no_visible_gpu.setattr(torch.cuda, "get_arch_list", lambda: [])  # torch names none: a fixed default
    assert _ext.cuda_arch_list(None)[-1] == "9.0+PTX"


def test_architectures_of_the_visible_gpus_and_the_environment(monkeypatch):
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: [(9, 0), (8, 6)][i])
    assert _ext.cuda_arch_list({"8.6", "9.0", "9.0a"}) == ["8.6", "9.0+PTX"]
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: (12, 0))  # newer than this nvcc
    assert _ext.cuda_arch_list({"8.6", "9.0", "9.0a"}) == ["9.0+PTX"]
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX")
    assert _ext.cuda_arch_list(None) == ["8.0", "9.0+PTX"]
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "Hopper")
    with pytest.raises(_ext.ExtensionUnavailable, match="TORCH_CUDA_ARCH_LIST"):
        _ext.cuda_arch_list(None)


def _fake_nvcc(folder: Path, release: str) -> Path:
    nvcc = folder / "nvcc"
    nvcc.write_text("#!/bin/sh\n"
                    f'if [ "$1" = "--version" ]; then echo "Cuda compilation tools, release {release}, V{release}.1"; '
                    'else echo compute_80; echo compute_90; fi\n')
    nvcc.chmod(0o755)
    return nvcc


def test_nvcc_of_another_major_version_is_refused_with_the_reason(no_visible_gpu, tmp_path):
    no_visible_gpu.setattr(torch.version, "cuda", "13.0")
    no_visible_gpu.setattr(_ext, "find_nvcc", lambda: _fake_nvcc(tmp_path, "12.4"))
    toolchain, reason = _ext.cuda_toolchain()
    assert toolchain is None and "12.4" in reason and "13.0" in reason
    no_visible_gpu.setattr(_ext, "find_nvcc", lambda: _fake_nvcc(tmp_path, "13.1"))
    toolchain, reason = _ext.cuda_toolchain()
    assert reason is None and toolchain.version == "13.1" and toolchain.archs == ("8.0", "9.0+PTX")


def test_no_compiler_fuses_multiplies_and_adds():
    """An FMA makes the edge functions of two triangles across a shared edge differ in their last bit, and a ray
    through that edge then misses both on the GPU; CPU and GPU distances would also stop agreeing bitwise."""
    cflags, cuda_flags = _ext.compile_flags(_ext.CudaToolchain(Path("nvcc"), "13.0", ("9.0+PTX",)))
    assert "-ffp-contract=off" in cflags and "--fmad=false" in cuda_flags
    assert "-gencode=arch=compute_90,code=sm_90" in cuda_flags
    assert "-ffp-contract=off" in _ext.compile_flags(None)[0]


def test_build_folders_differ_by_architectures(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    hopper = _ext.build_directory(_ext.CudaToolchain(Path("nvcc"), "13.0", ("9.0+PTX",)))
    both = _ext.build_directory(_ext.CudaToolchain(Path("nvcc"), "13.0", ("8.0", "9.0+PTX")))
    assert len({hopper, both, _ext.build_directory(None)}) == 3
    assert hopper.name.endswith("cu130-sm90ptx")


def test_failed_cuda_build_keeps_the_cpu_ops_and_says_why(fresh_loader, monkeypatch, tmp_path):
    toolchain = _ext.CudaToolchain(Path("nvcc"), "13.0", ("9.0+PTX",))
    real_load, real_dir = _ext._jit_load, _ext.build_directory
    cuda_attempts = []

    def jit_load(chain, verbose):
        if chain is None:
            return real_load(None, verbose)
        cuda_attempts.append(chain)
        raise RuntimeError("Error building extension 'pav_C_cuda': [1/4] nvcc -c bvh_cuda.cu\n"
                           'bvh_cuda.cu(12): error: identifier "foo" is undefined\nninja: build stopped')

    monkeypatch.setattr(_ext, "cuda_toolchain", lambda: (toolchain, None))
    monkeypatch.setattr(_ext, "_jit_load", jit_load)
    monkeypatch.setattr(_ext, "build_directory", lambda chain: tmp_path if chain else real_dir(None))
    for attempt in range(2):  # the second process reads the recorded failure instead of compiling again
        monkeypatch.setattr(_ext, "_module", None)
        with pytest.warns(RuntimeWarning, match='identifier "foo" is undefined'):
            module = _ext.load()
        assert not module.with_cuda
        assert 'identifier "foo" is undefined' in _ext.cuda_unavailable_reason()
        assert len(cuda_attempts) == 1, attempt
    face, _, _ = MeshBVH(torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]]), torch.tensor([[0, 1, 2]]),
                         backend="ext").nearest(torch.tensor([[0.2, 0.2, 1.0]]))
    assert face.tolist() == [0]


def test_failed_cpu_build_names_the_compiler_error_in_its_first_line(fresh_loader, monkeypatch):
    def jit_load(chain, verbose):
        raise RuntimeError("Error building extension 'pav_C': [1/3] c++ -c bvh.cpp\n"
                           "bvh.cpp:3:1: error: expected ';' before '}' token\nninja: build stopped")

    monkeypatch.setattr(_ext, "cuda_toolchain", lambda: (None, "torch is a CPU build"))
    monkeypatch.setattr(_ext, "_jit_load", jit_load)
    with pytest.raises(_ext.ExtensionUnavailable) as caught:
        _ext.load()
    assert "expected ';'" in str(caught.value).splitlines()[0]
    with pytest.warns(RuntimeWarning, match="expected ';'"):
        assert _ext.get_ext("auto", "test") is None


def test_a_killed_build_does_not_leave_the_next_one_waiting(tmp_path):
    # a build stopped mid-way (Ctrl-C twice, a killed job) leaves torch's lock file; torch alone waits on it forever
    code = ("import os, signal; from torch.utils.file_baton import FileBaton; "
            f"assert FileBaton({str(tmp_path / 'lock')!r}).try_acquire(); os.kill(os.getpid(), signal.SIGKILL)")
    subprocess.run([sys.executable, "-c", code], check=False)
    assert (tmp_path / "lock").exists()
    from torch.utils.file_baton import FileBaton

    with _ext._build_lock(tmp_path):
        baton = FileBaton(str(tmp_path / "lock"))
        assert baton.try_acquire(), "the stale lock file is still there"
        baton.release()

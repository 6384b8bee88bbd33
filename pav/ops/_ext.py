"""Lazy loading of the native extension `pav._C`.

Nothing compiles on import. The first op that asks for the extension builds it with
`torch.utils.cpp_extension.load` (ninja, JIT) into a cache directory keyed by the torch
and Python versions, and later processes reuse that build (torch rebuilds only when a
source changed). CUDA sources join only where torch has CUDA and nvcc is present.
Where no build is possible, `get_ext(backend="auto")` returns None after one warning
and the caller serves the op with its pure-torch twin.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from pathlib import Path

import torch

from ..cache import cache_dir

SOURCE_DIR = Path(__file__).resolve().parents[2] / "cuda_ext"
EXT_NAME = "pav_C"
BACKENDS = ("auto", "ext", "torch")


class ExtensionUnavailable(RuntimeError):
    """The native extension cannot be built or loaded here; the message says why."""


_module = None
_error: ExtensionUnavailable | None = None
_warned = False


def cuda_build_possible() -> bool:
    """CUDA sources are compiled only where torch has CUDA and nvcc can be found."""
    if torch.version.cuda is None:
        return False
    from torch.utils.cpp_extension import CUDA_HOME

    return CUDA_HOME is not None and (Path(CUDA_HOME) / "bin" / "nvcc").exists()


def build_directory(with_cuda: bool) -> Path:
    flavour = f"cu{torch.version.cuda.replace('.', '')}" if with_cuda else "cpu"
    tag = f"torch{torch.__version__.split('+')[0]}-py{sys.version_info.major}{sys.version_info.minor}-{flavour}"
    return cache_dir() / "ext" / tag


def sources(with_cuda: bool) -> list[Path]:
    src = SOURCE_DIR / "src"
    files = sorted(src.glob("*.cpp"))
    if with_cuda:
        files += sorted(src.glob("*.cu"))
    return files


def _diagnose() -> str | None:
    """A reason the build cannot even start, or None."""
    if os.environ.get("PAV_NO_EXT"):
        return "disabled by the PAV_NO_EXT environment variable"
    if not (SOURCE_DIR / "src").is_dir():
        return f"its sources are missing (looked in {SOURCE_DIR})"
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        return f"no C++ compiler found ({compiler!r} is not on PATH)"
    from torch.utils.cpp_extension import is_ninja_available

    if not is_ninja_available():
        return "ninja is not installed (pip install ninja)"
    return None


def load(verbose: bool = False):
    """Build (first use) or load the extension; raises ExtensionUnavailable with the reason."""
    global _module, _error
    if _module is not None:
        return _module
    if _error is not None:
        raise _error
    reason = _diagnose()
    if reason is not None:
        _error = ExtensionUnavailable(f"pav._C unavailable: {reason}")
        raise _error
    from torch.utils.cpp_extension import load as jit_load

    with_cuda = cuda_build_possible()
    build_dir = build_directory(with_cuda)
    build_dir.mkdir(parents=True, exist_ok=True)
    cflags = ["-O3", "-fopenmp"]
    cuda_flags = ["-O3", "-lineinfo"]
    if with_cuda:
        cflags.append("-DPAV_WITH_CUDA")
        cuda_flags.append("-DPAV_WITH_CUDA")
    if not any(build_dir.glob(f"{EXT_NAME}*.so")):
        print(f"pav: compiling pav._C into {build_dir} (first use, about a minute)", file=sys.stderr)
    try:
        module = jit_load(
            name=EXT_NAME,
            sources=[str(s) for s in sources(with_cuda)],
            extra_include_paths=[str(SOURCE_DIR / "include")],
            extra_cflags=cflags,
            extra_cuda_cflags=cuda_flags,
            extra_ldflags=["-fopenmp"],
            build_directory=str(build_dir),
            with_cuda=with_cuda,
            verbose=verbose,
        )
    except Exception as exc:  # a compiler error or a missing toolchain piece
        lines = str(exc).strip().splitlines()
        errors = [line for line in lines if "error" in line.lower() and "Error building" not in line]
        tail = "\n".join(errors[:8] if errors else lines[-15:])
        _error = ExtensionUnavailable(f"pav._C failed to build in {build_dir}:\n{tail}")
        raise _error from exc
    sys.modules["pav._C"] = module
    _module = module
    return module


def get_ext(backend: str, op: str):
    """The extension for `backend` "ext" (raises if unavailable), "auto" (None if unavailable,
    after one warning), or "torch" (always None)."""
    global _warned
    if backend not in BACKENDS:
        raise ValueError(f"{op}: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return None
    if backend == "ext":
        return load()
    try:
        return load()
    except ExtensionUnavailable as exc:
        if not _warned:
            first = str(exc).splitlines()[0]
            warnings.warn(f"{first}; the pure-torch ops serve instead (much slower)", RuntimeWarning, stacklevel=3)
            _warned = True
        return None

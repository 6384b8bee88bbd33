"""Lazy loading of the native extension `pav._C`.

Nothing compiles on import. The first op that asks for the extension builds it with
`torch.utils.cpp_extension.load` (ninja, JIT) into a cache directory keyed by the torch and
Python versions, CUDA's version and the GPU architectures, and later processes reuse that
build (torch rebuilds only when a source changed).

CUDA sources join only where torch has CUDA and an nvcc of the same major version is found.
The architectures come from `TORCH_CUDA_ARCH_LIST`, else the visible GPUs, else (a build node
with no GPU) the ones torch itself was built for that this nvcc knows. When the CUDA build
fails, the error line is printed and the CPU ops are built alone, so CPU work goes on and
`cuda_unavailable_reason()` says why CUDA tensors are served from host copies. Where no
build is possible, `get_ext(backend="auto")` returns None after one warning and the caller
serves the op with its pure-torch twin.

Both compilers are told not to fuse multiplies and adds (`--fmad=false`, `-ffp-contract=off`):
the watertight ray-triangle test needs its edge functions to be exact negatives across a
shared edge, and CPU and GPU then compute bitwise the same distances and pick the same faces.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ..common.cache import cache_dir

SOURCE_DIR = Path(__file__).resolve().parent / "csrc"  # the kernels beside the ops that call them
EXT_NAME = "pav_C"
BACKENDS = ("auto", "ext", "torch")
FALLBACK_ARCHS = ("7.5", "8.0", "8.6", "8.9", "9.0")  # when torch names none: Turing to Hopper
FAILED_MARKER = "cuda_build_failed.txt"


class ExtensionUnavailable(RuntimeError):
    """The native extension cannot be built or loaded here; the message says why."""


_module = None
_error: ExtensionUnavailable | None = None
_cuda_reason: str | None = None
_warned = False


# ---------------------------------------------------------------------------------- CUDA toolchain


@dataclass(frozen=True)
class CudaToolchain:
    nvcc: Path
    version: str  # nvcc's release, e.g. "13.0"
    archs: tuple[str, ...]  # e.g. ("8.0", "9.0+PTX")

    def arch_flags(self) -> list[str]:
        """-gencode flags for nvcc (passing them keeps torch's own detection, which needs a GPU, out)."""
        flags = []
        for arch in self.archs:
            num = arch.replace("+PTX", "").replace(".", "")
            flags.append(f"-gencode=arch=compute_{num},code=sm_{num}")
            if arch.endswith("+PTX"):
                flags.append(f"-gencode=arch=compute_{num},code=compute_{num}")
        return flags

    @property
    def tag(self) -> str:
        return "sm" + "_".join(a.replace("+PTX", "ptx").replace(".", "") for a in self.archs)


def _run(cmd: list[str]) -> str | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def find_nvcc() -> Path | None:
    from torch.utils.cpp_extension import CUDA_HOME

    candidates = [Path(CUDA_HOME) / "bin" / "nvcc"] if CUDA_HOME else []
    which = shutil.which("nvcc")
    if which:
        candidates.append(Path(which))
    return next((c for c in candidates if c.exists()), None)


def nvcc_version(nvcc: Path) -> str | None:
    """"13.0" from `nvcc --version`, or None."""
    match = re.search(r"release (\d+)\.(\d+)", _run([str(nvcc), "--version"]) or "")
    return f"{match.group(1)}.{match.group(2)}" if match else None


def nvcc_archs(nvcc: Path) -> set[str] | None:
    """The architectures nvcc can build ("9.0", "9.0a", ...), or None when it cannot say (older than CUDA 11)."""
    found = re.findall(r"compute_(\d+)([a-z]?)", _run([str(nvcc), "--list-gpu-arch"]) or "")
    return {f"{num[:-1]}.{num[-1]}{suffix}" for num, suffix in found} or None


def _arch_key(arch: str) -> tuple[int, int, str]:
    major, rest = arch.replace("+PTX", "").split(".")
    return int(major), int(rest[0]), rest[1:]


def cuda_arch_list(supported: set[str] | None) -> list[str]:
    """Architectures to build: TORCH_CUDA_ARCH_LIST, else the visible GPUs, else those torch was built for.

    The newest gets +PTX so later GPUs can compile it at start. `supported`: what nvcc can build (None: all).
    """
    env = os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip()
    if env and env != "native":
        archs = [a for a in re.split(r"[;\s]+", env) if a]
        bad = [a for a in archs if not re.fullmatch(r"\d+\.\d+[a-z]?(\+PTX)?", a)]
        if bad:
            raise ExtensionUnavailable(f"pav._C unavailable: TORCH_CUDA_ARCH_LIST={env!r} holds {bad}; "
                                       "expected entries like 8.0;8.6;9.0+PTX")
        return archs
    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        archs = {"{}.{}".format(*torch.cuda.get_device_capability(i)) for i in range(torch.cuda.device_count())}
        if supported is not None:  # a GPU newer than this nvcc runs nvcc's newest portable architecture as PTX
            newest = max((a for a in supported if a[-1].isdigit()), key=_arch_key, default=None)
            archs = {a if a in supported or newest is None else newest for a in archs}
    else:  # a build node without a GPU: build for what torch itself supports
        torch_archs = [re.fullmatch(r"sm_(\d+)([a-z]?)", a) for a in torch.cuda.get_arch_list()]
        archs = {f"{m.group(1)[:-1]}.{m.group(1)[-1]}{m.group(2)}" for m in torch_archs if m} or set(FALLBACK_ARCHS)
        if supported is not None:
            archs &= supported
    ordered = sorted(archs, key=_arch_key)
    if ordered:
        ordered[-1] += "+PTX"
    return ordered


def cuda_toolchain() -> tuple[CudaToolchain | None, str | None]:
    """The toolchain for the CUDA sources, or (None, why not)."""
    if torch.version.cuda is None:
        return None, "torch is a CPU build"
    nvcc = find_nvcc()
    if nvcc is None:
        return None, "nvcc was not found (set CUDA_HOME or put nvcc on PATH)"
    version = nvcc_version(nvcc)
    if version is None:
        return None, f"{nvcc} --version printed no release number"
    if version.split(".")[0] != torch.version.cuda.split(".")[0]:
        return None, (f"nvcc {version} ({nvcc}) and torch's CUDA {torch.version.cuda} differ in their major "
                      "version; install the matching CUDA toolkit or point CUDA_HOME at it")
    archs = cuda_arch_list(nvcc_archs(nvcc))
    if not archs:
        return None, "no GPU architecture to build for"
    return CudaToolchain(nvcc, version, tuple(archs)), None


def cuda_build_possible() -> bool:
    """CUDA sources are compiled only where torch has CUDA and a matching nvcc can be found."""
    return cuda_toolchain()[0] is not None


# ---------------------------------------------------------------------------------- build


def build_directory(toolchain: CudaToolchain | None) -> Path:
    flavour = f"cu{torch.version.cuda.replace('.', '')}-{toolchain.tag}" if toolchain else "cpu"
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


def error_lines(exc: BaseException, limit: int = 8) -> list[str]:
    """The compiler's own error lines of a failed build (else the exception itself)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() and "error building extension" not in line.lower()]
    return errors[:limit] or [f"{type(exc).__name__}: {lines[-1] if lines else exc!r}"]


def compile_flags(toolchain: CudaToolchain | None) -> tuple[list[str], list[str]]:
    """(C++ flags, nvcc flags): no multiply-add fusion on either side (see the module docstring)."""
    cflags = ["-O3", "-fopenmp", "-ffp-contract=off"]
    cuda_flags = ["-O3", "-lineinfo", "--fmad=false"]
    if toolchain is not None:
        cflags.append("-DPAV_WITH_CUDA")
        cuda_flags += ["-DPAV_WITH_CUDA", *toolchain.arch_flags()]
    return cflags, cuda_flags


@contextlib.contextmanager
def _build_lock(build_dir: Path):
    """Holds an OS lock on build_dir while torch builds there, so torch's own lock file found under it is stale.

    torch's lock file outlives a build that was killed, and the next build would wait on it forever; the OS drops
    this lock with its process, so whoever holds it may remove that file.
    """
    with open(build_dir / "pav_build.lock", "w") as handle:  # closing it releases the lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"pav: waiting for another process building pav._C in {build_dir}", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        stale = build_dir / "lock"  # torch.utils.cpp_extension's FileBaton
        if stale.exists():
            print(f"pav: removing {stale}, left by a build that was stopped", file=sys.stderr)
            stale.unlink(missing_ok=True)
        yield


def _jit_load(toolchain: CudaToolchain | None, verbose: bool):
    """One build of the extension: with the CUDA sources when a toolchain is given."""
    from torch.utils.cpp_extension import load as jit_load

    build_dir = build_directory(toolchain)
    build_dir.mkdir(parents=True, exist_ok=True)
    cflags, cuda_flags = compile_flags(toolchain)
    name = EXT_NAME + ("_cuda" if toolchain else "")  # one name per flavour: torch versions modules by name
    if not any(build_dir.glob(f"{name}*.so")):
        what = f"with CUDA {toolchain.version} for {', '.join(toolchain.archs)}" if toolchain else "CPU only"
        print(f"pav: compiling pav._C ({what}) into {build_dir} (first use, a minute or more)", file=sys.stderr)
    with _build_lock(build_dir):
        return jit_load(name=name, sources=[str(s) for s in sources(toolchain is not None)],
                        extra_include_paths=[str(SOURCE_DIR / "include")], extra_cflags=cflags,
                        extra_cuda_cflags=cuda_flags, extra_ldflags=["-fopenmp"], build_directory=str(build_dir),
                        with_cuda=toolchain is not None, verbose=verbose)


def _source_key(toolchain: CudaToolchain) -> str:
    """What a recorded CUDA build failure depends on: the sources and the toolchain."""
    digest = hashlib.sha256(repr(toolchain).encode())
    for path in sorted(SOURCE_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def _recorded_failure(toolchain: CudaToolchain) -> str | None:
    marker = build_directory(toolchain) / FAILED_MARKER
    if not marker.is_file():
        return None
    key, _, reason = marker.read_text().partition("\n")
    return reason.strip() if key == _source_key(toolchain) else None


def _load_cuda(toolchain: CudaToolchain, verbose: bool):
    """The CUDA build, or None after one warning with the compiler's error (recorded, so later processes
    do not spend a minute failing again until a source or the toolchain changes)."""
    global _cuda_reason
    recorded = _recorded_failure(toolchain)
    if recorded is None:
        try:
            return _jit_load(toolchain, verbose)
        except Exception as exc:  # noqa: BLE001 - a compiler error or a broken toolchain piece
            lines = error_lines(exc)
            recorded = f"its CUDA build failed in {build_directory(toolchain)}: {lines[0]}"
            build_directory(toolchain).mkdir(parents=True, exist_ok=True)
            (build_directory(toolchain) / FAILED_MARKER).write_text(_source_key(toolchain) + "\n" + recorded)
            details = "".join(f"\n  {line}" for line in lines)
            print(f"pav: the CUDA build of pav._C failed:{details}", file=sys.stderr)
    _cuda_reason = recorded
    warnings.warn(f"pav._C: {recorded}; building the CPU ops only, CUDA tensors are served from host copies "
                  f"(delete {build_directory(toolchain) / FAILED_MARKER} to try again)", RuntimeWarning,
                  stacklevel=4)
    return None


def load(verbose: bool = False):
    """Build (first use) or load the extension; raises ExtensionUnavailable with the reason."""
    global _module, _error, _cuda_reason
    if _module is not None:
        return _module
    if _error is not None:
        raise _error
    reason = _diagnose()
    if reason is not None:
        _error = ExtensionUnavailable(f"pav._C unavailable: {reason}")
        raise _error
    try:
        toolchain, _cuda_reason = cuda_toolchain()
    except ExtensionUnavailable as exc:
        _error = exc
        raise
    module = _load_cuda(toolchain, verbose) if toolchain is not None else None
    if module is None:
        try:
            module = _jit_load(None, verbose)
        except Exception as exc:  # a compiler error or a missing toolchain piece
            lines = error_lines(exc)
            rest = "".join(f"\n  {line}" for line in lines[1:])
            _error = ExtensionUnavailable(f"pav._C failed to build in {build_directory(None)}: {lines[0]}{rest}")
            raise _error from exc
    sys.modules["pav._C"] = module
    _module = module
    return module


def cuda_unavailable_reason() -> str | None:
    """None when pav._C serves CUDA tensors with its kernels, else why not (builds the extension if needed)."""
    try:
        module = load()
    except ExtensionUnavailable as exc:
        return str(exc).splitlines()[0]
    if module.with_cuda:
        return None
    return _cuda_reason or "it was built without CUDA"


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

"""Build the native extension ahead of time: `python -m pav.ops.build [verbose=true]`.

Ops build it on first use anyway; this does it up front (a fresh machine, a CI job, a
cluster node before training) and prints where the build lives and what it contains.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from ..common.cli import parse_overrides
from . import _ext


@dataclass
class BuildConfig:
    verbose: bool = False


def main(argv: list[str] | None = None) -> int:
    cfg = parse_overrides(BuildConfig, sys.argv[1:] if argv is None else argv, prog="python -m pav.ops.build")
    t0 = time.perf_counter()
    try:
        module = _ext.load(verbose=cfg.verbose)
    except _ext.ExtensionUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    ops = sorted(name for name in dir(module) if not name.startswith("_") and callable(getattr(module, name)))
    toolchain = _ext.cuda_toolchain()[0] if module.with_cuda else None
    print(f"pav._C ready in {time.perf_counter() - t0:.1f} s at {_ext.build_directory(toolchain)}")
    cuda = f"yes ({', '.join(toolchain.archs)})" if toolchain else f"no: {_ext.cuda_unavailable_reason()}"
    print(f"  CUDA: {cuda}; ops: {', '.join(ops)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CPU threads of torch and of the native extension together: `set_num_threads(n)`.

The extension's OpenMP loops may run on another libgomp than torch's (a wheel that bundles its own,
renamed, leaves the extension on the system one), so `torch.set_num_threads` alone need not reach them.
Each DDP rank should give its share of the cores here, e.g. `set_num_threads(os.cpu_count() // world_size)`.
"""

from __future__ import annotations

import torch

from . import _ext


def set_num_threads(n: int) -> None:
    """Use n CPU threads in torch and in pav._C. Loads nothing: an extension not loaded yet follows torch's
    count once it loads, so nothing is compiled here."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be an int >= 1, got {n!r}")
    torch.set_num_threads(n)
    if _ext._module is not None:
        _ext._module.set_num_threads(n)


def get_num_threads() -> int:
    """The extension's CPU thread count where it is loaded, else torch's (which the extension will follow)."""
    if _ext._module is not None:
        return int(_ext._module.get_num_threads())
    return torch.get_num_threads()

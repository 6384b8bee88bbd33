"""Native ops (`pav._C`, built on first use) and their pure-torch twins."""

from ._ext import ExtensionUnavailable
from .bvh import MeshBVH, nearest_triangle_torch, raycast_torch

__all__ = ["ExtensionUnavailable", "MeshBVH", "nearest_triangle_torch", "raycast_torch"]

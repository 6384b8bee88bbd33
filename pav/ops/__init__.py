"""Native ops (`pav._C`, built on first use) and their pure-torch twins."""

from ._ext import ExtensionUnavailable
from .bvh import MeshBVH, nearest_triangle_torch, raycast_torch
from .hashgrid import HashGridSpec, hash_encode, hash_encode_torch
from .threads import get_num_threads, set_num_threads

__all__ = [
    "ExtensionUnavailable",
    "HashGridSpec",
    "MeshBVH",
    "get_num_threads",
    "hash_encode",
    "hash_encode_torch",
    "nearest_triangle_torch",
    "raycast_torch",
    "set_num_threads",
]

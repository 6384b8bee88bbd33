"""Native ops (`pav._C`, built on first use) and their pure-torch twins."""

from .hashgrid import HashGridSpec, hash_encode, hash_encode_torch

__all__ = ["HashGridSpec", "hash_encode", "hash_encode_torch"]

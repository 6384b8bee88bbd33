"""Observation space -> canonical space through the nearest triangle of the posed head mesh."""

from .canonical import Canonicalizer, CanonicalSamples, triangle_frames
from .frames import FrameSet, head_transforms

__all__ = ["CanonicalSamples", "Canonicalizer", "FrameSet", "head_transforms", "triangle_frames"]
